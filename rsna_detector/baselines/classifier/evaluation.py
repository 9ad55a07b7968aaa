"""Scoring images with a classifier, and its evaluation on the validation split."""
from __future__ import annotations

import numpy as np

from ...data.splits import DEFAULT_SPLIT_SEED
from .discovery import labelled_images, split_indices
from .metrics import classification_metrics
from .sequence import ClassifierSequence
from .settings import ClassifierError, backbone_name

__all__ = ["predict_scores", "evaluate_classifier"]


def predict_scores(model, paths, *, name=None, batch_size=16, preprocessing="backbone"):
    """Pneumonia probability of each DICOM.

    Parameters
    ----------
    model : keras.Model
        A classifier of :func:`build_classifier` (its input size is used).
    paths : sequence of path
    name : str, optional
        Backbone name; default read from the model's name.
    batch_size : int
    preprocessing : {'backbone', 'rescale'}
        The mode the model was trained with.

    Returns
    -------
    float32 array [N]
    """
    paths = list(paths)
    if not paths:
        return np.zeros(0, np.float32)
    sequence = ClassifierSequence(paths, name=backbone_name(model, name), image_size=int(model.input_shape[1]),
                                  batch_size=batch_size, preprocessing=preprocessing)
    scores = [np.asarray(model.predict_on_batch(sequence[i][0])).reshape(-1) for i in range(len(sequence))]
    return np.concatenate(scores).astype(np.float32)


def evaluate_classifier(model, data, image_dir=None, *, name=None, split="validation", val_fraction=0.3,
                        seed=DEFAULT_SPLIT_SEED,
                        batch_size=16, preprocessing="backbone", threshold=0.5, out_dir=None):
    """Score a classifier on the validation split (or all images) of a data set.

    Parameters
    ----------
    model : keras.Model
    data, image_dir
        As :func:`train_classifier`.
    name : str, optional
        Backbone name; default read from the model's name.
    split : {'validation', 'all'}
        'validation' rebuilds :func:`train_classifier`'s split from
        ``val_fraction`` and ``seed`` (give the values used in training).
    val_fraction : float
    seed : int
    batch_size : int
    preprocessing : {'backbone', 'rescale'}
    threshold : float
    out_dir : path, optional
        Figures and metrics.json (see :func:`classification_metrics`).

    Returns
    -------
    dict
        :func:`classification_metrics`' dict plus ``patient_ids`` and ``scores``
        (lists, in evaluation order).
    """
    ids, targets, paths = labelled_images(data, image_dir)
    if split == "validation":
        _, index = split_indices(ids, targets, val_fraction, seed)
    elif split == "all":
        index = list(range(len(ids)))
    else:
        raise ClassifierError(f"split {split!r}: expected 'validation' or 'all'")
    scores = predict_scores(model, [paths[i] for i in index], name=name, batch_size=batch_size,
                            preprocessing=preprocessing)
    metrics = classification_metrics(targets[index], scores, threshold=threshold, out_dir=out_dir)
    metrics["patient_ids"] = [ids[i] for i in index]
    metrics["scores"] = scores.tolist()
    return metrics
