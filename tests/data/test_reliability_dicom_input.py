"""Non-conforming headers, decompression bombs and streams cut and closed with EOI (issue 22, cases 1-3).

A header value that cannot be parsed is a warning naming the file and the field, and the pixels are
still read; anything else that fails in one file is that file's ``DicomReadError``, so batch jobs
report it and go on; an image larger than ``MAX_IMAGE_PIXELS`` is refused before anything is decoded;
a JPEG stream cut and closed with an EOI marker is a named error on both decode paths."""
import shutil
import time
import tracemalloc
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

from rsna_detector.data import dicom
from rsna_detector.data.dicom import DicomReadError, read_dicom, read_dicom_metadata
from tests.helpers import smooth_image, write_dicom, write_jpeg_dicom


def _set_raw(path, tag, vr, value):
    """Write a header value as the bytes a vendor wrote, past pydicom's validation."""
    dataset = pydicom.dcmread(path)
    dataset.add_new(tag, vr, None)
    dataset[tag]._value = value
    with pydicom.config.disable_value_validation():
        dataset.save_as(path)
    return path


def _metadata_warnings(caught):
    return [str(w.message) for w in caught if w.category.__name__ == "DicomMetadataWarning"]


@pytest.fixture
def clean_jpeg(tmp_path):
    return write_jpeg_dicom(tmp_path / "clean.dcm", smooth_image(64, 64))


# --------------------------------------------------------------------------- case 1
@pytest.mark.parametrize("fast", [True, False])
def test_a_comma_decimal_pixel_spacing_is_warned_about_and_the_image_still_read(clean_jpeg, tmp_path, fast):
    comma = _set_raw(shutil.copy(clean_jpeg, tmp_path / "comma.dcm"), 0x00280030, "DS", ["0,139", "0,139"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, meta = read_dicom(comma, fast=fast, size=32)
    assert np.array_equal(image, read_dicom(clean_jpeg, fast=fast, size=32)[0])
    assert meta.pixel_spacing is None and meta.rows == 64
    messages = _metadata_warnings(caught)
    assert messages and str(comma) in messages[0] and "field PixelSpacing" in messages[0] and "0,139" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_dicom_metadata(comma).pixel_spacing is None


def test_a_window_width_of_zero_is_warned_about_and_the_image_min_max_scaled(tmp_path):
    pixels = (np.arange(64 * 64).reshape(64, 64) * 7).astype(np.uint16)
    bad = write_dicom(tmp_path / "ww0.dcm", pixels, bits_stored=16, WindowCenter=1000, WindowWidth=0)
    without = write_dicom(tmp_path / "none.dcm", pixels, bits_stored=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, _ = read_dicom(bad)
    assert np.array_equal(image, read_dicom(without)[0])  # as a file without a window: min-max scaled
    messages = _metadata_warnings(caught)
    assert messages and str(bad) in messages[0] and "WindowWidth" in messages[0] and "min-max" in messages[0]


def test_any_other_failure_in_one_file_is_its_dicom_read_error(tmp_path):
    # PALETTE COLOR without its colour LUT: pydicom's apply_color_lut raises a bare ValueError
    path = write_dicom(tmp_path / "palette.dcm", np.zeros((8, 8), np.uint8), photometric="PALETTE COLOR")
    with pytest.raises(DicomReadError, match=r"palette\.dcm: cannot be read \(ValueError: ") as caught:
        read_dicom(path)
    assert caught.value.path == str(path)


def test_convert_goes_on_past_such_files(clean_jpeg, tmp_path):
    from rsna_detector.data.convert import convert_dicoms

    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(clean_jpeg, source / "a.dcm")
    _set_raw(shutil.copy(clean_jpeg, source / "b.dcm"), 0x00280030, "DS", ["0,139", "0,139"])
    write_dicom(source / "c.dcm", np.zeros((8, 8), np.uint8), photometric="PALETTE COLOR")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = convert_dicoms(source, tmp_path / "out", workers=1, progress=False)
    assert sorted(report.converted) == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "b.png")]
    assert list(report.failed) == [str(source / "c.dcm")] and "cannot be read" in report.failed[str(source / "c.dcm")]


def test_the_eda_sample_grid_leaves_out_the_unreadable_file_and_keeps_the_others(clean_jpeg, tmp_path):
    import pandas as pd

    from rsna_detector.eda.images import load_samples

    shutil.copy(clean_jpeg, tmp_path / "good.dcm")
    _set_raw(shutil.copy(clean_jpeg, tmp_path / "comma.dcm"), 0x00280030, "DS", ["0,139", "0,139"])
    write_dicom(tmp_path / "bad.dcm", np.zeros((8, 8), np.uint8), photometric="PALETTE COLOR")
    chosen = pd.DataFrame({"patientId": ["good", "comma", "bad"], "target": [0, 0, 0]})
    boxes = pd.DataFrame({"patientId": [], "Target": [], "y1": [], "x1": [], "y2": [], "x2": []})
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = load_samples(chosen, boxes, tmp_path, notes)
    assert [s["patientId"] for s in samples] == ["good", "comma"]
    assert len(notes) == 1 and "bad.dcm" in notes[0]


# --------------------------------------------------------------------------- case 2
def _bomb(clean, target, side, header_side):
    """``clean`` with its JPEG frame header saying ``side`` x ``side`` and Rows/Columns ``header_side``."""
    dataset = pydicom.dcmread(clean)
    stream = bytearray(next(generate_frames(dataset.PixelData, number_of_frames=1)))
    sof = stream.index(b"\xff\xc0")
    stream[sof + 5:sof + 9] = side.to_bytes(2, "big") + side.to_bytes(2, "big")
    dataset.PixelData = encapsulate([bytes(stream)])
    dataset.Rows = dataset.Columns = header_side
    dataset.save_as(target)
    return target


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("header_side", [14000, 64])
def test_a_decompression_bomb_is_refused_before_anything_is_allocated(clean_jpeg, tmp_path, fast, header_side):
    bomb = _bomb(clean_jpeg, tmp_path / "bomb.dcm", 14000, header_side)
    assert bomb.stat().st_size < 4000
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DicomReadError, match=r"bomb\.dcm: image too large: .* 14000 x 14000 = 196,000,000 "
                                                 r"pixels, above the limit of 50,000,000") as caught:
            read_dicom(bomb, fast=fast)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB allocated"  # the image would take 187 MiB at least
    assert time.perf_counter() - start < 30  # a hang guard only: the whole decode took seconds
    assert "MAX_IMAGE_PIXELS" in str(caught.value)


def test_the_size_limit_is_the_users_to_change(clean_jpeg, monkeypatch):
    monkeypatch.setattr(dicom, "MAX_IMAGE_PIXELS", 64 * 63)
    with pytest.raises(DicomReadError, match="64 x 64 = 4,096 pixels, above the limit of 4,032"):
        read_dicom(clean_jpeg)
    monkeypatch.setattr(dicom, "MAX_IMAGE_PIXELS", 64 * 64)
    assert read_dicom(clean_jpeg)[0].shape == (64, 64)


# --------------------------------------------------------------------------- case 3
def _cut_and_closed(source, target):
    dataset = pydicom.dcmread(source)
    stream = next(generate_frames(dataset.PixelData, number_of_frames=1))
    dataset.PixelData = encapsulate([stream[:len(stream) // 2] + b"\xff\xd9"])
    dataset.save_as(target)
    return target


@pytest.mark.parametrize("fast", [True, False])
def test_a_stream_cut_and_closed_with_eoi_is_a_named_error_on_both_paths(tmp_path, fast):
    source = write_jpeg_dicom(tmp_path / "whole.dcm", np.random.default_rng(0).integers(0, 255, (256, 256),
                                                                                         dtype=np.uint8))
    cut = _cut_and_closed(source, tmp_path / "cut.dcm")
    with pytest.raises(DicomReadError, match=r"cut\.dcm: JPEG stream truncated or corrupt: .*premature end"):
        read_dicom(cut, fast=fast, size=128)


@pytest.mark.parametrize("fast", [True, False])
def test_a_real_sample_cut_and_closed_with_eoi_is_a_named_error(rsna_dir, tmp_path, fast):
    source = sorted((rsna_dir / "images").glob("*.dcm"))[0]
    cut = _cut_and_closed(source, tmp_path / "cut.dcm")
    with pytest.raises(DicomReadError, match=r"premature end"):
        read_dicom(cut, fast=fast, size=256)
