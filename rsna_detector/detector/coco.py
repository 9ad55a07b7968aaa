"""COCO average precision of detections, computed by pycocotools' ``COCOeval`` (the reference).

:func:`coco_ap` turns evaluation records (``evaluate.EvalRecord``: ground truth and detections
of each image) into pycocotools' ground-truth and result objects and runs ``COCOeval`` with its
default box settings: AP@[.5:.95] is the mean over the 10 IoU thresholds 0.50, 0.55, ..., 0.95
of the area under a 101-point interpolated precision-recall curve (recall 0, 0.01, ..., 1), one
curve for the whole data set per class (detections of every image pooled and ranked by score),
at most 100 detections per image, every box area. A detection matches a ground truth when their
IoU is at least the threshold.

How it differs from the library's ``map50`` (``evaluate.batch_ap``, matterport's
``utils.compute_ap``): that is the mean over *images* of each image's AP at one IoU (0.5), with
all-point (VOC) interpolation; an image without ground truth scores 1 without detections and 0
with some. COCO pools the detections of all images into one ranking, so a detection on an image
without ground truth is a false positive in that ranking, and it samples the curve at 101 recall
points. ``tests/detector/test_coco.py`` works one example by hand both ways.

Boxes are engine boxes ``(y1, x1, y2, x2)`` in pixels (``y2``/``x2`` exclusive), converted to
COCO's ``[x, y, width, height]``; IoU does not depend on the frame, as long as ground truth and
detections share it.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

__all__ = ["COCO_METRICS", "coco_ap", "coco_datasets"]

#: The keys :func:`coco_ap` returns, and the ``COCOeval.stats`` entry of each.
COCO_METRICS = {"coco_ap": 0, "coco_ap50": 1, "coco_ap75": 2}


def _xywh(boxes):
    """``(y1, x1, y2, x2)`` [N, 4] -> COCO ``[x, y, width, height]`` float lists."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return [[x1, y1, x2 - x1, y2 - y1] for y1, x1, y2, x2 in boxes.tolist()]


def coco_datasets(records):
    """pycocotools' inputs for ``records``: the ground-truth dataset dict and the result list.

    Parameters
    ----------
    records : list of EvalRecord
        ``gt_boxes`` [G, (y1, x1, y2, x2)] (all-zero rows are padding and left out),
        ``gt_class_ids`` [G], ``pred_boxes`` [P, 4], ``pred_class_ids`` [P], ``pred_scores`` [P].

    Returns
    -------
    ground_truth : dict
        ``images`` (ids 1..N in record order), ``annotations`` (ids from 1: pycocotools takes
        0 for "unmatched"), ``categories`` (the ground truth's class ids).
    results : list of dict
        ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``, ``score`` per detection.
    """
    images, annotations, results, classes = [], [], [], set()
    for image_id, record in enumerate(records, start=1):
        images.append({"id": image_id})
        gt_boxes = np.asarray(record.gt_boxes, np.float64).reshape(-1, 4)
        real = np.any(gt_boxes != 0, axis=1)
        gt_classes = np.asarray(record.gt_class_ids).reshape(-1)[real]
        for box, class_id in zip(_xywh(gt_boxes[real]), gt_classes.tolist(), strict=True):
            classes.add(int(class_id))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(class_id),
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        pred_classes = np.asarray(record.pred_class_ids).reshape(-1).tolist()
        for box, class_id, score in zip(_xywh(record.pred_boxes), pred_classes,
                                        np.asarray(record.pred_scores, np.float64).reshape(-1).tolist(), strict=True):
            results.append({"image_id": image_id, "category_id": int(class_id), "bbox": box, "score": score})
    categories = [{"id": class_id, "name": str(class_id)} for class_id in sorted(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def coco_ap(records):
    """COCO AP@[.5:.95], AP50 and AP75 of ``records``, by pycocotools' ``COCOeval`` ('bbox').

    Parameters
    ----------
    records : list of EvalRecord
        See :func:`coco_datasets`.

    Returns
    -------
    dict
        ``coco_ap``, ``coco_ap50``, ``coco_ap75`` (``COCOeval.stats[0:3]``, area 'all', 100
        detections per image) as floats; NaN when no record has ground truth (COCOeval's -1).
        Without any detection they are 0 (what COCOeval gives; its ``loadRes`` cannot take an
        empty list, so the result object is then built empty by hand). pycocotools' console
        output is swallowed.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground_truth, results = coco_datasets(records)
    if not ground_truth["annotations"]:
        return {key: float("nan") for key in COCO_METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:
            dt = COCO()
            dt.dataset = {"images": ground_truth["images"], "annotations": [],
                          "categories": ground_truth["categories"]}
            dt.createIndex()
        evaluation = COCOeval(gt, dt, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {key: float(stats[index]) if stats[index] >= 0 else float("nan") for key, index in COCO_METRICS.items()}
