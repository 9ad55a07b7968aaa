"""DetectorDataset: DICOM images at the training size, filled-box masks, negatives kept."""
import csv

import numpy as np
import pytest

from rsna_detector.data.labels import load_patient_records
from rsna_detector.detector.dataset import DetectorDataset, boxes_to_masks
from rsna_detector.mrcnn.utils import extract_bboxes


def test_boxes_to_masks_fills_rounded_rectangles_with_exclusive_ends():
    masks = boxes_to_masks([[1.2, 2.0, 3.6, 5.4], [0, 0, 0.2, 0.2]], height=6, width=8)
    assert masks.shape == (6, 8, 2) and masks.dtype == bool
    expected = np.zeros((6, 8), bool)
    expected[1:4, 2:5] = True  # y 1.2..3.6 -> rows 1..3, x 2.0..5.4 -> columns 2..4
    np.testing.assert_array_equal(masks[..., 0], expected)
    assert masks[..., 1].sum() == 1 and masks[0, 0, 1]  # a degenerate box keeps one pixel


def test_boxes_to_masks_of_no_box_is_empty():
    assert boxes_to_masks(np.zeros((0, 4)), 4, 4).shape == (4, 4, 0)


@pytest.fixture(scope="module")
def real_dataset(rsna_dir):
    records = load_patient_records(rsna_dir / "labels" / "stage_2_train_labels.csv")
    with open(rsna_dir / "MANIFEST.csv") as handle:
        manifest = list(csv.DictReader(handle))
    ids = [row["patientId"] for row in manifest]
    return DetectorDataset.from_records(records, rsna_dir / "images", image_size=256, patient_ids=ids), records


def test_real_images_load_at_training_size_as_grey_rgb(real_dataset):
    dataset, _ = real_dataset
    assert dataset.num_images == 16 and dataset.class_names == ["BG", "Lung Opacity"]
    image = dataset.load_image(0)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_real_masks_are_the_label_boxes_scaled_to_256(real_dataset):
    dataset, records = real_dataset
    positives = [i for i in dataset.image_ids if records[dataset.patient_id(i)].target == 1]
    negatives = [i for i in dataset.image_ids if records[dataset.patient_id(i)].target == 0]
    assert len(positives) == 5 and len(negatives) == 11
    for image_id in positives:
        masks, class_ids = dataset.load_mask(image_id)
        expected = np.round(records[dataset.patient_id(image_id)].boxes / 4).astype(int)
        assert masks.shape[:2] == (256, 256) and set(class_ids) == {1}
        np.testing.assert_array_equal(extract_bboxes(masks), expected)
    masks, class_ids = dataset.load_mask(negatives[0])
    assert masks.shape == (256, 256, 0) and class_ids.shape == (0,)


def test_missing_dicoms_are_reported_not_fatal(rsna_dir):
    records = load_patient_records(rsna_dir / "labels" / "stage_2_train_labels.csv")
    first_20 = list(records)[:20]  # the 16 sample files are among the first label rows
    with pytest.warns(UserWarning, match=r"4 patients have no DICOM file"):
        dataset = DetectorDataset.from_records(records, rsna_dir / "images", patient_ids=first_20)
    assert dataset.num_images == 16


def test_split_from_a_synthetic_data_dir_is_patient_level(tmp_path):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(tmp_path, n_train=30, n_test=2, seed=1, image_size=256, workers=1, progress=False)
    train, val = DetectorDataset.split_from_data_dir(tmp_path, image_size=128, val_fraction=0.2, seed=3)
    train_ids = {train.patient_id(i) for i in train.image_ids}
    val_ids = {val.patient_id(i) for i in val.image_ids}
    assert not train_ids & val_ids and len(train_ids | val_ids) == 30 and len(val_ids) == 6
    image_id = next(i for i in val.image_ids if len(val.image_info[i]["boxes"]))
    masks, _ = val.load_mask(image_id)
    boxes = val.load_boxes(image_id)  # in 256-pixel file coordinates
    np.testing.assert_array_equal(extract_bboxes(masks), np.round(boxes / 2).astype(int))


def test_training_negatives_can_be_downsampled_without_touching_validation(tmp_path):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(tmp_path, n_train=40, n_test=1, seed=2, image_size=128, workers=1, progress=False)
    full_train, full_val = DetectorDataset.split_from_data_dir(tmp_path, val_fraction=0.25, seed=5)
    train, val = DetectorDataset.split_from_data_dir(tmp_path, val_fraction=0.25, seed=5,
                                                     train_negatives_per_positive=1.0)

    def targets(dataset):
        return [dataset.image_info[i]["target"] for i in dataset.image_ids]

    assert targets(val) == targets(full_val)
    positives = sum(targets(full_train))
    assert sum(targets(train)) == positives and targets(train).count(0) == positives
    kept = {train.patient_id(i) for i in train.image_ids}
    assert kept <= {full_train.patient_id(i) for i in full_train.image_ids}
