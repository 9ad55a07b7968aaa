"""Metrics over evaluation records: mAP@0.5, mean matched IoU, precision-recall, the one metrics dict.

Both detectors (Mask R-CNN: ``evaluate.evaluate_detector``; the RetinaNet baseline:
``retinanet.evaluate_retinanet``) report the one dictionary of :func:`detection_metrics`,
computed from ``eval_records.EvalRecord`` lists. Every pairing of detections with ground
truth goes through the engine's one matcher, ``mrcnn.eval.matching.greedy_match`` (the one behind
``utils.compute_matches``), by way of ``competition.match_columns``.

Box or mask IoU
---------------
``iou='box'`` compares a detection's box with a ground-truth box
(``utils.compute_overlaps``), ``iou='mask'`` its mask with the ground-truth
mask (``utils.compute_overlaps_masks``, matterport's ``compute_ap``). It decides
``map50``, ``map50_positive``, ``per_image_ap``, ``mean_iou`` and the
precision-recall curve. The competition's score and the threshold sweep always
use box IoU: the competition scores boxes. Both detectors report box IoU, so
their ``map50`` compare: it is the AP of the boxes a submission carries. RSNA
masks are filled boxes, so for ground truth the two agree up to pixel
rounding; Mask R-CNN's predicted masks (the mask head's 28 x 28 output pasted
into the box and thresholded) need not fill their boxes, so their mask IoU can
be lower. ``evaluate.compute_batch_ap`` (the RSNA notebooks' number) keeps mask IoU.
"""
from __future__ import annotations

import numpy as np

from .competition import (
    DEFAULT_SWEEP,
    EvaluationError,
    box_overlaps,
    match_columns,
    rsna_score_records,
    sweep_confidence_threshold,
)

__all__ = [
    "IOU_KINDS",
    "negative_image_ap",
    "batch_ap",
    "mean_matched_iou",
    "precision_recall_curve",
    "detection_metrics",
]

#: What ``iou=`` may say: compare boxes or masks.
IOU_KINDS = ("box", "mask")


def _mean_of_finite(values):
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")



def negative_image_ap(gt_boxes, pred_boxes):
    """The RSNA layer's AP of an image *without* ground truth; None for an image with some.

    An image without ground truth (all-zero rows are padding) scores 1.0 when
    nothing is detected on it (nothing to find, nothing wrongly found) and 0.0
    when something is. This is the library's decision for negative images, the
    convention of RSNA notebooks' mAP; matterport's ``utils.compute_ap`` gives
    0.0 and NaN there.

    Parameters
    ----------
    gt_boxes : array, [G, (y1, x1, y2, x2)]
    pred_boxes : array, [P, (y1, x1, y2, x2)]

    Returns
    -------
    float or None
    """
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    if np.any(gt_boxes != 0):
        return None
    return 0.0 if np.any(np.asarray(pred_boxes).reshape(-1, 4) != 0) else 1.0


def _check_iou(iou):
    if iou not in IOU_KINDS:
        raise EvaluationError(f"iou: expected 'box' or 'mask', got {iou!r}")


def _masks(record):
    """The record's (pred_masks, gt_masks), checked to be [H, W, count of boxes] each."""
    masks = []
    for name, count in (("pred_masks", len(record.pred_boxes)), ("gt_masks", len(record.gt_boxes))):
        array = np.asarray(getattr(record, name))
        if array.ndim != 3 or array.shape[-1] != count:
            raise EvaluationError(f"image {record.patient_id or record.image_id}: iou='mask' needs {name} "
                                  f"[H, W, {count}], got shape {array.shape} (use iou='box' for a detector "
                                  "without masks)")
        masks.append(array)
    return masks


def _image_ap(record, iou_threshold, iou):
    """One image's AP: :func:`negative_image_ap` without ground truth, else matterport's AP by ``iou``."""
    from ..mrcnn import utils

    ap = negative_image_ap(record.gt_boxes, record.pred_boxes)
    if ap is not None:
        return float(ap)
    r = record
    if iou == "mask":
        pred_masks, gt_masks = _masks(r)
        return float(utils.compute_ap(r.gt_boxes, r.gt_class_ids, gt_masks, r.pred_boxes, r.pred_class_ids,
                                      r.pred_scores, pred_masks, iou_threshold=iou_threshold)[0])
    return float(utils.compute_ap_boxes(r.gt_boxes, r.gt_class_ids, r.pred_boxes, r.pred_class_ids, r.pred_scores,
                                        iou_threshold=iou_threshold)[0])


def batch_ap(records, iou_threshold=0.5, *, iou="mask"):
    """Per-image average precision and its mean.

    Parameters
    ----------
    records : list of EvalRecord
    iou_threshold : float
    iou : {'mask', 'box'}
        'mask': ``utils.compute_ap`` (mask IoU, as ``evaluate.compute_batch_ap`` and
        the RSNA notebooks); 'box': ``utils.compute_ap_boxes`` (box IoU, what
        :func:`detection_metrics` reports for both detectors).

    Returns
    -------
    (float, list of float)
        The mean over the images, and every image's AP in record order: the AP
        by ``iou`` for an image with ground truth, and for one without,
        :func:`negative_image_ap`: 1.0 without detections, 0.0 with some
        (where matterport's ``compute_ap`` gives 0.0 and NaN).
        An image whose AP is not finite is left out of the mean (NaN when none is finite).
    """
    _check_iou(iou)
    aps = [_image_ap(r, iou_threshold, iou) for r in records]
    return _mean_of_finite(aps), aps



def _ordered_overlaps(record, iou):
    """IoU [P, G] of the record's detections in descending confidence (ties in record order), and that order."""
    from ..mrcnn.utils import compute_overlaps_masks

    order = np.argsort(-np.asarray(record.pred_scores), kind="stable")
    if iou == "box":
        return box_overlaps(np.asarray(record.pred_boxes, np.float64)[order],
                             np.asarray(record.gt_boxes, np.float64)), order
    pred_masks, gt_masks = _masks(record)
    ious = compute_overlaps_masks(pred_masks[..., order], gt_masks)
    return np.nan_to_num(np.asarray(ious, np.float64), nan=0.0), order


def _matched_columns(record, iou_threshold, iou):
    """IoUs [P, G], the ground truth matched to each detection (-1 none) and the detections' order.

    Matching: descending confidence, each detection to the unmatched ground
    truth of its class with the highest IoU ``>= iou_threshold``.
    """
    _check_iou(iou)
    ious, order = _ordered_overlaps(record, iou)
    columns = match_columns(ious, iou_threshold, strict=False, gt_class_ids=np.asarray(record.gt_class_ids),
                       pred_class_ids=np.asarray(record.pred_class_ids)[order])
    return ious, columns, order


def mean_matched_iou(records, iou_threshold=0.5, *, iou="box"):
    """Mean IoU of the matched (true-positive) detections, pooled over images.

    Detections are matched per image in descending confidence, each to the
    unmatched ground truth of its class with the highest IoU ``>= iou_threshold``;
    ``iou`` ('box' or 'mask') says which IoU.

    Returns
    -------
    float
        NaN when nothing is matched.
    """
    matched = []
    for record in records:
        ious, columns, _ = _matched_columns(record, iou_threshold, iou)
        matched += [ious[row, column] for row, column in enumerate(columns) if column >= 0]
    return float(np.mean(matched)) if matched else float("nan")


def precision_recall_curve(records, iou_threshold=0.5, *, iou="box"):
    """Precision and recall pooled over images, detection by detection in descending confidence.

    A detection is a true positive when it matches a ground truth of its image
    (per-image greedy matching, ``iou`` IoU ``>= iou_threshold``).

    Returns
    -------
    precisions, recalls, scores : float arrays [D]
        After each of the D pooled detections (sorted by descending score);
        recall is over all ground-truth boxes (zeros when there are none).
    """
    scores, hits, total_gt = [], [], 0
    for record in records:
        _, columns, order = _matched_columns(record, iou_threshold, iou)
        hits.append(columns >= 0)
        scores.append(np.asarray(record.pred_scores)[order])
        total_gt += len(record.gt_boxes)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    hits = np.concatenate(hits) if hits else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(hits[order])
    precisions = true_positives / np.arange(1, len(order) + 1)
    recalls = true_positives / total_gt if total_gt else np.zeros(len(order))
    return precisions.astype(np.float64), recalls.astype(np.float64), scores[order].astype(np.float64)



def _counts(records):
    return {
        "images": len(records),
        "positive_images": sum(1 for r in records if len(r.gt_boxes)),
        "gt_boxes": int(sum(len(r.gt_boxes) for r in records)),
        "pred_boxes": int(sum(len(r.pred_boxes) for r in records)),
        "images_with_predictions": sum(1 for r in records if len(r.pred_boxes)),
    }


def detection_metrics(records, iou, *, model_threshold=None, thresholds=DEFAULT_SWEEP):
    """The metrics every detector reports, from its records.

    Parameters
    ----------
    records : list of EvalRecord
        One per evaluated image (:func:`collect_detections`, :func:`records_from_predictions`).
    iou : {'box', 'mask'}
        How a detection is compared with a ground truth for ``map50``,
        ``map50_positive``, ``per_image_ap`` (``utils.compute_ap_boxes`` or
        ``utils.compute_ap``) and ``mean_iou``; the competition's score, the
        sweep and COCO AP use box IoU whatever this says. Both detectors pass 'box' (see
        the module docstring); 'mask' needs the records' masks.
    model_threshold : float, 'best' or None
        The minimum confidence the detector applies (the submission's threshold):
        ``map50``, ``map50_positive``, ``mean_iou``, ``rsna_score``, ``counts`` and
        ``per_image_ap`` are those of the detections scoring at least this; 'best': the
        sweep's best threshold; None: every detection of the records. Reported as
        ``model_threshold`` (NaN when None).
    thresholds : sequence of float
        The sweep's candidates (``competition.DEFAULT_SWEEP``).

    Returns
    -------
    dict
        ``iou``; ``map50`` (mean per-image AP at IoU 0.5 over all images;
        :func:`negative_image_ap` decides the images without ground truth: one
        without detections scores 1, one with detections 0);
        ``map50_positive`` (the same mean over images with ground truth only);
        ``mean_iou`` (matched detections, IoU >= 0.5); ``model_threshold``;
        ``rsna_score`` (at ``model_threshold``); ``best_threshold`` and
        ``best_rsna_score`` (:func:`sweep_confidence_threshold` over every detection);
        ``coco_ap``, ``coco_ap50``, ``coco_ap75`` (``coco.coco_ap``: pycocotools over every
        detection, which it ranks); ``counts``; ``per_image_ap``; ``sweep`` (table).
        Undefined values (no image counts) are NaN.
    """
    from .coco import coco_ap

    _check_iou(iou)
    best_threshold, best_score, table = sweep_confidence_threshold(records, thresholds)
    if isinstance(model_threshold, str):
        if model_threshold != "best":
            raise EvaluationError(f"model_threshold: expected a number, 'best' or None, got {model_threshold!r}")
        model_threshold = best_threshold if np.isfinite(best_threshold) else None
    kept = [r.above(model_threshold) for r in records]
    map50, per_image_ap = batch_ap(kept, 0.5, iou=iou)
    return {
        "iou": iou,
        "map50": map50,
        "map50_positive": _mean_of_finite([ap for r, ap in zip(kept, per_image_ap, strict=True) if len(r.gt_boxes)]),
        "mean_iou": mean_matched_iou(kept, 0.5, iou=iou),
        "model_threshold": float("nan") if model_threshold is None else float(model_threshold),
        "rsna_score": rsna_score_records(kept),
        "best_threshold": best_threshold,
        "best_rsna_score": best_score,
        **coco_ap(records),
        "counts": _counts(kept),
        "per_image_ap": per_image_ap,
        "sweep": table,
    }

