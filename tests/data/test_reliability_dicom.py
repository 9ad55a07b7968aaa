"""A truncated or corrupt JPEG stream inside a valid DICOM (issue 14, item 6) is a named error,
never a picture of garbage; ``convert`` reports it as a failure."""
import shutil

import numpy as np
import pytest

from rsna_detector.data.dicom import DicomReadError, read_dicom


def _frame(path):
    import pydicom
    from pydicom.encaps import generate_frames

    dataset = pydicom.dcmread(path)
    return dataset, next(generate_frames(dataset.PixelData, number_of_frames=1))


def _replace_frame(source, target, stream):
    """A copy of ``source`` whose (only) JPEG frame is ``stream``: the DICOM around it stays valid."""
    from pydicom.encaps import encapsulate

    dataset, _ = _frame(source)
    dataset.PixelData = encapsulate([stream])
    dataset.save_as(target)
    return target


@pytest.fixture
def synthetic_dicom(tmp_path):
    from rsna_detector.data.synthetic import write_jpeg_dicom

    image = (np.random.default_rng(0).integers(0, 255, (256, 256))).astype(np.uint8)
    write_jpeg_dicom(tmp_path / "whole.dcm", image, patient_id="whole")
    return tmp_path / "whole.dcm"


@pytest.fixture
def real_dicom(rsna_dir, tmp_path):
    source = sorted((rsna_dir / "images").glob("*.dcm"))[0]
    return shutil.copy(source, tmp_path / source.name)


def _cut_in_half(path, tmp_path):
    _, stream = _frame(path)
    return _replace_frame(path, tmp_path / "cut.dcm", stream[: len(stream) // 2])


@pytest.mark.parametrize("fast", [True, False])
def test_synthetic_stream_cut_in_half_is_a_named_error(synthetic_dicom, tmp_path, fast):
    cut = _cut_in_half(synthetic_dicom, tmp_path)
    read_dicom(synthetic_dicom, fast=fast)  # the whole file reads
    with pytest.raises(DicomReadError, match=r"JPEG stream .*truncated") as caught:
        read_dicom(cut, fast=fast)
    assert caught.value.path == str(cut) and str(cut) in str(caught.value)


@pytest.mark.parametrize("fast", [True, False])
def test_real_sample_stream_cut_in_half_is_a_named_error(real_dicom, tmp_path, fast):
    cut = _cut_in_half(real_dicom, tmp_path)
    with pytest.raises(DicomReadError, match=r"JPEG stream .*truncated") as caught:
        read_dicom(cut, fast=fast, size=256)
    assert str(cut) in str(caught.value)


def test_a_stream_with_its_entropy_data_overwritten_is_a_named_error(real_dicom, tmp_path):
    _, stream = _frame(real_dicom)
    middle = len(stream) // 2
    broken = stream[:middle] + b"\xff\xd9" + stream[middle + 2:]  # an EOI in the middle of the scan
    path = _replace_frame(real_dicom, tmp_path / "broken.dcm", broken)
    with pytest.raises(DicomReadError, match=str(path)):
        read_dicom(path)


def test_convert_counts_the_cut_file_as_a_failure_and_writes_nothing_for_it(synthetic_dicom, tmp_path):
    from rsna_detector.data.convert import convert_dicoms

    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(synthetic_dicom, source / "whole.dcm")
    _cut_in_half(synthetic_dicom, tmp_path).rename(source / "cut.dcm")
    out = tmp_path / "out"
    report = convert_dicoms(source, out, workers=1, progress=False)
    assert report.converted == [str(out / "whole.png")]
    assert list(report.failed) == [str(source / "cut.dcm")]
    assert "truncated" in report.failed[str(source / "cut.dcm")]
    assert sorted(p.name for p in out.iterdir()) == ["whole.png"]
