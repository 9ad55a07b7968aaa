"""The library's one greedy matcher of predictions to ground truth (numpy).

Every metric that pairs detections with ground truth goes through
:func:`greedy_match`: the engine's ``utils.compute_matches`` / ``compute_ap`` /
``compute_ap_boxes`` (matterport's semantics, held by the differential tests)
and ``rsna_detector.detector.scoring`` (the competition's score, the mean matched IoU,
the precision-recall curve). Callers differ only in what they pass: the IoU
matrix (box or mask IoU), the order of its rows (the confidence order each
metric defines), the threshold, whether a hit needs IoU ``>=`` or ``>`` the
threshold, and whether class ids must agree.
"""
from __future__ import annotations

import numpy as np

__all__ = ["greedy_match"]


def greedy_match(overlaps, iou_threshold, *, strict=False, iou_floor=0.0, gt_class_ids=None, pred_class_ids=None):
    """Match each prediction, in row order, to at most one not-yet-matched ground truth.

    Prediction ``i`` looks at the ground truths in descending IoU (matterport's
    ``np.argsort(overlaps[i])[::-1]``: among equal IoUs, in practice the higher
    column first), drops those with IoU below ``iou_floor``, skips the taken
    ones, stops at the first whose IoU misses ``iou_threshold``, and takes the
    first one of its class. So it gets the unmatched ground truth of its class
    with the highest IoU, if that IoU reaches the threshold.

    Parameters
    ----------
    overlaps : float array [P, G]
        IoU of prediction ``i`` (rows, already in matching order: descending
        confidence) with ground truth ``j``. A NaN (IoU of two empty masks or
        two zero-area boxes) sorts first and counts as a hit, as in matterport;
        callers that want otherwise replace it first.
    iou_threshold : float
    strict : bool
        False: a hit needs IoU ``>= iou_threshold`` (matterport, AP@0.5).
        True: IoU ``> iou_threshold`` (the RSNA competition's metric).
    iou_floor : float
        Ground truths with IoU below this are not considered at all
        (matterport's ``score_threshold`` of ``compute_matches``).
    gt_class_ids : int array [G], optional
    pred_class_ids : int array [P], optional
        When both are given, a prediction only takes a ground truth of its
        class (it then looks further down the IoU order); when None, classes
        are ignored.

    Returns
    -------
    gt_match : float64 array [G]
        Row of the prediction matched to each ground truth, -1 where none.
    pred_match : float64 array [P]
        Column of the ground truth matched to each prediction, -1 where none.
        (Indices as floats: matterport's types.)
    """
    overlaps = np.asarray(overlaps)
    n_pred, n_gt = overlaps.shape
    class_aware = gt_class_ids is not None and pred_class_ids is not None
    gt_match = -1 * np.ones([n_gt])
    pred_match = -1 * np.ones([n_pred])
    for i in range(n_pred):
        candidates = np.argsort(overlaps[i])[::-1]
        too_low = np.flatnonzero(overlaps[i, candidates] < iou_floor)
        if too_low.size:
            candidates = candidates[:too_low[0]]
        for j in candidates:
            if gt_match[j] > -1:
                continue
            misses = (overlaps[i, j] <= iou_threshold) if strict else (overlaps[i, j] < iou_threshold)
            if misses:
                break
            if not class_aware or pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j], pred_match[i] = i, j
                break
    return gt_match, pred_match
