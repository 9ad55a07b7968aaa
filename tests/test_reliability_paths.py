"""Path traversal through a patientId (issue 14, item 1): no writer leaves its output folder,
the dataset reads no DICOM outside its image folder."""
import numpy as np
import pytest

from rsna_detector._paths import UnsafePathError, path_in_folder
from rsna_detector.mrcnn import utils

UUID = "0004cfab-14fd-4e49-80ba-63a80b6bddd6"


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the helper
@pytest.mark.parametrize("name", ["../x", "../../x", "/tmp/x", "..", ".", "", "C:x", "a\\b", "a/b", "x\x00y"])
def test_path_in_folder_refuses_names_that_leave_the_folder(tmp_path, name):
    with pytest.raises(UnsafePathError, match=r"refused as a file name in"):
        path_in_folder(tmp_path, name, ".png")


def test_path_in_folder_refuses_a_link_leading_out_when_writing(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{UUID}.png").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside the output folder"):
        path_in_folder(out, UUID, ".png")
    assert path_in_folder(out, UUID, ".png", for_writing=False) == out / f"{UUID}.png"  # readers follow links
    assert path_in_folder(out, UUID, ".jpg") == out / f"{UUID}.jpg"


# --------------------------------------------------------------------------- GT-vs-prediction figures
class _OnePatient(utils.Dataset):
    def __init__(self, patient_id):
        super().__init__()
        self.add_class("t", 1, "opacity")
        self.add_image("t", image_id=patient_id, path=None)
        self.prepare()
        self.loaded = 0

    def load_image(self, image_id):
        self.loaded += 1
        return np.zeros((32, 32, 3), np.uint8)

    def load_mask(self, image_id):
        return np.zeros((32, 32, 0), bool), np.zeros(0, np.int32)


class _NoDetections:
    def detect(self, images, verbose=0):
        return [{"rois": np.zeros((0, 4)), "scores": np.zeros(0), "class_ids": np.zeros(0, int)}]


@pytest.mark.parametrize("patient_id", ["../../x", "../escaped", "/abs/x"])
def test_gt_vs_prediction_never_writes_outside_its_folder(tmp_path, patient_id):
    from rsna_detector.detector.figures import save_gt_vs_prediction

    root = tmp_path / "root"
    out = root / "a" / "b" / "pictures"
    (root / "x.png").parent.mkdir(parents=True)
    (root / "x.png").write_bytes(b"existing file")
    dataset = _OnePatient(patient_id)
    with pytest.raises(UnsafePathError, match=r"refused"):
        save_gt_vs_prediction(_NoDetections(), dataset, dataset.image_ids, out)
    assert files_under(root) == ["x.png"] and (root / "x.png").read_bytes() == b"existing file"
    assert dataset.loaded == 0  # refused before any work


def test_gt_vs_prediction_writes_a_good_id_inside(tmp_path):
    from rsna_detector.detector.figures import save_gt_vs_prediction

    dataset = _OnePatient(UUID)
    written = save_gt_vs_prediction(_NoDetections(), dataset, dataset.image_ids, tmp_path / "pics")
    assert written == [tmp_path / "pics" / f"{UUID}.png"] and written[0].read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- dataset reads
def _record(patient_id):
    from rsna_detector.data.labels import PatientRecord

    return PatientRecord(patient_id, 0, None, np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))


@pytest.mark.parametrize("patient_id", ["../secret", "/tmp/secret", "..", "sub/../secret"])
def test_dataset_never_reads_a_dicom_outside_its_image_folder(tmp_path, patient_id):
    from rsna_detector.data.synthetic import write_jpeg_dicom
    from rsna_detector.detector.dataset import DetectorDataset

    images = tmp_path / "images"
    images.mkdir()
    write_jpeg_dicom(tmp_path / "secret.dcm", np.zeros((16, 16), np.uint8), patient_id="secret")
    dataset = DetectorDataset(image_size=16)
    with pytest.raises(UnsafePathError, match=r"patientId .* refused"):
        dataset.add_patients([_record(patient_id)], images)
    assert dataset.image_info == []


def test_data_dir_with_a_traversing_patient_id_is_refused_where_labels_are_read(tmp_path):
    from rsna_detector.data.labels import LabelError
    from rsna_detector.detector.dataset import DetectorDataset

    images = tmp_path / "stage_2_train_images"
    images.mkdir()
    labels = tmp_path / "stage_2_train_labels.csv"
    labels.write_text(f"patientId,x,y,width,height,Target\n{UUID},,,,,0\n../{UUID},,,,,0\n")
    with pytest.raises(LabelError, match=r"stage_2_train_labels.csv:3: field patientId: '\.\./"):
        DetectorDataset.from_data_dir(tmp_path)


# --------------------------------------------------------------------------- convert outputs
def test_convert_refuses_an_output_name_that_is_a_link_leading_out(tmp_path):
    from rsna_detector.data.convert import convert_dicoms
    from rsna_detector.data.synthetic import write_jpeg_dicom

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(), dst.mkdir()
    write_jpeg_dicom(src / f"{UUID}.dcm", np.full((16, 16), 9, np.uint8), patient_id=UUID)
    write_jpeg_dicom(src / "good.dcm", np.full((16, 16), 9, np.uint8), patient_id="good")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep me")
    (dst / f"{UUID}.png").symlink_to(outside)
    report = convert_dicoms(src, dst, workers=1, overwrite=True, progress=False)
    assert report.converted == [str(dst / "good.png")]
    assert list(report.failed) == [str(src / f"{UUID}.dcm")]
    assert "outside the output folder" in report.failed[str(src / f"{UUID}.dcm")]
    assert outside.read_bytes() == b"keep me"

