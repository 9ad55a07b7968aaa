"""Evaluation of a Mask R-CNN: run it once over a dataset's images, score, write the report.

:func:`evaluate_detector` is the whole job: ``eval_records.collect_detections`` (one detection
pass), ``scoring.detection_metrics`` (mAP@0.5, mean matched IoU, the competition's metric, the
threshold sweep, COCO AP) and ``report.write_detection_report`` (``metrics.json`` and the
figures). :func:`compute_batch_ap` is the RSNA notebooks' mAP (mask IoU).

The names of those modules and of ``competition`` (the competition's metric) are reachable
from here too, where notebooks and earlier versions imported them.
"""
from __future__ import annotations

from .competition import (
    RSNA_IOU_THRESHOLDS,
    EvaluationError,
    rsna_image_score,
    rsna_score,
    rsna_score_records,
    sweep_confidence_threshold,
)
from .eval_records import EvalRecord, collect_detections, records_from_predictions
from .report import write_detection_report
from .scoring import (
    IOU_KINDS,
    batch_ap,
    detection_metrics,
    mean_matched_iou,
    negative_image_ap,
    precision_recall_curve,
)

__all__ = [
    "compute_batch_ap",
    "evaluate_detector",
    # re-exported from competition, eval_records, scoring and report
    "RSNA_IOU_THRESHOLDS",
    "IOU_KINDS",
    "EvaluationError",
    "EvalRecord",
    "rsna_image_score",
    "rsna_score",
    "collect_detections",
    "batch_ap",
    "negative_image_ap",
    "mean_matched_iou",
    "precision_recall_curve",
    "rsna_score_records",
    "sweep_confidence_threshold",
    "records_from_predictions",
    "detection_metrics",
    "write_detection_report",
]


def compute_batch_ap(model, dataset, image_ids, config=None, iou_threshold=0.5, verbose=False):
    """mAP over images as the RSNA notebooks define it (mask IoU).

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



def evaluate_detector(model, dataset, image_ids, config=None, out_dir=None, verbose=False, *, iou="box",
                      postprocessing="auto"):
    """All the evaluation of a Mask R-CNN from one detection pass.

    Parameters
    ----------
    model : MaskRCNN in inference mode
    dataset : utils.Dataset
    image_ids : sequence of int
    config : Config, optional
        Default ``model.config``.
    out_dir : str or Path, optional
        When given: ``metrics.json``, ``precision_recall.png`` and
        ``threshold_sweep.png`` are written there (:func:`write_detection_report`).
    verbose : bool
        Progress bar while detecting.
    iou : {'box', 'mask'}
        Box IoU (default: the boxes a submission carries, as the RetinaNet is
        evaluated) or mask IoU (the RSNA notebooks' ``compute_ap``) for
        ``map50`` and ``mean_iou``; see :func:`detection_metrics`.
    postprocessing : postprocess.PostProcessing, 'auto' or None
        'auto' (default): the model's ``postprocessing`` (set by ``loading.load_detector``
        from the run's stored description), else none. The detections go through its views and
        fusion; its threshold is ``model_threshold`` (the submission's); the sweep sees every
        detection. None: one view, the model's own ``DETECTION_MIN_CONFIDENCE``.

    Returns
    -------
    dict
        :func:`detection_metrics`' dict, ``model_threshold`` being the post-processing's
        threshold or the model's ``DETECTION_MIN_CONFIDENCE``, and ``postprocessing`` (its
        description) and ``skipped_images`` (the images whose
        file could not be read, each ``{"image", "error"}``: reported and left out, not fatal);
        with ``out_dir`` also ``metrics_json`` and ``figures`` (name -> path).
    """
    from .postprocess import PostProcessing, check_model

    if postprocessing == "auto":
        postprocessing = getattr(model, "postprocessing", None)
    postprocessing = postprocessing or PostProcessing()
    check_model(model, postprocessing)
    skipped = []
    records = collect_detections(model, dataset, image_ids, config, verbose,
                                 postprocessing=postprocessing.replace(min_confidence=None), skipped=skipped)
    if skipped and not records:
        raise EvaluationError(f"evaluation: none of the {len(skipped)} images could be read "
                              f"(first: {skipped[0]['image']}: {skipped[0]['error']})")
    threshold = postprocessing.min_confidence
    if threshold is None:
        threshold = getattr(model.config, "DETECTION_MIN_CONFIDENCE", None)
    metrics = detection_metrics(records, iou, model_threshold=threshold)
    metrics["postprocessing"] = postprocessing.to_dict()
    metrics["skipped_images"] = skipped
    return metrics if out_dir is None else write_detection_report(records, metrics, out_dir)
