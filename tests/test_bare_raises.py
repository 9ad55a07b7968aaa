"""Every error the library raises on purpose is a library error: no bare ``raise ValueError(...)``.

The walk parses every module of the package with ``ast`` and fails on ``raise <built-in exception>``
(called or not). A library class deriving from :class:`rsna_detector.errors.RsnaDetectorError` and
the same built-in keeps ``except ValueError`` working. Allowed: a bare ``raise`` (re-raise), raising a
caught or built error object (``raise error``), the control-flow exceptions below, ``AttributeError``
in a module's or class's ``__getattr__`` (Python's protocol), and the exceptions listed in
``DELIBERATE`` with their reason.
"""
import ast
import builtins
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rsna_detector"

BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}
CONTROL_FLOW = {"SystemExit", "KeyboardInterrupt", "NotImplementedError", "StopIteration", "GeneratorExit"}

#: (module path relative to the package, enclosing function, exception) -> why it stays a built-in.
DELIBERATE = {
    ("_lazy.py", "lazy_exports", "TypeError"):
        "a check of the package's own export tables when a package is imported: a bug in the library, "
        "never the caller's input",
    ("data/synthetic_image.py", "_sample_box", "RuntimeError"):
        "an internal invariant (a box always fits a sane lung geometry), not reached by any input",
}


def _bare_raises(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    relative = path.relative_to(PACKAGE).as_posix()

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Raise) and child.exc is not None:
                target = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                name = target.id if isinstance(target, ast.Name) else None
                allowed = (name not in BUILTIN_EXCEPTIONS or name in CONTROL_FLOW
                           or (name == "AttributeError" and function == "__getattr__")
                           or (relative, function, name) in DELIBERATE)
                if not allowed:
                    yield f"{relative}:{child.lineno} in {function}: raise {name}"
            yield from visit(child, inner)

    yield from visit(tree, "<module>")


def test_no_bare_built_in_exception_is_raised():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _bare_raises(path)]
    assert found == [], "\n".join(found)


def test_the_walk_sees_a_bare_raise_and_allows_the_protocol_ones(tmp_path):
    global PACKAGE
    module = tmp_path / "m.py"
    module.write_text("def f(x):\n    if x:\n        raise ValueError('x')\n    raise KeyError\n"
                      "def __getattr__(name):\n    raise AttributeError(name)\n"
                      "def g():\n    try:\n        pass\n    except OSError as error:\n        raise\n"
                      "    raise NotImplementedError\n")
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert list(_bare_raises(module)) == ["m.py:3 in f: raise ValueError", "m.py:4 in f: raise KeyError"]
    finally:
        PACKAGE = saved


def test_every_deliberate_exception_still_exists():
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        saved = dict(DELIBERATE)
        DELIBERATE.clear()
        try:
            found |= {tuple(hit.split(":", 1)[0:1]) for hit in _bare_raises(path)}
        finally:
            DELIBERATE.update(saved)
    assert {(path,) for path, _, _ in DELIBERATE} <= found
