"""The merged patient table: labels + detailed classes + DICOM header fields.

``build_patient_table`` reads the label CSVs, then the headers (never the
pixels) of every training DICOM (in a process pool when there are many), and joins them. Headers are cached
in a JSON file keyed by the labels file's size and modification time, so the
26,684 headers of the full training set are read once; a changed labels file,
a different image folder or ``refresh=True`` reads them again. Missing and
unreadable images are reported in the result and in one warning, never fatal.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .._io import atomic_write
from .._processes import process_pool
from ..errors import RsnaDetectorWarning
from .dicom import read_dicom_metadata
from .labels import read_labels
from .layout import SAMPLE_IMAGES_FOLDER, TRAIN_IMAGES, KaggleLayout

__all__ = ["PatientTable", "PatientTableWarning", "build_patient_table", "default_cache_path", "HEADER_COLUMNS"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
#: header columns added to both tables, with their pandas dtypes
HEADER_COLUMNS = {
    "age": "Int64",
    "age_implausible": "boolean",
    "sex": "object",
    "view_position": "object",
    "modality": "object",
    "rows": "Int64",
    "columns": "Int64",
    "pixel_spacing_row": "Float64",
    "pixel_spacing_col": "Float64",
    "photometric_interpretation": "object",
    "transfer_syntax_uid": "object",
    "bits_stored": "Int64",
}
_SHOWN_IDS = 10
# files; below this a pool of spawned workers costs more than it saves (benchmarks/bench_pools.py)
_SERIAL_BELOW = 2000


class PatientTableWarning(RsnaDetectorWarning):
    """Training images that are missing or unreadable (listed in the message)."""


@dataclass
class PatientTable:
    """Labels, classes and DICOM header fields, per box row and per patient.

    Attributes
    ----------
    boxes : pandas.DataFrame
        One row per label row: ``read_labels``'s columns (``patientId, x, y,
        width, height, Target, class, line, y1, x1, y2, x2``) then the header
        columns of ``HEADER_COLUMNS`` (age, age_implausible, sex, view_position, ...).
    patients : pandas.DataFrame
        One row per patient in first-appearance order: ``patientId, target,
        class, n_boxes, has_image`` then the header columns. Header columns
        are missing values (``<NA>``/None) for a patient without a readable image.
    missing_images : list of str
        Patients whose ``<patientId>.dcm`` is not in the image folder.
    unreadable : dict of str to str
        Patient id -> why its DICOM header could not be read.
    notes : list of str
        Remarks on how the table was built (no image folder, cache use).
    image_dir : Path or None
        The training image folder read, None when there is none.
    cache_path : Path or None
        The header cache file used, None when caching was off.
    """

    boxes: pd.DataFrame
    patients: pd.DataFrame
    missing_images: list = field(default_factory=list)
    unreadable: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    image_dir: Optional[Path] = None
    cache_path: Optional[Path] = None


# --------------------------------------------------------------------------- cache
def default_cache_path(image_dir) -> Path:
    """Where the header cache of ``image_dir`` goes when no ``cache_path`` is given.

    ``$RSNA_DETECTOR_CACHE`` or ``$XDG_CACHE_HOME/rsna_detector`` or
    ``~/.cache/rsna_detector``, file ``headers-<hash of the folder's absolute path>.json``
    (outside the data directory, which is often read-only, e.g. on Kaggle).
    """
    root = os.environ.get("RSNA_DETECTOR_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rsna_detector"
    digest = hashlib.sha1(str(Path(image_dir).resolve()).encode()).hexdigest()[:16]
    return Path(root) / f"headers-{digest}.json"


def _file_signature(path) -> dict:
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _load_cache(cache_path, labels_csv, image_dir) -> dict:
    """Cached ``{patientId: header dict}``, or {} when absent, stale or unreadable."""
    if cache_path is None or not Path(cache_path).is_file():
        return {}
    try:
        content = json.loads(Path(cache_path).read_text())
    except (OSError, ValueError) as error:
        warnings.warn(f"{cache_path}: header cache unreadable ({error}); reading the headers again",
                      PatientTableWarning, stacklevel=3)
        return {}
    fresh = (content.get("format") == CACHE_FORMAT and content.get("labels") == _file_signature(labels_csv)
             and content.get("image_dir") == str(Path(image_dir).resolve()))
    return content.get("headers", {}) if fresh else {}


def _save_cache(cache_path, labels_csv, image_dir, headers) -> None:
    content = {"format": CACHE_FORMAT, "labels": _file_signature(labels_csv),
               "image_dir": str(Path(image_dir).resolve()), "headers": headers}
    try:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_path, json.dumps(content))
    except OSError as error:
        warnings.warn(f"{cache_path}: header cache not written ({error})", PatientTableWarning, stacklevel=3)


# --------------------------------------------------------------------------- header reading
def _read_header(path):
    """(header dict, None) or (None, error message); never raises for a bad file."""
    try:
        return read_dicom_metadata(path).to_dict(), None
    except Exception as error:  # noqa: BLE001 - reported per file in PatientTable.unreadable
        return None, f"{type(error).__name__}: {error}"


def _read_headers(paths, workers, progress):
    """Read the headers of ``{patientId: path}``, in a process pool when there are many.

    Header parsing is CPU-bound Python, so threads would not run in parallel
    (and ``warnings.catch_warnings``, used while reading, is not thread-safe).
    Fewer than ``_SERIAL_BELOW`` files are read in this process unless
    ``workers`` asks for a pool.

    Returns ``(headers, unreadable)``: ``{patientId: header dict}`` and
    ``{patientId: error message}``.
    """
    headers, unreadable = {}, {}
    if workers is None:
        workers = 1 if len(paths) < _SERIAL_BELOW else min(8, os.cpu_count() or 1)
    bar = _progress_bar(len(paths), progress)
    with _executor(workers, len(paths)) as pool:
        results = pool.map(_read_header, list(paths.values()), chunksize=64)
        for patient_id, (header, error) in zip(paths, results, strict=True):
            if error is None:
                headers[patient_id] = header
            else:
                unreadable[patient_id] = error
            bar.update(1)
    bar.close()
    return headers, unreadable


class _InProcess:
    """The ``map`` of an executor, run in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    @staticmethod
    def map(function, items, chunksize=1):
        return map(function, items)


def _executor(workers, n_items):
    if workers <= 1 or n_items <= 1:
        return _InProcess()
    return process_pool(min(workers, n_items))


def _progress_bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="DICOM headers", unit="file", disable=not enabled)


def _headers_for(patient_ids, image_dir, cache_path, labels_csv, *, refresh, workers, progress):
    """Headers of the patients' DICOMs: ``(headers, missing ids, unreadable, notes)``."""
    present = {name[:-4] for name in os.listdir(image_dir) if name.endswith(".dcm")}
    missing = [pid for pid in patient_ids if pid not in present]
    cached = {} if refresh else _load_cache(cache_path, labels_csv, image_dir)
    to_read = {pid: Path(image_dir) / f"{pid}.dcm" for pid in patient_ids if pid in present and pid not in cached}
    headers, unreadable = _read_headers(to_read, workers, progress)
    notes = []
    if cached:
        notes.append(f"{len(patient_ids) - len(missing) - len(to_read)} headers from the cache {cache_path}")
    headers = {**{pid: cached[pid] for pid in patient_ids if pid in cached and pid in present}, **headers}
    if cache_path is not None and headers and to_read:
        _save_cache(cache_path, labels_csv, image_dir, headers)
    return headers, missing, unreadable, notes


def _header_frame(headers, patient_ids) -> pd.DataFrame:
    """One row per patient id (index), the columns of HEADER_COLUMNS with their dtypes."""
    rows = {}
    for pid, header in headers.items():
        row = dict(header)
        spacing = row.pop("pixel_spacing", None) or (None, None)
        row["pixel_spacing_row"], row["pixel_spacing_col"] = spacing
        rows[pid] = row
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(HEADER_COLUMNS)) if rows else \
        pd.DataFrame(columns=list(HEADER_COLUMNS))
    frame = frame.reindex(pd.Index(patient_ids, name="patientId"))
    for column, dtype in HEADER_COLUMNS.items():
        values = frame[column]
        frame[column] = values.astype(object).where(values.notna(), None) if dtype == "object" else values.astype(dtype)
    return frame


# --------------------------------------------------------------------------- tables
def _patient_frame(labels) -> pd.DataFrame:
    has_box = (labels["Target"] == 1) & labels[["x", "y", "width", "height"]].notna().all(axis=1)
    grouped = labels.assign(_has_box=has_box).groupby("patientId", sort=False)
    patients = pd.DataFrame({"target": grouped["Target"].max().astype(np.int64)})
    if "class" in labels.columns:
        patients["class"] = grouped["class"].first()
    patients["n_boxes"] = grouped["_has_box"].sum().astype(np.int64)
    return patients


def _warn_about_images(missing, unreadable, image_dir, n_patients):
    if not missing and not unreadable:
        return
    parts = []
    if missing:
        shown = ", ".join(missing[:_SHOWN_IDS]) + (f" and {len(missing) - _SHOWN_IDS} more"
                                                   if len(missing) > _SHOWN_IDS else "")
        parts.append(f"{len(missing)} of {n_patients} patients have no DICOM file: {shown}")
    if unreadable:
        items = list(unreadable.items())
        shown = "; ".join(f"{pid}: {message}" for pid, message in items[:_SHOWN_IDS])
        more = f" and {len(items) - _SHOWN_IDS} more" if len(items) > _SHOWN_IDS else ""
        parts.append(f"{len(items)} DICOM headers unreadable: {shown}{more}")
    warnings.warn(f"{image_dir}: " + "; ".join(parts) + " (see PatientTable.missing_images / .unreadable)",
                  PatientTableWarning, stacklevel=3)


def build_patient_table(data_dir_or_layout, *, cache_path=None, refresh=False, workers=None, progress=True,
                        strict=True) -> PatientTable:
    """Labels, classes and DICOM header fields of the training patients of a data directory.

    Parameters
    ----------
    data_dir_or_layout : path or KaggleLayout
        A directory in the Kaggle layout (or the sample layout ``labels/``, ``images/``).
    cache_path : path, False or None
        JSON header cache. None: ``default_cache_path(image folder)``; False: no cache.
    refresh : bool
        Read every header again even when the cache is fresh.
    workers : int, optional
        Processes reading headers; default: this process alone for fewer than
        2,000 files, else ``min(8, CPU count)``.
    progress : bool
        Show a tqdm progress bar while reading headers.
    strict : bool
        Passed to ``read_labels``: raise on invalid label rows (True) or drop them
        with one warning (False).

    Returns
    -------
    PatientTable
        Without an image folder the header columns are empty, ``has_image`` is
        False and ``notes`` says why.

    Raises
    ------
    LayoutError
        No labels file in the directory.
    LabelError
        Invalid labels (see ``read_labels``).
    """
    layout = KaggleLayout.from_dir(data_dir_or_layout)
    labels_csv = layout.require_labels()
    labels = read_labels(labels_csv, layout.class_info, strict=strict)
    patients = _patient_frame(labels)
    patient_ids = patients.index.tolist()
    image_dir = layout.train_images
    if image_dir is None:
        return _labels_only_table(labels, patients, layout)

    cache = None if cache_path is False else Path(cache_path) if cache_path else default_cache_path(image_dir)
    headers, missing, unreadable, notes = _headers_for(patient_ids, image_dir, cache, labels_csv, refresh=refresh,
                                                       workers=workers, progress=progress)
    _warn_about_images(missing, unreadable, image_dir, len(patient_ids))
    header_frame = _header_frame(headers, patient_ids)
    patients["has_image"] = ~patients.index.isin(missing)
    return PatientTable(boxes=labels.join(header_frame, on="patientId"),
                        patients=patients.join(header_frame).reset_index(),
                        missing_images=missing, unreadable=unreadable, notes=notes,
                        image_dir=image_dir, cache_path=cache)


def _labels_only_table(labels, patients, layout) -> PatientTable:
    note = (f"{layout.root}: no training image folder ({TRAIN_IMAGES}/ or {SAMPLE_IMAGES_FOLDER}/); "
            "header columns are empty")
    log.info(note)
    header_frame = _header_frame({}, patients.index.tolist())
    patients["has_image"] = False
    return PatientTable(boxes=labels.join(header_frame, on="patientId"),
                        patients=patients.join(header_frame).reset_index(), notes=[note])
