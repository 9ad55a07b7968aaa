"""The package's layers (docs/ARCHITECTURE.md): each folder imports only the layers below it.

Inside the engine (``mrcnn/``) the same rule orders its parts: ops < config, eval < input < layers
< inference, train < export < matterport's facades; ops, config, eval and input import no TensorFlow
or Keras when imported (the input worker processes import only them).

Read from the source (``ast``), every import of every module, at module level or inside a
function: a lazy import is still a dependency.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rsna_detector

PACKAGE_ROOT = Path(rsna_detector.__file__).parent

#: the top-level modules every layer may use (errors, atomic writes, paths, lazy names, worker pools, console)
INFRASTRUCTURE = {"errors", "_io", "_paths", "_lazy", "_processes", "console", "pydicom_compat"}

#: layer -> the layers it may import (besides itself and the infrastructure)
ALLOWED = {
    "infrastructure": set(),
    "weights": set(),
    "data": set(),
    "mrcnn": {"weights", "data"},
    "detector": {"weights", "data", "mrcnn"},
    "baselines": {"weights", "data", "mrcnn", "detector"},
    "eda": {"data"},
    "cli": {"weights", "data", "mrcnn", "detector", "baselines", "eda"},
    "package": {"weights", "data", "mrcnn", "detector", "baselines", "eda", "cli"},
}


def layer_of(parts):
    """The layer of a module given as its path parts below ``rsna_detector``."""
    if len(parts) == 1:
        name = parts[0].removesuffix(".py")
        return "package" if name == "__init__" else "infrastructure"
    return parts[0]


def target_layer(parts, root=PACKAGE_ROOT):
    """The layer of an imported ``rsna_detector`` module given as its dotted parts below the package."""
    if not parts:
        return "package"
    return parts[0] if (root / parts[0]).is_dir() else "infrastructure"


def imported_modules(path, root=PACKAGE_ROOT):
    """``(line, dotted parts below rsna_detector)`` of each import of an ``rsna_detector`` module in a file.

    ``from <package> import a, b`` names modules ``a`` and ``b`` of the package (``from .. import errors``,
    ``from . import boxes``); from a module it names the module itself.
    """
    package_parts = path.relative_to(root).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "rsna_detector":
                target = node.module.split(".")[1:]
            else:
                continue
            package = not target or root.joinpath(*target).is_dir()
            yield from ((node.lineno, target + [name.name] if package else target) for name in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "rsna_detector":
                    yield node.lineno, parts[1:]


def imported_layers(path, root=PACKAGE_ROOT):
    """``(line, layer)`` of each import of an ``rsna_detector`` module in the file at ``path`` below ``root``."""
    for line, parts in imported_modules(path, root):
        yield line, target_layer(parts, root)


def _imports_outside(paths, imports, allowed):
    """``'file:line imports target'`` of each import (``imports(path)``: ``(line, target)``) not in ``allowed``."""
    return [f"{path.relative_to(PACKAGE_ROOT)}:{line} imports {target}"
            for path in paths for line, target in imports(path) if target not in allowed]


def _modules():
    return sorted(p for p in PACKAGE_ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_known_layer():
    layers = {layer_of(path.relative_to(PACKAGE_ROOT).parts) for path in _modules()}
    assert layers <= set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer):
    paths = [path for path in _modules() if layer_of(path.relative_to(PACKAGE_ROOT).parts) == layer]
    assert _imports_outside(paths, imported_layers, ALLOWED[layer] | {layer, "infrastructure"}) == []


def test_the_checker_sees_relative_and_absolute_imports(tmp_path):
    """The walker itself: a ``data`` module importing upwards four ways is caught each time."""
    root = tmp_path / "rsna_detector"
    for folder in ("data", "mrcnn", "detector"):
        (root / folder).mkdir(parents=True)
    probe = root / "data" / "probe.py"
    probe.write_text("from ..mrcnn import utils\nimport rsna_detector.mrcnn.model\nfrom .. import errors\n"
                     "def f():\n    from rsna_detector.detector.config import DetectorConfig\n", encoding="utf-8")
    assert [layer for _, layer in imported_layers(probe, root)] == ["mrcnn", "mrcnn", "infrastructure", "detector"]


def test_the_data_layer_imports_no_tensorflow_or_keras():
    found = []
    for path in sorted((PACKAGE_ROOT / "data").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.name}:{node.lineno} imports {name}" for name in names
                      if name.split(".")[0] in {"tensorflow", "keras", "keras_hub"}]
    assert found == []


def test_no_module_is_over_600_lines():
    sizes = {str(path.relative_to(PACKAGE_ROOT)): len(path.read_text(encoding="utf-8").splitlines())
             for path in _modules()}
    assert {name: size for name, size in sizes.items() if size > 600} == {}


def test_one_module_reads_the_keras2_layer_names_attribute():
    readers = [str(path.relative_to(PACKAGE_ROOT)) for path in _modules()
               if any(quoted in path.read_text(encoding="utf-8") for quoted in ('"layer_names', "'layer_names"))]
    assert readers == ["weights/keras2_hdf5.py"]


# ----------------------------------------------------------------------------- the engine's subpackages
#: the engine's parts, lowest first: ``ops`` (numpy building blocks), ``config``, ``eval`` (numpy
#: matching and AP), ``input`` (the training input, TensorFlow-free), ``layers`` (Keras layers and
#: graphs), ``inference`` and ``train``, ``export``; matterport's modules (``model``, ``utils``,
#: ``visualize`` and its ``tables``) are the facades over all of them.
ENGINE_ALLOWED = {
    "ops": set(),
    "config": {"ops"},
    "eval": {"ops"},
    "input": {"ops", "config", "eval"},
    "layers": {"ops", "config", "eval", "input"},
    "inference": {"ops", "config", "eval", "layers"},
    "train": {"ops", "config", "eval", "input", "layers"},
    "export": {"ops", "config", "eval", "layers", "inference"},
    "facades": {"ops", "config", "eval", "input", "layers", "inference", "train", "export"},
}
ENGINE_FACADES = {"model", "utils", "visualize", "tables", "__init__"}
#: the parts an input worker process imports: no TensorFlow or Keras when they are imported
TENSORFLOW_FREE_PARTS = ("ops", "config", "eval", "input")
HEAVY = {"tensorflow", "keras", "keras_hub"}


def engine_part(parts):
    """The part of an engine module given as its path parts below ``rsna_detector/mrcnn``."""
    name = parts[0].removesuffix(".py")
    return "facades" if name in ENGINE_FACADES else name


def engine_imports(path, root=PACKAGE_ROOT):
    """``(line, part)`` of each import of an engine module in the file at ``path`` below ``root``."""
    for line, parts in imported_modules(path, root):
        if parts[:1] == ["mrcnn"] and parts[1:]:
            yield line, engine_part(parts[1:])


def _engine_modules():
    return [path for path in _modules() if path.relative_to(PACKAGE_ROOT).parts[0] == "mrcnn"]


def test_every_engine_module_has_a_known_part():
    parts = {engine_part(path.relative_to(PACKAGE_ROOT / "mrcnn").parts) for path in _engine_modules()}
    assert parts == set(ENGINE_ALLOWED)


@pytest.mark.parametrize("part", sorted(ENGINE_ALLOWED))
def test_an_engine_part_imports_only_the_parts_below_it(part):
    paths = [path for path in _engine_modules() if engine_part(path.relative_to(PACKAGE_ROOT / "mrcnn").parts) == part]
    assert _imports_outside(paths, engine_imports, ENGINE_ALLOWED[part] | {part}) == []


def test_the_engine_checker_sees_relative_and_absolute_imports(tmp_path):
    """The walker itself: an ``ops`` module importing upwards five ways is caught each time."""
    root = tmp_path / "rsna_detector"
    for folder in ("mrcnn/ops", "mrcnn/layers", "mrcnn/train"):
        (root / folder).mkdir(parents=True)
    probe = root / "mrcnn" / "ops" / "probe.py"
    probe.write_text("from ..layers import heads\nimport rsna_detector.mrcnn.train.loop\nfrom .boxes import iou\n"
                     "from .. import config, utils\n"
                     "def f():\n    from rsna_detector.mrcnn.input.pipeline import TrainingBatches\n", encoding="utf-8")
    assert [part for _, part in engine_imports(probe, root)] == ["layers", "train", "ops", "config", "facades",
                                                                 "input"]


def _imports_at_import_time(tree):
    """The import statements a module runs when imported: all but those inside function bodies."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(node))


@pytest.mark.parametrize("part", TENSORFLOW_FREE_PARTS)
def test_the_input_side_of_the_engine_imports_no_tensorflow_or_keras(part):
    """No TensorFlow or Keras at import in ops, config, eval, input (a function may import them where it runs
    in the graph or the training process: ``parse_image_meta_graph``, ``make_input_dataset``)."""
    found = []
    for path in _engine_modules():
        if engine_part(path.relative_to(PACKAGE_ROOT / "mrcnn").parts) != part:
            continue
        for node in _imports_at_import_time(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if not node.level else [])
            found += [f"{path.relative_to(PACKAGE_ROOT)}:{node.lineno} imports {name}" for name in names
                      if name.split(".")[0] in HEAVY]
    assert found == []


def test_importing_the_input_side_of_the_engine_loads_no_tensorflow_or_keras():
    """Every module of ops, config, eval and input imported in a fresh interpreter: TensorFlow and Keras stay out."""
    modules = sorted(".".join(("rsna_detector",) + path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
                     .removesuffix(".__init__") for path in _engine_modules()
                     if engine_part(path.relative_to(PACKAGE_ROOT / "mrcnn").parts) in TENSORFLOW_FREE_PARTS)
    assert "rsna_detector.mrcnn.input.workers" in modules and len(modules) > 15
    code = (f"import importlib, json, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(HEAVY & set(json.loads(done.stdout.strip().splitlines()[-1]))) == []
