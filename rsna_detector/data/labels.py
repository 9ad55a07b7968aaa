"""RSNA label CSVs -> validated rows and per-patient ``PatientRecord`` s.

Files read
----------
``stage_2_train_labels.csv``: ``patientId,x,y,width,height,Target``, one row per
box; coordinates are floats (``264.0``) in pixels of the 1024x1024 image,
``(x, y)`` the top-left corner; a negative patient has one row with empty
``x,y,width,height`` and ``Target`` 0.

``stage_2_detailed_class_info.csv``: ``patientId,class``, row-aligned with the
labels file; ``class`` is 'Lung Opacity' exactly when ``Target`` is 1.

Box formats
-----------
RSNA boxes are ``(x, y, width, height)``; engine boxes are ``(y1, x1, y2, x2)``
with ``y2 = y + height`` and ``x2 = x + width`` (exclusive). ``xywh_to_yxyx`` /
``yxyx_to_xywh`` are the library's one implementation of that conversion.

Validation is vectorised (pandas masks), so the full 30,227-row file is read
and checked in a few tens of milliseconds.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .._paths import patient_id_problem
from ..errors import InvalidArgumentError, RsnaDetectorError, RsnaDetectorWarning

__all__ = [
    "LabelError",
    "LabelWarning",
    "PatientRecord",
    "read_labels",
    "load_patient_records",
    "records_from_frame",
    "xywh_to_yxyx",
    "yxyx_to_xywh",
    "scale_boxes",
    "LABEL_COLUMNS",
    "CLASS_COLUMNS",
    "CLASS_NAMES",
    "POSITIVE_CLASS",
    "NOT_NORMAL_CLASS",
    "NORMAL_CLASS",
    "SUBMISSION_COLUMNS",
    "RSNA_IMAGE_SIZE",
]

LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
CLASS_COLUMNS = ("patientId", "class")
SUBMISSION_COLUMNS = ("patientId", "PredictionString")
#: The detailed classes: the positive one (Target 1) and the two negative ones.
POSITIVE_CLASS = "Lung Opacity"
NOT_NORMAL_CLASS = "No Lung Opacity / Not Normal"
NORMAL_CLASS = "Normal"
CLASS_NAMES = (POSITIVE_CLASS, NOT_NORMAL_CLASS, NORMAL_CLASS)
#: Side of every RSNA image in pixels (1024 x 1024): the frame of the label and submission boxes.
RSNA_IMAGE_SIZE = 1024
BOX_COLUMNS = ("x", "y", "width", "height")
ENGINE_COLUMNS = ("y1", "x1", "y2", "x2")
_MESSAGE_LINES = 20


class LabelError(RsnaDetectorError, ValueError):
    """Invalid label or class CSV content.

    Attributes
    ----------
    problems : list of (str, int, str)
        ``(file, line, message)`` for every problem found; ``line`` is 1-based
        with the header on line 1.
    """

    def __init__(self, problems, intro="invalid label data"):
        self.problems = list(problems)
        super().__init__(_format_problems(intro, self.problems, limit=_MESSAGE_LINES))


class LabelWarning(RsnaDetectorWarning):
    """Rows dropped by ``read_labels``: invalid ones (``strict=False``) or exact duplicates.

    The message lists them all.
    """


def _format_problems(intro, problems, limit=None):
    shown = problems if limit is None else problems[:limit]
    lines = [f"{intro}: {len(problems)} problem(s)"]
    lines += [f"  {file}:{line}: {message}" for file, line, message in shown]
    if len(problems) > len(shown):
        lines.append(f"  ... and {len(problems) - len(shown)} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------- box conversion
def _as_float_boxes(boxes):
    boxes = np.asarray(boxes)
    if not np.issubdtype(boxes.dtype, np.floating):
        boxes = boxes.astype(np.float64)
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise InvalidArgumentError(f"boxes: expected an array of shape [..., 4], got shape {boxes.shape}")
    return boxes


def xywh_to_yxyx(boxes):
    """RSNA ``(x, y, width, height)`` -> engine ``(y1, x1, y2, x2)``.

    Parameters
    ----------
    boxes : array-like [..., 4]
        ``(x, y, width, height)``, ``(x, y)`` the top-left corner, pixels.

    Returns
    -------
    ndarray [..., 4]
        ``(y, x, y + height, x + width)``; float dtype of the input (float64
        for integer input).
    """
    boxes = _as_float_boxes(boxes)
    x, y, w, h = np.moveaxis(boxes, -1, 0)
    return np.stack([y, x, y + h, x + w], axis=-1)


def yxyx_to_xywh(boxes):
    """Engine ``(y1, x1, y2, x2)`` -> RSNA ``(x, y, width, height)`` (inverse of ``xywh_to_yxyx``).

    Parameters
    ----------
    boxes : array-like [..., 4]

    Returns
    -------
    ndarray [..., 4]
        ``(x1, y1, x2 - x1, y2 - y1)``, float dtype of the input.
    """
    boxes = _as_float_boxes(boxes)
    y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)


def _size_pair(size, name):
    pair = (size, size) if np.isscalar(size) else tuple(size)
    if len(pair) != 2 or min(pair) <= 0:
        raise InvalidArgumentError(f"{name}: expected a positive size or (height, width), got {size!r}")
    return float(pair[0]), float(pair[1])


def scale_boxes(boxes, from_size, to_size, box_format="yxyx"):
    """Boxes of an image of ``from_size`` in the pixels of the same image resized to ``to_size``.

    Parameters
    ----------
    boxes : array-like [..., 4]
    from_size, to_size : int or (height, width)
        Image sizes; an int means a square image.
    box_format : {'yxyx', 'xywh'}
        Engine ``(y1, x1, y2, x2)`` or RSNA ``(x, y, width, height)``.

    Returns
    -------
    ndarray [..., 4], same format; y coordinates scaled by the height ratio and x
    coordinates by the width ratio.
    """
    boxes = _as_float_boxes(boxes)
    (from_h, from_w), (to_h, to_w) = _size_pair(from_size, "from_size"), _size_pair(to_size, "to_size")
    sy, sx = to_h / from_h, to_w / from_w
    if box_format == "yxyx":
        factors = [sy, sx, sy, sx]
    elif box_format == "xywh":
        factors = [sx, sy, sx, sy]
    else:
        raise InvalidArgumentError(f"box_format: expected 'yxyx' or 'xywh', got {box_format!r}")
    return boxes * np.asarray(factors, dtype=boxes.dtype)


# --------------------------------------------------------------------------- CSV reading
def _read_raw_csv(path, expected_columns):
    """All cells as stripped strings, blank lines kept (so row i is on line i + 2)."""
    path = os.fspath(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False,
                            encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise LabelError([_encoding_problem(path)]) from error
    except pd.errors.EmptyDataError as error:
        raise LabelError([(path, 1, f"empty file; expected header {','.join(expected_columns)}")]) from error
    except pd.errors.ParserError as error:
        raise LabelError([(path, _line_from_parser_error(error), f"malformed CSV row: {error}")]) from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in expected_columns if c not in frame.columns]
    if missing:
        raise LabelError([(path, 1, f"header {','.join(frame.columns)}: missing column(s) {', '.join(missing)}; "
                                    f"expected {','.join(expected_columns)}")])
    frame = frame[list(expected_columns)].apply(lambda column: column.str.strip())
    return frame.reset_index(drop=True)


def _encoding_problem(path):
    """(file, line, message) of the first byte of ``path`` that is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        start = error.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line_start = data.rfind(b"\n", 0, start) + 1
        return (path, data.count(b"\n", 0, start) + 1,
                f"not UTF-8 text: byte 0x{data[start]:02x} at column {start - line_start + 1} "
                f"({error.reason}); save the file as UTF-8")
    return (path, 0, "not UTF-8 text")


def _line_from_parser_error(error):
    import re

    match = re.search(r"line (\d+)", str(error))
    return int(match.group(1)) if match else 0


class _Problems:
    """Collects (row index, file, message) triples from vectorised checks."""

    def __init__(self):
        self.rows, self.files, self.messages = [], [], []

    def add(self, mask, file, messages):
        """``messages``: a callable returning one message per True row of ``mask``, given those row indices."""
        index = np.flatnonzero(np.asarray(mask, dtype=bool))
        if index.size:
            self.rows.extend(index.tolist())
            self.files.extend([file] * index.size)
            self.messages.extend(messages(index))

    def sorted_triples(self):
        """[(file, line, message)] in line order; line = row + 2."""
        order = sorted(range(len(self.rows)), key=lambda i: (self.rows[i], self.files[i]))
        return [(self.files[i], self.rows[i] + 2, self.messages[i]) for i in order]

    def bad_rows(self, n_rows):
        bad = np.zeros(n_rows, dtype=bool)
        rows = np.asarray([r for r in self.rows if r < n_rows], dtype=int)
        bad[rows] = True
        return bad


def _parse_numbers(raw, problems, path):
    """Float columns x, y, width, height, Target (NaN where empty); records unparseable cells."""
    numbers = {}
    for column in (*BOX_COLUMNS, "Target"):
        text = raw[column]
        value = pd.to_numeric(text.where(text != ""), errors="coerce").astype(float)
        bad = (text != "") & (value.isna() | ~np.isfinite(value))
        problems.add(bad, path, lambda idx, c=column, t=text: [f"field {c}: {t.iat[i]!r} is not a finite number"
                                                               for i in idx])
        numbers[column] = value.where(~bad)
    return numbers


def _check_rows(raw, numbers, problems, path, image_size):
    x, y, w, h, target = (numbers[c] for c in (*BOX_COLUMNS, "Target"))
    target_text = raw["Target"]
    box_present = pd.concat([raw[c] != "" for c in BOX_COLUMNS], axis=1)
    n_present = box_present.sum(axis=1).to_numpy()
    all_blank = (raw == "").all(axis=1)

    problems.add(all_blank, path, lambda idx: ["empty line"] * len(idx))
    problems.add((raw["patientId"] == "") & ~all_blank, path, lambda idx: ["field patientId: empty"] * len(idx))
    _check_patient_ids(raw["patientId"], problems, path)
    problems.add((target_text == "") & ~all_blank, path,
                 lambda idx: ["field Target: empty; expected 0 or 1"] * len(idx))
    bad_target = target.notna() & ~target.isin([0.0, 1.0])
    problems.add(bad_target, path, lambda idx: [f"field Target: {target_text.iat[i]!r}; expected 0 or 1" for i in idx])

    def missing_fields(idx):
        return [", ".join(c for c in BOX_COLUMNS if not box_present[c].iat[i]) for i in idx]

    problems.add((target == 1) & (n_present < 4), path,
                 lambda idx: [f"Target 1 without a box (empty field(s): {m})" for m in missing_fields(idx)])
    problems.add((target == 0) & (n_present > 0), path,
                 lambda idx: [f"Target 0 with a box (x,y,width,height = "
                              f"{','.join(raw[c].iat[i] for c in BOX_COLUMNS)}); expected empty fields" for i in idx])
    for column, value in (("width", w), ("height", h)):
        problems.add(value <= 0, path, lambda idx, c=column, v=value: [f"field {c}: {v.iat[i]:g} is not positive"
                                                                        for i in idx])
    outside = (x < 0) | (y < 0) | (x + w > image_size) | (y + h > image_size)
    problems.add(outside, path, lambda idx: [
        f"fields x,y,width,height: box x={x.iat[i]:g}, y={y.iat[i]:g}, width={w.iat[i]:g}, height={h.iat[i]:g} "
        f"leaves the {image_size}x{image_size} image" for i in idx])


def _check_patient_ids(ids, problems, path):
    """patientIds become file names: only RSNA's characters (letters, digits, '-'), never a path."""
    bad = (ids != "") & ~ids.str.fullmatch(r"[A-Za-z0-9-]+")
    problems.add(bad, path, lambda idx: [f"field patientId: {ids.iat[i]!r} is not an RSNA patientId: "
                                         f"{patient_id_problem(ids.iat[i])}" for i in idx])


def _check_patient_targets(raw, numbers, problems, path):
    """A patient with Target 1 rows must not also have a Target 0 row."""
    target = numbers["Target"]
    positive_ids = set(raw["patientId"][target == 1])
    conflict = (target == 0) & raw["patientId"].isin(positive_ids)
    problems.add(conflict, path, lambda idx: [f"patient {raw['patientId'].iat[i]}: Target 0 row, but the patient "
                                              f"has Target 1 rows" for i in idx])


def _check_classes(raw, numbers, classes, problems, labels_path, class_path):
    n_labels, n_classes = len(raw), len(classes)
    n_common = min(n_labels, n_classes)
    if n_classes != n_labels:
        # extra class rows have no label row to drop; missing ones drop their label rows
        beyond = np.arange(max(n_labels, n_classes)) >= n_common
        if n_classes < n_labels:
            problems.add(beyond, labels_path, lambda idx: [
                f"no class row in {class_path} ({n_classes} class rows for {n_labels} label rows)" for _ in idx])
        else:
            problems.add(beyond, class_path, lambda idx: [
                f"extra class row ({n_classes} class rows for {n_labels} label rows in {labels_path})" for _ in idx])
    label_ids = raw["patientId"].iloc[:n_common].reset_index(drop=True)
    class_ids = classes["patientId"].iloc[:n_common].reset_index(drop=True)
    names = classes["class"].iloc[:n_common].reset_index(drop=True)
    target = numbers["Target"].iloc[:n_common].reset_index(drop=True)
    differ = label_ids != class_ids
    problems.add(differ, class_path, lambda idx: [f"field patientId: {class_ids.iat[i]!r} differs from the labels "
                                                  f"file's {label_ids.iat[i]!r} on the same line" for i in idx])
    aligned = ~differ
    unknown = aligned & ~names.isin(CLASS_NAMES)
    problems.add(unknown, class_path, lambda idx: [f"field class: {names.iat[i]!r}; expected one of "
                                                   f"{', '.join(CLASS_NAMES)}" for i in idx])
    is_positive = names == POSITIVE_CLASS
    problems.add(aligned & (target == 1) & ~is_positive & ~unknown, class_path, lambda idx: [
        f"field class: Target 1 but class {names.iat[i]!r}; expected {POSITIVE_CLASS!r}" for i in idx])
    problems.add(aligned & (target == 0) & is_positive, class_path, lambda idx: [
        f"field class: Target 0 but class {POSITIVE_CLASS!r}" for _ in idx])
    return names.reindex(range(n_labels))


def read_labels(labels_csv, class_csv=None, *, strict=True, image_size=RSNA_IMAGE_SIZE):
    """Read and validate the RSNA labels CSV (and optionally the class CSV).

    Parameters
    ----------
    labels_csv : path
        ``patientId,x,y,width,height,Target``.
    class_csv : path, optional
        ``patientId,class``, row-aligned with ``labels_csv``.
    strict : bool
        True: raise ``LabelError`` listing every problem. False: drop the rows
        with problems and emit one ``LabelWarning`` listing them all.
    image_size : int
        Side of the images the boxes refer to; a box must lie inside it.

    Returns
    -------
    pandas.DataFrame
        One row per valid CSV row, in file order, columns ``patientId`` (str),
        ``x, y, width, height`` (float64, NaN for negatives), ``Target`` (int64),
        ``class`` (str, when ``class_csv`` is given), ``line`` (int64, 1-based
        line in the labels file, header = 1) and the engine box
        ``y1, x1, y2, x2`` (float64, NaN for negatives).

    Raises
    ------
    LabelError
        A header lacks a column, a row cannot be parsed as CSV or a byte is not
        UTF-8 (always), or any row is invalid (``strict=True``); messages read
        ``FILE:LINE: field ...``. A patientId is invalid unless made of letters,
        digits and '-' (it becomes a file name: a path separator, '..', a drive
        letter or a leading '/' are refused).

    Warns
    -----
    LabelWarning
        Exact duplicate rows (same patientId, box and Target as an earlier row)
        are dropped, keeping the first; one warning names their lines.
    """
    labels_path = os.fspath(labels_csv)
    raw = _read_raw_csv(labels_path, LABEL_COLUMNS)
    problems = _Problems()
    numbers = _parse_numbers(raw, problems, labels_path)
    _check_rows(raw, numbers, problems, labels_path, image_size)
    _check_patient_targets(raw, numbers, problems, labels_path)
    class_names = None
    if class_csv is not None:
        classes = _read_raw_csv(class_csv, CLASS_COLUMNS)
        class_names = _check_classes(raw, numbers, classes, problems, labels_path, os.fspath(class_csv))

    frame = _assemble_frame(raw, numbers, class_names)
    if problems.rows:
        triples = problems.sorted_triples()
        if strict:
            raise LabelError(triples, intro=f"invalid labels in {labels_path}")
        warnings.warn(_format_problems(f"{labels_path}: dropped {problems.bad_rows(len(raw)).sum()} invalid row(s)",
                                       triples), LabelWarning, stacklevel=2)
        frame = frame[~problems.bad_rows(len(raw))].reset_index(drop=True)
    return _drop_exact_duplicates(frame, labels_path)


def _drop_exact_duplicates(frame, path):
    """Rows with the same patientId, box and Target as an earlier row, dropped with one LabelWarning."""
    key = ["patientId", *BOX_COLUMNS, "Target"]
    duplicated = frame.duplicated(subset=key, keep="first").to_numpy()
    if not duplicated.any():
        return frame
    first_line = frame.groupby(key, dropna=False, sort=False)["line"].transform("first").to_numpy()
    lines = frame["line"].to_numpy()
    triples = [(path, int(lines[i]), f"line {lines[i]} (same as line {first_line[i]}): exact duplicate "
                                     f"row of patient {frame['patientId'].iat[i]}, dropped")
               for i in np.flatnonzero(duplicated)]
    warnings.warn(_format_problems(f"{path}: dropped {len(triples)} exact duplicate row(s)", triples),
                  LabelWarning, stacklevel=3)
    return frame[~duplicated].reset_index(drop=True)


def _assemble_frame(raw, numbers, class_names):
    frame = pd.DataFrame({"patientId": raw["patientId"]})
    for column in BOX_COLUMNS:
        frame[column] = numbers[column]
    frame["Target"] = numbers["Target"].fillna(-1).astype(np.int64)
    if class_names is not None:
        frame["class"] = class_names.to_numpy()
    frame["line"] = np.arange(len(raw), dtype=np.int64) + 2
    engine = xywh_to_yxyx(frame[list(BOX_COLUMNS)].to_numpy(np.float64))
    for i, column in enumerate(ENGINE_COLUMNS):
        frame[column] = engine[:, i]
    return frame


# --------------------------------------------------------------------------- per-patient records
@dataclass(frozen=True, eq=False)
class PatientRecord:
    """One patient's labels.

    Attributes
    ----------
    patient_id : str
    target : int
        1 when the patient has at least one opacity box, else 0.
    class_name : str or None
        Detailed class ('Lung Opacity', 'No Lung Opacity / Not Normal', 'Normal');
        None when no class file was read.
    boxes_xywh : float32 ndarray [N, 4]
        RSNA ``(x, y, width, height)``; N = 0 for a negative patient.
    boxes : float32 ndarray [N, 4]
        Engine ``(y1, x1, y2, x2)``, ``y2 = y + height``, ``x2 = x + width``.
    """

    patient_id: str
    target: int
    class_name: Optional[str]
    boxes_xywh: np.ndarray
    boxes: np.ndarray

    @property
    def n_boxes(self) -> int:
        """Number of boxes."""
        return int(self.boxes.shape[0])

    def __eq__(self, other):
        if not isinstance(other, PatientRecord):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) if f.name.startswith("boxes")
                   else getattr(self, f.name) == getattr(other, f.name) for f in fields(self))

    __hash__ = None


def records_from_frame(frame) -> dict:
    """``{patientId: PatientRecord}`` in first-appearance order from a label table.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per box, with ``patientId, x, y, width, height, Target`` and
        optionally ``class`` (``read_labels``'s columns).
    """
    codes, ids = pd.factorize(frame["patientId"], sort=False)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(ids) + 1))
    xywh = frame[list(BOX_COLUMNS)].to_numpy(np.float32)[order]
    targets = frame["Target"].to_numpy()[order]
    has_box = (targets == 1) & np.isfinite(xywh).all(axis=1)
    yxyx = xywh_to_yxyx(xywh).astype(np.float32)
    class_values = frame["class"].to_numpy()[order] if "class" in frame.columns else None
    records = {}
    for code, patient_id in enumerate(ids):
        rows = slice(starts[code], starts[code + 1])
        keep = has_box[rows]
        target = int(targets[rows].max() == 1)
        records[str(patient_id)] = PatientRecord(
            patient_id=str(patient_id), target=target,
            class_name=_patient_class(class_values, rows, target),
            boxes_xywh=xywh[rows][keep], boxes=yxyx[rows][keep])
    return records


def _patient_class(class_values, rows, target):
    if class_values is None:
        return None
    if target == 1:
        return POSITIVE_CLASS
    value = class_values[rows][0]
    return None if pd.isna(value) else str(value)


def load_patient_records(labels_csv, class_csv=None, *, strict=True, image_size=RSNA_IMAGE_SIZE) -> dict:
    """``{patientId: PatientRecord}`` in first-appearance order; see ``read_labels`` for the arguments."""
    return records_from_frame(read_labels(labels_csv, class_csv, strict=strict, image_size=image_size))
