"""COCO AP (detector/coco.py): pycocotools' own file-based path gives the same figures, a tiny case by hand,
and why matterport's compute_ap AP50 and COCO's AP50 differ, worked by hand on one example."""
import json

import numpy as np
import pytest

from rsna_detector.detector.coco import coco_ap
from rsna_detector.detector.evaluate import EvalRecord, detection_metrics
from rsna_detector.mrcnn import utils
from tests import matterport_oracle


def _record(gt_boxes, pred_boxes, pred_scores, image_id=0, pred_class_ids=None):
    gt = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    pred = np.asarray(pred_boxes, np.float32).reshape(-1, 4)
    classes = np.ones(len(pred), np.int32) if pred_class_ids is None else np.asarray(pred_class_ids, np.int32)
    return EvalRecord(image_id=image_id, gt_boxes=gt, gt_class_ids=np.ones(len(gt), np.int32),
                      gt_masks=np.zeros((0, 0, 0), bool), pred_boxes=pred, pred_class_ids=classes,
                      pred_scores=np.asarray(pred_scores, np.float32), pred_masks=np.zeros((0, 0, 0), bool))


def _random_records(seed=0, images=12):
    """Images with 0-3 ground-truth boxes and 0-4 detections near or far from them, random scores."""
    rng = np.random.default_rng(seed)
    records = []
    for image_id in range(images):
        gt = []
        for _ in range(int(rng.integers(0, 4))):
            y, x = rng.uniform(0, 180, 2)
            h, w = rng.uniform(20, 70, 2)
            gt.append([y, x, y + h, x + w])
        pred = [np.asarray(box) + rng.normal(0, 6, 4) for box in gt if rng.random() < 0.8]
        pred += [[y, x, y + 40, x + 30] for y, x in rng.uniform(0, 200, (int(rng.integers(0, 3)), 2))]
        records.append(_record(gt, pred, rng.uniform(0.3, 1.0, len(pred)), image_id))
    return records


def test_equal_to_pycocotools_through_its_own_files(tmp_path, capsys):
    """The same predictions written as COCO JSON files and evaluated the way pycocotools' documentation does."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    records = _random_records()
    images, annotations, results = [], [], []
    for number, record in enumerate(records, start=1):
        images.append({"id": number, "width": 256, "height": 256})
        for y1, x1, y2, x2 in record.gt_boxes.tolist():
            annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": 1, "iscrowd": 0,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
        for (y1, x1, y2, x2), score in zip(record.pred_boxes.tolist(), record.pred_scores.tolist(), strict=True):
            results.append({"image_id": number, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score})
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                  "categories": [{"id": 1, "name": "opacity"}]}))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    gt = COCO(str(tmp_path / "gt.json"))
    evaluation = COCOeval(gt, gt.loadRes(str(tmp_path / "dt.json")), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    capsys.readouterr()

    ours = coco_ap(records)
    assert capsys.readouterr().out == ""  # pycocotools' console output is swallowed
    assert ours == pytest.approx({"coco_ap": evaluation.stats[0], "coco_ap50": evaluation.stats[1],
                                  "coco_ap75": evaluation.stats[2]}, abs=1e-12)
    assert 0 < ours["coco_ap"] < ours["coco_ap50"] < 1  # a case where the figures mean something


def test_a_tiny_case_by_hand():
    """Ground truth (0, 0, 10, 10), area 100, on image A; image B has none.

    Image A's detection (0, 0, 9, 8), score 0.9: intersection 72, union 100, IoU 0.72: a match at the IoU
    thresholds 0.50, 0.55, 0.60, 0.65, 0.70 (5 of 10), none at 0.75 and above. Image B's detection,
    score 0.95, is a false positive that COCO ranks first (one ranking for the data set): precision 1/2 at
    recall 1, so every one of the 101 recall points has precision 1/2 where A's detection matches.
    AP@[.5:.95] = 5/10 x 1/2 = 0.25; AP50 = 1/2; AP75 = 0.

    Alone, image A gives 5/10 x 1 = 0.5, 1 and 0. The library's per-image map50 of both images is
    (1 + 0) / 2 = 0.5 (image B: a detection without ground truth scores 0).
    """
    a = _record([[0, 0, 10, 10]], [[0, 0, 9, 8]], [0.9], 0)
    b = _record([], [[50, 50, 60, 60]], [0.95], 1)
    assert coco_ap([a, b]) == pytest.approx({"coco_ap": 0.25, "coco_ap50": 0.5, "coco_ap75": 0.0})
    assert coco_ap([a]) == pytest.approx({"coco_ap": 0.5, "coco_ap50": 1.0, "coco_ap75": 0.0})
    metrics = detection_metrics([a, b], "box")
    assert metrics["map50"] == pytest.approx(0.5) and metrics["coco_ap"] == pytest.approx(0.25)


def test_no_detection_scores_zero_and_no_ground_truth_is_undefined():
    gt_only = _record([[0, 0, 10, 10]], [], [])
    assert coco_ap([gt_only]) == {"coco_ap": 0.0, "coco_ap50": 0.0, "coco_ap75": 0.0}
    detections_only = _record([], [[0, 0, 10, 10]], [0.9])
    assert all(np.isnan(v) for v in coco_ap([detections_only]).values())


def test_compute_ap50_and_coco_ap50_differ_by_their_interpolation():
    """One image, 3 ground-truth boxes; detections by descending score: a hit, a miss, a hit (the third box
    is never found). After each detection: recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3; the precision
    envelope (the best precision at that recall or beyond) 1, 2/3, 2/3.

    matterport's ``compute_ap`` (VOC all-point interpolation at IoU 0.5): the area under the envelope,
    recall step by recall step: (1/3 - 0) x 1 + (2/3 - 1/3) x 2/3 + (1 - 2/3) x 0 = 1/3 + 2/9 = 5/9 = 0.5556.

    COCO's AP50 (101 recall points r = 0, 0.01, ..., 1, each taking the envelope at the first detection
    whose recall reaches r): r = 0 .. 0.33 (34 points) -> 1; r = 0.34 .. 0.66 (33 points) -> 2/3;
    r = 0.67 .. 1 (34 points) -> 0 (never reached). (34 x 1 + 33 x 2/3) / 101 = 56/101 = 0.5545.

    The 101-point grid misses the exact recall 1/3 where the precision drops: COCO's AP50 is lower here.
    """
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    pred = np.array([[0, 0, 10, 10], [60, 60, 70, 70], [20, 20, 30, 30]])
    scores = np.array([0.9, 0.8, 0.7])
    masks = np.zeros((80, 80, 3), bool)
    for k, (y1, x1, y2, x2) in enumerate(gt):
        masks[y1:y2, x1:x2, k] = True
    pred_masks = np.zeros((80, 80, 3), bool)
    for k, (y1, x1, y2, x2) in enumerate(pred):
        pred_masks[y1:y2, x1:x2, k] = True
    ones = np.ones(3, np.int32)

    ours = utils.compute_ap(gt, ones, masks, pred, ones, scores, pred_masks, iou_threshold=0.5)[0]
    assert ours == pytest.approx(5 / 9)
    if matterport_oracle.matterport_package_dir() is not None:  # matterport's own compute_ap agrees
        theirs = matterport_oracle.utils().compute_ap(gt, ones, masks, pred, ones, scores, pred_masks, 0.5)[0]
        assert theirs == pytest.approx(5 / 9)
    coco = coco_ap([_record(gt, pred, scores)])
    assert coco["coco_ap50"] == pytest.approx(56 / 101)
    assert coco["coco_ap"] == pytest.approx(56 / 101)  # exact boxes: every IoU threshold sees the same curve
