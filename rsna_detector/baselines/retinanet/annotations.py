"""keras-retinanet's CSV files: annotations (``path,x1,y1,x2,y2,class_name``) and classes (``name,id``)."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ..._io import atomic_write
from ...data.labels import PatientRecord, yxyx_to_xywh
from .settings import RETINANET_CLASS_NAME, RetinaNetError

__all__ = ["write_retinanet_csv", "read_retinanet_csv", "write_classes_csv", "read_classes_csv"]


def _number(value):
    """An integer when the value is one (RSNA's pixels), else the float's shortest exact text."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _as_record_list(records):
    return list(records.values()) if isinstance(records, dict) else list(records)


def write_classes_csv(path, class_names=(RETINANET_CLASS_NAME,)):
    """keras-retinanet's classes CSV: ``name,id`` per line (``Pneumonia,0``). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = io.StringIO(newline="")
    csv.writer(stream, lineterminator="\n").writerows([name, i] for i, name in enumerate(class_names))
    return atomic_write(path, stream.getvalue())


def read_classes_csv(path):
    """``{class_name: id}`` from a classes CSV; RetinaNetError naming the line on a malformed row."""
    path = Path(path)
    classes = {}
    with open(path, newline="") as stream:
        for line, row in enumerate(csv.reader(stream), start=1):
            if len(row) != 2:
                raise RetinaNetError(f"{path}:{line}: expected 'class_name,class_id', got {','.join(row)!r}")
            name, class_id = row
            if not class_id.strip().isdigit():
                raise RetinaNetError(f"{path}:{line}: class id {class_id!r} is not a non-negative integer")
            if name in classes:
                raise RetinaNetError(f"{path}:{line}: class {name!r} listed twice")
            classes[name] = int(class_id)
    return classes


def write_retinanet_csv(records, image_dir, path, *, classes_path=None, extension=".dcm"):
    """Write keras-retinanet annotation and class CSVs.

    Parameters
    ----------
    records : dict id -> PatientRecord, or iterable of PatientRecord
    image_dir : str or Path
        Folder of the images; each row's path is ``image_dir / (patientId + extension)``
        as given (relative paths are read relative to the CSV's folder, as
        keras-retinanet does).
    path : str or Path
        Annotation CSV: ``path,x1,y1,x2,y2,Pneumonia`` per box (pixels of the
        original image; integers when they are, else exact floats) and
        ``path,,,,,`` for an image without box. No header.
    classes_path : str or Path, optional
        Class CSV; default ``classes.csv`` beside ``path``.
    extension : str

    Returns
    -------
    (Path, Path)
        The annotation and class files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = io.StringIO(newline="")
    writer = csv.writer(stream, lineterminator="\n")
    for record in _as_record_list(records):
        image_path = str(Path(image_dir) / f"{record.patient_id}{extension}")
        if record.n_boxes == 0:
            writer.writerow([image_path, "", "", "", "", ""])
        for y1, x1, y2, x2 in np.asarray(record.boxes, np.float32):
            writer.writerow([image_path, *map(_number, (x1, y1, x2, y2)), RETINANET_CLASS_NAME])
    atomic_write(path, stream.getvalue())
    classes_path = write_classes_csv(Path(classes_path) if classes_path else path.with_name("classes.csv"))
    return path, classes_path


def _parse_box(row, path, line):
    try:
        x1, y1, x2, y2 = (float(value) for value in row[1:5])
    except ValueError as error:
        raise RetinaNetError(f"{path}:{line}: x1,y1,x2,y2 = {','.join(row[1:5])!r}: expected numbers") from error
    if not all(map(math.isfinite, (x1, y1, x2, y2))):
        raise RetinaNetError(f"{path}:{line}: x1,y1,x2,y2 must be finite")
    if x2 <= x1 or y2 <= y1:
        raise RetinaNetError(f"{path}:{line}: box x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}: expected x2 > x1 and "
                             "y2 > y1")
    return y1, x1, y2, x2


def _read_rows(path, class_names):
    """``{patient_id: (image_path, [boxes], negative_line)}`` in first-appearance order."""
    images = {}
    with open(path, newline="") as stream:
        for line, row in enumerate(csv.reader(stream), start=1):
            if len(row) != 6:
                raise RetinaNetError(f"{path}:{line}: {len(row)} fields; expected path,x1,y1,x2,y2,class_name")
            image_path, class_name = row[0], row[5]
            entry = images.setdefault(Path(image_path).stem, [image_path, [], None])
            if entry[0] != image_path:
                raise RetinaNetError(f"{path}:{line}: image {Path(image_path).stem} also listed as {entry[0]}")
            if not any(row[1:]):
                entry[2] = line
            elif not all(row[1:5]):
                raise RetinaNetError(f"{path}:{line}: x1,y1,x2,y2 = {','.join(row[1:5])!r}: give all four "
                                     "(a box) or none (a negative image, 'path,,,,,')")
            elif class_name not in class_names:
                raise RetinaNetError(f"{path}:{line}: class {class_name!r}; expected one of {', '.join(class_names)}")
            else:
                entry[1].append(_parse_box(row, path, line))
            if entry[1] and entry[2] is not None:
                raise RetinaNetError(f"{path}:{line}: image {Path(image_path).stem} has boxes and a negative row "
                                     f"(line {entry[2]})")
    return images


def read_retinanet_csv(path, *, classes_path=None, with_paths=False):
    """Read a keras-retinanet annotation CSV back into patient records (inverse of :func:`write_retinanet_csv`).

    Parameters
    ----------
    path : str or Path
    classes_path : str or Path, optional
        Class CSV; default ``classes.csv`` beside ``path`` when it exists, else
        the class names are not checked against a file.
    with_paths : bool
        Also return the image paths.

    Returns
    -------
    records : dict id -> PatientRecord
        Id = image file name without extension, first-appearance order;
        ``target`` 1 with boxes, ``boxes`` float32 ``(y1, x1, y2, x2)``,
        ``boxes_xywh`` float32 ``(x1, y1, x2 - x1, y2 - y1)``, ``class_name`` None.
        Records written by :func:`write_retinanet_csv` from labels without a
        class file come back equal.
    paths : dict id -> Path
        Only with ``with_paths``; relative paths resolved against the CSV's folder.

    Raises
    ------
    RetinaNetError
        A row without 6 fields, a non-numeric or empty box (x2 <= x1 or
        y2 <= y1), an unknown class, or an image with both boxes and a negative
        row; the message names the file and line.
    """
    path = Path(path)
    classes_path = Path(classes_path) if classes_path else path.with_name("classes.csv")
    class_names = list(read_classes_csv(classes_path)) if classes_path.is_file() else None
    images = _read_rows(path, class_names if class_names is not None else _AnyName())
    records, paths = {}, {}
    for patient_id, (image_path, boxes, _) in images.items():
        yxyx = np.asarray(boxes, np.float32).reshape(-1, 4)
        records[patient_id] = PatientRecord(patient_id=patient_id, target=int(len(yxyx) > 0), class_name=None,
                                            boxes_xywh=yxyx_to_xywh(yxyx).astype(np.float32), boxes=yxyx)
        paths[patient_id] = Path(image_path) if Path(image_path).is_absolute() else path.parent / image_path
    return (records, paths) if with_paths else records


class _AnyName:
    """Accepts every non-empty class name (no classes file to check against)."""

    def __contains__(self, name):
        return bool(name)

    def __iter__(self):
        return iter(["any non-empty name"])
