"""The merged patient table: labels + classes + DICOM headers, cache, missing images."""
import csv
import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

from rsna_detector.data import table as table_module
from rsna_detector.data.layout import KaggleLayout, LayoutError
from rsna_detector.data.table import PatientTableWarning, build_patient_table
from tests import helpers

LABELS = [
    ("pa", "", "", "", "", "0", "Normal"),
    ("pb", "264.0", "152.0", "213.0", "379.0", "1", "Lung Opacity"),
    ("pb", "562.0", "152.0", "256.0", "453.0", "1", "Lung Opacity"),
    ("pc", "", "", "", "", "0", "No Lung Opacity / Not Normal"),
]
HEADERS = {"pa": ("051Y", "F", "PA"), "pb": ("150Y", "M", "AP")}  # pc has no image


def write_dicom(path, patient_id, age, sex, view, size=64):
    """An uncompressed 8-bit MONOCHROME2 DICOM of ``size`` x ``size`` pixels with these header fields."""
    pixels = np.arange(size * size, dtype=np.uint8).reshape(size, size)
    helpers.write_dicom(path, pixels, patient_id=patient_id, PatientAge=age, PatientSex=sex, ViewPosition=view,
                        PixelSpacing=[0.5, 0.25], SOPClassUID=SecondaryCaptureImageStorage,
                        SOPInstanceUID=generate_uid())


def write_label_files(root, rows):
    with open(root / "stage_2_train_labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patientId", "x", "y", "width", "height", "Target"])
        writer.writerows(row[:6] for row in rows)
    with open(root / "stage_2_detailed_class_info.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patientId", "class"])
        writer.writerows((row[0], row[6]) for row in rows)


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "rsna"
    images = root / "stage_2_train_images"
    images.mkdir(parents=True)
    write_label_files(root, LABELS)
    for pid, (age, sex, view) in HEADERS.items():
        write_dicom(images / f"{pid}.dcm", pid, age, sex, view)
    return root


@pytest.fixture
def counted_reads(monkeypatch):
    """Counts header reads made by the table module."""
    calls = []
    real = table_module.read_dicom_metadata

    def counting(path):
        calls.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(table_module, "read_dicom_metadata", counting)
    return calls


def build(data_dir, cache, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build_patient_table(data_dir, cache_path=cache, progress=False, **kwargs)
    return result, [w for w in caught if issubclass(w.category, PatientTableWarning)]


def test_table_has_headers_and_reports_the_missing_image(data_dir, tmp_path, counted_reads):
    result, table_warnings = build(data_dir, tmp_path / "cache.json")
    patients = result.patients.set_index("patientId")
    assert patients.index.tolist() == ["pa", "pb", "pc"]
    assert patients["target"].tolist() == [0, 1, 0]
    assert patients["n_boxes"].tolist() == [0, 2, 0]
    assert patients["class"].tolist() == ["Normal", "Lung Opacity", "No Lung Opacity / Not Normal"]
    assert patients["has_image"].tolist() == [True, True, False]
    assert patients.loc["pa", "age"] == 51 and patients.loc["pb", "age"] == 150
    assert patients["age_implausible"].tolist()[:2] == [False, True]
    assert pd.isna(patients.loc["pc", "age"]) and patients.loc["pc", "sex"] is None
    assert patients["sex"].tolist() == ["F", "M", None]
    assert patients["view_position"].tolist() == ["PA", "AP", None]
    assert patients.loc["pa", "rows"] == 64
    assert (patients.loc["pa", "pixel_spacing_row"], patients.loc["pa", "pixel_spacing_col"]) == (0.5, 0.25)
    assert result.missing_images == ["pc"] and result.unreadable == {}
    assert len(table_warnings) == 1 and "1 of 3 patients have no DICOM file: pc" in str(table_warnings[0].message)
    assert sorted(counted_reads) == ["pa.dcm", "pb.dcm"]

    boxes = result.boxes
    assert len(boxes) == 4 and boxes["line"].tolist() == [2, 3, 4, 5]
    assert boxes["age"].tolist()[:3] == [51, 150, 150]
    assert boxes.loc[1, ["y1", "x1", "y2", "x2"]].tolist() == [152.0, 264.0, 531.0, 477.0]


def test_cache_is_reused_then_refreshed_when_labels_change(data_dir, tmp_path, counted_reads):
    cache = tmp_path / "cache.json"
    first, _ = build(data_dir, cache)
    assert cache.is_file() and set(json.loads(cache.read_text())["headers"]) == {"pa", "pb"}
    assert len(counted_reads) == 2

    second, _ = build(data_dir, cache)
    assert len(counted_reads) == 2, "a fresh cache must not read headers again"
    pd.testing.assert_frame_equal(first.patients, second.patients)
    assert any("from the cache" in note for note in second.notes)

    write_label_files(data_dir, LABELS + [("pd", "", "", "", "", "0", "Normal")])  # size changes
    third, _ = build(data_dir, cache)
    assert len(counted_reads) == 4
    assert third.missing_images == ["pc", "pd"]

    build(data_dir, cache, refresh=True)
    assert len(counted_reads) == 6


def test_cache_false_writes_nothing(data_dir, tmp_path, counted_reads):
    result, _ = build(data_dir, False)
    assert result.cache_path is None
    build(data_dir, False)
    assert len(counted_reads) == 4
    assert not list(tmp_path.glob("**/*.json"))


def test_default_cache_path_honours_environment(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RSNA_DETECTOR_CACHE", str(tmp_path / "cachedir"))
    result, _ = build(data_dir, None)
    assert result.cache_path.parent == tmp_path / "cachedir" and result.cache_path.is_file()


def test_unreadable_image_is_reported_not_fatal(data_dir, tmp_path):
    (data_dir / "stage_2_train_images" / "pa.dcm").write_bytes(b"not a dicom file at all")
    result, table_warnings = build(data_dir, tmp_path / "cache.json")
    assert list(result.unreadable) == ["pa"] and "pa.dcm" in result.unreadable["pa"]
    patients = result.patients.set_index("patientId")
    assert pd.isna(patients.loc["pa", "age"]) and patients.loc["pb", "age"] == 150
    assert patients.loc["pa", "has_image"]  # the file is there, only unreadable
    assert len(table_warnings) == 1
    text = str(table_warnings[0].message)
    assert "1 DICOM headers unreadable: pa:" in text and "no DICOM file: pc" in text
    assert set(json.loads((tmp_path / "cache.json").read_text())["headers"]) == {"pb"}


def test_labels_only_directory(tmp_path):
    write_label_files(tmp_path, LABELS)
    result, table_warnings = build(tmp_path, tmp_path / "cache.json")
    assert table_warnings == []
    assert result.patients["has_image"].tolist() == [False, False, False]
    assert result.patients["age"].isna().all() and result.boxes["sex"].isna().all()
    assert result.missing_images == [] and result.image_dir is None
    assert len(result.notes) == 1 and "no training image folder" in result.notes[0]


def test_no_labels_is_a_clear_error(tmp_path):
    with pytest.raises(LayoutError, match="no training labels file found"):
        build_patient_table(tmp_path, cache_path=False, progress=False)


def test_accepts_a_layout(data_dir, tmp_path):
    result, _ = build(KaggleLayout.from_dir(data_dir), tmp_path / "cache.json")
    assert result.image_dir == data_dir / "stage_2_train_images"


def test_real_samples_match_manifest(rsna_dir, tmp_path):
    result, table_warnings = build(rsna_dir, tmp_path / "cache.json")
    manifest = pd.read_csv(rsna_dir / "MANIFEST.csv", dtype={"PatientAge": "Int64"})
    patients = result.patients.set_index("patientId")
    assert len(patients) == 26684 and len(result.boxes) == 30227
    present = patients[patients["has_image"]]
    assert sorted(present.index) == sorted(manifest["patientId"])
    assert len(result.missing_images) == 26684 - len(manifest) and result.unreadable == {}
    for row in manifest.itertuples():
        patient = patients.loc[row.patientId]
        assert (patient["age"], patient["sex"], patient["view_position"]) == (
            row.PatientAge, row.PatientSex, row.ViewPosition), row.patientId
        assert patient["target"] == row.Target and patient["n_boxes"] == row.n_boxes
        assert patient["class"] == row._12  # MANIFEST column 'class'
    assert len(table_warnings) == 1


def test_process_pool_gives_the_same_table(data_dir, tmp_path):
    serial, _ = build(data_dir, False, workers=1)
    pooled, _ = build(data_dir, False, workers=2)
    pd.testing.assert_frame_equal(serial.patients, pooled.patients)
    pd.testing.assert_frame_equal(serial.boxes, pooled.boxes)
