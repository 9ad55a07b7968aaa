"""The example notebooks execute top to bottom on the synthetic path, and match their generator.

Each notebook runs in a fresh IPython kernel of *this* interpreter (a kernelspec
written to a temporary folder names ``sys.executable``; no global Jupyter state is
read or changed), with a temporary working directory, the repository root first on
``PYTHONPATH`` (so the checkout's package is imported even without ``pip install``),
and without ``RSNA_KAGGLE_DIR``, so every notebook takes its synthetic-data path.
A cell error fails the test with the cell's traceback. The runtime of each notebook
is recorded as the ``runtime_s`` property (``pytest --junitxml``) and printed
(``pytest -s`` or ``--durations=0``).
"""
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
NOTEBOOKS = ["01_eda.ipynb", "02_train_mask_rcnn.ipynb", "03_baselines.ipynb", "04_matterport_notebook.ipynb"]
# The environment that would switch a notebook to real data or move its outputs.
_DATA_SWITCHES = ("RSNA_KAGGLE_DIR", "RSNA_WORK_DIR")


def _load_generator():
    spec = importlib.util.spec_from_file_location("build_notebooks", EXAMPLES / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel_manager(kernel_root):
    """An AsyncKernelManager whose 'python3' kernel is this interpreter, from a private kernelspec folder."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = Path(kernel_root) / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (tests)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(kernel_root)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)


def _kernel_env():
    """This process's environment for the kernel: checkout importable, synthetic data, inline figures."""
    env = {k: v for k, v in os.environ.items() if k not in _DATA_SWITCHES and k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _stream_text(notebook):
    return "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_on_synthetic_data(name, tmp_path, record_property):
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    client = nbclient.NotebookClient(notebook, km=_kernel_manager(tmp_path / "kernels"), timeout=600,
                                     resources={"metadata": {"path": str(work_dir)}})
    start = time.perf_counter()
    try:
        client.execute(env=_kernel_env())
    finally:
        runtime = time.perf_counter() - start
        record_property("runtime_s", round(runtime, 1))
        print(f"{name}: {runtime:.1f} s")
        nbformat.write(notebook, tmp_path / name)  # the executed notebook, for a look after a failure
    text = _stream_text(notebook)
    assert "generating a small synthetic data set" in text, "the notebook did not take its synthetic path"
    assert (work_dir / "rsna_work" / "synthetic_data" / "stage_2_train_labels.csv").is_file()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_generated_and_cleared(name, tmp_path):
    generator = _load_generator()
    generator.write_notebooks(tmp_path, names=[name])
    committed = (EXAMPLES / name).read_text(encoding="utf-8")
    assert committed == (tmp_path / name).read_text(encoding="utf-8"), \
        f"examples/{name} differs from its generator: run `python examples/build_notebooks.py`"
    notebook = nbformat.reads(committed, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(not cell.outputs and cell.execution_count is None for cell in code_cells)
