"""The RSNA Pneumonia Detection Challenge's metric, of one image, of a data set, and its best threshold.

For each image and each IoU threshold ``t`` in 0.40, 0.45, ..., 0.75, predictions
are taken in descending confidence (ties in input order); each is a hit when its
box IoU with a not-yet-matched ground-truth box is strictly greater than ``t``
(it then takes the unmatched ground truth with the highest IoU; among equal IoUs
the matcher's order decides, in practice the later box). ``TP/(TP + FP + FN)``
is the image's precision at ``t``. The image scores the mean over thresholds,
the data set the mean over images. Class ids are ignored (one class). The
matching is the engine's one matcher, ``mrcnn.eval.matching.greedy_match`` with
``strict=True``; two zero-area boxes have IoU 0 here (not NaN).

Boxes are engine boxes ``(y1, x1, y2, x2)`` in pixels, in any frame shared by
ground truth and predictions (IoU does not depend on the scale).
"""
from __future__ import annotations

import numpy as np

from ..errors import RsnaDetectorError

__all__ = [
    "RSNA_IOU_THRESHOLDS",
    "DEFAULT_SWEEP",
    "EvaluationError",
    "rsna_image_score",
    "rsna_score",
    "rsna_score_records",
    "sweep_confidence_threshold",
    "score_array",
    "box_overlaps",
    "match_columns",
]

RSNA_IOU_THRESHOLDS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75)
DEFAULT_SWEEP = np.round(np.arange(0.5, 1.0, 0.02), 4)


class EvaluationError(RsnaDetectorError, ValueError):
    """Inconsistent evaluation input (shapes, unknown ids)."""


# --------------------------------------------------------------------------- matching
def _boxes(boxes, name):
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise EvaluationError(f"{name}: expected shape [N, 4] (y1, x1, y2, x2), got {boxes.shape}")
    return boxes


def score_array(scores, count, name):
    """``scores`` as float64 [count]; :class:`EvaluationError` naming ``name`` when the count differs."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(scores) != count:
        raise EvaluationError(f"{name}: expected {count} scores (one per box), got {len(scores)}")
    return scores


def box_overlaps(pred_boxes, gt_boxes):
    """Box IoU float64 [n_pred, n_gt] (``utils.compute_overlaps``); 0 for two zero-area boxes (NaN there)."""
    from ..mrcnn.utils import compute_overlaps

    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return np.zeros((len(pred_boxes), len(gt_boxes)))
    return np.nan_to_num(np.asarray(compute_overlaps(pred_boxes, gt_boxes), np.float64), nan=0.0)


def match_columns(ious, threshold, strict, gt_class_ids=None, pred_class_ids=None):
    """Column matched to each row of ``ious`` (predictions in matching order), -1 for none: int64 [P]."""
    from ..mrcnn.eval.matching import greedy_match

    pred_match = greedy_match(ious, threshold, strict=strict, gt_class_ids=gt_class_ids,
                              pred_class_ids=pred_class_ids)[1]
    return pred_match.astype(np.int64)


def rsna_image_score(gt_boxes, pred_boxes, pred_scores, thresholds=RSNA_IOU_THRESHOLDS):
    """The competition's score of one image.

    Parameters
    ----------
    gt_boxes : array-like [G, (y1, x1, y2, x2)]
    pred_boxes : array-like [P, (y1, x1, y2, x2)]
        Same pixel frame as ``gt_boxes``.
    pred_scores : array-like [P]
        Confidences; they only set the matching order (descending, ties in input order).
    thresholds : sequence of float
        IoU thresholds; a hit needs IoU strictly greater than the threshold.

    Returns
    -------
    float or None
        Mean over thresholds of ``TP / (TP + FP + FN)``. An image without ground
        truth scores 0 when it has any prediction, and None when it has none:
        such an image is left out of the mean over images, which follows the
        competition's note that an image with neither ground truth nor
        predictions does not count. Ground truth without prediction scores 0.
    """
    gt = _boxes(gt_boxes, "gt_boxes")
    pred = _boxes(pred_boxes, "pred_boxes")
    scores = score_array(pred_scores, len(pred), "pred_scores")
    if len(gt) == 0:
        return None if len(pred) == 0 else 0.0
    if len(pred) == 0:
        return 0.0
    ious = box_overlaps(pred[np.argsort(-scores, kind="stable")], gt)
    precisions = []
    for threshold in thresholds:
        tp = int((match_columns(ious, threshold, strict=True) >= 0).sum())
        precisions.append(tp / (len(pred) + len(gt) - tp))  # TP + FP + FN = P + G - TP
    return float(np.mean(precisions))


def _mean_of_defined(values):
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else float("nan")


def _as_boxes_and_scores(prediction, image_id):
    if hasattr(prediction, "boxes") and hasattr(prediction, "scores"):
        return prediction.boxes, prediction.scores
    try:
        boxes, scores = prediction
    except (TypeError, ValueError) as error:
        raise EvaluationError(f"prediction for {image_id!r}: expected an ImagePrediction or (boxes, scores), "
                              f"got {type(prediction).__name__}") from error
    return boxes, scores


def rsna_score(ground_truth, predictions, thresholds=RSNA_IOU_THRESHOLDS):
    """The competition's score of a data set.

    Parameters
    ----------
    ground_truth : dict id -> array [G, (y1, x1, y2, x2)]
        Every evaluated image, with an empty array for a negative image.
    predictions : dict id -> ImagePrediction or (boxes [P, 4], scores [P])
        Boxes in the same pixel frame as the ground truth; an id of the ground
        truth without an entry has no prediction.
    thresholds : sequence of float

    Returns
    -------
    float
        Mean of :func:`rsna_image_score` over the images whose score is
        defined (images with neither ground truth nor prediction are left
        out); NaN when no image counts.

    Raises
    ------
    EvaluationError
        A prediction for an id that is not in ``ground_truth`` (the first ids are named).
    """
    unknown = [key for key in predictions if key not in ground_truth]
    if unknown:
        raise EvaluationError(f"{len(unknown)} predicted id(s) are not in the ground truth: "
                              f"{', '.join(map(str, unknown[:5]))}")
    scores = []
    for key, gt_boxes in ground_truth.items():
        boxes, confidences = ((), ()) if key not in predictions else _as_boxes_and_scores(predictions[key], key)
        scores.append(rsna_image_score(gt_boxes, boxes, confidences, thresholds))
    return _mean_of_defined(scores)


def rsna_score_records(records, min_confidence=None, thresholds=RSNA_IOU_THRESHOLDS):
    """The competition's score over records, keeping detections scoring ``>= min_confidence``.

    Returns
    -------
    float
        See :func:`rsna_score` (images with neither ground truth nor a kept
        detection are left out; NaN when no image counts).
    """
    return _mean_of_defined(
        rsna_image_score(r.gt_boxes, *r.predictions_above(min_confidence), thresholds) for r in records)


def sweep_confidence_threshold(records, thresholds=DEFAULT_SWEEP):
    """The confidence threshold that maximises the competition's score.

    Parameters
    ----------
    records : list of evaluate.EvalRecord
        (Anything with ``gt_boxes``, ``pred_scores`` and ``predictions_above``.)
    thresholds : sequence of float
        Candidate minimum confidences (default 0.50, 0.52, ..., 0.98).

    Returns
    -------
    best_threshold : float
        The lowest candidate reaching the best score.
    best_score : float
    table : list of dict
        ``{"threshold", "rsna_score", "boxes"}`` per candidate, ``boxes`` the
        number of detections kept.
    """
    table = []
    for threshold in thresholds:
        threshold = round(float(threshold), 6)
        kept = sum(int((r.pred_scores >= threshold).sum()) for r in records)
        table.append({"threshold": threshold, "rsna_score": rsna_score_records(records, threshold), "boxes": kept})
    defined = [row for row in table if np.isfinite(row["rsna_score"])]
    if not defined:
        return float("nan"), float("nan"), table
    best = max(defined, key=lambda row: row["rsna_score"])  # max keeps the first (lowest) on ties
    return best["threshold"], best["rsna_score"], table
