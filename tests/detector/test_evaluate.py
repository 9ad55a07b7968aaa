"""Evaluation: the competition metric (hand-computed), batch AP, PR curve, threshold sweep, report."""
import json

import numpy as np
import pytest

from rsna_detector.detector.evaluate import (
    RSNA_IOU_THRESHOLDS,
    EvalRecord,
    EvaluationError,
    batch_ap,
    collect_detections,
    compute_batch_ap,
    detection_metrics,
    evaluate_detector,
    mean_matched_iou,
    negative_image_ap,
    precision_recall_curve,
    records_from_predictions,
    rsna_image_score,
    rsna_score,
    rsna_score_records,
    sweep_confidence_threshold,
    write_detection_report,
)
from rsna_detector.detector.submission import ImagePrediction

GT = [[0, 0, 10, 10]]  # y1 x1 y2 x2, area 100


def _strip(x1, x2):
    """A box 10 pixels tall spanning x1..x2 (IoUs of such boxes are interval IoUs in x)."""
    return [0, x1, 10, x2]


# --------------------------------------------------------------------------- the competition metric
def test_thresholds_are_the_competitions():
    assert len(RSNA_IOU_THRESHOLDS) == 8
    np.testing.assert_allclose(RSNA_IOU_THRESHOLDS, [0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75])


def test_perfect_match_scores_one():
    assert rsna_image_score(GT, GT, [0.9]) == 1.0


def test_iou_between_thresholds():
    # IoU 60/100 = 0.6: hits at 0.40, 0.45, 0.50, 0.55 (0.6 > 0.6 is false) -> 4 of 8
    assert rsna_image_score(GT, [[0, 0, 10, 6]], [0.9]) == pytest.approx(0.5)
    # IoU exactly 0.5 is not a hit at 0.5: hits at 0.40 and 0.45 only -> 2 of 8
    assert rsna_image_score(GT, [[0, 0, 10, 5]], [0.9]) == pytest.approx(0.25)


def test_images_without_ground_truth_or_predictions():
    assert rsna_image_score(np.zeros((0, 4)), GT, [0.5]) == 0.0      # false positive on a negative image
    assert rsna_image_score(np.zeros((0, 4)), np.zeros((0, 4)), []) is None  # neither: left out
    assert rsna_image_score(GT, np.zeros((0, 4)), []) == 0.0        # missed opacity


def test_confidence_order_decides_the_matching():
    gts = [_strip(0, 10), _strip(5, 15)]
    p_wide = _strip(1, 11)   # IoU 9/11 = 0.818 with gt 1, 6/14 = 0.429 with gt 2
    p_exact = _strip(0, 10)  # IoU 1.0 with gt 1, 5/15 = 0.333 with gt 2
    # p_wide first takes gt 1; p_exact is then a false positive (0.333 < 0.40 with gt 2):
    # TP 1, FP 1, FN 1 at every threshold -> 1/3
    assert rsna_image_score(gts, [p_wide, p_exact], [0.9, 0.8]) == pytest.approx(1 / 3)
    # p_exact first takes gt 1; p_wide hits gt 2 only at t = 0.40 (0.429 > 0.40):
    # (1 + 7 * 1/3) / 8 = 5/12
    assert rsna_image_score(gts, [p_wide, p_exact], [0.8, 0.9]) == pytest.approx(5 / 12)


def test_a_prediction_takes_the_unmatched_ground_truth_with_the_highest_iou():
    gts = [_strip(5, 15), _strip(0, 10)]
    # the single prediction overlaps both; it must match gt 2 (IoU 1.0), so both
    # precisions are TP 1 / (1 + 0 + 1) = 0.5 at every threshold
    assert rsna_image_score(gts, [_strip(0, 10)], [0.9]) == pytest.approx(0.5)


def test_equal_ious_are_resolved_in_the_matchers_order():
    gts = [_strip(0, 10), _strip(2, 12)]
    p_between = _strip(1, 11)  # IoU 9/11 with both ground truths
    p_left = _strip(0, 9)      # IoU 9/10 with gt 1, 7/12 = 0.583 with gt 2
    # the matcher tries equal IoUs in np.argsort(...)[::-1] order (matterport's): in practice the later
    # ground truth first, so p_between takes gt 2 and p_left gt 1: TP 2 at every threshold -> 1.
    # Earlier first, p_left would be left with gt 2: TP 2 up to t = 0.55, then TP 1 FP 1 FN 1 -> (4 + 4/3) / 8
    later_first = np.argsort(np.full(2, 9 / 11))[::-1][0] == 1
    expected = 1.0 if later_first else (4 + 4 / 3) / 8
    assert rsna_image_score(gts, [p_between, p_left], [0.9, 0.8]) == pytest.approx(expected)


def test_bad_shapes_are_refused():
    with pytest.raises(EvaluationError, match=r"pred_boxes: expected shape \[N, 4\]"):
        rsna_image_score(GT, [[0, 0, 10]], [0.9])
    with pytest.raises(EvaluationError, match="pred_scores: expected 1 scores"):
        rsna_image_score(GT, GT, [0.9, 0.1])


def test_rsna_score_mean_over_images_leaves_out_empty_ones():
    empty = np.zeros((0, 4))
    ground_truth = {"perfect": GT, "iou06": GT, "fp": empty, "neither": empty, "missed": GT}
    predictions = {
        "perfect": ImagePrediction("perfect", GT, [0.9]),
        "iou06": ([[0, 0, 10, 6]], [0.8]),
        "fp": ([[50, 50, 60, 60]], [0.7]),
        "neither": (empty, []),
    }  # 'missed' has no entry: no prediction
    # (1 + 0.5 + 0 + 0) / 4; 'neither' is left out of the mean
    assert rsna_score(ground_truth, predictions) == pytest.approx(1.5 / 4)


def test_rsna_score_rejects_unknown_ids():
    with pytest.raises(EvaluationError, match="1 predicted id.*stranger"):
        rsna_score({"a": GT}, {"a": (GT, [0.9]), "stranger": (GT, [0.9])})


def test_rsna_score_nan_when_no_image_counts():
    assert np.isnan(rsna_score({"a": np.zeros((0, 4))}, {}))


# --------------------------------------------------------------------------- metrics over records
def _record(gt_boxes, pred_boxes, scores, image_id=0):
    gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes, np.float32).reshape(-1, 4)
    return EvalRecord(
        image_id=image_id,
        gt_boxes=gt_boxes, gt_class_ids=np.ones(len(gt_boxes), np.int32), gt_masks=np.zeros((4, 4, len(gt_boxes)), bool),
        pred_boxes=pred_boxes, pred_class_ids=np.ones(len(pred_boxes), np.int32),
        pred_scores=np.asarray(scores, np.float32), pred_masks=np.zeros((4, 4, len(pred_boxes)), bool),
    )


FAR = [50, 50, 60, 60]


def _sweep_records():
    return [
        _record(GT, [GT[0], FAR], [0.9, 0.6]),   # a hit and a low-confidence false positive
        _record([], [FAR], [0.7]),               # a false positive on a negative image
        _record(GT, GT, [0.95]),                 # a confident hit
    ]


def test_rsna_score_records_with_min_confidence():
    records = _sweep_records()
    assert rsna_score_records(records) == pytest.approx((0.5 + 0 + 1) / 3)
    assert rsna_score_records(records, 0.65) == pytest.approx((1 + 0 + 1) / 3)
    assert rsna_score_records(records, 0.8) == pytest.approx(1.0)   # the negative image drops out
    assert rsna_score_records(records, 0.97) == pytest.approx(0.0)


def test_sweep_picks_the_hand_known_best_threshold():
    best, score, table = sweep_confidence_threshold(_sweep_records(), thresholds=[0.5, 0.65, 0.8, 0.97])
    assert (best, score) == (0.8, pytest.approx(1.0))
    assert [row["rsna_score"] for row in table] == pytest.approx([0.5, 2 / 3, 1.0, 0.0])
    assert [row["boxes"] for row in table] == [4, 3, 2, 0]
    # default grid 0.50, 0.52, ...: the lowest threshold above 0.7 that keeps 0.9 is 0.72
    best, score, table = sweep_confidence_threshold(_sweep_records())
    assert best == pytest.approx(0.72) and score == pytest.approx(1.0) and len(table) == 25


def test_mean_matched_iou_pools_the_true_positives():
    records = [
        _record(GT, [[0, 0, 10, 6]], [0.9]),        # IoU 0.6
        _record(GT, [GT[0], [0, 0, 10, 4]], [0.8, 0.9]),  # 0.4 (too low, but it goes first) then 1.0
    ]
    assert mean_matched_iou(records, 0.5) == pytest.approx(0.8)
    assert np.isnan(mean_matched_iou([_record(GT, [FAR], [0.9])]))


def test_precision_recall_curve_is_pooled_in_confidence_order():
    records = [
        _record(GT, [GT[0], FAR], [0.9, 0.6]),
        _record([GT[0], FAR], [GT[0]], [0.8]),
    ]
    precisions, recalls, scores = precision_recall_curve(records)
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.6], rtol=1e-6)
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3])
    np.testing.assert_allclose(recalls, [1 / 3, 2 / 3, 2 / 3])


# --------------------------------------------------------------------------- with the engine's data path
def _box_masks(boxes, size):
    masks = np.zeros((size, size, len(boxes)), bool)
    for k, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, k] = True
    return masks


SIZE = 64
# image index -> (ground-truth boxes, detections [(box, score)])
SCENES = [
    ([[10, 10, 30, 30]], [([10, 10, 30, 30], 0.95)]),                                   # AP 1
    ([[5, 5, 25, 25], [35, 35, 55, 60]], [([5, 5, 25, 25], 0.9), ([40, 0, 60, 20], 0.8)]),  # AP 0.5
    ([[10, 30, 40, 50]], [([45, 0, 60, 15], 0.85)]),                                   # AP 0
    ([], [([20, 20, 40, 40], 0.7)]),                                                   # negative image
]
HAND_AP = [1.0, 0.5, 0.0]


@pytest.fixture(scope="module")
def engine():
    utils = pytest.importorskip("rsna_detector.mrcnn.utils")
    from rsna_detector.mrcnn.config import Config

    class TinyConfig(Config):
        NAME = "tiny"
        IMAGES_PER_GPU = 3
        NUM_CLASSES = 2
        IMAGE_MIN_DIM = SIZE
        IMAGE_MAX_DIM = SIZE
        DETECTION_MIN_CONFIDENCE = 0.6

    class SceneDataset(utils.Dataset):
        def __init__(self):
            super().__init__()
            self.add_class("scene", 1, "opacity")
            for k, (boxes, _) in enumerate(SCENES):
                self.add_image("scene", image_id=f"p{k}", path=None, boxes=boxes)

        def load_image(self, image_id):
            return np.full((SIZE, SIZE, 3), 10 * (image_id + 1), np.uint8)  # the pixel value names the image

        def load_mask(self, image_id):
            boxes = self.image_info[image_id]["boxes"]
            return _box_masks(boxes, SIZE), np.ones(len(boxes), np.int32)

    class SceneModel:
        """Returns the known detections of each scene; checks it gets full batches."""

        def __init__(self, config):
            self.config = config
            self.calls = 0

        def detect(self, images, verbose=0):
            assert len(images) == self.config.BATCH_SIZE
            self.calls += 1
            results = []
            for image in images:
                detections = SCENES[int(image[0, 0, 0]) // 10 - 1][1]
                boxes = np.array([box for box, _ in detections], np.int32).reshape(-1, 4)
                results.append({"rois": boxes, "class_ids": np.ones(len(boxes), np.int32),
                                "scores": np.array([s for _, s in detections], np.float32),
                                "masks": _box_masks(boxes, SIZE)})
            return results

    dataset = SceneDataset()
    dataset.prepare()
    config = TinyConfig()
    return utils, dataset, SceneModel(config), config


def test_compute_batch_ap_agrees_with_compute_ap_image_by_image(engine):
    utils, dataset, model, config = engine
    ids = [0, 1, 2]
    mean_ap, aps = compute_batch_ap(model, dataset, ids, config)
    for image_id, ap in zip(ids, aps):
        gt_boxes = np.array(SCENES[image_id][0], np.int32)
        detections = SCENES[image_id][1]
        pred_boxes = np.array([b for b, _ in detections], np.int32)
        expected, *_ = utils.compute_ap(gt_boxes, np.ones(len(gt_boxes), np.int32), _box_masks(gt_boxes, SIZE),
                                        pred_boxes, np.ones(len(pred_boxes), np.int32),
                                        np.array([s for _, s in detections], np.float32),
                                        _box_masks(pred_boxes, SIZE), iou_threshold=0.5)
        assert ap == pytest.approx(expected)
    assert aps == pytest.approx(HAND_AP)
    assert mean_ap == pytest.approx(0.5)


def test_collect_detections_keeps_ground_truth_and_pads_batches(engine):
    _, dataset, model, config = engine
    calls_before = model.calls
    records = collect_detections(model, dataset, [3, 0, 1, 2], config)  # 4 images, batches of 3 -> 2 calls
    assert model.calls - calls_before == 2
    assert [r.image_id for r in records] == [3, 0, 1, 2] and records[0].patient_id == "p3"
    assert records[2].gt_boxes.tolist() == SCENES[1][0]
    assert records[2].gt_masks.shape == (SIZE, SIZE, 2)   # full-size masks even with USE_MINI_MASK
    assert records[0].pred_scores.tolist() == pytest.approx([0.7])
    mean_ap, aps = batch_ap(records)
    assert aps[1:] == pytest.approx(HAND_AP)


def test_evaluate_detector_writes_metrics_and_figures(engine, tmp_path):
    _, dataset, model, config = engine
    metrics = evaluate_detector(model, dataset, dataset.image_ids, config, out_dir=tmp_path)
    # per-image APs 1, 0.5, 0 (utils.compute_ap) and 0 for the negative image's false positive
    # (negative_image_ap; matterport's compute_ap would give NaN there)
    assert metrics["per_image_ap"] == pytest.approx(HAND_AP + [0.0])
    assert metrics["map50"] == pytest.approx(1.5 / 4)
    assert metrics["map50_positive"] == pytest.approx(1.5 / 3)  # the negative image left out
    assert metrics["counts"] == {"images": 4, "positive_images": 3, "gt_boxes": 4, "pred_boxes": 5,
                                 "images_with_predictions": 4}
    # scene IoUs of the matched detections: 1.0 and 1.0
    assert metrics["mean_iou"] == pytest.approx(1.0)
    # all detections: scene 0 -> 1, scene 1 -> TP 1 FP 1 FN 1 -> 1/3, scene 2 -> 0, scene 3 -> 0
    assert metrics["rsna_score"] == pytest.approx((1 + 1 / 3) / 4)
    # from 0.72 the negative image's false positive (0.70) is gone: (1 + 1/3 + 0) / 3 = 0.444;
    # from 0.82 scene 1's false positive (0.80) too: (1 + 1/2 + 0) / 3 = 0.5, kept up to 0.90
    assert metrics["best_threshold"] == pytest.approx(0.82)
    assert metrics["best_rsna_score"] == pytest.approx(0.5)
    rows = {round(row["threshold"], 2): row["rsna_score"] for row in metrics["sweep"]}
    assert rows[0.72] == pytest.approx(4 / 9) and rows[0.9] == pytest.approx(0.5) and rows[0.92] == pytest.approx(1 / 3)
    assert metrics["model_threshold"] == pytest.approx(0.6)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["map50"] == pytest.approx(1.5 / 4) and saved["best_threshold"] == pytest.approx(0.82)
    for name in ("precision_recall", "threshold_sweep"):
        path = tmp_path / f"{name}.png"
        assert metrics["figures"][name] == str(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_negative_images_are_the_rsna_layers_decision_not_compute_aps():
    from rsna_detector.mrcnn import utils

    empty = np.zeros((0, 4))
    quiet, noisy = _record(empty, empty, []), _record(empty, [FAR], [0.9])
    padded = _record(np.zeros((2, 4)), [FAR, [0, 0, 0, 0]], [0.9, 0.0])  # all-zero rows are padding
    assert negative_image_ap(empty, empty) == 1.0 and negative_image_ap(empty, [FAR]) == 0.0
    assert negative_image_ap(GT, [FAR]) is None  # an image with ground truth: compute_ap decides
    mean_ap, aps = batch_ap([quiet, noisy, padded, _record(GT, [GT[0]], [0.9])])
    assert aps == [1.0, 0.0, 0.0, 1.0] and mean_ap == pytest.approx(0.5)
    # the engine itself keeps matterport's values for these images
    for record, expected in ((quiet, 0.0), (noisy, np.nan)):
        ap = utils.compute_ap(record.gt_boxes, record.gt_class_ids, record.gt_masks, record.pred_boxes,
                              record.pred_class_ids, record.pred_scores, record.pred_masks)[0]
        np.testing.assert_equal(ap, expected)


# --------------------------------------------------------------------------- the one metrics dictionary
def _filled(boxes, size=20):
    return _box_masks(np.asarray(boxes, np.int32).reshape(-1, 4), size)


def _masked_record(gt_boxes, pred_boxes, scores, pred_masks=None):
    """A record whose masks are filled boxes (the predictions' may be given)."""
    record = _record(gt_boxes, pred_boxes, scores)
    record.gt_masks = _filled(gt_boxes)
    record.pred_masks = _filled(pred_boxes) if pred_masks is None else pred_masks
    return record


def test_detection_metrics_box_or_mask_iou():
    # both detections are the ground-truth box; their masks cover 6 and 4 of its 10 columns:
    # box IoU 1 and 1, mask IoU 60/100 and 40/100
    records = [_masked_record(GT, GT, [0.9], pred_masks=_filled([[0, 0, 10, 6]])),
               _masked_record(GT, GT, [0.9], pred_masks=_filled([[0, 0, 10, 4]]))]
    by_box, by_mask = detection_metrics(records, "box"), detection_metrics(records, "mask")
    assert by_box["iou"] == "box" and by_mask["iou"] == "mask"
    assert by_box["per_image_ap"] == [1.0, 1.0] and by_box["map50"] == 1.0 and by_box["mean_iou"] == 1.0
    assert by_mask["per_image_ap"] == [1.0, 0.0] and by_mask["map50"] == 0.5
    assert by_mask["mean_iou"] == pytest.approx(0.6)  # only the 0.6 detection reaches 0.5
    # the competition scores boxes whatever iou says
    assert by_box["rsna_score"] == by_mask["rsna_score"] == 1.0
    assert by_box["sweep"] == by_mask["sweep"]


def test_detection_metrics_ap_is_inclusive_the_competition_strict():
    # IoU exactly 0.5: a hit for AP@0.5 and the mean IoU (>=), not for the competition at t = 0.5 (>)
    metrics = detection_metrics([_masked_record(GT, [[0, 0, 10, 5]], [0.9])], "box")
    assert metrics["map50"] == 1.0 and metrics["mean_iou"] == pytest.approx(0.5)
    assert metrics["rsna_score"] == pytest.approx(2 / 8)  # hits at 0.40 and 0.45 only
    assert detection_metrics([_masked_record(GT, [[0, 0, 10, 5]], [0.9])], "mask")["map50"] == 1.0


def test_detection_metrics_of_negative_images():
    empty = np.zeros((0, 4))
    records = [_masked_record(empty, empty, []),        # nothing to find, nothing found
               _masked_record(empty, [FAR], [0.7]),     # a false positive on a negative image
               _masked_record(GT, GT, [0.9])]
    metrics = detection_metrics(records, "box", model_threshold=0.6)
    assert metrics["per_image_ap"] == [1.0, 0.0, 1.0] and metrics["map50"] == pytest.approx(2 / 3)
    assert metrics["map50_positive"] == 1.0                 # negatives left out
    assert metrics["rsna_score"] == pytest.approx(0.5)      # (0 + 1) / 2: the quiet negative left out
    assert (metrics["best_threshold"], metrics["best_rsna_score"]) == (pytest.approx(0.72), 1.0)
    assert metrics["counts"] == {"images": 3, "positive_images": 1, "gt_boxes": 1, "pred_boxes": 2,
                                 "images_with_predictions": 2}
    assert metrics["model_threshold"] == 0.6 and metrics["mean_iou"] == 1.0
    assert np.isnan(detection_metrics(records, "box")["model_threshold"])
    assert detection_metrics(records, "mask")["per_image_ap"] == [1.0, 0.0, 1.0]


def test_detection_metrics_refuses_an_unknown_iou_and_mask_iou_without_masks():
    with pytest.raises(EvaluationError, match="iou: expected 'box' or 'mask', got 'pixel'"):
        detection_metrics([_masked_record(GT, GT, [0.9])], "pixel")
    box_only = records_from_predictions({"a": GT}, [ImagePrediction("a", GT, [0.9])])
    with pytest.raises(EvaluationError, match=r"image a: iou='mask' needs pred_masks \[H, W, 1\].*iou='box'"):
        detection_metrics(box_only, "mask")


def test_records_from_predictions():
    records = records_from_predictions({"a": GT, "b": np.zeros((0, 4))},
                                       [ImagePrediction("b", [FAR], [0.7]), ImagePrediction("a", GT, [0.9])])
    assert [(r.image_id, r.patient_id) for r in records] == [(0, "b"), (1, "a")]
    assert records[0].gt_boxes.shape == (0, 4) and records[1].gt_boxes.tolist() == GT
    assert records[0].pred_scores.tolist() == pytest.approx([0.7]) and records[1].gt_class_ids.tolist() == [1]
    assert detection_metrics(records, "box")["per_image_ap"] == [0.0, 1.0]
    with pytest.raises(EvaluationError, match="'c': that id has no ground truth"):
        records_from_predictions({"a": GT}, [ImagePrediction("c", GT, [0.9])])


def test_write_detection_report_writes_undefined_values_as_null(tmp_path):
    records = [_masked_record(GT, [FAR], [0.9])]   # nothing matched: mean_iou undefined
    metrics = write_detection_report(records, detection_metrics(records, "box"), tmp_path / "report")
    assert np.isnan(metrics["mean_iou"]) and metrics["metrics_json"] == str(tmp_path / "report" / "metrics.json")
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["mean_iou"] is None and saved["map50"] == 0.0 and saved["iou"] == "box"
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "metrics.json", "precision_recall.png", "threshold_sweep.png"]


def test_evaluate_detector_by_mask_iou(engine):
    _, dataset, model, config = engine
    metrics = evaluate_detector(model, dataset, dataset.image_ids, config, iou="mask")
    # the scenes' masks are filled boxes: mask IoU gives the box IoU's values
    assert metrics["iou"] == "mask" and metrics["per_image_ap"] == pytest.approx(HAND_AP + [0.0])
    assert metrics["mean_iou"] == pytest.approx(1.0)
