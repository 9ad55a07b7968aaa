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
    """Every module of the engine, its subpackages' included."""
    return sorted(path for path in ENGINE.rglob("*.py") if "__pycache__" not in path.parts)


def _relative_imports(path):
    """``(line, top module name below the engine)`` of each relative import of an engine module in a file.

    ``from . import x`` / ``from .x import y`` in ``mrcnn/`` and ``from .. import x`` /
    ``from ..x import y`` in a subpackage both name the engine's module ``x``.
    """
    package = path.relative_to(ENGINE).parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and 0 < node.level <= len(package) + 1:
            base = list(package[: len(package) - (node.level - 1)]) + (node.module.split(".") if node.module else [])
            names = [base] if base else [[alias.name] for alias in node.names]
            for parts in names:
                yield node.lineno, parts[0]


def test_no_engine_module_is_over_the_line_limit():
    sizes = {str(path.relative_to(ENGINE)): len(path.read_text(encoding="utf-8").splitlines()) for path in _engine_modules()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_the_engine_imports_modules_not_facades():
    found = [f"{path.relative_to(ENGINE)}:{line} imports {name}" for path in _engine_modules()
             for line, name in _relative_imports(path) if name in FACADES]
    assert found == []


@pytest.mark.parametrize("module", ["rsna_detector.mrcnn.utils", "rsna_detector.mrcnn.config",
                                    "rsna_detector.mrcnn.ops.image_meta"])
def test_numpy_side_modules_do_not_load_tensorflow(module):
    code = f"import sys, {module}; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
