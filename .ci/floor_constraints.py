"""The lowest versions pyproject.toml allows, as a pip constraints file; or a check that they are installed.

Usage::

    python .ci/floor_constraints.py [pyproject.toml]          # print `name==floor` lines
    python .ci/floor_constraints.py --check [pyproject.toml]  # compare with the installed versions

Every runtime dependency written with a lower bound (``name>=X``, ``name>=X,<Y``) becomes
``name==X``; one without a lower bound is left to pip (listed as a comment). Used by
``.ci/test_floor_versions.sh`` (``make test-floor``). Needs Python >= 3.11 (tomllib).
"""
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_FLOOR = re.compile(r">=\s*([0-9][^,;\s]*)")


def floors(pyproject):
    """``{name: floor or None}`` of ``[project].dependencies``, in their order."""
    dependencies = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]["dependencies"]
    found = {}
    for requirement in dependencies:
        name = _NAME.match(requirement).group(1)
        floor = _FLOOR.search(requirement.split(";")[0])
        found[name] = floor.group(1) if floor else None
    return found


def _same(installed, floor):
    """``2.0.0`` is the floor ``2.0`` (PEP 440 pads release segments with zeros)."""
    def release(text):
        parts = [int(part) for part in re.match(r"[0-9]+(?:\.[0-9]+)*", text).group(0).split(".")]
        while parts and parts[-1] == 0:
            parts.pop()
        return parts

    return release(installed) == release(floor)


def main(argv):
    check = "--check" in argv
    paths = [arg for arg in argv if arg != "--check"]
    found = floors(paths[0] if paths else "pyproject.toml")
    if not check:
        for name, floor in found.items():
            print(f"{name}=={floor}" if floor else f"# {name}: no lower bound")
        return 0
    wrong = 0
    for name, floor in found.items():
        installed = metadata.version(name)
        same = floor is None or _same(installed, floor)
        wrong += not same
        print(f"{name:20} floor {floor or '-':10} installed {installed}{'' if same else '   <- NOT THE FLOOR'}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
