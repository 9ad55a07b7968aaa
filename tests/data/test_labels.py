"""Label CSV reading, validation, per-patient records and box conversion."""
import collections
import warnings

import numpy as np
import pytest

from rsna_detector.data.labels import (
    LabelError,
    LabelWarning,
    PatientRecord,
    load_patient_records,
    read_labels,
    records_from_frame,
    scale_boxes,
    xywh_to_yxyx,
    yxyx_to_xywh,
)

HEADER = "patientId,x,y,width,height,Target"
GOOD_ROWS = [
    "p1,,,,,0",                       # line 2
    "p2,264.0,152.0,213.0,379.0,1",   # line 3
    "p2,562.0,152.0,256.0,453.0,1",   # line 4
    "p3,,,,,0",                       # line 5
]
GOOD_CLASSES = ["No Lung Opacity / Not Normal", "Lung Opacity", "Lung Opacity", "Normal"]


def write_labels(tmp_path, rows, header=HEADER, name="labels.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def write_classes(tmp_path, rows, header="patientId,class"):
    return write_labels(tmp_path, rows, header=header, name="classes.csv")


def class_rows(ids, classes):
    return [f"{pid},{name}" for pid, name in zip(ids, classes)]


# --------------------------------------------------------------------------- good files
def test_read_labels_columns_and_values(tmp_path):
    labels = write_labels(tmp_path, GOOD_ROWS)
    classes = write_classes(tmp_path, class_rows(["p1", "p2", "p2", "p3"], GOOD_CLASSES))
    df = read_labels(labels, classes)
    assert list(df.columns) == ["patientId", "x", "y", "width", "height", "Target", "class", "line",
                                "y1", "x1", "y2", "x2"]
    assert df["line"].tolist() == [2, 3, 4, 5]
    assert df["Target"].tolist() == [0, 1, 1, 0]
    assert df["class"].tolist() == GOOD_CLASSES
    # hand-computed: y2 = 152 + 379 = 531, x2 = 264 + 213 = 477
    assert df.loc[1, ["y1", "x1", "y2", "x2"]].tolist() == [152.0, 264.0, 531.0, 477.0]
    assert df.loc[2, ["y1", "x1", "y2", "x2"]].tolist() == [152.0, 562.0, 605.0, 818.0]
    assert df.loc[0, ["x", "y", "width", "height", "y1", "x2"]].isna().all()


def test_read_labels_without_class_file_has_no_class_column(tmp_path):
    df = read_labels(write_labels(tmp_path, GOOD_ROWS))
    assert "class" not in df.columns
    assert len(df) == 4


def test_records_group_boxes_in_first_appearance_order(tmp_path):
    labels = write_labels(tmp_path, ["zz,,,,,0", *GOOD_ROWS])
    classes = write_classes(tmp_path, class_rows(["zz", "p1", "p2", "p2", "p3"], ["Normal", *GOOD_CLASSES]))
    records = load_patient_records(labels, classes)
    assert list(records) == ["zz", "p1", "p2", "p3"]
    p2 = records["p2"]
    assert (p2.target, p2.class_name, p2.n_boxes) == (1, "Lung Opacity", 2)
    assert p2.boxes.dtype == np.float32 and p2.boxes_xywh.dtype == np.float32
    np.testing.assert_array_equal(p2.boxes_xywh, [[264, 152, 213, 379], [562, 152, 256, 453]])
    np.testing.assert_array_equal(p2.boxes, [[152, 264, 531, 477], [152, 562, 605, 818]])
    p1 = records["p1"]
    assert (p1.target, p1.class_name, p1.boxes.shape, p1.boxes_xywh.shape) == (0, "No Lung Opacity / Not Normal",
                                                                                 (0, 4), (0, 4))
    assert records["p3"].class_name == "Normal"


def test_records_without_classes_have_no_class_name(tmp_path):
    records = records_from_frame(read_labels(write_labels(tmp_path, GOOD_ROWS)))
    assert [r.class_name for r in records.values()] == [None, None, None]


def test_patient_record_is_frozen_and_compares_arrays():
    boxes = np.array([[1, 2, 3, 4]], np.float32)
    a = PatientRecord("p", 1, "Lung Opacity", boxes, xywh_to_yxyx(boxes).astype(np.float32))
    b = PatientRecord("p", 1, "Lung Opacity", boxes.copy(), xywh_to_yxyx(boxes).astype(np.float32))
    assert a == b
    assert a != PatientRecord("p", 1, "Lung Opacity", boxes + 1, a.boxes)
    with pytest.raises(AttributeError):
        a.target = 0


# --------------------------------------------------------------------------- box helpers
def test_xywh_to_yxyx_hand_computed_and_inverse():
    boxes = np.array([[264, 152, 213, 379], [0, 0, 10, 20]], np.float32)
    engine = xywh_to_yxyx(boxes)
    np.testing.assert_array_equal(engine, [[152, 264, 531, 477], [0, 0, 20, 10]])
    assert engine.dtype == np.float32
    np.testing.assert_array_equal(yxyx_to_xywh(engine), boxes)
    assert xywh_to_yxyx(np.zeros((0, 4))).shape == (0, 4)
    assert xywh_to_yxyx([1, 2, 3, 4]).tolist() == [2.0, 1.0, 6.0, 4.0]  # int input -> float64
    with pytest.raises(ValueError, match="shape"):
        xywh_to_yxyx(np.zeros((3, 5)))


def test_scale_boxes_to_512_and_non_square():
    engine = np.array([[152, 264, 531, 477]], np.float32)
    np.testing.assert_allclose(scale_boxes(engine, 1024, 512), [[76, 132, 265.5, 238.5]])
    xywh = np.array([[264, 152, 213, 379]], np.float32)
    np.testing.assert_allclose(scale_boxes(xywh, 1024, 512, box_format="xywh"), [[132, 76, 106.5, 189.5]])
    # a 1000-high, 500-wide image resized to 100x100: y scales by 0.1, x by 0.2
    np.testing.assert_allclose(scale_boxes([[100, 100, 200, 300]], (1000, 500), (100, 100)), [[10, 20, 20, 60]])
    with pytest.raises(ValueError, match="box_format"):
        scale_boxes(engine, 1024, 512, box_format="xyxy")
    with pytest.raises(ValueError, match="to_size"):
        scale_boxes(engine, 1024, 0)


# --------------------------------------------------------------------------- malformed files
def _problems(excinfo):
    return [(line, message) for _, line, message in excinfo.value.problems]


@pytest.mark.parametrize("bad_row, line_message", [
    ("p9,abc,152.0,213.0,379.0,1", "field x: 'abc' is not a finite number"),
    ("p9,,,,,2", "field Target: '2'; expected 0 or 1"),
    ("p9,,,,,", "field Target: empty"),
    ("p9,264.0,,213.0,379.0,1", "Target 1 without a box (empty field(s): y)"),
    ("p9,,,,,1", "Target 1 without a box (empty field(s): x, y, width, height)"),
    ("p9,264.0,152.0,213.0,379.0,0", "Target 0 with a box"),
    ("p9,264.0,152.0,0,379.0,1", "field width: 0 is not positive"),
    ("p9,264.0,152.0,213.0,-5,1", "field height: -5 is not positive"),
    ("p9,-1,152.0,213.0,379.0,1", "leaves the 1024x1024 image"),
    ("p9,900,152.0,200,379.0,1", "box x=900, y=152, width=200, height=379 leaves the 1024x1024 image"),
    ("p9,264,700,213,379,1", "leaves the 1024x1024 image"),
])
def test_each_bad_row_is_named_by_file_and_line(tmp_path, bad_row, line_message):
    rows = GOOD_ROWS[:2] + [bad_row] + GOOD_ROWS[2:]   # bad row on line 4
    labels = write_labels(tmp_path, rows)
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels)
    assert excinfo.value.problems == [(str(labels), 4, excinfo.value.problems[0][2])]
    assert line_message in excinfo.value.problems[0][2]
    assert f"{labels}:4: " in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_lenient_mode_drops_exactly_the_bad_rows_with_one_warning(tmp_path):
    rows = ["p1,,,,,0", "bad1,abc,1,1,1,1", "p2,264.0,152.0,213.0,379.0,1", "bad2,,,,,1", "p3,,,,,0"]
    labels = write_labels(tmp_path, rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = read_labels(labels, strict=False)
    assert df["patientId"].tolist() == ["p1", "p2", "p3"]
    assert df["line"].tolist() == [2, 4, 6]
    label_warnings = [w for w in caught if issubclass(w.category, LabelWarning)]
    assert len(label_warnings) == 1
    text = str(label_warnings[0].message)
    assert f"{labels}:3: field x" in text and f"{labels}:5: Target 1 without a box" in text
    assert "dropped 2 invalid row(s)" in text


def test_strict_error_lists_all_problems_and_caps_the_message(tmp_path):
    rows = [f"p{i},,,,,7" for i in range(25)]
    labels = write_labels(tmp_path, rows)
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels)
    assert [line for _, line, _ in excinfo.value.problems] == list(range(2, 27))
    message = str(excinfo.value)
    assert f"{labels}:21: " in message and f"{labels}:22: " not in message
    assert "... and 5 more" in message


def test_wrong_header_names_the_missing_columns_on_line_1(tmp_path):
    labels = write_labels(tmp_path, GOOD_ROWS, header="patientId,x,y,w,height,Target")
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels, strict=False)  # even lenient mode cannot read without the columns
    (file, line, message), = excinfo.value.problems
    assert (file, line) == (str(labels), 1)
    assert "missing column(s) width" in message


def test_row_with_too_many_fields_names_its_line(tmp_path):
    labels = write_labels(tmp_path, GOOD_ROWS[:2] + ["p9,1,2,3,4,1,extra"])
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels)
    assert excinfo.value.problems[0][:2] == (str(labels), 4)


def test_blank_line_keeps_later_line_numbers_right(tmp_path):
    labels = write_labels(tmp_path, ["p1,,,,,0", "", "p2,abc,1,1,1,1"])
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels)
    assert _problems(excinfo) == [(3, "empty line"), (4, "field x: 'abc' is not a finite number")]


def test_patient_with_target_0_and_target_1_rows(tmp_path):
    labels = write_labels(tmp_path, ["p1,10,10,10,10,1", "p1,,,,,0"])
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels)
    assert _problems(excinfo) == [(3, "patient p1: Target 0 row, but the patient has Target 1 rows")]


# --------------------------------------------------------------------------- class file problems
def test_class_file_patient_mismatch_on_a_line(tmp_path):
    labels = write_labels(tmp_path, GOOD_ROWS)
    classes = write_classes(tmp_path, class_rows(["p1", "p2", "pX", "p3"], GOOD_CLASSES))
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels, classes)
    (file, line, message), = excinfo.value.problems
    assert (file, line) == (str(classes), 4)
    assert "'pX' differs from the labels file's 'p2'" in message


def test_class_file_with_fewer_rows(tmp_path):
    labels = write_labels(tmp_path, GOOD_ROWS)
    classes = write_classes(tmp_path, class_rows(["p1", "p2", "p2"], GOOD_CLASSES))
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels, classes)
    (file, line, message), = excinfo.value.problems
    assert (file, line) == (str(labels), 5)
    assert "no class row" in message and "3 class rows for 4 label rows" in message
    with pytest.warns(LabelWarning):
        df = read_labels(labels, classes, strict=False)
    assert df["line"].tolist() == [2, 3, 4]


def test_class_file_with_more_rows(tmp_path):
    labels = write_labels(tmp_path, GOOD_ROWS)
    classes = write_classes(tmp_path, class_rows(["p1", "p2", "p2", "p3", "p4"], [*GOOD_CLASSES, "Normal"]))
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels, classes)
    assert [(f, line) for f, line, _ in excinfo.value.problems] == [(str(classes), 6)]
    with pytest.warns(LabelWarning):
        assert len(read_labels(labels, classes, strict=False)) == 4  # no label row to drop


@pytest.mark.parametrize("line, wrong_class, expected", [
    (3, "Normal", "Target 1 but class 'Normal'; expected 'Lung Opacity'"),
    (2, "Lung Opacity", "Target 0 but class 'Lung Opacity'"),
    (5, "Pneumonia", "field class: 'Pneumonia'; expected one of"),
])
def test_class_inconsistent_with_target(tmp_path, line, wrong_class, expected):
    names = list(GOOD_CLASSES)
    names[line - 2] = wrong_class
    labels = write_labels(tmp_path, GOOD_ROWS)
    classes = write_classes(tmp_path, class_rows(["p1", "p2", "p2", "p3"], names))
    with pytest.raises(LabelError) as excinfo:
        read_labels(labels, classes)
    (file, got_line, message), = excinfo.value.problems
    assert (file, got_line) == (str(classes), line)
    assert expected in message
    with pytest.warns(LabelWarning):
        kept = read_labels(labels, classes, strict=False)
    assert line not in kept["line"].tolist() and len(kept) == 3


def test_class_file_wrong_header(tmp_path):
    labels = write_labels(tmp_path, GOOD_ROWS)
    classes = write_classes(tmp_path, class_rows(["p1", "p2", "p2", "p3"], GOOD_CLASSES), header="id,class")
    with pytest.raises(LabelError, match=r"classes.csv:1: .*missing column\(s\) patientId"):
        read_labels(labels, classes)


# --------------------------------------------------------------------------- real labels
def test_real_labels_counts(rsna_dir):
    labels = rsna_dir / "labels" / "stage_2_train_labels.csv"
    classes = rsna_dir / "labels" / "stage_2_detailed_class_info.csv"
    df = read_labels(labels, classes)  # its speed: benchmarks/bench_eda.py (the patient table's phase)
    assert len(df) == 30227
    assert df["patientId"].nunique() == 26684
    assert df["Target"].value_counts().to_dict() == {0: 20672, 1: 9555}
    assert df["class"].value_counts().to_dict() == {
        "No Lung Opacity / Not Normal": 11821, "Lung Opacity": 9555, "Normal": 8851}
    positives = df[df["Target"] == 1]
    assert positives["x"].max() == 835.0  # docs/DATA_AND_SETTINGS.md: the real maximum box x
    assert (positives["x2"] <= 1024).all() and (positives["y2"] <= 1024).all()
    assert (positives["x1"] >= 0).all() and (positives["y1"] >= 0).all()

    records = records_from_frame(df)
    assert len(records) == 26684
    assert sum(r.target for r in records.values()) == 6012
    box_counts = collections.Counter(r.n_boxes for r in records.values() if r.target)
    assert dict(box_counts) == {1: 2614, 2: 3266, 3: 119, 4: 13}
    assert all(r.class_name == "Lung Opacity" for r in records.values() if r.target)
