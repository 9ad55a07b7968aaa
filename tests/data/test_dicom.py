"""Tests of rsna_detector.data.dicom: real RSNA files, the fast path, and bad or unusual files."""
import csv
import pickle
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from rsna_detector.data.dicom import (
    FAST_PATH_TOLERANCE,
    JPEG_BASELINE,
    DicomReadError,
    parse_age,
    read_dicom,
    read_dicom_image,
    read_dicom_metadata,
    resize_square,
)
from tests.helpers import smooth_image, write_dicom, write_jpeg_dicom


def real_files(rsna_dir):
    return sorted((rsna_dir / "images").glob("*.dcm"))


# ---------------------------------------------------------------- real RSNA samples
def test_real_files_decode_and_metadata_match_manifest(rsna_dir):
    with open(rsna_dir / "MANIFEST.csv", newline="") as handle:
        manifest = {row["patientId"]: row for row in csv.DictReader(handle)}
    files = real_files(rsna_dir)
    assert len(files) == 16
    for path in files:
        image, meta = read_dicom(path)
        assert image.shape == (1024, 1024) and image.dtype == np.uint8, path
        assert 0 < image.mean() < 255
        row = manifest[path.stem]
        assert meta.patient_id == path.stem
        assert meta.age == int(row["PatientAge"])
        assert meta.sex == row["PatientSex"]
        assert meta.view_position == row["ViewPosition"]
        assert (meta.rows, meta.columns, meta.bits_stored) == (1024, 1024, 8)
        assert meta.transfer_syntax_uid == JPEG_BASELINE
        assert meta.photometric_interpretation == "MONOCHROME2"
        assert len(meta.pixel_spacing) == 2 and 0.1 < meta.pixel_spacing[0] < 0.2
        assert read_dicom_metadata(path) == meta


@pytest.mark.parametrize("size", [256, 224, 512])
def test_fast_path_within_stated_tolerance_on_real_files(rsna_dir, size):
    mean_limit, max_limit = FAST_PATH_TOLERANCE
    for path in real_files(rsna_dir):
        reference = read_dicom_image(path, size=size, fast=False).astype(int)
        fast = read_dicom_image(path, size=size, fast=True)
        assert fast.shape == (size, size) and fast.dtype == np.uint8
        difference = np.abs(fast.astype(int) - reference)
        assert difference.mean() <= mean_limit, (path, difference.mean())
        assert difference.max() <= max_limit, (path, difference.max())


def test_fast_path_full_size_differs_by_at_most_one_level(rsna_dir):
    path = real_files(rsna_dir)[0]
    difference = np.abs(read_dicom_image(path).astype(int) - read_dicom_image(path, fast=False))
    assert difference.max() <= 1


def test_truncated_real_file_raises_naming_the_file(rsna_dir, tmp_path):
    source = real_files(rsna_dir)[0]
    data = source.read_bytes()
    truncated = tmp_path / "half.dcm"
    truncated.write_bytes(data[: len(data) // 2])
    for fast in (True, False):
        with pytest.raises(DicomReadError, match="truncated") as caught:
            read_dicom(truncated, size=256, fast=fast)
        assert str(truncated) in str(caught.value)
    assert read_dicom_metadata(truncated).patient_id == source.stem  # the header is intact


# ---------------------------------------------------------------- bad input
def test_non_dicom_file_raises_naming_the_file(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("patientId,x,y\n" * 20)
    for reader in (read_dicom, read_dicom_metadata):
        with pytest.raises(DicomReadError, match="not a DICOM file") as caught:
            reader(path)
        assert caught.value.path == str(path) and str(path) in str(caught.value)


def test_missing_file_raises_dicom_read_error(tmp_path):
    with pytest.raises(DicomReadError, match="cannot be read"):
        read_dicom(tmp_path / "absent.dcm")


def test_dicom_without_pixel_data_raises(tmp_path):
    path = write_dicom(tmp_path / "empty.dcm", np.zeros((4, 4), np.uint8))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomReadError, match="no pixel data") as caught:
        read_dicom(path)
    assert str(path) in str(caught.value)
    assert read_dicom_metadata(path).rows == 4


def test_truncated_jpeg_stream_raises(tmp_path):
    path = write_jpeg_dicom(tmp_path / "cut.dcm", smooth_image(64, 64))
    ds = pydicom.dcmread(path)
    stream = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([stream[: len(stream) // 3]])
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomReadError, match="JPEG stream truncated") as caught:
        read_dicom(path, size=32)
    assert str(path) in str(caught.value)


def test_file_cut_inside_the_header_is_reported_truncated(tmp_path):
    path = write_dicom(tmp_path / "whole.dcm", np.zeros((8, 8), np.uint8), PatientAge="051Y",
                       SeriesDescription="a description long enough to be cut in the middle")
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: data.index(b"long enough")])
    for reader in (read_dicom, read_dicom_metadata):
        with pytest.raises(DicomReadError, match="truncated") as caught:
            reader(cut)
        assert str(cut) in str(caught.value)


def test_uncompressed_pixel_data_too_short_raises(tmp_path):
    path = write_dicom(tmp_path / "short.dcm", np.zeros((8, 8), np.uint8))
    ds = pydicom.dcmread(path)
    ds.PixelData = bytes(30)
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomReadError, match="fails to decode"):
        read_dicom(path)


def test_unsupported_transfer_syntax_raises(tmp_path):
    path = write_jpeg_dicom(tmp_path / "video.dcm", smooth_image(16, 16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomReadError, match="unsupported format"):
        read_dicom(path)


def test_error_survives_pickling():
    error = pickle.loads(pickle.dumps(DicomReadError("/x/a.dcm", "no pixel data")))
    assert (error.path, error.reason, str(error)) == ("/x/a.dcm", "no pixel data", "/x/a.dcm: no pixel data")
    assert isinstance(error, ValueError)


# ---------------------------------------------------------------- pixel semantics
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_uncompressed_8bit_is_read_as_stored(tmp_path, syntax):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    image, meta = read_dicom(write_dicom(tmp_path / "plain.dcm", pixels, syntax=syntax))
    np.testing.assert_array_equal(image, pixels)
    assert meta.transfer_syntax_uid == syntax


def test_rle_lossless_is_decoded(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    path = write_dicom(tmp_path / "rle.dcm", pixels)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    image, meta = read_dicom(path)
    assert meta.transfer_syntax_uid == RLELossless
    np.testing.assert_array_equal(image, pixels)


def test_monochrome1_is_inverted(tmp_path):
    pixels = np.full((6, 6), 10, np.uint8)
    pixels[2, 3] = 200
    image = read_dicom_image(write_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"))
    assert image[0, 0] == 245 and image[2, 3] == 55


def test_monochrome1_jpeg_fast_path_is_inverted_like_reference(tmp_path):
    picture = smooth_image(128, 128)
    path = write_jpeg_dicom(tmp_path / "m1.dcm", picture, photometric="MONOCHROME1")
    fast = read_dicom_image(path, size=64).astype(int)
    reference = read_dicom_image(path, size=64, fast=False).astype(int)
    assert np.abs(fast - reference).max() <= FAST_PATH_TOLERANCE[1]
    expected = 255 - resize_square(picture, 64).astype(int)
    assert np.abs(fast - expected).mean() < 2.0


def test_12_bit_without_window_is_min_max_scaled(tmp_path):
    pixels = np.array([[100, 1660], [4000, 100]], np.uint16)
    image = read_dicom_image(write_dicom(tmp_path / "twelve.dcm", pixels, bits_stored=12))
    # (v - 100) * 255 / 3900: 100 -> 0, 1660 -> 102, 4000 -> 255
    np.testing.assert_array_equal(image, [[0, 102], [255, 0]])


def test_12_bit_window_is_applied(tmp_path):
    pixels = np.array([[700, 900], [1100, 1500]], np.uint16)
    path = write_dicom(tmp_path / "window.dcm", pixels, bits_stored=12, WindowCenter=1000, WindowWidth=401)
    # DICOM LINEAR window, c' = 999.5, w' = 400: 900 -> (-99.5/400 + 0.5) * 255 = 64.07
    np.testing.assert_array_equal(read_dicom_image(path), [[0, 64], [192, 255]])
    path = write_dicom(tmp_path / "window1.dcm", pixels, bits_stored=12, WindowCenter=1000, WindowWidth=401,
                       photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_dicom_image(path), [[255, 191], [63, 0]])


def test_16_bit_voi_lut_sequence_is_applied(tmp_path):
    pixels = np.array([[50, 100, 101], [102, 103, 900]], np.uint16)
    item = Dataset()
    item.add_new(0x00283002, "US", [4, 100, 16])  # LUTDescriptor: 4 entries, first input 100, 16 bits
    item.add_new(0x00283006, "US", [0, 1000, 2000, 4000])  # LUTData
    path = write_dicom(tmp_path / "lut.dcm", pixels, VOILUTSequence=[item])
    # output range 0..4000 -> 0..255: 1000 -> 63.75, 2000 -> 127.5 (rounds to even 128)
    np.testing.assert_array_equal(read_dicom_image(path), [[0, 0, 64], [128, 255, 255]])


def test_rgb_becomes_grey_by_luma(tmp_path):
    pixels = np.zeros((1, 3, 3), np.uint8)
    pixels[0, 0, 0] = pixels[0, 1, 1] = pixels[0, 2, 2] = 255
    image = read_dicom_image(write_dicom(tmp_path / "rgb.dcm", pixels, photometric="RGB"))
    np.testing.assert_array_equal(image, [[76, 150, 29]])  # 0.299, 0.587, 0.114 of 255


def test_multi_frame_reads_the_first_frame(tmp_path):
    frames = np.stack([np.full((4, 5), value, np.uint8) for value in (10, 20, 30)])
    image = read_dicom_image(write_dicom(tmp_path / "cine.dcm", frames, frames=3))
    assert image.shape == (4, 5)
    assert (image == 10).all()


def test_512_image_reads_and_resizes(tmp_path):
    pixels = np.full((512, 512), 40, np.uint8)
    pixels[:, 256:] = 200
    image, meta = read_dicom(write_dicom(tmp_path / "small.dcm", pixels))
    assert image.shape == (512, 512) and (meta.rows, meta.columns) == (512, 512)
    half = read_dicom_image(tmp_path / "small.dcm", size=256)
    assert half.shape == (256, 256)
    assert (half[:, :128] == 40).all() and (half[:, 128:] == 200).all()
    path = write_jpeg_dicom(tmp_path / "small_jpeg.dcm", smooth_image(512, 512))
    fast, meta = read_dicom(path, size=256)
    reference = read_dicom_image(path, size=256, fast=False)
    assert fast.shape == (256, 256) and meta.rows == 512
    assert np.abs(fast.astype(int) - reference).mean() <= FAST_PATH_TOLERANCE[0]


def test_resize_square_is_block_mean_then_box():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    # 2x2 block means of [[0,10,..],[40,50,..]]: (0+10+40+50)/4 = 25, ...
    np.testing.assert_array_equal(resize_square(image, 2), [[25, 45], [105, 125]])
    assert resize_square(image, 4) is not None and (resize_square(image, 4) == image).all()
    assert resize_square(image, 8).shape == (8, 8)
    with pytest.raises(ValueError):
        resize_square(image, 0)


# ---------------------------------------------------------------- metadata
@pytest.mark.parametrize("text, years", [("51", 51), ("051Y", 51), ("6M", 0), ("18M", 1), ("10D", 0),
                                         ("104W", 1), ("150", 150), ("", None), ("abc", None), (None, None)])
def test_parse_age(text, years):
    assert parse_age(text) == years


@pytest.mark.filterwarnings("ignore:Invalid value for VR AS")
def test_metadata_flags_implausible_age_and_falls_back_to_stem(tmp_path):
    path = write_dicom(tmp_path / "abc-123.dcm", np.zeros((2, 3), np.uint8), patient_id=None,
                       PatientAge="155", PatientSex="M", ViewPosition="AP", PixelSpacing=[0.2, 0.25])
    meta = read_dicom_metadata(path)
    assert meta.patient_id == "abc-123"
    assert (meta.age, meta.age_implausible, meta.sex, meta.view_position) == (155, True, "M", "AP")
    assert (meta.rows, meta.columns, meta.pixel_spacing) == (2, 3, (0.2, 0.25))
    as_dict = meta.to_dict()
    assert as_dict["age"] == 155 and as_dict["modality"] == "CR" and len(as_dict) == 12
    plausible = read_dicom_metadata(write_dicom(tmp_path / "b.dcm", np.zeros((2, 2), np.uint8), PatientAge="040Y"))
    assert (plausible.age, plausible.age_implausible, plausible.view_position) == (40, False, None)


def test_copy_of_real_file_reads_without_rsna_specifics(rsna_dir, tmp_path):
    copy = tmp_path / "renamed.dcm"
    shutil.copy(real_files(rsna_dir)[3], copy)
    assert read_dicom_metadata(copy).patient_id == real_files(rsna_dir)[3].stem  # PatientID wins over the stem
