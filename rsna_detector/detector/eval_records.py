"""Evaluation records: one :class:`EvalRecord` per image, ground truth and detections together.

:func:`collect_detections` runs a Mask R-CNN once over a dataset's images (through
``postprocess.detect``); :func:`records_from_predictions` builds records from stored box
predictions (the RetinaNet, results files). Every metric (``scoring``) is a function of these
records, so the detector runs once per image whatever is measured.

Boxes are engine boxes ``(y1, x1, y2, x2)`` in pixels. Records hold them in the frame of the
image the detector saw (``load_image_gt``'s resized image); IoU does not depend on the scale,
so the scores equal those in original pixels.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .competition import EvaluationError, score_array

log = logging.getLogger(__name__)

__all__ = ["EvalRecord", "collect_detections", "records_from_predictions"]


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

    def above(self, min_confidence=None):
        """This record with only the detections scoring at least ``min_confidence`` (itself when None)."""
        if min_confidence is None:
            return self
        keep = self.pred_scores >= min_confidence
        masks = np.asarray(self.pred_masks)
        if masks.ndim == 3 and masks.shape[-1] == len(keep):
            masks = masks[..., keep]
        return dataclasses.replace(self, pred_boxes=self.pred_boxes[keep], pred_class_ids=self.pred_class_ids[keep],
                                   pred_scores=self.pred_scores[keep], pred_masks=masks)


def _full_mask_config(config):
    """A copy of ``config`` that keeps full-size masks (compute_ap needs image-sized masks)."""
    if not getattr(config, "USE_MINI_MASK", False):
        return config
    full = copy.copy(config)
    full.USE_MINI_MASK = False
    return full


def _record(dataset, image_id, gt, detections):
    image, _meta, gt_class_ids, gt_boxes, gt_masks = gt
    height, width = image.shape[:2]
    masks = np.zeros((height, width, 0), bool) if detections.masks is None else detections.masks
    return EvalRecord(
        image_id=int(image_id),
        patient_id=dataset.image_info[image_id].get("id") if hasattr(dataset, "image_info") else None,
        gt_boxes=np.asarray(gt_boxes).reshape(-1, 4),
        gt_class_ids=np.asarray(gt_class_ids, np.int32).reshape(-1),
        gt_masks=np.asarray(gt_masks, bool),
        pred_boxes=detections.boxes,
        pred_class_ids=detections.class_ids,
        pred_scores=detections.scores,
        pred_masks=masks,
    )


def collect_detections(model, dataset, image_ids, config=None, verbose=False, postprocessing=None, skipped=None):
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
    postprocessing : postprocess.PostProcessing, optional
        The pipeline the detections go through (``postprocess.detect``); default: one view,
        every detection the model returns. With flip TTA the records have no predicted masks.
    skipped : list, optional
        When given, an image whose file cannot be read (``DicomReadError``: a corrupt or
        truncated DICOM) is logged, left out and appended here as ``{"image": patient id or
        index, "error": message}``; without it, that error stops the evaluation.

    Returns
    -------
    list of EvalRecord
        In ``image_ids`` order (skipped images left out). Images are detected in batches of the model's
        ``BATCH_SIZE`` (the last batch padded with repeats). Records keep
        full-size boolean masks: about H x W bytes per instance (64 KB at 256x256).
    """
    from tqdm.auto import tqdm

    from .postprocess import detect

    config = _full_mask_config(config or model.config)
    image_ids = [int(i) for i in image_ids]
    batch_size = int(getattr(model.config, "BATCH_SIZE", 1))
    records = []
    with tqdm(total=len(image_ids), desc="detect", unit="img", disable=not verbose) as bar:
        for start in range(0, len(image_ids), batch_size):
            chunk = image_ids[start:start + batch_size]
            loaded = [(i, _ground_truth(dataset, config, i, skipped)) for i in chunk]
            loaded = [(i, gt) for i, gt in loaded if gt is not None]
            if loaded:
                detections = detect(model, [gt[0] for _, gt in loaded], postprocessing)
                records += [_record(dataset, i, gt, d) for (i, gt), d in zip(loaded, detections, strict=True)]
            bar.update(len(chunk))
    return records


def _ground_truth(dataset, config, image_id, skipped):
    """``load_image_gt`` of one image; None (logged, appended to ``skipped``) for an unreadable file."""
    from ..data.dicom import DicomReadError
    from ..mrcnn.input.ground_truth import load_image_gt

    try:
        return load_image_gt(dataset, config, image_id)
    except DicomReadError as error:
        if skipped is None:
            raise
        name = dataset.image_info[image_id].get("id", image_id) if hasattr(dataset, "image_info") else image_id
        log.warning("evaluation: image %s skipped: %s", name, error)
        skipped.append({"image": name, "error": str(error)})
        return None



def records_from_predictions(ground_truth, predictions):
    """Records of box-only detections (no masks, one class), for :func:`detection_metrics` with ``iou='box'``.

    Parameters
    ----------
    ground_truth : mapping id -> array [G, (y1, x1, y2, x2)]
        Boxes in the predictions' pixel frame; an empty array for a negative image.
    predictions : sequence of ImagePrediction
        ``patient_id``, ``boxes`` [P, (y1, x1, y2, x2)], ``scores`` [P].

    Returns
    -------
    list of EvalRecord
        In ``predictions`` order; ``image_id`` is the position, masks are empty ``[0, 0, 0]``.

    Raises
    ------
    EvaluationError
        A prediction whose id has no ground truth (the id is named).
    """
    no_masks = np.zeros((0, 0, 0), bool)
    records = []
    for index, prediction in enumerate(predictions):
        if prediction.patient_id not in ground_truth:
            raise EvaluationError(f"prediction for {prediction.patient_id!r}: that id has no ground truth")
        gt = np.asarray(ground_truth[prediction.patient_id], np.float32).reshape(-1, 4)
        boxes = np.asarray(prediction.boxes, np.float32).reshape(-1, 4)
        scores = score_array(prediction.scores, len(boxes), f"{prediction.patient_id}: scores")
        records.append(EvalRecord(
            image_id=index, patient_id=prediction.patient_id, gt_boxes=gt, gt_class_ids=np.ones(len(gt), np.int32),
            gt_masks=no_masks, pred_boxes=boxes, pred_class_ids=np.ones(len(boxes), np.int32),
            pred_scores=scores.astype(np.float32),
            pred_masks=no_masks))
    return records

