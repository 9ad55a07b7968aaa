"""Evaluation of the detector: mAP@0.5, mean matched IoU, the competition's metric, threshold sweep.

Detections are collected once (:func:`collect_detections`, one ``EvalRecord`` per
image: ground truth and prediction) and every metric is a function of those
records, so the detector runs once per image whatever is measured.

Boxes are engine boxes ``(y1, x1, y2, x2)`` in pixels. Records hold them in the
frame of the image the detector saw (``load_image_gt``'s resized image); IoU
does not depend on the scale, so the scores equal those in original pixels.

The competition metric (RSNA Pneumonia Detection Challenge)
-----------------------------------------------------------
For each image and each IoU threshold ``t`` in 0.40, 0.45, ..., 0.75, predictions
are taken in descending confidence; each is a hit when its IoU with a
not-yet-matched ground-truth box is strictly greater than ``t`` (it then takes
the unmatched ground truth with the highest IoU); ``TP/(TP + FP + FN)`` is the
image's precision at ``t``. The image scores the mean over thresholds, the data
set the mean over images. Class ids are ignored (one class).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = [
    "RSNA_IOU_THRESHOLDS",
    "EvaluationError",
    "EvalRecord",
    "rsna_image_score",
    "rsna_score",
    "collect_detections",
    "compute_batch_ap",
    "batch_ap",
    "negative_image_ap",
    "mean_matched_iou",
    "precision_recall_curve",
    "rsna_score_records",
    "sweep_confidence_threshold",
    "evaluate_detector",
]

RSNA_IOU_THRESHOLDS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75)
DEFAULT_SWEEP = np.round(np.arange(0.5, 1.0, 0.02), 4)


class EvaluationError(ValueError):
    """Inconsistent evaluation input (shapes, unknown ids)."""


# --------------------------------------------------------------------------- matching
def _boxes(boxes, name):
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise EvaluationError(f"{name}: expected shape [N, 4] (y1, x1, y2, x2), got {boxes.shape}")
    return boxes


def _scores(scores, count, name):
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(scores) != count:
        raise EvaluationError(f"{name}: expected {count} scores (one per box), got {len(scores)}")
    return scores


def _iou(pred_boxes, gt_boxes):
    """IoU matrix [n_pred, n_gt] (``utils.compute_overlaps``, the library's one box IoU)."""
    from .mrcnn.utils import compute_overlaps

    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return np.zeros((len(pred_boxes), len(gt_boxes)))
    return np.asarray(compute_overlaps(pred_boxes, gt_boxes), np.float64)


def _greedy_match(ious, threshold, strict):
    """Match predictions (rows, already in descending confidence) to ground truths (columns).

    Each prediction takes the unmatched ground truth with the highest IoU among
    those above ``threshold`` (``>`` when ``strict``, else ``>=``); a ground
    truth is matched at most once. Returns the matched column per row, -1 when none.
    """
    matches = np.full(ious.shape[0], -1, dtype=np.int64)
    taken = np.zeros(ious.shape[1], dtype=bool)
    for row, values in enumerate(ious):
        eligible = (values > threshold if strict else values >= threshold) & ~taken
        if eligible.any():
            column = int(np.argmax(np.where(eligible, values, -np.inf)))
            matches[row] = column
            taken[column] = True
    return matches


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
    scores = _scores(pred_scores, len(pred), "pred_scores")
    if len(gt) == 0:
        return None if len(pred) == 0 else 0.0
    if len(pred) == 0:
        return 0.0
    ious = _iou(pred[np.argsort(-scores, kind="stable")], gt)
    precisions = []
    for threshold in thresholds:
        tp = int((_greedy_match(ious, threshold, strict=True) >= 0).sum())
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
    except (TypeError, ValueError):
        raise EvaluationError(f"prediction for {image_id!r}: expected an ImagePrediction or (boxes, scores), "
                              f"got {type(prediction).__name__}") from None
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


# --------------------------------------------------------------------------- detections
@dataclass
class EvalRecord:
    """Ground truth and detections of one image, in the frame the detector saw.

    Attributes
    ----------
    image_id : int
        Dataset index.
    patient_id : str or None
        ``dataset.image_info[image_id]['id']`` when present.
    gt_boxes : int32/float32 [G, (y1, x1, y2, x2)]
    gt_class_ids : int32 [G]
    gt_masks : bool [H, W, G]
    pred_boxes : float32 [P, (y1, x1, y2, x2)]
        ``detect``'s ``rois``.
    pred_class_ids : int32 [P]
    pred_scores : float32 [P]
    pred_masks : bool [H, W, P]
    """

    image_id: int
    gt_boxes: np.ndarray
    gt_class_ids: np.ndarray
    gt_masks: np.ndarray
    pred_boxes: np.ndarray
    pred_class_ids: np.ndarray
    pred_scores: np.ndarray
    pred_masks: np.ndarray
    patient_id: Optional[str] = None

    def predictions_above(self, min_confidence=None):
        """``(boxes, scores)`` of the detections scoring at least ``min_confidence`` (all when None)."""
        keep = slice(None) if min_confidence is None else self.pred_scores >= min_confidence
        return self.pred_boxes[keep], self.pred_scores[keep]


def _full_mask_config(config):
    """A copy of ``config`` that keeps full-size masks (compute_ap needs image-sized masks)."""
    if not getattr(config, "USE_MINI_MASK", False):
        return config
    full = copy.copy(config)
    full.USE_MINI_MASK = False
    return full


def _detect_padded(model, images, batch_size):
    """``model.detect`` on at most ``batch_size`` images, padded with repeats to a full batch."""
    padded = images + [images[-1]] * (batch_size - len(images))
    return model.detect(padded, verbose=0)[:len(images)]


def _record(dataset, image_id, gt, detection):
    image, _meta, gt_class_ids, gt_boxes, gt_masks = gt
    height, width = image.shape[:2]
    masks = np.asarray(detection.get("masks", np.zeros((height, width, 0))), bool)
    return EvalRecord(
        image_id=int(image_id),
        patient_id=dataset.image_info[image_id].get("id") if hasattr(dataset, "image_info") else None,
        gt_boxes=np.asarray(gt_boxes).reshape(-1, 4),
        gt_class_ids=np.asarray(gt_class_ids, np.int32).reshape(-1),
        gt_masks=np.asarray(gt_masks, bool),
        pred_boxes=np.asarray(detection["rois"], np.float32).reshape(-1, 4),
        pred_class_ids=np.asarray(detection["class_ids"], np.int32).reshape(-1),
        pred_scores=np.asarray(detection["scores"], np.float32).reshape(-1),
        pred_masks=masks,
    )


def collect_detections(model, dataset, image_ids, config=None, verbose=False):
    """Run the detector once per image and keep ground truth and detections together.

    Parameters
    ----------
    model : MaskRCNN in inference mode
        ``detect(images, verbose=0)`` -> list of dicts with 'rois' [P, (y1, x1, y2, x2)],
        'class_ids' [P], 'scores' [P], 'masks' [H, W, P].
    dataset : utils.Dataset
    image_ids : sequence of int
    config : Config, optional
        Resizing settings for ``load_image_gt``; default ``model.config``. Masks
        are kept full-size whatever ``USE_MINI_MASK`` says.
    verbose : bool
        Show a progress bar.

    Returns
    -------
    list of EvalRecord
        In ``image_ids`` order. Images are detected in batches of the model's
        ``BATCH_SIZE`` (the last batch padded with repeats). Records keep
        full-size boolean masks: about H x W bytes per instance (64 KB at 256x256).
    """
    from tqdm.auto import tqdm

    from .mrcnn.data import load_image_gt

    config = _full_mask_config(config or model.config)
    image_ids = [int(i) for i in image_ids]
    batch_size = int(getattr(model.config, "BATCH_SIZE", 1))
    records = []
    with tqdm(total=len(image_ids), desc="detect", unit="img", disable=not verbose) as bar:
        for start in range(0, len(image_ids), batch_size):
            chunk = image_ids[start:start + batch_size]
            ground_truths = [load_image_gt(dataset, config, image_id) for image_id in chunk]
            detections = _detect_padded(model, [gt[0] for gt in ground_truths], batch_size)
            records += [_record(dataset, i, gt, d) for i, gt, d in zip(chunk, ground_truths, detections)]
            bar.update(len(chunk))
    return records


# --------------------------------------------------------------------------- metrics over records
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


def batch_ap(records, iou_threshold=0.5):
    """Per-image average precision and its mean.

    Parameters
    ----------
    records : list of EvalRecord
    iou_threshold : float

    Returns
    -------
    (float, list of float)
        The mean over the images, and every image's AP in record order:
        ``utils.compute_ap`` (mask IoU) for an image with ground truth, and for
        one without, :func:`negative_image_ap`: 1.0 without detections, 0.0
        with some (where matterport's ``compute_ap`` gives 0.0 and NaN).
        An image whose AP is not finite is left out of the mean (NaN when none is finite).
    """
    from .mrcnn import utils

    aps = []
    for r in records:
        ap = negative_image_ap(r.gt_boxes, r.pred_boxes)
        if ap is None:
            ap = utils.compute_ap(
                r.gt_boxes, r.gt_class_ids, r.gt_masks, r.pred_boxes, r.pred_class_ids, r.pred_scores,
                r.pred_masks, iou_threshold=iou_threshold)[0]
        aps.append(float(ap))
    finite = [ap for ap in aps if np.isfinite(ap)]
    return (float(np.mean(finite)) if finite else float("nan")), aps


def compute_batch_ap(model, dataset, image_ids, config=None, iou_threshold=0.5, verbose=False):
    """mAP over images as the RSNA notebooks define it.

    For each id: ``load_image_gt(dataset, config, id)``, ``model.detect([image])[0]``,
    ``utils.compute_ap(gt_boxes, gt_class_ids, gt_masks, rois, class_ids, scores,
    masks, iou_threshold)``; then the mean. Images without ground truth are
    scored by :func:`negative_image_ap` (1 when nothing is detected on them, 0
    otherwise), not by matterport's ``compute_ap`` (0.0 and NaN there).

    Returns
    -------
    (float, list of float)
        See :func:`batch_ap`. Use :func:`collect_detections` + the record
        metrics to compute several metrics from one detection pass.
    """
    return batch_ap(collect_detections(model, dataset, image_ids, config, verbose), iou_threshold)


def _class_aware_iou(record, boxes, scores):
    """IoU [P, G] of the detections in descending confidence, -1 where the classes differ."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    ious = _iou(np.asarray(boxes, np.float64)[order], np.asarray(record.gt_boxes, np.float64))
    same_class = record.pred_class_ids[order][:, None] == record.gt_class_ids[None, :]
    return np.where(same_class, ious, -1.0), order


def mean_matched_iou(records, iou_threshold=0.5):
    """Mean IoU of the matched (true-positive) detections, pooled over images.

    Detections are matched per image in descending confidence, each to the
    unmatched ground truth of its class with the highest IoU ``>= iou_threshold``.

    Returns
    -------
    float
        NaN when nothing is matched.
    """
    matched = []
    for record in records:
        ious, _ = _class_aware_iou(record, record.pred_boxes, record.pred_scores)
        for row, column in enumerate(_greedy_match(ious, iou_threshold, strict=False)):
            if column >= 0:
                matched.append(ious[row, column])
    return float(np.mean(matched)) if matched else float("nan")


def precision_recall_curve(records, iou_threshold=0.5):
    """Precision and recall pooled over images, detection by detection in descending confidence.

    A detection is a true positive when it matches a ground truth of its image
    (per-image greedy matching, IoU ``>= iou_threshold``).

    Returns
    -------
    precisions, recalls, scores : float arrays [D]
        After each of the D pooled detections (sorted by descending score);
        recall is over all ground-truth boxes (zeros when there are none).
    """
    scores, hits, total_gt = [], [], 0
    for record in records:
        ious, order = _class_aware_iou(record, record.pred_boxes, record.pred_scores)
        hits.append(_greedy_match(ious, iou_threshold, strict=False) >= 0)
        scores.append(record.pred_scores[order])
        total_gt += len(record.gt_boxes)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    hits = np.concatenate(hits) if hits else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(hits[order])
    precisions = true_positives / np.arange(1, len(order) + 1)
    recalls = true_positives / total_gt if total_gt else np.zeros(len(order))
    return precisions.astype(np.float64), recalls.astype(np.float64), scores[order].astype(np.float64)


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
    records : list of EvalRecord
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


# --------------------------------------------------------------------------- the report
def _counts(records):
    return {
        "images": len(records),
        "positive_images": sum(1 for r in records if len(r.gt_boxes)),
        "gt_boxes": int(sum(len(r.gt_boxes) for r in records)),
        "pred_boxes": int(sum(len(r.pred_boxes) for r in records)),
        "images_with_predictions": sum(1 for r in records if len(r.pred_boxes)),
    }


def _save_precision_recall(records, map50, path):
    import matplotlib.pyplot as plt

    from .mrcnn import visualize

    precisions, recalls, _ = precision_recall_curve(records)
    figure = visualize.plot_precision_recall(map50, precisions, recalls)
    figure = figure if hasattr(figure, "savefig") else plt.gcf()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _save_threshold_sweep(table, best_threshold, path):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([row["threshold"] for row in table], [row["rsna_score"] for row in table], marker=".")
    if np.isfinite(best_threshold):
        axis.axvline(best_threshold, color="red", linestyle="--", label=f"best {best_threshold:.2f}")
        axis.legend()
    axis.set_xlabel("minimum confidence")
    axis.set_ylabel("competition score (IoU 0.40-0.75)")
    axis.set_title("Confidence threshold sweep")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def evaluate_detector(model, dataset, image_ids, config=None, out_dir=None, verbose=False):
    """All the evaluation from one detection pass.

    Parameters
    ----------
    model : MaskRCNN in inference mode
    dataset : utils.Dataset
    image_ids : sequence of int
    config : Config, optional
        Default ``model.config``.
    out_dir : str or Path, optional
        When given: ``metrics.json``, ``precision_recall.png`` and
        ``threshold_sweep.png`` are written there.
    verbose : bool
        Progress bar while detecting.

    Returns
    -------
    dict
        ``map50`` (mean per-image AP at IoU 0.5 over all images, as RSNA
        notebooks compute it; :func:`negative_image_ap` decides the images
        without ground truth: one without detections scores 1, one with
        detections 0),
        ``map50_positive`` (the same mean over images with ground truth only), ``per_image_ap``,
        ``mean_iou`` (matched detections, IoU >= 0.5), ``model_threshold``
        (DETECTION_MIN_CONFIDENCE), ``rsna_score`` (at the model's threshold,
        i.e. all detections), ``best_threshold``, ``best_rsna_score``,
        ``sweep`` (table), ``counts``; with ``out_dir`` also ``metrics_json``
        and ``figures`` (name -> path). Undefined values (no image counts) are NaN
        in the dict and null in the JSON file.
    """
    records = collect_detections(model, dataset, image_ids, config, verbose)
    map50, per_image_ap = batch_ap(records, 0.5)
    best_threshold, best_score, table = sweep_confidence_threshold(records)
    positive_aps = [ap for r, ap in zip(records, per_image_ap) if len(r.gt_boxes) and np.isfinite(ap)]
    metrics = {
        "map50": map50,
        "map50_positive": float(np.mean(positive_aps)) if positive_aps else float("nan"),
        "mean_iou": mean_matched_iou(records, 0.5),
        "model_threshold": float(getattr(model.config, "DETECTION_MIN_CONFIDENCE", float("nan"))),
        "rsna_score": rsna_score_records(records),
        "best_threshold": best_threshold,
        "best_rsna_score": best_score,
        "counts": _counts(records),
        "per_image_ap": per_image_ap,
        "sweep": table,
    }
    if out_dir is not None:
        from ._paths import path_in_folder

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        figures = {name: path_in_folder(out_dir, name, ".png") for name in ("precision_recall", "threshold_sweep")}
        _save_precision_recall(records, map50, figures["precision_recall"])
        _save_threshold_sweep(table, best_threshold, figures["threshold_sweep"])
        metrics["figures"] = {name: str(path) for name, path in figures.items()}
        metrics["metrics_json"] = str(path_in_folder(out_dir, "metrics.json"))
        # NaN (undefined) -> null: the NaN token json writes is not valid JSON
        serialisable = json.loads(json.dumps(metrics, default=float), parse_constant=lambda _: None)
        Path(metrics["metrics_json"]).write_text(json.dumps(serialisable, indent=2))
    return metrics

