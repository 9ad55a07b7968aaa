"""Which labelled patients have an image: the classifiers' (and RetinaNet's) data discovery and class weights."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...data.labels import load_patient_records
from ...data.layout import KaggleLayout
from ...data.splits import split_patients
from .settings import ClassifierError

__all__ = ["patient_images", "labelled_images", "class_weights", "split_indices"]

log = logging.getLogger(__name__)


def _records_and_dir(data, image_dir):
    if isinstance(data, tuple) and len(data) == 2 and image_dir is None:
        data, image_dir = data
    if isinstance(data, dict):
        if image_dir is None:
            raise ClassifierError("records given without image_dir (the folder of <patientId>.dcm files)")
        return data, Path(image_dir)
    if isinstance(data, (list, tuple)):
        if image_dir is None:
            raise ClassifierError("records given without image_dir (the folder of <patientId>.dcm files)")
        return {record.patient_id: record for record in data}, Path(image_dir)
    layout = KaggleLayout.from_dir(data)
    records = load_patient_records(layout.require_labels())
    return records, Path(image_dir) if image_dir is not None else layout.require_train_images()


def patient_images(data, image_dir=None):
    """The labelled patients that have an image, with their DICOM paths.

    Parameters
    ----------
    data : path, dict, list or (records, image_dir)
        A Kaggle-layout data directory (labels CSV + training image folder),
        or ``{patientId: PatientRecord}`` / a list of records with ``image_dir``.
    image_dir : path, optional
        Folder of ``<patientId>.dcm``; default the layout's training images.

    Returns
    -------
    records : dict id -> PatientRecord
        In label order, only the patients whose ``<patientId>.dcm`` exists.
    paths : dict id -> Path

    Notes
    -----
    Patients without a file in ``image_dir`` are left out, and their count is
    logged (the shared sample folder holds 16 of the 26,684 labelled images).

    Raises
    ------
    ClassifierError
        No labelled patient has an image.
    """
    all_records, image_dir = _records_and_dir(data, image_dir)
    paths = {pid: image_dir / f"{pid}.dcm" for pid in all_records}
    records = {pid: record for pid, record in all_records.items() if paths[pid].is_file()}
    if len(records) < len(all_records):
        log.info("%d of %d labelled patients have no image in %s; left out", len(all_records) - len(records),
                 len(all_records), image_dir)
    if not records:
        raise ClassifierError(f"{image_dir}: none of the {len(all_records)} labelled patients has an image "
                              "<patientId>.dcm there")
    return records, {pid: paths[pid] for pid in records}


def labelled_images(data, image_dir=None):
    """Patients with an image: ids, targets and DICOM paths (see :func:`patient_images`).

    Returns
    -------
    ids : list of str
    targets : int64 array [N]
        1 when the patient has a box.
    paths : list of Path
    """
    records, paths = patient_images(data, image_dir)
    ids = list(records)
    return ids, np.asarray([records[i].target for i in ids], np.int64), [paths[i] for i in ids]


def class_weights(targets):
    """Inverse-frequency class weights ``{0: N / (2 N0), 1: N / (2 N1)}``.

    With RSNA's 3.4 negatives per positive this gives about 0.65 and 2.2. When a
    class is absent there is nothing to balance: ``{0: 1.0, 1: 1.0}``.
    """
    targets = np.asarray(targets).reshape(-1)
    counts = [int((targets == label).sum()) for label in (0, 1)]
    if min(counts) == 0:
        return {0: 1.0, 1: 1.0}
    return {label: len(targets) / (2.0 * count) for label, count in zip((0, 1), counts, strict=True)}


def split_indices(ids, targets, val_fraction, seed):
    """Positions in ``ids`` of the training and validation patients (``split_patients``, stratified by target).

    Parameters
    ----------
    ids : list of str
    targets : int array [N]
    val_fraction : float or None
        None or 0: every patient trains, none validates.
    seed : int

    Returns
    -------
    (list of int, list of int)
        Training and validation positions.
    """
    if not val_fraction:
        return list(range(len(ids))), []
    train_ids, val_ids = split_patients(ids, targets, val_fraction=val_fraction, seed=seed)
    position = {pid: i for i, pid in enumerate(ids)}
    return [position[p] for p in train_ids], [position[p] for p in val_ids]
