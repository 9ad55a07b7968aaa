"""The classifiers' input sequence: batches of preprocessed DICOM images and labels for Keras."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ...data.dicom import read_dicom
from ..batching import ShuffledBatches
from .preprocessing import classifier_augmentation, preprocess_images
from .settings import ClassifierError, check_name

__all__ = ["ClassifierSequence"]


class ClassifierSequence(ShuffledBatches, keras.utils.PyDataset):
    """Batches of (preprocessed images, labels) read from DICOMs, for ``fit`` and ``predict``.

    Parameters
    ----------
    paths : sequence of path
        DICOM files.
    labels : sequence of int, optional
        0/1 per path; None for prediction (batches are ``(images,)``).
    name : str
        Backbone name, for the preprocessing.
    image_size : int
        Images are read at ``[image_size, image_size]`` (fast DICOM path).
    batch_size : int
    augment : bool
        Apply :func:`classifier_augmentation` (training only).
    shuffle : bool
        Reshuffle at every epoch.
    preprocessing : {'backbone', 'rescale'}
    seed : int

    Batches
    -------
    images float32 [B, S, S, 3] and labels float32 [B, 1]; the last batch may be short.
    """

    def __init__(self, paths, labels=None, *, name="densenet121", image_size=224, batch_size=16,
                 augment=False, shuffle=False, preprocessing="backbone", seed=0, **kwargs):
        super().__init__(**kwargs)
        check_name(name)
        self.paths = [Path(p) for p in paths]
        self.labels = None if labels is None else np.asarray(labels, np.float32).reshape(-1)
        if self.labels is not None and len(self.labels) != len(self.paths):
            raise ClassifierError(f"labels: {len(self.labels)} for {len(self.paths)} paths")
        self.name, self.image_size, self.batch_size = name, int(image_size), int(batch_size)
        self.preprocessing, self.shuffle = preprocessing, shuffle
        self._init_order(classifier_augmentation() if augment else None, seed)

    def read(self, indices):
        """uint8 [B, S, S] images of the given path indices (augmented when training)."""
        images = np.stack([read_dicom(self.paths[i], size=self.image_size)[0] for i in indices])
        if self.augmenter is not None:
            images = np.stack(self.augmenter(images=list(images[..., None])))[..., 0]
        return images

    def __getitem__(self, index):
        indices = self.batch_indices(index)
        images = preprocess_images(self.read(indices), self.name, self.preprocessing)
        if self.labels is None:
            return (images,)
        return images, self.labels[indices][:, None]
