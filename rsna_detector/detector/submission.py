"""Kaggle submission files: predictions -> ``patientId,PredictionString`` CSV and back.

File format (the RSNA Pneumonia Detection Challenge)
----------------------------------------------------
Header ``patientId,PredictionString``, exactly one row per test image. A
PredictionString holds one group ``confidence x y width height`` per box,
groups joined by single spaces, in descending confidence; an image without a
box has an empty PredictionString (the row reads ``patientId,``). Coordinates
are pixels of the original image (1024x1024 for RSNA), ``(x, y)`` the top-left
corner.

Rounding (what a round trip preserves)
--------------------------------------
Box corners are rounded to the nearest integer pixel (``numpy.rint``: halves go
to the even neighbour) *before* the conversion to ``(x, y, width, height)``, so
``width = rint(x2) - rint(x1)`` and each corner written moves by at most half a
pixel. A box narrower or shorter than one pixel after rounding is written one
pixel wide or tall (a zero size is not a box). Confidences are written with four
decimals. Reading a written file back gives the rounded corners exactly and the
confidences to within 5e-5.

Engine boxes are ``(y1, x1, y2, x2)`` (``y2``/``x2`` exclusive); the conversion
to and from RSNA's ``(x, y, width, height)`` is ``rsna_detector.data.labels``'s
``yxyx_to_xywh`` / ``xywh_to_yxyx``.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..data.labels import RSNA_IMAGE_SIZE, SUBMISSION_COLUMNS
from ..errors import InputFileNotFoundError, RsnaDetectorError, RsnaDetectorWarning

__all__ = [
    "ImagePrediction",
    "SubmissionError",
    "MissingPredictionsError",
    "SubmissionWarning",
    "SUBMISSION_HEADER",
    "format_prediction_string",
    "parse_prediction_string",
    "write_submission",
    "parse_submission",
    "read_sample_submission_ids",
    "as_prediction_list",
    "first_ids",
]

SUBMISSION_HEADER = ",".join(SUBMISSION_COLUMNS)
_SHOWN_IDS = 5


class SubmissionError(RsnaDetectorError, ValueError):
    """Invalid predictions or submission file; the message names the file, line or patient ids."""


class MissingPredictionsError(SubmissionError):
    """Sample-submission ids without a prediction.

    Attributes
    ----------
    absent : list of str
        The ids without a prediction, in sample order.
    total : int
        Number of ids in the sample submission.
    """

    def __init__(self, absent, total, hint="pass missing='empty' to write them without boxes"):
        self.absent, self.total = list(absent), int(total)
        super().__init__(f"{len(self.absent)} of {self.total} sample-submission ids have no prediction "
                         f"(first: {first_ids(self.absent)}); {hint}")


class SubmissionWarning(RsnaDetectorWarning):
    """Predictions changed to fit the image (boxes clipped or dropped); the message counts them."""


@dataclass
class ImagePrediction:
    """The detections of one image, ready for a submission.

    Attributes
    ----------
    patient_id : str
        The image's patientId (the DICOM file name without ``.dcm``).
    boxes : float32 array [N, (y1, x1, y2, x2)]
        Engine convention, pixels of the ORIGINAL image (1024 for RSNA).
    scores : float32 array [N]
        Confidences in [0, 1].
    """

    patient_id: str
    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        self.patient_id = str(self.patient_id)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise SubmissionError(f"patient {self.patient_id}: {len(self.boxes)} boxes but "
                                  f"{len(self.scores)} scores (expected one score per box)")


# --------------------------------------------------------------------------- one image
def _who(patient_id):
    return "" if patient_id is None else f"patient {patient_id}: "


def _check_values(boxes, scores, patient_id=None):
    """Finite values, ordered corners, confidences in [0, 1]; the error names the patient when known."""
    who = _who(patient_id)
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise SubmissionError(f"{who}boxes and scores must be finite numbers (found NaN or inf)")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
        raise SubmissionError(f"{who}boxes {bad.tolist()}: expected (y1, x1, y2, x2) with y2 >= y1 and x2 >= x1, "
                              f"got {boxes[bad].tolist()}")
    bad = np.flatnonzero((scores < 0) | (scores > 1))
    if len(bad):
        raise SubmissionError(f"{who}score(s) {scores[bad].tolist()} of box(es) {bad.tolist()}: expected "
                              f"confidences in [0, 1]")


def format_prediction_string(boxes, scores, *, patient_id=None):
    """One image's detections as a Kaggle PredictionString.

    Parameters
    ----------
    boxes : array-like [N, (y1, x1, y2, x2)]
        Engine boxes in original-image pixels.
    scores : array-like [N]
        Confidences in [0, 1].
    patient_id : str, optional
        Named in error messages.

    Returns
    -------
    str
        ``"0.9500 264 152 213 379 0.8100 ..."``: ``confidence x y width height``
        per box, in descending confidence (ties keep their input order); ``""``
        when there is no box. Rounding: see the module docstring.

    Raises
    ------
    SubmissionError
        Boxes and scores of different lengths, non-finite values, a box with
        ``y2 < y1`` or ``x2 < x1``, or a confidence outside [0, 1]; the message
        starts with ``patient <id>:`` when ``patient_id`` is given.
    """
    from ..data.labels import yxyx_to_xywh

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise SubmissionError(f"{_who(patient_id)}{len(boxes)} boxes but {len(scores)} scores "
                              f"(expected one score per box)")
    if len(boxes) == 0:
        return ""
    _check_values(boxes, scores, patient_id)
    order = np.argsort(-scores, kind="stable")
    xywh = yxyx_to_xywh(np.rint(boxes[order])).astype(np.int64)
    xywh[:, 2:] = np.maximum(xywh[:, 2:], 1)
    return " ".join(f"{score:.4f} {x} {y} {w} {h}" for score, (x, y, w, h) in zip(scores[order], xywh, strict=True))


def parse_prediction_string(text, where="PredictionString"):
    """Inverse of :func:`format_prediction_string`.

    Parameters
    ----------
    text : str
        ``confidence x y width height`` groups separated by whitespace; may be empty.
    where : str
        Names the source in error messages (for example ``"sub.csv:12"``).

    Returns
    -------
    (boxes, scores)
        float32 ``[N, (y1, x1, y2, x2)]`` and float32 ``[N]``, in the string's order.

    Raises
    ------
    SubmissionError
        A number count that is not a multiple of 5, a non-numeric token, a
        non-finite value, a negative width or height, or a confidence outside [0, 1].
    """
    from ..data.labels import xywh_to_yxyx

    tokens = text.split()
    if len(tokens) % 5:
        raise SubmissionError(f"{where}: expected groups of 5 numbers (confidence x y width height), "
                              f"got {len(tokens)} numbers")
    try:
        values = np.array([float(token) for token in tokens], np.float64).reshape(-1, 5)
    except ValueError as error:
        raise SubmissionError(f"{where}: non-numeric value in PredictionString ({error})") from error
    if not np.isfinite(values).all():
        raise SubmissionError(f"{where}: non-finite value (NaN or inf) in PredictionString")
    negative = np.flatnonzero((values[:, 3:] < 0).any(axis=1))
    if len(negative):
        raise SubmissionError(f"{where}: box {int(negative[0]) + 1} has a negative width or height "
                              f"({values[negative[0], 3]:g} x {values[negative[0], 4]:g})")
    outside = np.flatnonzero((values[:, 0] < 0) | (values[:, 0] > 1))
    if len(outside):
        raise SubmissionError(f"{where}: box {int(outside[0]) + 1} has confidence {values[outside[0], 0]:g}; "
                              f"expected a value in [0, 1]")
    return xywh_to_yxyx(values[:, 1:]).astype(np.float32), values[:, 0].astype(np.float32)


# --------------------------------------------------------------------------- whole files
def as_prediction_list(predictions):
    """Predictions as a list of ImagePrediction, duplicates refused."""
    if isinstance(predictions, Mapping):
        items = [value if isinstance(value, ImagePrediction) else _prediction_from_pair(key, value)
                 for key, value in predictions.items()]
    else:
        items = list(predictions)
    seen, duplicates = set(), []
    for item in items:
        if not isinstance(item, ImagePrediction):
            raise SubmissionError(f"predictions: expected ImagePrediction items, got {type(item).__name__}")
        if "," in item.patient_id or "\n" in item.patient_id:
            raise SubmissionError(f"patient id {item.patient_id!r}: must not contain a comma or a newline")
        if item.patient_id in seen:
            duplicates.append(item.patient_id)
        seen.add(item.patient_id)
    if duplicates:
        raise SubmissionError(f"predictions: {len(duplicates)} duplicated patient id(s): {first_ids(duplicates)}")
    return items


def _prediction_from_pair(patient_id, value):
    try:
        boxes, scores = value
    except (TypeError, ValueError) as error:
        raise SubmissionError(f"patient {patient_id}: expected an ImagePrediction or a (boxes, scores) pair, "
                              f"got {type(value).__name__}") from error
    return ImagePrediction(patient_id, boxes, scores)


def _clip_to_image(items, image_size):
    """Boxes clipped to ``[0, H] x [0, W]``; boxes left empty by the clipping are dropped; one warning counts them."""
    height, width = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    limits = np.array([height, width, height, width], np.float64)
    result, clipped, clipped_patients, dropped, dropped_patients = [], 0, set(), 0, []
    for item in items:
        boxes, scores = item.boxes.astype(np.float64), item.scores.astype(np.float64)
        _check_values(boxes, scores, item.patient_id)
        inside = np.clip(boxes, 0, limits)
        changed = (inside != boxes).any(axis=1)
        emptied = changed & ((inside[:, 2] <= inside[:, 0]) | (inside[:, 3] <= inside[:, 1]))
        if changed.any():
            clipped += int((changed & ~emptied).sum())
            clipped_patients.update([item.patient_id] if (changed & ~emptied).any() else [])
            dropped += int(emptied.sum())
            dropped_patients += [item.patient_id] if emptied.any() else []
            item = ImagePrediction(item.patient_id, inside[~emptied], scores[~emptied])
        result.append(item)
    if clipped or dropped:
        parts = [f"clipped {clipped} box(es) of {len(clipped_patients)} patient(s) to the {height}x{width} image"]
        if dropped:
            parts.append(f"dropped {dropped} box(es) wholly outside it (patient {first_ids(dropped_patients)})")
        warnings.warn("write_submission: " + "; ".join(parts), SubmissionWarning, stacklevel=3)
    return result


def first_ids(ids, count=_SHOWN_IDS):
    """The first ``count`` ids joined by commas, with how many more there are: for error messages."""
    ids = list(ids)
    shown = ", ".join(ids[:count])
    return shown + (f", ... ({len(ids) - count} more)" if len(ids) > count else "")


def read_sample_submission_ids(path):
    """The patientIds of a (sample) submission file, in file order.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of str
    """
    return list(parse_submission(path, check_boxes=False))


def _ordered_rows(items, sample_ids, missing):
    """``[(patient_id, prediction string)]`` in the sample's order (or the input order)."""
    strings = {item.patient_id: format_prediction_string(item.boxes, item.scores, patient_id=item.patient_id)
               for item in items}
    if sample_ids is None:
        return list(strings.items())
    sample_set = set(sample_ids)
    extra = [pid for pid in strings if pid not in sample_set]
    if extra:
        raise SubmissionError(f"{len(extra)} predicted patient id(s) are not in the sample submission: "
                              f"{first_ids(extra)}")
    absent = [pid for pid in sample_ids if pid not in strings]
    if absent and missing == "error":
        raise MissingPredictionsError(absent, len(sample_ids))
    return [(pid, strings.get(pid, "")) for pid in sample_ids]


def write_submission(predictions, path, *, sample_submission=None, missing="error", image_size=RSNA_IMAGE_SIZE):
    """Write a Kaggle submission CSV, atomically.

    Parameters
    ----------
    predictions : iterable of ImagePrediction, or mapping patient_id -> ImagePrediction or (boxes, scores)
        Boxes ``(y1, x1, y2, x2)`` in original-image pixels.
    path : str or Path
        Output file; written to a temporary file in the same folder, then
        renamed, so a reader never sees half a file.
    sample_submission : str or Path, optional
        Kaggle's ``stage_2_sample_submission.csv``: rows are written in its
        order and the ids must match its ids exactly.
    missing : {'error', 'empty'}
        What to do with sample ids without a prediction: raise, or write them
        with an empty PredictionString.
    image_size : int or (height, width)
        The original images' size (1024 for RSNA): boxes reaching outside are
        clipped to it, boxes wholly outside are dropped, and one
        ``SubmissionWarning`` counts them.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    SubmissionError
        Duplicated ids; ids not in the sample (named); sample ids without a
        prediction when ``missing='error'`` (``MissingPredictionsError``: count
        and first ids); non-finite or unordered boxes, confidences outside
        [0, 1] (naming the patient). Nothing is written then.
    """
    if missing not in ("error", "empty"):
        raise SubmissionError(f"missing: expected 'error' or 'empty', got {missing!r}")
    items = _clip_to_image(as_prediction_list(predictions), image_size)
    sample_ids = None if sample_submission is None else read_sample_submission_ids(sample_submission)
    rows = _ordered_rows(items, sample_ids, missing)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = SUBMISSION_HEADER + "\n" + "".join(f"{pid},{string}\n" for pid, string in rows)
    atomic_write(path, text)
    return path


def parse_submission(path, *, check_boxes=True):
    """Read a submission CSV back.

    Parameters
    ----------
    path : str or Path
    check_boxes : bool
        Parse and check every PredictionString (default); False only collects
        the ids (boxes left empty), which is how sample submissions are read.

    Returns
    -------
    dict str -> ImagePrediction
        In file order; boxes float32 ``[N, (y1, x1, y2, x2)]``, scores float32 ``[N]``.

    Raises
    ------
    SubmissionError
        Wrong header, a line without a comma, an empty or duplicated id, or a
        bad PredictionString; the message names ``file:line`` (1-based, the
        header is line 1).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: submission file not found")
    with open(path, newline=None, encoding="utf-8-sig") as stream:
        lines = stream.read().splitlines()
    if not lines or lines[0].strip() != SUBMISSION_HEADER:
        got = lines[0] if lines else "an empty file"
        raise SubmissionError(f"{path}:1: expected the header {SUBMISSION_HEADER!r}, got {got!r}")
    result = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        patient_id, comma, text = line.partition(",")
        patient_id = patient_id.strip()
        if not comma or not patient_id:
            raise SubmissionError(f"{where}: expected 'patientId,PredictionString', got {line!r}")
        if patient_id in result:
            raise SubmissionError(f"{where}: patient id {patient_id} appears a second time")
        try:
            boxes, scores = parse_prediction_string(text, where) if check_boxes else (np.zeros((0, 4)), np.zeros(0))
        except SubmissionError as error:
            raise SubmissionError(f"{error} (patient {patient_id})") from error
        result[patient_id] = ImagePrediction(patient_id, boxes, scores)
    return result
