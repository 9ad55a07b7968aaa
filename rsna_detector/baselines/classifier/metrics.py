"""The classifiers' metrics from labels and scores (numpy; scikit-learn is not needed).

ROC-AUC (trapezoids under the ROC curve), PR-AUC (average precision: the
sum over score thresholds of the recall increase times the precision, as
scikit-learn's ``average_precision_score``), confusion matrices and the F1-best
threshold. An image is called positive when its score is ``>= threshold``,
except in the training metrics, which use ``> 0.5`` as Keras' precision and
recall do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._io import write_json
from .settings import ClassifierError

__all__ = [
    "roc_curve",
    "roc_auc",
    "pr_curve",
    "average_precision",
    "confusion_matrix",
    "best_f1_threshold",
    "classification_metrics",
]


def _labels_and_scores(y_true, scores):
    y_true = np.asarray(y_true).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(y_true) != len(scores):
        raise ClassifierError(f"y_true has {len(y_true)} values, scores {len(scores)}; expected one score per label")
    if not np.isin(y_true, (0, 1)).all():
        raise ClassifierError("y_true: expected labels 0 and 1 only")
    if not np.isfinite(scores).all():
        raise ClassifierError("scores: expected finite numbers")
    return y_true.astype(np.int64), scores


def _cumulative_counts(y_true, scores):
    """Thresholds (distinct scores, descending) and the TP and FP counts of ``score >= threshold``."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], y_true[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_each]
    false_positives = last_of_each + 1 - true_positives
    return sorted_scores[last_of_each], true_positives, false_positives


def roc_curve(y_true, scores):
    """The ROC curve.

    Parameters
    ----------
    y_true : array-like of 0/1 [N]
    scores : array-like of float [N]

    Returns
    -------
    fpr, tpr : float64 arrays [T + 1]
        False and true positive rates of ``score >= threshold``, starting at (0, 0).
    thresholds : float64 array [T + 1]
        ``inf`` then the distinct scores in descending order.
        Rates are NaN where a class is absent.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    thresholds, tps, fps = _cumulative_counts(y_true, scores)
    positives, negatives = tps[-1] if len(tps) else 0, fps[-1] if len(fps) else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0, tps] / positives
        fpr = np.r_[0, fps] / negatives
    return fpr.astype(np.float64), tpr.astype(np.float64), np.r_[np.inf, thresholds]


def roc_auc(y_true, scores):
    """Area under the ROC curve (trapezoids); NaN when only one class is present.

    Equals the probability that a random positive scores above a random
    negative, ties counting one half.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pr_curve(y_true, scores):
    """Precision and recall of ``score >= threshold`` at each distinct score.

    Returns
    -------
    precision, recall, thresholds : float64 arrays [T]
        Thresholds descending; recall is NaN when there is no positive.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    thresholds, tps, fps = _cumulative_counts(y_true, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tps / (tps[-1] if len(tps) else 0)
    precision = tps / np.maximum(tps + fps, 1)
    return precision.astype(np.float64), recall.astype(np.float64), thresholds


def average_precision(y_true, scores):
    """PR-AUC as average precision: ``sum_k (R_k - R_{k-1}) P_k`` over descending thresholds, ``R_0 = 0``.

    NaN when there is no positive.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    if not y_true.any():
        return float("nan")
    precision, recall, _ = pr_curve(y_true, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def confusion_matrix(y_true, scores, threshold=0.5):
    """``[[TN, FP], [FN, TP]]`` (int64 [2, 2]) of ``score >= threshold``: rows truth, columns prediction."""
    y_true, scores = _labels_and_scores(y_true, scores)
    predicted = (scores >= threshold).astype(np.int64)
    matrix = np.zeros((2, 2), np.int64)
    np.add.at(matrix, (y_true, predicted), 1)
    return matrix


def best_f1_threshold(y_true, scores):
    """The score threshold with the best F1 of ``score >= threshold``.

    Returns
    -------
    (threshold, f1) : (float, float)
        The highest such threshold on ties; ``(nan, 0.0)`` without positives.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    thresholds, tps, fps = _cumulative_counts(y_true, scores)
    positives = int(y_true.sum())
    if positives == 0:
        return float("nan"), 0.0
    f1 = 2 * tps / (2 * tps + fps + (positives - tps))
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return float(thresholds[best]), float(f1[best])


def _f1_from_matrix(matrix):
    (_, fp), (fn, tp) = matrix
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def _save_curves(y_true, scores, metrics, out_dir):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..._io import save_figure

    figures = {}
    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = pr_curve(y_true, scores)
    for key, (x, y, xlabel, ylabel, title, diagonal) in {
        "roc": (fpr, tpr, "false positive rate", "true positive rate", f"ROC (AUC {metrics['roc_auc']:.3f})", True),
        "pr": (recall, precision, "recall", "precision", f"Precision-recall (AP {metrics['pr_auc']:.3f})", False),
    }.items():
        figure, axis = plt.subplots(figsize=(5, 5))
        axis.plot(x, y, drawstyle="steps-post" if key == "pr" else "default")
        if diagonal:
            axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
        axis.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figures[key] = str(Path(out_dir) / f"{key}_curve.png")
        save_figure(figure, figures[key], dpi=100)
        plt.close(figure)
    return figures


def classification_metrics(y_true, scores, *, threshold=0.5, out_dir=None):
    """Everything the report's classifier table needs, from labels and scores.

    Parameters
    ----------
    y_true : array-like of 0/1 [N]
    scores : array-like of float [N]
    threshold : float
        Threshold of the fixed-threshold metrics (``score >= threshold``).
    out_dir : path, optional
        When given: ``roc_curve.png``, ``pr_curve.png`` and ``metrics.json``.

    Returns
    -------
    dict
        ``n``, ``positives``, ``roc_auc``, ``pr_auc``, ``threshold``,
        ``confusion_matrix`` ([[TN, FP], [FN, TP]] as lists), ``accuracy``,
        ``precision``, ``recall``, ``f1`` (at ``threshold``), ``best_threshold``,
        ``best_f1``, ``best_confusion_matrix``; with ``out_dir`` also ``figures``
        and ``metrics_json``. Undefined values are NaN (null in the JSON file).
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    matrix = confusion_matrix(y_true, scores, threshold)
    (tn, fp), (fn, tp) = matrix
    best_threshold, best_f1 = best_f1_threshold(y_true, scores)
    metrics = {
        "n": int(len(y_true)), "positives": int(y_true.sum()),
        "roc_auc": roc_auc(y_true, scores), "pr_auc": average_precision(y_true, scores),
        "threshold": float(threshold), "confusion_matrix": matrix.tolist(),
        "accuracy": float((tp + tn) / len(y_true)) if len(y_true) else float("nan"),
        "precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
        "recall": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "f1": _f1_from_matrix(matrix),
        "best_threshold": best_threshold, "best_f1": best_f1,
        "best_confusion_matrix": (confusion_matrix(y_true, scores, best_threshold).tolist()
                                  if np.isfinite(best_threshold) else None),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics["figures"] = _save_curves(y_true, scores, metrics, out_dir)
        metrics["metrics_json"] = str(out_dir / "metrics.json")
        write_json(metrics["metrics_json"], metrics)
    return metrics
