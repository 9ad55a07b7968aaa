"""Prediction on DICOM files: boxes in original-image pixels, ready for a submission.

The detector sees each image at the config's size (``IMAGE_MAX_DIM``, 256 for the
RSNA settings), read through the fast DICOM path; its boxes are scaled back to the
file's own pixel grid (1024 for RSNA). The detections go through the model's
post-processing (``postprocess``: flip test-time augmentation, fusion, the
validated threshold), the one stored with the model by default
(``loading.load_detector``); the results file records which one was applied.

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

from ..errors import InputFileNotFoundError, RsnaDetectorError
from .fusion import fuse_flip_detections  # re-exported: its home was this module

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
    postprocessing : rsna_detector.detector.postprocess.PostProcessing or None
        What was applied.
    threshold : float or None
        The minimum confidence in effect: the post-processing's, else the model's
        in-graph ``DETECTION_MIN_CONFIDENCE``.
    """

    predictions: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    shard: tuple | None = None
    total_files: int | None = None
    postprocessing: object = None
    threshold: float | None = None

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
            shard=self.shard, total_files=self.total_files,
            postprocessing=None if self.postprocessing is None else self.postprocessing.to_dict(),
            threshold=self.threshold)


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
                raise InputFileNotFoundError(f"{folder}: no .dcm files in this folder")
            return files
        if not folder.exists():
            raise InputFileNotFoundError(f"{folder}: no such folder or DICOM file")
        return [folder]
    return [Path(p) for p in paths_or_folder]


def predict(model, paths_or_folder, *, batch_size=None, flip_tta=None, min_confidence=None, progress=True,
            shard=None, postprocessing="auto"):
    """Detect opacities in DICOM files.

    Parameters
    ----------
    model : rsna_detector.mrcnn.model.MaskRCNN
        In inference mode (``loading.load_detector`` builds one from a checkpoint or run
        folder, with its stored post-processing).
    paths_or_folder : str, Path or sequence of paths
        A folder (all its ``*.dcm`` files) or a list of DICOM files.
    batch_size : int, optional
        Images per ``detect`` call (default: the config's BATCH_SIZE).
    flip_tta : bool, optional
        Overrides the post-processing's flip test-time augmentation (also run on the
        horizontally mirrored image and fuse the two box sets).
    min_confidence : float, optional
        Overrides the post-processing's threshold: boxes scoring below it are dropped
        after fusion.
    progress : bool
        Show a tqdm progress bar.
    shard : str or (int, int), optional
        ``"I/N"``: run on shard I of N of the sorted file list only
        (:func:`shard_files`; module docstring).
    postprocessing : PostProcessing, 'auto' or None
        'auto' (default): ``model.postprocessing`` when the model has one (``load_detector``
        sets it from the stored description), else none. None: one view, every box the
        model's ``DETECTION_MIN_CONFIDENCE`` lets through.

    Returns
    -------
    PredictionRun
        Boxes ``(y1, x1, y2, x2)`` float32 in each file's own pixels (1024 for
        RSNA), scores float32; unreadable files listed in ``failed``; the
        post-processing applied and its threshold. ``run.write(path)`` saves it as a
        results file.

    Raises
    ------
    ShardError
        For a bad ``shard``.
    PostProcessingError
        A threshold below the model's in-graph ``DETECTION_MIN_CONFIDENCE``.
    """
    from tqdm.auto import tqdm

    from ..data.dicom import DicomReadError, read_dicom
    from ..data.images import grey_to_rgb
    from .postprocess import check_model, detect
    from .submission import ImagePrediction

    config = model.config
    postprocessing = _postprocessing_of(model, postprocessing, flip_tta, min_confidence)
    check_model(model, postprocessing)
    size = int(config.IMAGE_MAX_DIM)
    batch_size = batch_size or config.BATCH_SIZE
    files = list_dicoms(paths_or_folder)
    total_files = len(files)
    if shard is not None:
        shard = parse_shard(shard)
        files = shard_files(files, shard)
    threshold = postprocessing.min_confidence
    run = PredictionRun(files=list(files), shard=shard, total_files=total_files, postprocessing=postprocessing,
                        threshold=float(config.DETECTION_MIN_CONFIDENCE) if threshold is None else threshold)
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
        for (patient_id, meta), found in zip(metas, detect(model, images, postprocessing), strict=True):
            scale = np.array([meta.rows, meta.columns, meta.rows, meta.columns], np.float32) / size
            run.predictions.append(ImagePrediction(patient_id, found.boxes * scale, found.scores))
        bar.update(len(chunk))
    bar.close()
    if run.failed:
        log.warning("%d of %d files could not be read: %s", len(run.failed), len(files), ", ".join(run.failed))
    return run


def _postprocessing_of(model, postprocessing, flip_tta, min_confidence):
    """The post-processing ``predict`` applies: given, the model's ('auto') or none; then the overrides."""
    from .postprocess import PostProcessing

    if postprocessing == "auto":
        postprocessing = getattr(model, "postprocessing", None)
    postprocessing = postprocessing or PostProcessing()
    changes = {}
    if flip_tta is not None:
        changes["flip_tta"] = bool(flip_tta)
    if min_confidence is not None:
        changes["min_confidence"] = float(min_confidence)
    return postprocessing.replace(**changes) if changes else postprocessing
