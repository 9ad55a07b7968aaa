"""The post-processing that travels with a model (detector/postprocess.py): the stored description, where it
is found, the pipeline by hand, and the in-graph threshold rule on a real (tiny) engine."""
import json
import warnings

import numpy as np
import pytest

from rsna_detector.detector.postprocess import (
    POSTPROCESSING_FILE,
    Detections,
    PostProcessing,
    PostProcessingError,
    PostProcessingWarning,
    apply_postprocessing,
    check_model,
    detect,
    load_postprocessing,
)
from tests.helpers import BlobDataset, tiny_config


# --------------------------------------------------------------------------- the description
def test_round_trip_through_the_file(tmp_path):
    stored = PostProcessing(min_confidence=0.86, flip_tta=True, flip_iou=0.4, detection_min_confidence=0.5,
                            validation={"checkpoint": "mask_rcnn_x_0007.h5", "epoch": 7, "value": 0.819})
    path = stored.save(tmp_path / POSTPROCESSING_FILE)
    values = json.loads(path.read_text())
    assert list(values) == ["version", "min_confidence", "flip_tta", "flip_iou", "detection_min_confidence",
                            "validation", "scales", "fusion_iou", "box_scale", "members", "gate_threshold",
                            "gate_classifier"]  # the ensemble fields (tests/detector/test_ensemble_postprocessing.py)
    assert values["version"] == 1 and values["min_confidence"] == 0.86
    loaded = PostProcessing.load(path)
    assert loaded == stored and loaded.validation == stored.validation
    assert [p.name for p in tmp_path.iterdir()] == [POSTPROCESSING_FILE]  # written atomically, nothing left over


@pytest.mark.parametrize("values, message", [
    ({"version": 2, "min_confidence": 0.5}, "version 2 was written by a newer rsna_detector; this one reads "
                                            "versions up to 1"),
    ({"min_confidence": 0.5}, "version: expected a whole number"),
    ({"version": "1"}, "version: expected a whole number"),
    ({"version": 0}, "version: expected 1 to 1, got 0"),
    ({"version": 1, "wbf_iou": 0.55}, "field(s) 'wbf_iou' unknown to version 1 descriptions (fields: version, "
                                      "min_confidence, flip_tta"),
    ({"version": 1, "min_confidence": 1.5}, "min_confidence: expected a number in [0, 1] or null, got 1.5"),
    ({"version": 1, "min_confidence": "0.5"}, "min_confidence: expected a number in [0, 1] or null, got '0.5'"),
    ({"version": 1, "flip_tta": "yes"}, "flip_tta: expected true or false, got 'yes'"),
    ({"version": 1, "flip_iou": 0}, "flip_iou: expected a number in (0, 1], got 0"),
    ({"version": 1, "validation": [1]}, "validation: expected an object or null"),
    ([0.5], "expected a JSON object of post-processing settings, got list"),
])
def test_a_bad_file_is_refused_naming_the_file_and_field(tmp_path, values, message):
    path = tmp_path / POSTPROCESSING_FILE
    path.write_text(json.dumps(values))
    with pytest.raises(PostProcessingError) as caught:
        PostProcessing.load(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_invalid_json_is_named(tmp_path):
    path = tmp_path / POSTPROCESSING_FILE
    path.write_text("{version: 1")
    with pytest.raises(PostProcessingError, match=f"{path}: not a post-processing description .invalid JSON"):
        PostProcessing.load(path)


def test_the_description_is_found_from_a_checkpoint_or_its_run_folder(tmp_path):
    run = tmp_path / "pneumonia20260101T000000"
    run.mkdir()
    checkpoint = run / "mask_rcnn_pneumonia_0003.h5"
    checkpoint.write_bytes(b"")
    assert load_postprocessing(checkpoint) is None and load_postprocessing(run) is None
    stored = PostProcessing(min_confidence=0.7, validation={"checkpoint": checkpoint.name})
    stored.save(run / POSTPROCESSING_FILE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_postprocessing(checkpoint) == stored
        assert load_postprocessing(run) == stored
        assert load_postprocessing(run / POSTPROCESSING_FILE) == stored
    with pytest.warns(PostProcessingWarning, match="validated on mask_rcnn_pneumonia_0003.h5; applied to "
                                                   "mask_rcnn_pneumonia_0001.h5"):
        assert load_postprocessing(run / "mask_rcnn_pneumonia_0001.h5") == stored
    (run / POSTPROCESSING_FILE).write_text('{"version": 9}')
    with pytest.raises(PostProcessingError, match="newer rsna_detector"):  # never silently ignored
        load_postprocessing(checkpoint)


def test_the_in_graph_threshold_a_model_needs():
    config = tiny_config()  # DETECTION_MIN_CONFIDENCE 0.7
    assert PostProcessing().detection_threshold(config) == 0.7
    assert PostProcessing(min_confidence=0.9).detection_threshold(config) == 0.7
    assert PostProcessing(min_confidence=0.6).detection_threshold(config) == 0.6  # lowered to apply it
    assert PostProcessing(min_confidence=0.9, detection_min_confidence=0.5).detection_threshold(config) == 0.5
    assert PostProcessing(min_confidence=0.3, detection_min_confidence=0.5).detection_threshold(config) == 0.3
    check_model(config, PostProcessing(min_confidence=0.7))
    with pytest.raises(PostProcessingError, match="threshold 0.6 cannot be applied: the model drops detections "
                                                  "below its DETECTION_MIN_CONFIDENCE 0.7 inside the graph"):
        check_model(config, PostProcessing(min_confidence=0.6))
    with pytest.warns(PostProcessingWarning, match="flip TTA validated with DETECTION_MIN_CONFIDENCE 0.5, "
                                                   "applied with 0.7"):
        check_model(config, PostProcessing(min_confidence=0.8, flip_tta=True, detection_min_confidence=0.5))


# --------------------------------------------------------------------------- the pipeline, by hand
def _detections(boxes, scores, class_ids):
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      np.asarray(class_ids, np.int32))


def test_one_view_is_thresholded_in_order():
    view = _detections([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]], [0.9, 0.7, 0.5], [1, 1, 1])
    kept = apply_postprocessing([view], PostProcessing(min_confidence=0.7))
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7]) and kept.boxes.tolist() == [[0, 0, 10, 10],
                                                                                      [5, 5, 20, 20]]
    assert apply_postprocessing([view], PostProcessing()).scores.tolist() == pytest.approx([0.9, 0.7, 0.5])


def test_the_image_and_its_mirror_are_fused_class_by_class_then_thresholded():
    """Class 1: (0, 0, 10, 10) at 0.8 in the image and (0, 0, 10, 12) at 0.6 in the mirror (IoU 100/120 = 0.83):
    fused to their score-weighted mean (0, 0, 10, (0.8 x 10 + 0.6 x 12) / 1.4 = 10.857) at (0.8 + 0.6) / 2 = 0.7.
    Class 2: (0, 0, 10, 10) at 0.9 in the mirror only: half its score, 0.45, even though it overlaps class 1's
    boxes exactly. Threshold 0.5 keeps the fused class-1 box only."""
    image = _detections([[0, 0, 10, 10]], [0.8], [1])
    mirror = _detections([[0, 0, 10, 12], [0, 0, 10, 10]], [0.6, 0.9], [1, 2])
    fused = apply_postprocessing([image, mirror], PostProcessing(flip_tta=True))
    assert fused.class_ids.tolist() == [1, 2] and fused.masks is None
    assert fused.scores.tolist() == pytest.approx([0.7, 0.45])
    assert fused.boxes.tolist()[0] == pytest.approx([0, 0, 10, (0.8 * 10 + 0.6 * 12) / 1.4], abs=1e-5)
    kept = apply_postprocessing([image, mirror], PostProcessing(flip_tta=True, min_confidence=0.5))
    assert kept.class_ids.tolist() == [1] and kept.scores.tolist() == pytest.approx([0.7])


# --------------------------------------------------------------------------- the in-graph threshold rule
@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    """A random tiny detector whose boxes favour class 1, its weights, and 8 images."""
    from rsna_detector.mrcnn import model as modellib

    root = tmp_path_factory.mktemp("rule")
    config = tiny_config(DETECTION_MIN_CONFIDENCE=0.0, SEED=11, IMAGES_PER_GPU=4)
    model = modellib.MaskRCNN("inference", config, str(root))
    model.keras_model.get_layer("mrcnn_class_logits").bias.assign(np.array([0.0, 1.5], np.float32))
    model.save_weights(str(root / "weights.h5"))
    dataset = BlobDataset(6, 2, seed=4)
    return model, root / "weights.h5", [dataset.load_image(i) for i in dataset.image_ids]


def _model_with_threshold(weights, threshold):
    from rsna_detector.mrcnn import model as modellib

    model = modellib.MaskRCNN("inference", tiny_config(DETECTION_MIN_CONFIDENCE=threshold, IMAGES_PER_GPU=4),
                              str(weights.parent))
    model.load_weights(str(weights), by_name=True)
    return model


def test_a_lower_in_graph_threshold_then_the_threshold_equals_the_threshold_in_graph(tiny_detector):
    """The rule of postprocess' docstring: without TTA, detecting with DETECTION_MIN_CONFIDENCE m <= t and
    dropping what scores below t afterwards gives exactly the detections of DETECTION_MIN_CONFIDENCE t."""
    low, weights, images = tiny_detector
    everything = detect(low, images)
    scores = np.concatenate([d.scores for d in everything])
    threshold = float(np.round(np.median(scores), 3))
    assert 0 < (scores >= threshold).sum() < len(scores)  # the threshold drops some boxes and keeps others
    after = detect(low, images, PostProcessing(min_confidence=threshold))
    in_graph = detect(_model_with_threshold(weights, threshold), images)
    for a, b in zip(after, in_graph, strict=True):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
        assert np.array_equal(a.class_ids, b.class_ids) and np.array_equal(a.masks, b.masks)
    with pytest.raises(PostProcessingError, match="cannot be applied"):  # the other way round is refused
        detect(_model_with_threshold(weights, 0.99), images, PostProcessing(min_confidence=threshold))
