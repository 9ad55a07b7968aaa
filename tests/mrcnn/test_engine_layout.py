"""The engine's layout (issue 13): small modules of one role, facades only for users.

``utils``, ``model`` and ``visualize`` keep matterport's module paths as facades over the
modules that do the work; the engine itself imports those modules, never a facade.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rsna_detector.mrcnn

ENGINE = Path(rsna_detector.mrcnn.__file__).parent
FACADES = {"utils", "model", "visualize"}
MAX_LINES = 600


def _engine_modules():
    return sorted(ENGINE.glob("*.py"))


def _relative_imports(path):
    """``(line, module name)`` of each ``from . import x`` / ``from .x import y`` in a file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                yield node.lineno, name.split(".")[0]


def test_no_engine_module_is_over_the_line_limit():
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in _engine_modules()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_the_engine_imports_modules_not_facades():
    found = [f"{path.name}:{line} imports .{name}" for path in _engine_modules()
             for line, name in _relative_imports(path) if name in FACADES]
    assert found == []


@pytest.mark.parametrize("module", ["rsna_detector.mrcnn.utils", "rsna_detector.mrcnn.config",
                                    "rsna_detector.mrcnn.ops.image_meta"])
def test_numpy_side_modules_do_not_load_tensorflow(module):
    code = f"import sys, {module}; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
