"""Tests of rsna_detector.data.convert: parallel conversion, bad files reported, existing outputs kept."""
import logging

import numpy as np
import pytest
from PIL import Image

from rsna_detector.data.convert import ConversionReport, convert_dicoms, list_dicom_files
from rsna_detector.data.dicom import read_dicom_image
from rsna_detector.data.synthetic import sample_chest_geometry, synthetic_chest_image, write_jpeg_dicom


def make_good_dicoms(folder, count, size=96):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        rng = np.random.default_rng(index)
        image = synthetic_chest_image(rng, np.zeros((0, 4)), size, geometry=sample_chest_geometry(rng, size))
        path = folder / f"patient-{index}.dcm"
        write_jpeg_dicom(path, image, patient_id=path.stem)
        paths.append(path)
    return paths


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "dicoms"
    good = make_good_dicoms(folder, 4)
    corrupt = folder / "corrupt.dcm"
    corrupt.write_bytes(good[0].read_bytes()[:700])  # header cut before the pixel data ends
    (folder / "readme.txt").write_text("not a DICOM, and not named .dcm: ignored")
    return folder, good, corrupt


@pytest.mark.parametrize("workers", [1, 2])
def test_good_files_converted_bad_file_reported(source, tmp_path, caplog, workers):
    folder, good, corrupt = source
    out = tmp_path / f"png-{workers}"
    with caplog.at_level(logging.WARNING, logger="rsna_detector.data.convert"):
        report = convert_dicoms(folder, out, fmt="png", workers=workers, progress=False)
    assert isinstance(report, ConversionReport)
    assert report.converted == sorted(str(out / f"{p.stem}.png") for p in good)
    assert list(report.failed) == [str(corrupt)]
    assert report.failed[str(corrupt)].startswith(f"{corrupt}: truncated")
    assert str(corrupt) in caplog.text and "1 of 5" in caplog.text
    assert str(corrupt) in str(report) and "converted 4" in str(report)
    for path in good:
        written = np.asarray(Image.open(out / f"{path.stem}.png"))
        np.testing.assert_array_equal(written, read_dicom_image(path))  # PNG is lossless
    assert not (out / "corrupt.png").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in good)  # no temporaries left


def test_existing_output_kept_unless_overwrite(source, tmp_path):
    folder, good, _ = source
    out = tmp_path / "out"
    out.mkdir()
    existing = out / f"{good[1].stem}.png"
    existing.write_bytes(b"keep me")
    report = convert_dicoms(folder, out, workers=1, progress=False)
    assert report.skipped_existing == [str(existing)]
    assert existing.read_bytes() == b"keep me"
    assert len(report.converted) == 3
    report = convert_dicoms(folder, out, workers=1, overwrite=True, progress=False)
    assert report.skipped_existing == [] and len(report.converted) == 4
    assert np.asarray(Image.open(existing)).shape == (96, 96)


def test_jpg_resized_from_a_list_of_paths(source, tmp_path):
    _, good, _ = source
    report = convert_dicoms([str(good[0]), good[2]], tmp_path / "jpg", fmt="jpg", size=48, quality=90,
                            workers=1, progress=False)
    assert report.converted == [str(tmp_path / "jpg" / f"{good[i].stem}.jpg") for i in (0, 2)]
    written = Image.open(report.converted[0])
    assert written.format == "JPEG" and written.size == (48, 48) and written.mode == "L"
    difference = np.abs(np.asarray(written).astype(int) - read_dicom_image(good[0], size=48))
    assert difference.mean() < 3  # JPEG quality 90


def test_unwritable_output_is_reported_and_leaves_no_temporary(source, tmp_path):
    _, good, _ = source
    out = tmp_path / "out"
    (out / f"{good[0].stem}.png").mkdir(parents=True)  # a folder where the image should go
    report = convert_dicoms([good[0]], out, workers=1, overwrite=True, progress=False)
    assert list(report.failed) == [str(good[0])]
    assert "could not write" in report.failed[str(good[0])]
    assert not list(out.glob(".*.partial"))


def test_colliding_output_names_are_reported(source, tmp_path):
    _, good, _ = source
    twin = tmp_path / "elsewhere" / good[0].name
    twin.parent.mkdir()
    twin.write_bytes(good[0].read_bytes())
    report = convert_dicoms([good[0], twin], tmp_path / "out", workers=1, progress=False)
    assert len(report.converted) == 1
    assert "already used" in report.failed[str(twin)]


def test_bad_arguments_raise(source, tmp_path):
    folder, _, _ = source
    with pytest.raises(ValueError, match="fmt"):
        convert_dicoms(folder, tmp_path / "x", fmt="bmp")
    with pytest.raises(ValueError, match="size"):
        convert_dicoms(folder, tmp_path / "x", size=0)
    with pytest.raises(FileNotFoundError, match="absent"):
        convert_dicoms(tmp_path / "absent", tmp_path / "x")


def test_list_dicom_files_takes_dcm_of_any_case(tmp_path):
    for name in ("b.dcm", "a.DCM", "c.png"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_dicom_files(tmp_path)] == ["a.DCM", "b.dcm"]


def test_real_files_convert(rsna_dir, tmp_path):
    files = sorted((rsna_dir / "images").glob("*.dcm"))[:3]
    report = convert_dicoms(files, tmp_path, fmt="png", size=256, workers=2, progress=False)
    assert not report.failed and len(report.converted) == 3
    for path in files:
        written = np.asarray(Image.open(tmp_path / f"{path.stem}.png"))
        np.testing.assert_array_equal(written, read_dicom_image(path, size=256))
