"""Prediction on DICOM files: boxes in original-image pixels, ready for a submission.

The detector sees each image at the config's size (``IMAGE_MAX_DIM``, 256 for the
RSNA settings), read through the fast DICOM path; its boxes are scaled back to the
file's own pixel grid (1024 for RSNA). Optional horizontal-flip test-time
augmentation runs the detector on the mirrored image too and fuses both box sets.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PredictionRun", "predict", "list_dicoms", "fuse_flip_detections"]

log = logging.getLogger(__name__)


@dataclass
class PredictionRun:
    """What :func:`predict` returns.

    Attributes
    ----------
    predictions : list of rsna_detector.submission.ImagePrediction
        One per readable file, in input order; boxes float32 ``[N, (y1, x1, y2, x2)]``
        in the file's own pixels, scores float32 ``[N]``.
    failed : dict
        ``path -> error message`` for files that could not be read (reported,
        never silently dropped).
    """

    predictions: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)

    def by_patient(self):
        """``{patient_id: ImagePrediction}``."""
        return {p.patient_id: p for p in self.predictions}


def list_dicoms(paths_or_folder):
    """Expand a folder (its ``*.dcm`` files, sorted) or a list of paths into a list of Paths."""
    if isinstance(paths_or_folder, (str, Path)):
        folder = Path(paths_or_folder)
        if folder.is_dir():
            files = sorted(folder.glob("*.dcm"))
            if not files:
                raise FileNotFoundError(f"{folder}: no .dcm files in this folder")
            return files
        return [folder]
    return [Path(p) for p in paths_or_folder]


def fuse_flip_detections(boxes_a, scores_a, boxes_b, scores_b, iou_threshold=0.5):
    """Fuse the detections of an image and of its mirror (already un-mirrored).

    Boxes of the two sets that overlap with IoU >= ``iou_threshold`` are merged
    into their score-weighted mean box with the mean of both scores; a box seen
    in one view only keeps its coordinates with half its score (one vote of two).

    Parameters
    ----------
    boxes_a, boxes_b : float array [N, (y1, x1, y2, x2)]
    scores_a, scores_b : float array [N]

    Returns
    -------
    boxes : float32 [M, 4], scores : float32 [M], sorted by descending score.
    """
    from .mrcnn.utils import compute_iou

    boxes_a, boxes_b = np.asarray(boxes_a, np.float32).reshape(-1, 4), np.asarray(boxes_b, np.float32).reshape(-1, 4)
    scores_a, scores_b = np.asarray(scores_a, np.float32), np.asarray(scores_b, np.float32)
    unmatched_b = np.ones(len(boxes_b), bool)
    fused_boxes, fused_scores = [], []
    for i in np.argsort(-scores_a):
        candidates = np.flatnonzero(unmatched_b)
        if candidates.size:
            ious = compute_iou(boxes_a[i], boxes_b[candidates], _area(boxes_a[i:i + 1])[0], _area(boxes_b[candidates]))
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                j = candidates[best]
                unmatched_b[j] = False
                weights = np.array([scores_a[i], scores_b[j]])
                fused_boxes.append((weights[:, None] * np.stack([boxes_a[i], boxes_b[j]])).sum(0) / weights.sum())
                fused_scores.append(weights.mean())
                continue
        fused_boxes.append(boxes_a[i])
        fused_scores.append(scores_a[i] / 2)
    for j in np.flatnonzero(unmatched_b):
        fused_boxes.append(boxes_b[j])
        fused_scores.append(scores_b[j] / 2)
    if not fused_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    boxes, scores = np.asarray(fused_boxes, np.float32), np.asarray(fused_scores, np.float32)
    order = np.argsort(-scores)
    return boxes[order], scores[order]


def _area(boxes):
    """Areas of ``(y1, x1, y2, x2)`` boxes ``[N, 4]``."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _mirror_boxes(boxes, width):
    """Mirror ``(y1, x1, y2, x2)`` boxes (x2 exclusive) across the vertical axis of an image."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, [1, 3]] = width - boxes[:, [3, 1]]
    return boxes


def _detect_batch(model, images, flip_tta, min_confidence):
    """Run detect (and the mirrored pass) on a list of uint8 [S, S, 3] images."""
    results = model.detect(images, verbose=0)
    out = []
    if flip_tta:
        mirrored = model.detect([np.ascontiguousarray(im[:, ::-1]) for im in images], verbose=0)
    for k, r in enumerate(results):
        boxes, scores = r["rois"].astype(np.float32), r["scores"].astype(np.float32)
        if flip_tta:
            width = images[k].shape[1]
            boxes_m = _mirror_boxes(mirrored[k]["rois"], width)
            boxes, scores = fuse_flip_detections(boxes, scores, boxes_m, mirrored[k]["scores"])
        keep = scores >= min_confidence if min_confidence is not None else np.ones(len(scores), bool)
        out.append((boxes[keep], scores[keep]))
    return out


def predict(model, paths_or_folder, *, batch_size=None, flip_tta=False, min_confidence=None, progress=True):
    """Detect opacities in DICOM files.

    Parameters
    ----------
    model : rsna_detector.mrcnn.model.MaskRCNN
        In inference mode.
    paths_or_folder : str, Path or sequence of paths
        A folder (all its ``*.dcm`` files) or a list of DICOM files.
    batch_size : int, optional
        Images per ``detect`` call (default: the config's BATCH_SIZE).
    flip_tta : bool
        Also run on the horizontally mirrored image and fuse the two box sets
        (:func:`fuse_flip_detections`).
    min_confidence : float, optional
        Drop boxes scoring below this after fusion (default: keep all that the
        model's DETECTION_MIN_CONFIDENCE let through).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    PredictionRun
        Boxes ``(y1, x1, y2, x2)`` float32 in each file's own pixels (1024 for
        RSNA), scores float32; unreadable files listed in ``failed``.
    """
    from tqdm.auto import tqdm

    from .data.dicom import DicomReadError, read_dicom
    from .submission import ImagePrediction

    config = model.config
    size = int(config.IMAGE_MAX_DIM)
    batch_size = batch_size or config.BATCH_SIZE
    files = list_dicoms(paths_or_folder)
    run = PredictionRun()
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=not progress)
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        images, metas = [], []  # metas: (patient id = file stem, as in the Kaggle layout; DicomMetadata)
        for path in chunk:
            try:
                image, meta = read_dicom(path, size=size)
            except DicomReadError as error:
                run.failed[str(path)] = str(error)
                log.warning("skipped %s", error)
                continue
            images.append(np.repeat(image[..., None], 3, axis=-1))
            metas.append((Path(path).stem, meta))
        if images:
            for (patient_id, meta), (boxes, scores) in zip(metas, _detect_batch(model, images, flip_tta, min_confidence)):
                scale = np.array([meta.rows, meta.columns, meta.rows, meta.columns], np.float32) / size
                run.predictions.append(ImagePrediction(patient_id, boxes * scale, scores))
        bar.update(len(chunk))
    bar.close()
    if run.failed:
        log.warning("%d of %d files could not be read: %s", len(run.failed), len(files), ", ".join(run.failed))
    return run
