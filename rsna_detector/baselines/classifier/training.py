"""Training a classifier with the report's settings (70:30 patient split, class weights, augmentation)."""
from __future__ import annotations

from ...data.splits import DEFAULT_SPLIT_SEED
from .discovery import class_weights, labelled_images, split_indices
from .models import build_classifier
from .sequence import ClassifierSequence
from .settings import backbone_name

__all__ = ["train_classifier"]


def train_classifier(data, name="densenet121", *, image_dir=None, model=None, weights="imagenet", epochs=3,
                     batch_size=16, image_size=224, val_fraction=0.3, seed=DEFAULT_SPLIT_SEED, augment=True,
                     class_weighting=True, preprocessing="backbone", learning_rate=1e-3, steps_per_epoch=None,
                     verbose=1):
    """Train a pneumonia classifier with the report's settings.

    Parameters
    ----------
    data : path, dict, list or (records, image_dir)
        See :func:`labelled_images`.
    name : str
        One of ``CLASSIFIER_NAMES``.
    image_dir : path, optional
    model : keras.Model, optional
        Continue training this model instead of building one.
    weights : 'imagenet', None or path
        Initial weights (see :func:`build_classifier`).
    epochs : int
        3 in the report.
    batch_size, image_size : int
    val_fraction : float or None
        Patient-level validation share (the report's 70:30 split is 0.3);
        None or 0 trains on every image.
    seed : int
        Split, shuffling and augmentation seed.
    augment, class_weighting : bool
    preprocessing : {'backbone', 'rescale'}
    learning_rate : float
    steps_per_epoch : int, optional
        Fewer batches per epoch than the whole training set.
    verbose : int
        Keras fit verbosity.

    Returns
    -------
    model : keras.Model
    history : keras.callbacks.History
        ``history.history`` holds loss, accuracy, precision, recall, f1 (and
        ``val_*`` when there is a validation set).
    """
    ids, targets, paths = labelled_images(data, image_dir)
    train_index, val_index = split_indices(ids, targets, val_fraction, seed)
    if model is None:
        model = build_classifier(name, weights, (image_size, image_size, 3), learning_rate=learning_rate)
    common = dict(name=backbone_name(model, default=name), image_size=image_size, batch_size=batch_size,
                  preprocessing=preprocessing)
    train_data = ClassifierSequence([paths[i] for i in train_index], targets[train_index], augment=augment,
                                    shuffle=True, seed=seed, **common)
    val_data = (ClassifierSequence([paths[i] for i in val_index], targets[val_index], **common)
                if val_index else None)
    history = model.fit(train_data, validation_data=val_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        class_weight=class_weights(targets[train_index]) if class_weighting else None,
                        verbose=verbose)
    return model, history
