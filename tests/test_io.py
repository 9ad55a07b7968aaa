"""_io: atomic writes and the one JSON writer of reports."""
import json
import os

import numpy as np
import pytest

from rsna_detector._io import atomic_folder, atomic_path, atomic_write, rename_over, write_json


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    assert atomic_write(path, "new\n") == path
    assert path.read_text() == "new\n"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text('{"kept": true}')

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, "new")
    assert path.read_text() == '{"kept": true}' and os.listdir(tmp_path) == ["metrics.json"]


def test_write_json_undefined_numbers_become_null_and_numpy_values_plain(tmp_path):
    data = {"nan": float("nan"), "inf": np.float32("inf"), "count": np.int64(3), "value": np.float32(0.5),
            "table": [{"score": np.nan}], "array": np.array([1, 2]), "path": tmp_path, "pair": (1, None)}
    write_json(tmp_path / "m.json", data)
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"nan": None, "inf": None, "count": 3, "value": 0.5, "table": [{"score": None}],
                                "array": [1, 2], "path": str(tmp_path), "pair": [1, None]}


def test_write_json_refuses_an_unknown_type_and_writes_nothing(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{}")
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        write_json(path, {"model": object()})
    assert path.read_text() == "{}" and os.listdir(tmp_path) == ["m.json"]


def test_atomic_path_renames_what_the_block_wrote_over_the_target(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"old")
    with atomic_path(path) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".weights.h5.")
        assert temporary.name.endswith(".partial") and not temporary.exists()  # the writer creates it
        temporary.write_bytes(b"new")
        assert path.read_bytes() == b"old"  # nothing changes before the block ends
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["weights.h5"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_atomic_path_removes_the_temporary_file_and_keeps_the_old_one_on_failure(tmp_path, error):
    path = tmp_path / "image.png"
    path.write_bytes(b"old")
    with pytest.raises(type(error)):
        with atomic_path(path) as temporary:
            temporary.write_bytes(b"half")
            raise error
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["image.png"]


def test_two_writers_of_one_target_never_share_a_temporary_file(tmp_path):
    with atomic_path(tmp_path / "a.csv") as first, atomic_path(tmp_path / "a.csv") as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert (tmp_path / "a.csv").read_text() == "first"  # the outer block ends last
    assert os.listdir(tmp_path) == ["a.csv"]


def test_rename_over_replaces_an_existing_target(tmp_path):
    (tmp_path / "run.json").write_text("bad")
    (tmp_path / "run.json.unreadable").write_text("older")
    aside = rename_over(tmp_path / "run.json", tmp_path / "run.json.unreadable")
    assert aside == tmp_path / "run.json.unreadable" and aside.read_text() == "bad"
    assert os.listdir(tmp_path) == ["run.json.unreadable"]


def test_only_io_calls_os_replace():
    """Every atomic write of the library goes through _io (issue 13): one place renames over a file."""
    import re
    from pathlib import Path

    import rsna_detector

    root = Path(rsna_detector.__file__).parent
    callers = sorted(str(path.relative_to(root)) for path in root.rglob("*.py")
                     if re.search(r"\bos\.replace\(|\.replace\(\s*temporary|\bos\.rename\(", path.read_text()))
    assert callers == ["_io.py"]


def test_atomic_folder_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "1"
    with atomic_folder(target) as temporary:
        temporary.mkdir()
        (temporary / "saved_model.pb").write_bytes(b"new")
        assert not target.exists() and temporary.name.startswith(".1.") and temporary.name.endswith(".partial")
    assert (target / "saved_model.pb").read_bytes() == b"new"
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_folder(target):
            pass
    with pytest.raises(RuntimeError, match="half written"):
        with atomic_folder(target, replace=True) as temporary:
            temporary.mkdir()
            (temporary / "saved_model.pb").write_bytes(b"partial")
            raise RuntimeError("half written")
    assert (target / "saved_model.pb").read_bytes() == b"new" and os.listdir(tmp_path) == ["1"]
    with atomic_folder(target, replace=True) as temporary:
        temporary.mkdir()
        (temporary / "variables").mkdir()
    assert os.listdir(target) == ["variables"] and os.listdir(tmp_path) == ["1"]
