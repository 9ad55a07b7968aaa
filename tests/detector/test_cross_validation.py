"""k-fold training: folds disjoint by patient, each resumable, every patient predicted once out of fold."""
import json

import numpy as np
import pytest

from rsna_detector.detector.cross_validation import (
    FOLDS_FILE,
    OOF_FILE,
    SPLIT_FILE,
    CrossValidationError,
    fold_checkpoints,
    fold_folder,
    read_oof_predictions,
    train_folds,
)
from rsna_detector.detector.results import read_results_file
from rsna_detector.detector.schedule import Stage, train
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, n_train=12, n_test=2, seed=4, image_size=64, workers=1, progress=False)
    return root


def _config():
    # a near-zero learning rate keeps the random heads that detect something (a trained one says background)
    return tiny_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=1, DETECTION_MIN_CONFIDENCE=0.0, LEARNING_RATE=1e-9)


OPTIONS = dict(weights=None, epochs=1, schedule=[Stage("heads", 1.0, 1, False)], augmentation=None, validation=False)


@pytest.fixture(scope="module")
def three_folds(synthetic, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("folds")
    cv = train_folds(synthetic, _config(), folds=3, model_dir=model_dir, seed=5, flip_tta=True, scales=(1.0, 0.75),
                     **OPTIONS)
    return cv, model_dir


def test_every_patient_is_predicted_once_by_the_fold_model_that_did_not_train_on_it(synthetic, three_folds):
    from rsna_detector.data.labels import load_patient_records
    from rsna_detector.detector.cross_validation import _oof_model, _views
    from rsna_detector.detector.inference import predict

    cv, model_dir = three_folds
    patients = set(load_patient_records(synthetic / "stage_2_train_labels.csv"))
    stored = json.loads((model_dir / FOLDS_FILE).read_text())
    assert stored["folds"] == 3 and stored["assignment"] == cv.assignment and set(cv.assignment) == patients
    oof = read_oof_predictions(model_dir)
    assert set(oof) == patients  # every training patient predicted ...
    seen = []
    for fold in (1, 2, 3):
        split = json.loads((fold_folder(model_dir, fold) / SPLIT_FILE).read_text())
        assert not set(split["train"]) & set(split["validation"])
        assert set(split["train"]) | set(split["validation"]) == patients
        fold_oof = read_results_file(fold_folder(model_dir, fold) / OOF_FILE).predictions
        assert set(fold_oof) == set(split["validation"]) == set(cv.validation_ids(fold))
        seen += list(fold_oof)
        for pid, prediction in fold_oof.items():
            np.testing.assert_array_equal(prediction.scores, oof[pid].scores)
    assert sorted(seen) == sorted(patients)  # ... exactly once
    # ... by the fold's own model (fold 2's, here): predicting again with its checkpoint gives the same boxes,
    # and another fold's model does not
    fold_oof = read_results_file(fold_folder(model_dir, 2) / OOF_FILE).predictions
    files = [synthetic / "stage_2_train_images" / f"{pid}.dcm" for pid in fold_oof]
    views = _views(_config(), True, (1.0, 0.75), 0.55)
    again = predict(_oof_model(cv.checkpoints[1], _config(), views), files, progress=False,
                    postprocessing=views).by_patient()
    other = predict(_oof_model(cv.checkpoints[0], _config(), views), files, progress=False,
                    postprocessing=views).by_patient()
    assert sum(len(p.boxes) for p in fold_oof.values()) > 0
    for pid, prediction in fold_oof.items():
        np.testing.assert_allclose(prediction.boxes, again[pid].boxes, atol=1e-3)
        np.testing.assert_allclose(prediction.scores, again[pid].scores, atol=1e-5)
    assert any(len(p.scores) != len(other[pid].scores) or not np.allclose(p.scores, other[pid].scores)
               for pid, p in fold_oof.items())
    assert [p.parent.parent for p in fold_checkpoints(model_dir, _config())] == [fold_folder(model_dir, f)
                                                                                 for f in (1, 2, 3)]


def test_folds_are_stratified_by_box_count(synthetic, three_folds):
    from rsna_detector.data.labels import load_patient_records

    cv, _ = three_folds
    records = load_patient_records(synthetic / "stage_2_train_labels.csv")
    positives = [sum(records[pid].target for pid in cv.validation_ids(fold)) for fold in (1, 2, 3)]
    assert max(positives) - min(positives) <= 1 and sum(positives) == 3  # 22.5 % of 12, dealt over 3 folds
    assert sorted(len(cv.validation_ids(fold)) for fold in (1, 2, 3)) == [4, 4, 4]


def test_resume_leaves_a_finished_fold_and_refuses_another_assignment(synthetic, three_folds):
    _, model_dir = three_folds
    before = fold_checkpoints(model_dir, _config())
    stamps = [path.stat().st_mtime_ns for path in before]
    again = train_folds(synthetic, _config(), folds=3, model_dir=model_dir, seed=5, resume=True, only=[2],
                        oof=False, **OPTIONS)
    assert again.checkpoints == before and [p.stat().st_mtime_ns for p in before] == stamps
    assert again.histories[2] == {}  # nothing left to train
    with pytest.raises(CrossValidationError, match=f"{FOLDS_FILE}: this model folder holds another fold assignment"):
        train(synthetic, _config(), folds=3, model_dir=model_dir, seed=6, **OPTIONS)  # train(folds=k) is train_folds


def test_the_ensemble_description_is_fitted_out_of_fold_and_reproduced_by_predict(synthetic, three_folds):
    """load_detector(model_dir) is the three fold models; predict applies the stored description: each member's
    views (plain and mirrored at 1.0 and 0.75), fused by WBF, the threshold and the box scale; computed here by hand
    from the members' own detections."""
    from rsna_detector.detector.ensemble import (
        Ensemble,
        detect_scaled,
        scale_boxes_about_centre,
        weighted_boxes_fusion,
    )
    from rsna_detector.detector.inference import predict
    from rsna_detector.detector.loading import load_detector
    from rsna_detector.detector.postprocess import PostProcessing, mirror_boxes

    cv, model_dir = three_folds
    stored = PostProcessing.load(model_dir / "postprocessing.json")
    assert stored == cv.postprocessing and stored.members == tuple(
        p.relative_to(model_dir).as_posix() for p in cv.checkpoints)
    assert stored.scales == (1.0, 0.75) and stored.flip_tta and stored.validation["images"] == 12
    files = sorted((synthetic / "stage_2_test_images").glob("*.dcm"))
    as_stored = predict(load_detector(model_dir, _config()), files, progress=False)
    # the random members score below the fitted threshold: override it (as --threshold 0 does) to see boxes
    ensemble = load_detector(model_dir, _config(), threshold=0.0)
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    run = predict(ensemble, files, progress=False)
    assert sum(len(p.scores) for p in run.predictions) > 0
    for stored_prediction, prediction in zip(as_stored.predictions, run.predictions):
        kept = prediction.scores >= stored.min_confidence
        np.testing.assert_array_equal(stored_prediction.scores, prediction.scores[kept])
        np.testing.assert_array_equal(stored_prediction.boxes, prediction.boxes[kept])
    images = [_image(path) for path in files]
    threshold = 0.0
    for k, prediction in enumerate(run.predictions):
        views = []
        for member in ensemble.members:
            for mirrored in (False, True):
                image = images[k][:, ::-1] if mirrored else images[k]
                for found in (member.detect([image])[0], detect_scaled(member, [image], 0.75)[0]):
                    boxes = np.asarray(found["rois"], np.float32)
                    views.append((mirror_boxes(boxes, 64) if mirrored else boxes, found["scores"]))
        boxes, scores = weighted_boxes_fusion(views, (64, 64), iou_threshold=stored.fusion_iou)
        keep = scores >= threshold
        expected = scale_boxes_about_centre(boxes[keep], stored.box_scale)
        np.testing.assert_allclose(prediction.scores, scores[keep], atol=1e-5)
        np.testing.assert_allclose(prediction.boxes, expected, atol=1e-3)  # the test DICOMs are 64 px: no rescale


def _image(path):
    from rsna_detector.data.dicom import read_dicom
    from rsna_detector.data.images import grey_to_rgb

    return grey_to_rgb(read_dicom(path, size=64)[0], path)
