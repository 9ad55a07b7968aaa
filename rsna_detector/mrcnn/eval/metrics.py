"""Evaluation of one image's detections: matterport's ``compute_matches``, ``compute_ap``, ``compute_recall``.

Predictions are matched to ground truth by the library's one matcher
(:func:`.matching.greedy_match`); :func:`compute_ap_boxes` matches by box IoU
instead of mask IoU (not in matterport). Boxes are ``(y1, x1, y2, x2)`` pixels,
``y2``/``x2`` exclusive; masks ``[H, W, N]``. Every matterport function returns
what matterport v2.1's returns, edge cases included.
"""
from __future__ import annotations

import numpy as np

from ...errors import RsnaDetectorError
from ..ops.boxes import box_array, compute_overlaps, compute_overlaps_masks, trim_zeros
from .matching import greedy_match

__all__ = [
    "NoGroundTruthError",
    "compute_matches",
    "compute_ap",
    "compute_ap_boxes",
    "compute_ap_range",
    "compute_recall",
]


class NoGroundTruthError(RsnaDetectorError, ValueError, ZeroDivisionError):
    """A recall was asked of an image without ground truth (matterport raised as well)."""


def _first_rows(boxes):
    """How many rows of ``boxes`` are not all-zero padding (matterport keeps that many leading entries)."""
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        return 0
    return len(trim_zeros(boxes.reshape(len(boxes), -1)))


def _descending(scores):
    """matterport's descending order: ``argsort(scores)[::-1]`` (ties in that order)."""
    return np.argsort(np.asarray(scores))[::-1]


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Match predictions to ground truth by *mask* IoU (:func:`.matching.greedy_match`, the library's one matcher).

    Parameters
    ----------
    gt_boxes : array, [G, (y1, x1, y2, x2)]
        All-zero rows are padding: with ``g`` non-zero rows, the first ``g``
        ground truths (boxes, class ids, masks) are used (padding goes last).
    gt_class_ids : array, int, [G]
    gt_masks : ndarray, [H, W, G]
    pred_boxes : array, [P, (y1, x1, y2, x2)]
        The same for the predictions (the first ``p`` scores, class ids, masks).
    pred_class_ids : array, int, [P]
    pred_scores : array, float, [P]
    pred_masks : ndarray, [H, W, P]
    iou_threshold : float
        A match needs IoU >= this.
    score_threshold : float
        Overlaps below this are ignored (matterport's name; it is an IoU floor).

    Returns
    -------
    gt_match : ndarray, float64, [g]
        Index (in score order) of the prediction matched to each ground truth, -1 if none.
    pred_match : ndarray, float64, [p]
        Index of the ground truth matched to each prediction *sorted by
        descending score* (``argsort(scores)[::-1]``), -1 if none.
    overlaps : ndarray, [p, g]
        Mask IoUs (:func:`compute_overlaps_masks`), predictions in that order.
    """
    n_gt, n_pred = _first_rows(gt_boxes), _first_rows(pred_boxes)
    gt_masks = np.asarray(gt_masks)[..., :n_gt]
    order = _descending(np.asarray(pred_scores)[:n_pred])
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    gt_match, pred_match = greedy_match(overlaps, iou_threshold, iou_floor=score_threshold,
                                        gt_class_ids=np.asarray(gt_class_ids), pred_class_ids=pred_class_ids)
    return gt_match, pred_match, overlaps


def _average_precision(gt_match, pred_match):
    """VOC-style AP (area under the monotone precision/recall curve) of one image.

    Returns ``(ap, precisions, recalls)`` with the padded curves, computed as
    matterport does (recalls in float32). Without ground truth the recalls are
    0/0: NaN with predictions (so the AP is NaN), and the AP is 0.0 without.
    """
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recalls = hits.astype(np.float32) / len(gt_match)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # precision at each recall = best precision at that recall or beyond
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    steps = np.flatnonzero(recalls[:-1] != recalls[1:]) + 1
    ap = np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps])
    return ap, precisions, recalls


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision of one image at an IoU threshold, matching by mask IoU.

    Parameters are those of :func:`compute_matches`.

    Returns
    -------
    mAP : numpy float64
        Area under the monotone precision/recall curve. Edge cases, as in
        matterport: ground truth but no prediction -> 0.0; neither ground truth
        nor prediction -> 0.0; predictions but no ground truth -> NaN. (How
        images without ground truth count is the caller's decision: see
        ``rsna_detector.detector.scoring.batch_ap``.)
    precisions : ndarray, [p + 2]
        Monotone precision after each prediction, padded with 0 at both ends.
    recalls : ndarray, [p + 2]
        Recall after each prediction, padded with 0 and 1.
    overlaps : ndarray, [p, g]
        Mask IoUs, predictions in descending score order.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    ap, precisions, recalls = _average_precision(gt_match, pred_match)
    return ap, precisions, recalls, overlaps


def compute_ap_boxes(gt_boxes, gt_class_ids, pred_boxes, pred_class_ids, pred_scores,
                     iou_threshold=0.5):
    """Like :func:`compute_ap` but matching by *box* IoU (no masks needed; not in matterport).

    For filled-rectangle instances (RSNA boxes) box IoU equals mask IoU, and the
    result equals :func:`compute_ap`'s, edge cases included.

    Parameters
    ----------
    gt_boxes : array, [G, (y1, x1, y2, x2)]
    gt_class_ids : array, int, [G]
    pred_boxes : array, [P, (y1, x1, y2, x2)]
    pred_class_ids : array, int, [P]
    pred_scores : array, float, [P]
    iou_threshold : float
        A match needs IoU >= this.

    Returns
    -------
    (mAP, precisions, recalls, overlaps)
        As :func:`compute_ap`; ``overlaps`` are box IoUs [p, g] (float64),
        predictions in descending score order.
    """
    n_gt, n_pred = _first_rows(gt_boxes), _first_rows(pred_boxes)
    gt_boxes = box_array(gt_boxes)[:n_gt]
    order = _descending(np.asarray(pred_scores)[:n_pred])
    overlaps = compute_overlaps(box_array(pred_boxes)[order], gt_boxes)
    gt_match, pred_match = greedy_match(overlaps, iou_threshold, gt_class_ids=np.asarray(gt_class_ids),
                                        pred_class_ids=np.asarray(pred_class_ids)[order])
    ap, precisions, recalls = _average_precision(gt_match, pred_match)
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over IoU thresholds (default 0.50, 0.55, ..., 0.95).

    Returns
    -------
    numpy float64
        The mean AP (NaN when an AP is NaN); with ``verbose`` each threshold's
        AP is printed, as matterport does.

    Extension: ``iou_thresholds`` may be a numpy array (matterport's
    ``iou_thresholds or ...`` refused one).
    """
    if iou_thresholds is None or len(iou_thresholds) == 0:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for threshold in iou_thresholds:
        ap = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                        pred_mask, iou_threshold=threshold)[0]
        if verbose:
            print(f"AP @{threshold:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean_ap = np.array(aps).mean()
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Fraction of ground-truth boxes that some prediction overlaps with IoU >= ``iou``.

    Parameters
    ----------
    pred_boxes : array, [P, (y1, x1, y2, x2)]
    gt_boxes : array, [G, (y1, x1, y2, x2)], G >= 1
    iou : float

    Returns
    -------
    recall : float
        Distinct ground truths that are the best match of a prediction with IoU
        >= ``iou``, over ``G``.
    positive_ids : ndarray, int, [K]
        Indices of the predictions whose best IoU is >= ``iou``.

    Raises
    ------
    NoGroundTruthError
        (a ``ValueError`` and a ``ZeroDivisionError``) when ``G == 0``: a recall
        is not defined, and matterport raised too.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.shape[1] == 0:
        raise NoGroundTruthError("compute_recall: no ground-truth boxes, so recall is undefined")
    best_iou = np.max(overlaps, axis=1)
    best_gt = np.argmax(overlaps, axis=1)
    positive_ids = np.where(best_iou >= iou)[0]
    return len(set(best_gt[positive_ids].tolist())) / overlaps.shape[1], positive_ids
