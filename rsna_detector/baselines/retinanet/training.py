"""Training the RetinaNet baseline, and the data it trains on (Kaggle dir, records or annotation CSV)."""
from __future__ import annotations

from pathlib import Path

from ...data.splits import DEFAULT_SPLIT_SEED, split_patients
from ..classifier.discovery import patient_images
from ..classifier.settings import ClassifierError
from .annotations import read_retinanet_csv
from .models import build_retinanet, image_size_of
from .sequence import RetinaNetSequence
from .settings import DEFAULT_IMAGE_SIZE, RetinaNetError

__all__ = ["train_retinanet", "records_and_paths", "split_ids"]


def records_and_paths(data, image_dir=None):
    """The labelled images of a data set: a Kaggle dir, (records, image_dir) or a keras-retinanet CSV file.

    Parameters
    ----------
    data : path, dict, list or (records, image_dir)
        A keras-retinanet annotation CSV (:func:`read_retinanet_csv`), else as
        :func:`rsna_detector.baselines.classifier.patient_images`.
    image_dir : path, optional

    Returns
    -------
    records : dict id -> PatientRecord
    paths : dict id -> Path
    """
    if isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".csv" and Path(data).is_file():
        return read_retinanet_csv(data, with_paths=True)
    try:
        return patient_images(data, image_dir)
    except ClassifierError as error:
        raise RetinaNetError(str(error)) from error


def split_ids(records, val_fraction, seed):
    """Training and validation patient ids (``split_patients``, stratified by target; no validation when
    ``val_fraction`` is None or 0)."""
    ids = list(records)
    if not val_fraction:
        return ids, []
    return split_patients(ids, [records[i].target for i in ids], val_fraction=val_fraction, seed=seed)


def train_retinanet(data, image_dir=None, *, model=None, image_size=DEFAULT_IMAGE_SIZE, weights="imagenet",
                    epochs=50, batch_size=32, learning_rate=1e-4, augment=True, val_fraction=0.1,
                     seed=DEFAULT_SPLIT_SEED,
                    steps_per_epoch=None, backbone_config=None, callbacks=None, verbose=1):
    """Train the RetinaNet baseline (defaults: the report's lr 1e-4, 50 epochs, batch 32).

    Parameters
    ----------
    data : path, dict, list or (records, image_dir)
        A Kaggle-layout data directory, records with ``image_dir``, or a
        keras-retinanet annotation CSV (see :func:`read_retinanet_csv`).
    image_dir : path, optional
    model : RetinaNetObjectDetector, optional
        Continue training this model (``image_size``, ``weights``,
        ``backbone_config`` and ``learning_rate`` are then not used).
    image_size : int
    weights : 'imagenet', None or path
    epochs, batch_size : int
    learning_rate : float
    augment : bool
        The report's random transform on training images.
    val_fraction : float or None
        Patient-level validation share (stratified by target); None or 0 trains
        on every image. Use the same value and ``seed`` in :func:`evaluate_retinanet`.
    seed : int
    steps_per_epoch : int, optional
    backbone_config : dict, optional
    callbacks : list of keras callbacks, optional
    verbose : int

    Returns
    -------
    model : RetinaNetObjectDetector
    history : keras.callbacks.History
        Losses ``loss``, ``bbox_regression_loss``, ``cls_logits_loss`` (and
        ``val_*`` with a validation set).
    """
    records, paths = records_and_paths(data, image_dir)
    train_ids, val_ids = split_ids(records, val_fraction, seed)
    if model is None:
        model = build_retinanet(image_size, weights=weights, backbone_config=backbone_config,
                                learning_rate=learning_rate, seed=seed)
    size = image_size_of(model)
    max_boxes = max(1, max(records[i].n_boxes for i in records))

    def make(ids, **kwargs):
        return RetinaNetSequence([paths[i] for i in ids], [records[i].boxes for i in ids], image_size=size,
                                 batch_size=batch_size, max_boxes=max_boxes, **kwargs).as_dataset()

    history = model.fit(make(train_ids, augment=augment, shuffle=True, seed=seed),
                        validation_data=make(val_ids) if val_ids else None, epochs=epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
                        shuffle=False)  # the sequence shuffles
    return model, history
