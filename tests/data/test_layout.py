"""Finding the RSNA files in a data directory."""
import pytest

from rsna_detector.data.layout import KaggleLayout, LayoutError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n")
    return path


def test_kaggle_layout_stage_2(tmp_path):
    labels = touch(tmp_path / "stage_2_train_labels.csv")
    classes = touch(tmp_path / "stage_2_detailed_class_info.csv")
    submission = touch(tmp_path / "stage_2_sample_submission.csv")
    (tmp_path / "stage_2_train_images").mkdir()
    (tmp_path / "stage_2_test_images").mkdir()
    layout = KaggleLayout.from_dir(tmp_path)
    assert layout.root == tmp_path
    assert (layout.train_labels, layout.class_info, layout.sample_submission) == (labels, classes, submission)
    assert layout.train_images == tmp_path / "stage_2_train_images"
    assert layout.test_images == tmp_path / "stage_2_test_images"
    assert layout.require_labels() == labels and layout.require_test_images() == layout.test_images


def test_stage_1_names_and_stage_2_preferred(tmp_path):
    stage1 = touch(tmp_path / "stage_1_train_labels.csv")
    (tmp_path / "stage_1_train_images").mkdir()
    layout = KaggleLayout.from_dir(str(tmp_path))
    assert layout.train_labels == stage1 and layout.train_images == tmp_path / "stage_1_train_images"
    assert layout.class_info is None and layout.test_images is None
    stage2 = touch(tmp_path / "stage_2_train_labels.csv")
    assert KaggleLayout.from_dir(tmp_path).train_labels == stage2


def test_sample_layout(tmp_path):
    labels = touch(tmp_path / "labels" / "stage_2_train_labels.csv")
    classes = touch(tmp_path / "labels" / "stage_2_detailed_class_info.csv")
    (tmp_path / "images").mkdir()
    layout = KaggleLayout.from_dir(tmp_path)
    assert (layout.train_labels, layout.class_info) == (labels, classes)
    assert layout.train_images == tmp_path / "images" and layout.sample_submission is None


def test_missing_labels_error_names_directory_and_candidates(tmp_path):
    layout = KaggleLayout.from_dir(tmp_path)
    assert layout.train_labels is None and layout.train_images is None
    with pytest.raises(LayoutError) as excinfo:
        layout.require_labels()
    message = str(excinfo.value)
    assert str(tmp_path) in message and "no training labels file found" in message
    for name in ("stage_2_train_labels.csv", "labels/stage_2_train_labels.csv", "stage_1_train_labels.csv"):
        assert name in message
    with pytest.raises(LayoutError, match="stage_2_train_images, stage_1_train_images, images"):
        layout.require_train_images()
    with pytest.raises(LayoutError, match="no class info file"):
        layout.require_class_info()
    assert isinstance(excinfo.value, FileNotFoundError)


def test_not_a_directory(tmp_path):
    with pytest.raises(LayoutError, match="not a directory"):
        KaggleLayout.from_dir(tmp_path / "absent")


def test_layout_passes_through(tmp_path):
    layout = KaggleLayout.from_dir(tmp_path)
    assert KaggleLayout.from_dir(layout) is layout


def test_real_sample_directory(rsna_dir):
    layout = KaggleLayout.from_dir(rsna_dir)
    assert layout.train_labels == rsna_dir / "labels" / "stage_2_train_labels.csv"
    assert layout.class_info == rsna_dir / "labels" / "stage_2_detailed_class_info.csv"
    assert layout.sample_submission == rsna_dir / "labels" / "stage_2_sample_submission.csv"
    assert layout.train_images == rsna_dir / "images"
    assert len(list(layout.train_images.glob("*.dcm"))) == 16
