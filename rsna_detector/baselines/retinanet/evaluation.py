"""The RetinaNet evaluated exactly as the Mask R-CNN: ``scoring.detection_metrics`` by box IoU."""
from __future__ import annotations

from ...data.splits import DEFAULT_SPLIT_SEED
from ...detector import scoring
from ...detector.eval_records import records_from_predictions
from ...detector.report import write_detection_report
from ...detector.submission import write_submission
from .prediction import predict_retinanet
from .settings import RetinaNetError
from .training import records_and_paths, split_ids

__all__ = ["detection_metrics", "evaluate_retinanet"]


def _eval_records(records, predictions):
    """``eval_records.EvalRecord`` s of the ground truth and detections (one class, no masks), original pixels."""
    return records_from_predictions({p.patient_id: records[p.patient_id].boxes for p in predictions}, predictions)


def _decoder_threshold(model):
    """The minimum confidence of the model's NMS decoder, None when it has none."""
    return getattr(getattr(model, "prediction_decoder", None), "confidence_threshold", None)


def detection_metrics(records, predictions, *, model_threshold=None):
    """``scoring.detection_metrics`` of ``predictions`` against ``records``' boxes, by box IoU (no masks).

    Parameters
    ----------
    records : dict patient id -> PatientRecord
        Ground truth; ``boxes`` [G, (y1, x1, y2, x2)] in original pixels.
    predictions : list of ImagePrediction
        Boxes in the same pixels (:func:`predict_retinanet`); each id must be in ``records``.
    model_threshold : float, optional
        Reported as ``model_threshold`` (NaN when None).

    Returns
    -------
    dict
        The Mask R-CNN's metrics dictionary, ``iou`` 'box' (see :func:`evaluate_retinanet`).
    """
    return scoring.detection_metrics(_eval_records(records, predictions), "box", model_threshold=model_threshold)


def evaluate_retinanet(model, data, image_dir=None, *, split="validation", val_fraction=0.1, seed=DEFAULT_SPLIT_SEED,
                       batch_size=8,
                       out_dir=None, submission=None):
    """Evaluate the RetinaNet exactly as the Mask R-CNN is evaluated.

    Parameters
    ----------
    model : RetinaNetObjectDetector
    data, image_dir
        As :func:`train_retinanet`.
    split : {'validation', 'all'}
        'validation' rebuilds :func:`train_retinanet`'s split from
        ``val_fraction`` and ``seed``.
    val_fraction : float
    seed : int
    batch_size : int
    out_dir : path, optional
        ``metrics.json``, ``precision_recall.png`` and ``threshold_sweep.png``
        written there (``report.write_detection_report``, as for the Mask R-CNN).
    submission : path, optional
        The evaluated images' predictions written as a Kaggle CSV (``write_submission``).

    Returns
    -------
    dict
        ``scoring.detection_metrics``' dict by box IoU (``iou`` 'box': a
        RetinaNet has no masks; the Mask R-CNN reports box IoU too, so the
        numbers compare): ``map50`` (mean over images of ``compute_ap_boxes``
        at IoU 0.5; an image with neither ground truth nor detection counts 1,
        detections without ground truth 0), ``map50_positive``, ``mean_iou``,
        ``model_threshold`` (the NMS decoder's minimum confidence),
        ``rsna_score``, ``best_threshold``/``best_rsna_score``, ``counts``,
        ``per_image_ap``, ``sweep``; plus ``predictions`` (list of
        ImagePrediction); with ``out_dir`` ``metrics_json`` and ``figures``.
    """
    records, paths = records_and_paths(data, image_dir)
    if split == "validation":
        ids = split_ids(records, val_fraction, seed)[1]
    elif split == "all":
        ids = list(records)
    else:
        raise RetinaNetError(f"split {split!r}: expected 'validation' or 'all'")
    if not ids:
        raise RetinaNetError("no image to evaluate (empty validation split)")
    predictions = predict_retinanet(model, [paths[i] for i in ids], batch_size=batch_size)
    eval_records = _eval_records(records, predictions)
    metrics = scoring.detection_metrics(eval_records, "box", model_threshold=_decoder_threshold(model))
    if out_dir is not None:
        write_detection_report(eval_records, metrics, out_dir)
    if submission is not None:
        metrics["submission"] = str(write_submission(predictions, submission))
    metrics["predictions"] = predictions
    return metrics
