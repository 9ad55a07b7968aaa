"""Classifier gating: drop a detector's boxes on images a pneumonia classifier calls negative.

The top RSNA solutions vetoed detections with an image-level classifier: an
image the classifier scores below a threshold keeps no box. On the
competition's metric this helps because an image without ground truth that
keeps any box scores 0 and counts, while an image with neither ground truth nor
box is left out of the mean (``rsna_detector.detector.competition.rsna_score``).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import InputFileNotFoundError, RsnaDetectorError

__all__ = ["GatingError", "gate_predictions", "gating_effect", "store_gate", "apply_stored_gate"]


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

    from ..detector.competition import rsna_score

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


def store_gate(model_path, threshold, classifier_path):
    """Add classifier gating to the post-processing stored beside a model (``postprocessing.json``).

    Parameters
    ----------
    model_path : str or Path
        A checkpoint, run folder or cross-validation folder with a stored description.
    threshold : float
        In [0, 1]; e.g. the best row of :func:`gating_effect` on held-out predictions.
    classifier_path : str or Path
        The classifier's ``.keras`` file (``rsna-detector classifier-train``); stored relative to the
        description's folder.

    Returns
    -------
    PostProcessing
        The description written, with ``gate_threshold`` and ``gate_classifier``.

    Raises
    ------
    FileNotFoundError
        No stored description, or no classifier file (named).
    """
    import os
    from pathlib import Path

    from ..detector.postprocess import PostProcessing, postprocessing_path

    path = postprocessing_path(model_path)
    if not Path(classifier_path).is_file():
        raise InputFileNotFoundError(f"{classifier_path}: classifier file not found")
    description = PostProcessing.load(path).replace(
        gate_threshold=float(threshold), gate_classifier=Path(os.path.relpath(classifier_path, path.parent)).as_posix())
    description.save(path)
    return description


def apply_stored_gate(predictions, files, postprocessing, folder):
    """The gate of a stored description: the classifier scores every file and vetoes the images below its threshold.

    Parameters
    ----------
    predictions : list of ImagePrediction
        Detections of ``files`` (any pixel frame), patient id = file name without ``.dcm``.
    files : list of path
        The DICOMs predicted.
    postprocessing : PostProcessing or None
        Without a ``gate_threshold``, ``predictions`` come back unchanged.
    folder : str or Path
        The description's folder (``gate_classifier`` is relative to it).

    Returns
    -------
    list of ImagePrediction
        Same order; the vetoed images without boxes.

    Raises
    ------
    GatingError
        A ``gate_threshold`` without ``gate_classifier``.
    """
    from pathlib import Path

    if postprocessing is None or postprocessing.gate_threshold is None:
        return list(predictions)
    if not postprocessing.gate_classifier:
        raise GatingError(f"{Path(folder) / 'postprocessing.json'}: gate_threshold without gate_classifier (the "
                          "classifier file to score the images with)")
    from .classifier.evaluation import predict_scores
    from .saved_models import load_model_for_prediction

    classifier = load_model_for_prediction(Path(folder) / postprocessing.gate_classifier)
    files = list(files)
    scores = dict(zip((Path(f).stem for f in files), predict_scores(classifier, files).tolist(), strict=True))
    gated = gate_predictions({p.patient_id: p for p in predictions}, scores, postprocessing.gate_threshold,
                             missing="keep")
    return list(gated.values())
