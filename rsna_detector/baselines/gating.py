"""Classifier gating: drop a detector's boxes on images a pneumonia classifier calls negative.

The top RSNA solutions vetoed detections with an image-level classifier: an
image the classifier scores below a threshold keeps no box. On the
competition's metric this helps because an image without ground truth that
keeps any box scores 0 and counts, while an image with neither ground truth nor
box is left out of the mean (``rsna_detector.detector.evaluate.rsna_score``).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import RsnaDetectorError

__all__ = ["GatingError", "gate_predictions", "gating_effect"]


class GatingError(RsnaDetectorError, ValueError):
    """Inconsistent gating input: an image without a classifier score, a bad threshold."""


def _empty_like(prediction):
    from ..detector.submission import ImagePrediction

    return ImagePrediction(prediction.patient_id, np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


def gate_predictions(predictions, classifier_scores, threshold, *, missing="error"):
    """Remove every box of the images whose classifier score is below ``threshold``.

    Parameters
    ----------
    predictions : dict id -> ImagePrediction
        Detections (boxes ``(y1, x1, y2, x2)``, any pixel frame).
    classifier_scores : dict id -> float
        Pneumonia probability per image.
    threshold : float
        An image is vetoed when its score is ``< threshold`` (an image scoring
        exactly the threshold keeps its boxes).
    missing : {'error', 'keep', 'veto'}
        What happens to a predicted image without a classifier score: raise,
        keep its boxes, or remove them.

    Returns
    -------
    dict id -> ImagePrediction
        Same ids and order; vetoed images have no box (empty ``[0, 4]`` boxes and
        ``[0]`` scores); the others are the input objects themselves.

    Raises
    ------
    GatingError
        ``missing='error'`` and an image has no score (the first ids are named),
        an unknown ``missing`` value, or a non-finite threshold.
    """
    if missing not in ("error", "keep", "veto"):
        raise GatingError(f"missing={missing!r}: expected 'error', 'keep' or 'veto'")
    if not np.isfinite(threshold):
        raise GatingError(f"threshold {threshold!r}: expected a finite number")
    unscored = [key for key in predictions if key not in classifier_scores]
    if unscored and missing == "error":
        raise GatingError(f"{len(unscored)} predicted image(s) have no classifier score: "
                          f"{', '.join(map(str, unscored[:5]))}")
    gated = {}
    for key, prediction in predictions.items():
        if key in classifier_scores:
            vetoed = float(classifier_scores[key]) < threshold
        else:
            vetoed = missing == "veto"
        gated[key] = _empty_like(prediction) if vetoed else prediction
    return gated


def gating_effect(ground_truth, predictions, classifier_scores, thresholds, *, missing="error"):
    """The competition score before and after gating, for each classifier threshold.

    Parameters
    ----------
    ground_truth : dict id -> array [G, (y1, x1, y2, x2)]
        Every evaluated image (empty array for a negative image), same pixel
        frame as the predictions.
    predictions : dict id -> ImagePrediction
    classifier_scores : dict id -> float
    thresholds : sequence of float
    missing : {'error', 'keep', 'veto'}
        See :func:`gate_predictions`.

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``threshold``, ``rsna_score_before`` (the same on
        every row), ``rsna_score_after``, ``change`` (after - before),
        ``images_vetoed`` (images that had boxes and lost them),
        ``boxes_removed``, ``true_boxes_lost`` (vetoed images' ground-truth boxes)
        and ``negatives_cleared`` (vetoed images without ground truth).
    """
    import pandas as pd

    from ..detector.evaluate import rsna_score

    if not isinstance(predictions, Mapping):
        raise GatingError("predictions: expected a dict id -> ImagePrediction")
    before = rsna_score(ground_truth, predictions)
    rows = []
    for threshold in thresholds:
        gated = gate_predictions(predictions, classifier_scores, float(threshold), missing=missing)
        vetoed = [key for key in predictions if len(predictions[key].boxes) and not len(gated[key].boxes)]
        rows.append({
            "threshold": float(threshold),
            "rsna_score_before": before,
            "rsna_score_after": rsna_score(ground_truth, gated),
            "images_vetoed": len(vetoed),
            "boxes_removed": int(sum(len(predictions[key].boxes) for key in vetoed)),
            "true_boxes_lost": int(sum(len(np.asarray(ground_truth.get(key, ())).reshape(-1, 4)) for key in vetoed)),
            "negatives_cleared": sum(1 for key in vetoed if not len(np.asarray(ground_truth.get(key, ())))),
        })
    table = pd.DataFrame(rows, columns=["threshold", "rsna_score_before", "rsna_score_after", "images_vetoed",
                                        "boxes_removed", "true_boxes_lost", "negatives_cleared"])
    table.insert(3, "change", table["rsna_score_after"] - table["rsna_score_before"])
    return table
