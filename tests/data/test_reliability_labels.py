"""Hostile and careless label CSVs (issue 14, items 1, 8 and 12): path-like patientIds,
duplicate rows, bytes that are not UTF-8."""
import warnings

import pytest

from rsna_detector._paths import UnsafePathError, check_patient_id, patient_id_problem
from rsna_detector.data.labels import LabelError, LabelWarning, load_patient_records, read_labels

HEADER = "patientId,x,y,width,height,Target"
UUID = "0004cfab-14fd-4e49-80ba-63a80b6bddd6"


def write_labels(tmp_path, rows, name="labels.csv"):
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


# --------------------------------------------------------------------------- item 1: patientIds
@pytest.mark.parametrize("bad_id, reason", [
    ("../../x", "path separator"),
    ("/etc/passwd", "absolute path"),
    ("..", "'..'"),
    ("a..b", "'..'"),
    ("C:evil", "drive letter"),
    ("sub\\dir", "path separator"),
    ("id.with.dots", "'.'"),
])
def test_path_like_patient_id_is_a_named_error_with_file_and_line(tmp_path, bad_id, reason):
    labels = write_labels(tmp_path, [f"{UUID},,,,,0", f"{bad_id},,,,,0"])
    with pytest.raises(LabelError) as caught:
        read_labels(labels)
    message = str(caught.value)
    assert f"{labels}:3: field patientId" in message and repr(bad_id) in message and reason in message
    assert caught.value.problems == [(str(labels), 3, caught.value.problems[0][2])]


def test_path_like_patient_id_is_dropped_with_a_warning_when_not_strict(tmp_path):
    labels = write_labels(tmp_path, [f"{UUID},,,,,0", "../../x,10,10,20,20,1"])
    with pytest.warns(LabelWarning, match=r"labels.csv:3: field patientId: '\.\./\.\./x'"):
        records = load_patient_records(labels, strict=False)
    assert list(records) == [UUID]


def test_rsna_and_synthetic_ids_are_accepted():
    assert patient_id_problem(UUID) is None
    assert check_patient_id("ABC-123-def") == "ABC-123-def"
    with pytest.raises(UnsafePathError, match=r"row 7: patientId '' refused: it is empty"):
        check_patient_id("", where="row 7")


# --------------------------------------------------------------------------- item 8: duplicates
def test_exact_duplicate_rows_are_dropped_once_with_one_warning_naming_their_lines(tmp_path):
    labels = write_labels(tmp_path, [
        f"{UUID},264.0,152.0,213.0,379.0,1",   # line 2
        f"{UUID},562.0,152.0,256.0,453.0,1",   # line 3
        f"{UUID},264,152,213,379,1",           # line 4: line 2 again (same numbers)
        "p2,,,,,0",                            # line 5
        "p2,,,,,0",                            # line 6: line 5 again
        f"{UUID},264.0,152.0,213.0,379.0,1",   # line 7: line 2 a third time
    ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_labels(labels)
    messages = [str(w.message) for w in caught if issubclass(w.category, LabelWarning)]
    assert len(messages) == 1
    assert "dropped 3 exact duplicate row(s)" in messages[0]
    assert "line 4 (same as line 2)" in messages[0] and "line 6 (same as line 5)" in messages[0]
    assert "line 7 (same as line 2)" in messages[0] and str(labels) in messages[0]
    assert frame["line"].tolist() == [2, 3, 5]
    with pytest.warns(LabelWarning, match="duplicate"):
        records = load_patient_records(labels)
    assert records[UUID].n_boxes == 2 and records["p2"].n_boxes == 0


def test_same_patient_different_boxes_are_not_duplicates(tmp_path):
    labels = write_labels(tmp_path, [f"{UUID},264,152,213,379,1", f"{UUID},264,152,213,380,1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_labels(labels)) == 2


# --------------------------------------------------------------------------- item 12: encoding
def test_non_utf8_byte_is_a_label_error_naming_file_and_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(f"{HEADER}\n{UUID},,,,,0\np2,,,,,0\np\xe93,,,,,0\n".encode("latin-1"))
    with pytest.raises(LabelError) as caught:
        read_labels(path)
    message = str(caught.value)
    assert f"{path}:4:" in message and "not UTF-8" in message and "0xe9" in message


def test_non_utf8_class_file_names_the_class_file(tmp_path):
    labels = write_labels(tmp_path, [f"{UUID},,,,,0"])
    classes = tmp_path / "classes.csv"
    classes.write_bytes(b"patientId,class\n" + UUID.encode() + b",Norm\xff\n")
    with pytest.raises(LabelError, match=rf"{classes}:2: .*not UTF-8"):
        read_labels(labels, classes)
