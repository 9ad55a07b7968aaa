"""The evaluation report of a detector: ``metrics.json``, the precision-recall curve and the threshold sweep.

:func:`write_detection_report` writes what ``evaluate.detection_metrics`` computed (both
detectors use it, through ``evaluate.evaluate_detector`` and ``retinanet.evaluate_retinanet``);
``evaluate`` re-exports it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import save_figure

__all__ = ["write_detection_report"]


def _save_precision_recall(records, metrics, path):
    import matplotlib.pyplot as plt

    from ..mrcnn import visualize
    from .scoring import precision_recall_curve

    precisions, recalls, _ = precision_recall_curve(records, iou=metrics["iou"])
    figure = visualize.plot_precision_recall(metrics["map50"], precisions, recalls)
    figure = figure if hasattr(figure, "savefig") else plt.gcf()
    save_figure(figure, path, dpi=100)
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
    save_figure(figure, path, dpi=100)
    plt.close(figure)


def write_detection_report(records, metrics, out_dir):
    """Write ``precision_recall.png``, ``threshold_sweep.png`` and ``metrics.json`` into ``out_dir``.

    Parameters
    ----------
    records : list of EvalRecord
    metrics : dict
        :func:`detection_metrics`' dict of those records; ``figures`` (name ->
        path) and ``metrics_json`` are added to it before it is written.
    out_dir : str or Path
        Created if needed.

    Returns
    -------
    dict
        ``metrics``. The JSON file is written atomically (``_io.write_json``);
        NaN values are null there.
    """
    from .._io import write_json
    from .._paths import path_in_folder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {name: path_in_folder(out_dir, name, ".png") for name in ("precision_recall", "threshold_sweep")}
    _save_precision_recall(records, metrics, figures["precision_recall"])
    _save_threshold_sweep(metrics["sweep"], metrics["best_threshold"], figures["threshold_sweep"])
    metrics["figures"] = {name: str(path) for name, path in figures.items()}
    metrics["metrics_json"] = str(path_in_folder(out_dir, "metrics.json"))
    write_json(metrics["metrics_json"], metrics)
    return metrics
