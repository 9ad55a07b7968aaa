"""No module imports another module's private name: a name used across modules is public there.

Modules whose own name starts with ``_`` (``_io``, ``_paths``, ``_lazy``, ``_processes``,
``eda/_format``) are package-internal modules and may be imported; a ``_private`` *name* may not,
from any module of the package (``from .x import _name`` or ``from .x import _name as y``).
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rsna_detector"


def _private_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        # the package's own modules: relative imports and absolute rsna_detector.* ones (a third-party
        # library's private name is that library's business)
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("rsna_detector")):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: from {module} import {alias.name}"


def test_no_private_name_is_imported_from_another_module():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _private_imports(path)]
    assert found == []


def test_the_check_sees_a_private_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from ._io import write_json\nfrom .x import public, _private as alias\n"
                      "from rsna_detector.y import _hidden\nfrom numpy._core import _internal\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert list(_private_imports(module)) == [f"{tmp_path.name}/m.py:2: from .x import _private",
                                                  f"{tmp_path.name}/m.py:3: from rsna_detector.y import _hidden"]
    finally:
        PACKAGE = saved
