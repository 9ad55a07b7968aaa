"""Prediction on DICOM files: boxes in original-image pixels, ready for a submission.

The detector sees each image at the config's size (``IMAGE_MAX_DIM``, 256 for the
RSNA settings), read through the fast DICOM path; its boxes are scaled back to the
file's own pixel grid (1024 for RSNA). Optional horizontal-flip test-time
augmentation runs the detector on the mirrored image too and fuses both box sets.

Sharded prediction
------------------
For folders too big for one machine, ``predict(..., shard=(i, n))`` (command line:
``rsna-detector predict --shard I/N``) runs on shard ``i`` of ``n`` only:
:func:`shard_files` sorts the file list by path and cuts it into ``n``
contiguous blocks whose sizes differ by at most one, shards numbered from 1. The
split depends only on the sorted list, so the ``n`` tasks of a job array (one
per machine, in any order) cover every file exactly once. Each task writes its
own results file (:meth:`PredictionRun.write`, atomically) and
``rsna-detector submit --results FILE...`` merges them into one submission.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RsnaDetectorError

__all__ = ["PredictionRun", "predict", "list_dicoms", "fuse_flip_detections", "parse_shard", "shard_files",
           "ShardError"]

log = logging.getLogger(__name__)


@dataclass
class PredictionRun:
    """What :func:`predict` returns.

    Attributes
    ----------
    predictions : list of rsna_detector.detector.submission.ImagePrediction
        One per readable file, in input order; boxes float32 ``[N, (y1, x1, y2, x2)]``
        in the file's own pixels, scores float32 ``[N]``.
    failed : dict
        ``path -> error message`` for files that could not be read (reported,
        never silently dropped).
    files : list of Path
        The files this run was given (its shard's files when sharded), in order.
    shard : (int, int) or None
        ``(i, n)``, 1-based, when the run covered shard ``i`` of ``n``.
    total_files : int or None
        Files in the whole (unsharded) list.
    """

    predictions: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    shard: tuple | None = None
    total_files: int | None = None

    def by_patient(self):
        """``{patient_id: ImagePrediction}``."""
        return {p.patient_id: p for p in self.predictions}

    def write(self, path):
        """Write this run as a results file, atomically (format: ``results.write_results_file``).

        Returns
        -------
        Path
        """
        from .results import write_results_file

        return write_results_file(
            self.predictions, path, files=[Path(f).stem for f in self.files],
            failed={Path(f).stem: message for f, message in self.failed.items()},
            shard=self.shard, total_files=self.total_files)


class ShardError(RsnaDetectorError, ValueError):
    """A shard specification that is not ``I/N`` with ``1 <= I <= N``."""


def parse_shard(shard):
    """``"I/N"`` (or ``(I, N)``) -> ``(I, N)``, shards numbered from 1.

    Raises
    ------
    ShardError
        Not two integers separated by ``/``, ``N < 1``, or ``I`` outside ``1..N``
        (a 0-based job-array index ``k`` is shard ``k + 1``).
    """
    text = shard if isinstance(shard, str) else "/".join(str(v) for v in shard)
    index, slash, count = text.strip().partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError as error:
        raise ShardError(f"shard {text!r}: expected I/N, two whole numbers such as 1/4 "
                         "(shard I of N, numbered from 1)") from error
    if not slash or count < 1 or not 1 <= index <= count:
        raise ShardError(f"shard {text!r}: expected I/N with N >= 1 and 1 <= I <= N (shards are numbered from 1; "
                         f"a 0-based array index k is shard k+1), got I={index}, N={count}")
    return index, count


def shard_files(files, shard):
    """The files of shard ``shard`` of the sorted list ``files``.

    Parameters
    ----------
    files : sequence of str or Path
    shard : str or (int, int)
        ``"I/N"`` or ``(I, N)``, 1-based (:func:`parse_shard`).

    Returns
    -------
    list of Path
        Block ``I`` of ``N`` contiguous blocks of the files sorted by path; the
        first ``len(files) % N`` blocks hold one file more than the others.
    """
    index, count = parse_shard(shard)
    ordered = sorted(Path(f) for f in files)
    size, extra = divmod(len(ordered), count)
    start = (index - 1) * size + min(index - 1, extra)
    return ordered[start:start + size + (1 if index <= extra else 0)]


def list_dicoms(paths_or_folder):
    """Expand a folder (its ``*.dcm`` files, sorted) or a list of paths into a list of Paths."""
    if isinstance(paths_or_folder, (str, Path)):
        folder = Path(paths_or_folder)
        if folder.is_dir():
            files = sorted(folder.glob("*.dcm"))
            if not files:
                raise FileNotFoundError(f"{folder}: no .dcm files in this folder")
            return files
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: no such folder or DICOM file")
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
    from ..mrcnn.utils import compute_iou

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


def predict(model, paths_or_folder, *, batch_size=None, flip_tta=False, min_confidence=None, progress=True,
            shard=None):
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
    shard : str or (int, int), optional
        ``"I/N"``: run on shard I of N of the sorted file list only
        (:func:`shard_files`; module docstring).

    Returns
    -------
    PredictionRun
        Boxes ``(y1, x1, y2, x2)`` float32 in each file's own pixels (1024 for
        RSNA), scores float32; unreadable files listed in ``failed``.
        ``run.write(path)`` saves it as a results file.

    Raises
    ------
    ShardError
        For a bad ``shard``.
    """
    from tqdm.auto import tqdm

    from ..data.dicom import DicomReadError, read_dicom
    from ..data.images import grey_to_rgb
    from .submission import ImagePrediction

    config = model.config
    size = int(config.IMAGE_MAX_DIM)
    batch_size = batch_size or config.BATCH_SIZE
    files = list_dicoms(paths_or_folder)
    total_files = len(files)
    if shard is not None:
        shard = parse_shard(shard)
        files = shard_files(files, shard)
    run = PredictionRun(files=list(files), shard=shard, total_files=total_files)
    desc = "predict" if shard is None else f"predict {shard[0]}/{shard[1]}"
    bar = tqdm(total=len(files), desc=desc, unit="img", disable=not progress)
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
            images.append(grey_to_rgb(image, path))
            metas.append((Path(path).stem, meta))
        if images:
            detections = _detect_batch(model, images, flip_tta, min_confidence)
            for (patient_id, meta), (boxes, scores) in zip(metas, detections, strict=True):
                scale = np.array([meta.rows, meta.columns, meta.rows, meta.columns], np.float32) / size
                run.predictions.append(ImagePrediction(patient_id, boxes * scale, scores))
        bar.update(len(chunk))
    bar.close()
    if run.failed:
        log.warning("%d of %d files could not be read: %s", len(run.failed), len(files), ", ".join(run.failed))
    return run
