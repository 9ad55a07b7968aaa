"""The package's layers (docs/ARCHITECTURE.md): each folder imports only the layers below it.

Read from the source (``ast``), every import of every module, at module level or inside a
function: a lazy import is still a dependency.
"""
import ast
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


def imported_layers(path, root=PACKAGE_ROOT):
    """``(line, layer)`` of each import of an ``rsna_detector`` module in the file at ``path`` below ``root``."""
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
            # ``from . import errors`` (in the package itself) names modules, not attributes
            targets = [[name.name] for name in node.names] if not target else [target]
            yield from ((node.lineno, target_layer(parts, root)) for parts in targets)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "rsna_detector":
                    yield node.lineno, target_layer(parts[1:], root)


def _modules():
    return sorted(p for p in PACKAGE_ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_known_layer():
    layers = {layer_of(path.relative_to(PACKAGE_ROOT).parts) for path in _modules()}
    assert layers <= set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer):
    allowed = ALLOWED[layer] | {layer, "infrastructure"}
    found = []
    for path in _modules():
        if layer_of(path.relative_to(PACKAGE_ROOT).parts) != layer:
            continue
        found += [f"{path.relative_to(PACKAGE_ROOT)}:{line} imports {target}"
                  for line, target in imported_layers(path) if target not in allowed]
    assert found == []


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
