"""Ensembles: weighted boxes fusion, scale TTA's box mapping, box scaling and its fit, all hand-computed."""
import keras
import numpy as np
import pytest

from rsna_detector.detector.ensemble import (
    EnsembleError,
    boxes_from_scaled_view,
    detect_scaled,
    fit_box_scale,
    scale_boxes_about_centre,
    scaled_view_geometry,
    weighted_boxes_fusion,
)
from rsna_detector.detector.submission import ImagePrediction
from rsna_detector.errors import RsnaDetectorError


# --------------------------------------------------------------------------- WBF
def test_wbf_of_two_models_by_hand():
    # model A: (0,0,10,10) 0.9 and (50,50,70,70) 0.6; model B: (0,2,10,12) 0.3. In score order:
    # A1 opens cluster 1; A2 (IoU 0) opens cluster 2; B1 has IoU 80/120 = 0.667 > 0.55 with cluster 1.
    # Cluster 1: box (0.9*(0,0,10,10) + 0.3*(0,2,10,12)) / 1.2 = (0, 0.5, 10, 10.5); score mean 0.6 * 2/2.
    # Cluster 2: one of two models -> 0.6 * 1/2 = 0.3.
    boxes, scores = weighted_boxes_fusion(
        [([[0, 0, 10, 10], [50, 50, 70, 70]], [0.9, 0.6]), ([[0, 2, 10, 12]], [0.3])], (100, 100))
    np.testing.assert_allclose(boxes, [[0, 0.5, 10, 10.5], [50, 50, 70, 70]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.6, 0.3], atol=1e-6)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32


def test_wbf_weights_and_a_member_without_boxes_by_hand():
    # weights 2, 1, 1; C found nothing. Weighted scores 1.6 and 0.5; IoU 320/480 = 0.667 -> one cluster.
    # x1 = (1.6*10 + 0.5*14)/2.1, x2 = (1.6*30 + 0.5*34)/2.1 (y unchanged);
    # score = mean(1.6, 0.5) * min(3 members, 2 boxes) / total weight 4 = 1.05 * 2 / 4 = 0.525.
    boxes, scores = weighted_boxes_fusion(
        [([[10, 10, 30, 30]], [0.8]), ([[10, 14, 30, 34]], [0.5]), (np.zeros((0, 4)), [])], (200, 100),
        weights=[2, 1, 1])
    np.testing.assert_allclose(boxes, [[10, 23 / 2.1, 30, 65 / 2.1]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.525], atol=1e-6)


def test_wbf_below_the_iou_threshold_keeps_both_and_uses_the_image_frame():
    # IoU of (0,0,10,10) and (0,5,10,15) = 50/150 = 1/3 < 0.55: two clusters, each at half its score.
    # A non-square frame: y and x are not swapped on the way to ensemble-boxes' [x1, y1, x2, y2] and back.
    boxes, scores = weighted_boxes_fusion([([[0, 0, 10, 10]], [0.8]), ([[0, 5, 10, 15]], [0.6])], (40, 300))
    np.testing.assert_allclose(boxes, [[0, 0, 10, 10], [0, 5, 10, 15]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.4, 0.3], atol=1e-6)
    # a looser threshold fuses them: box weighted 0.8/0.6, score mean 0.7
    boxes, scores = weighted_boxes_fusion([([[0, 0, 10, 10]], [0.8]), ([[0, 5, 10, 15]], [0.6])], (40, 300),
                                          iou_threshold=0.3)
    np.testing.assert_allclose(boxes, [[0, 3 / 1.4, 10, 17 / 1.4]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.7], atol=1e-6)


def test_wbf_clips_to_the_image_and_handles_nothing():
    boxes, scores = weighted_boxes_fusion([([[-5, 90, 20, 130]], [0.5])], (100, 100))
    np.testing.assert_allclose(boxes, [[0, 90, 20, 100]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.5])
    for detections in ([], [(np.zeros((0, 4)), [])], [([[5, 5, 5, 9]], [0.9])]):  # nothing, empty, zero area
        boxes, scores = weighted_boxes_fusion(detections, (100, 100))
        assert boxes.shape == (0, 4) and scores.shape == (0,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(detections=[([[0, 0, 1, 1]], [0.5, 0.4])]), r"member 0: expected boxes \[N, \(y1, x1, y2, x2\)\] and N scores"),
    (dict(detections=[5]), "member 0: expected"),
    (dict(weights=[1, 2]), "weights: 2 values for 1 members"),
    (dict(iou_threshold=1.0), r"iou_threshold: 1.0 is not in \(0, 1\)"),
    (dict(conf_type="mean"), "conf_type: 'mean'; expected one of avg"),
])
def test_wbf_bad_input_is_named(kwargs, message):
    arguments = dict(detections=[([[0, 0, 10, 10]], [0.5])])
    arguments.update(kwargs)
    with pytest.raises(EnsembleError, match=message) as caught:
        weighted_boxes_fusion(arguments.pop("detections"), (100, 100), **arguments)
    assert isinstance(caught.value, RsnaDetectorError) and isinstance(caught.value, ValueError)


# --------------------------------------------------------------------------- scale TTA mapping
def test_scaled_view_geometry_by_hand():
    assert scaled_view_geometry((256, 256, 3), 0.8, 256) == ((205, 205), (256, 256))  # 204.8 -> 205
    assert scaled_view_geometry((256, 256), 1.2, 256) == ((307, 307), (320, 320))    # 307.2 -> 307, canvas 5 x 64
    assert scaled_view_geometry((256, 256), 1.0, 256) == ((256, 256), (256, 256))
    assert scaled_view_geometry((1024, 1024), 1.0, 256) == ((256, 256), (256, 256))  # relative to the model's side
    assert scaled_view_geometry((100, 80), 1.0, 128) == ((128, 102), (128, 128))      # 80 * 1.28 = 102.4
    for factor in (0, -1, float("nan")):
        with pytest.raises(EnsembleError, match="expected a positive number"):
            scaled_view_geometry((64, 64), factor, 64)


def test_boxes_from_scaled_view_by_hand():
    # factor 0.8 of a 256 image: view side 205; a view box (41, 82, 123, 164) is x 256/205 in the image
    boxes = boxes_from_scaled_view([[41, 82, 123, 164]], (256, 256), (205, 205))
    np.testing.assert_allclose(boxes, [[51.2, 102.4, 153.6, 204.8]], atol=1e-4)
    # rows and columns scale separately; boxes reaching the padding are clipped to the image
    boxes = boxes_from_scaled_view([[10, 10, 130, 130]], (100, 200), (50, 125))
    np.testing.assert_allclose(boxes, [[20, 16, 100, 200]], atol=1e-4)
    assert boxes_from_scaled_view(np.zeros((0, 4)), (10, 10), (5, 5)).shape == (0, 4)


# --------------------------------------------------------------------------- box scaling
def test_scale_boxes_around_the_centre_by_hand():
    # centre (30, 60), half size (20, 40) -> x 0.875 -> (17.5, 35)
    np.testing.assert_allclose(scale_boxes_about_centre([[10, 20, 50, 100]], 0.875), [[12.5, 25, 47.5, 95]])
    np.testing.assert_allclose(scale_boxes_about_centre([[10, 20, 50, 100]], 1.5, image_shape=(60, 110)), [[0, 0, 60, 110]])
    np.testing.assert_allclose(scale_boxes_about_centre([[10, 20, 50, 100]], 1.0), [[10, 20, 50, 100]])
    with pytest.raises(EnsembleError, match="box scale factor 0"):
        scale_boxes_about_centre([[0, 0, 1, 1]], 0)


def test_fit_box_scale_by_hand():
    # one true box 100 x 100; the prediction is the same box grown to 120 x 120 around its centre:
    # IoU 10000/14400 = 0.694: hits at IoU thresholds 0.40..0.65 (6 of 8) -> score 0.75.
    # Shrunk by 0.9 -> 108 x 108 (IoU 0.857), by 0.85 -> 102 (0.961), by 0.8 -> 96 (0.92): all score 1.0;
    # the tie goes to the factor closest to 1: 0.9. By 1.1 -> 132 x 132: IoU 0.574 -> 4 of 8 = 0.5.
    truth = {"a": np.array([[100, 100, 200, 200]]), "b": np.zeros((0, 4))}
    predictions = {"a": ImagePrediction("a", [[90, 90, 210, 210]], [0.9]),
                   "b": ImagePrediction("b", np.zeros((0, 4)), [])}
    best, score, table = fit_box_scale(truth, predictions, factors=[0.8, 0.85, 0.9, 1.0, 1.1])
    assert best == 0.9 and score == 1.0
    assert [row["rsna_score"] for row in table] == [1.0, 1.0, 1.0, 0.75, 0.5]
    # no image counts (no truth, no prediction): NaN
    best, score, _ = fit_box_scale({"b": np.zeros((0, 4))}, {"b": predictions["b"]}, factors=[1.0])
    assert np.isnan(best) and np.isnan(score)


# --------------------------------------------------------------------------- scale TTA with a model
def _tiny_inference_config(side):
    from tests.helpers import tiny_config

    return tiny_config(IMAGE_MIN_DIM=side, IMAGE_MAX_DIM=side, IMAGES_PER_GPU=2, DETECTION_MIN_CONFIDENCE=0.0,
                       DETECTION_MAX_INSTANCES=6, POST_NMS_ROIS_INFERENCE=32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A random-weight 64-pixel model and the same weights molding images to 128."""
    from rsna_detector.mrcnn import model as modellib

    keras.utils.set_random_seed(5)
    folder = tmp_path_factory.mktemp("logs")
    small = modellib.MaskRCNN("inference", _tiny_inference_config(64), str(folder))
    large = modellib.MaskRCNN("inference", _tiny_inference_config(128), str(folder))
    large.keras_model.set_weights(small.keras_model.get_weights())
    return small, large


def _images():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]


def test_detect_scaled_at_one_is_detect(models):
    small, _ = models
    images = _images()
    plain = small.detect(images)
    scaled = detect_scaled(small, images, 1.0)
    assert any(len(r["scores"]) for r in plain)
    for result, found in zip(plain, scaled):
        np.testing.assert_array_equal(found["rois"], result["rois"].astype(np.float32))
        np.testing.assert_array_equal(found["scores"], result["scores"])
        np.testing.assert_array_equal(found["class_ids"], result["class_ids"])


def test_detect_scaled_by_two_is_the_model_at_twice_the_size(models):
    # matterport's own molding at IMAGE_MAX_DIM 128 upscales a 64 image to 128 and maps the boxes back:
    # the view route gives the same detections; boxes round in another frame (1 px at most)
    small, large = models
    images = _images()
    reference = large.detect(images)
    scaled = detect_scaled(small, images, 2.0)
    assert sum(len(r["scores"]) for r in reference) >= 3
    for result, found in zip(reference, scaled):
        np.testing.assert_allclose(found["scores"], result["scores"], atol=1e-5)
        np.testing.assert_allclose(found["rois"], result["rois"], atol=1.0)
        assert np.all(found["rois"] >= 0) and np.all(found["rois"] <= 64)


def test_the_pipeline_runs_every_scale_plain_and_mirrored(models):
    from rsna_detector.detector.postprocess import PostProcessing, detect_views, mirror_boxes

    small, _ = models
    images = _images()[:2]
    views = detect_views(small, images, PostProcessing(flip_tta=True, scales=(1.0, 0.75)))
    assert [len(v) for v in views] == [4, 4]
    mirrored = small.detect([im[:, ::-1] for im in images])
    shrunk = detect_scaled(small, images, 0.75)
    shrunk_mirrored = detect_scaled(small, [im[:, ::-1] for im in images], 0.75)
    for k in range(2):
        np.testing.assert_array_equal(views[k][1].boxes, mirror_boxes(mirrored[k]["rois"], 64))
        np.testing.assert_array_equal(views[k][2].boxes, shrunk[k]["rois"])
        np.testing.assert_array_equal(views[k][3].boxes, mirror_boxes(shrunk_mirrored[k]["rois"], 64))
        assert np.all(views[k][2].boxes <= 64) and views[k][2].masks is None
