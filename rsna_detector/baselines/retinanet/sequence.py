"""RetinaNet's input pipeline: batches of images and padded boxes, streamed as a ``tf.data.Dataset``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from ...data.labels import scale_boxes
from ..batching import ShuffledBatches
from .preprocessing import augment_image_and_boxes, preprocess_images, read_grey_image, retinanet_augmentation
from .settings import DEFAULT_IMAGE_SIZE, RetinaNetError

__all__ = ["RetinaNetSequence"]


class RetinaNetSequence(ShuffledBatches):
    """Batches of (preprocessed images, {'boxes', 'labels'}) for keras-hub's RetinaNet.

    keras-hub's ``fit`` takes arrays or a ``tf.data.Dataset`` (not a Keras
    ``PyDataset``): :meth:`as_dataset` streams the batches through
    ``tf.data.Dataset.from_generator``, reading the next batch while the model
    trains on the current one.

    Parameters
    ----------
    paths : sequence of path
        DICOM or PNG/JPEG files.
    boxes : sequence of float arrays [N_i, (y1, x1, y2, x2)], optional
        Per image, pixels of the original file; None for prediction.
    image_size : int
    batch_size : int
    augment : bool
        Apply :func:`retinanet_augmentation` to image and boxes (training only).
    shuffle : bool
        Reshuffle at every epoch (:meth:`on_epoch_end`).
    max_boxes : int, optional
        Boxes per image after padding; default the largest count (at least 1).
    seed : int

    Batches
    -------
    images float32 [B, S, S, 3]; ``boxes`` float32 [B, max_boxes, 4] in input
    pixels and ``labels`` float32 [B, max_boxes] (0 = Pneumonia), both padded
    with -1; the last batch may be short. Without boxes: ``(images,)``.
    """

    def __init__(self, paths, boxes=None, *, image_size=DEFAULT_IMAGE_SIZE, batch_size=8, augment=False,
                 shuffle=False, max_boxes=None, seed=0):
        self.paths = [Path(p) for p in paths]
        self.boxes = None if boxes is None else [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
        if self.boxes is not None and len(self.boxes) != len(self.paths):
            raise RetinaNetError(f"boxes: {len(self.boxes)} arrays for {len(self.paths)} paths")
        counts = [len(b) for b in self.boxes] if self.boxes else [0]
        self.max_boxes = int(max_boxes or max(1, max(counts)))
        self.image_size, self.batch_size, self.shuffle = int(image_size), int(batch_size), shuffle
        self._init_order(retinanet_augmentation() if augment else None, seed)

    def sample(self, index):
        """Image ``index`` (uint8 [S, S]) and its boxes in input pixels (float32 [N, 4]), augmented when training."""
        image, original = read_grey_image(self.paths[index], self.image_size)
        boxes = np.zeros((0, 4), np.float32) if self.boxes is None else scale_boxes(
            self.boxes[index], original, self.image_size).astype(np.float32)
        if self.augmenter is not None:
            image, boxes = augment_image_and_boxes(self.augmenter, image, boxes)
        return image, boxes[: self.max_boxes]

    def __getitem__(self, index):
        indices = self.batch_indices(index)
        samples = [self.sample(i) for i in indices]
        images = preprocess_images(np.stack([image for image, _ in samples]))
        if self.boxes is None:
            return (images,)
        boxes = np.full((len(samples), self.max_boxes, 4), -1.0, np.float32)
        labels = np.full((len(samples), self.max_boxes), -1.0, np.float32)
        for row, (_, sample_boxes) in enumerate(samples):
            boxes[row, : len(sample_boxes)] = sample_boxes
            labels[row, : len(sample_boxes)] = 0.0
        return images, {"boxes": boxes, "labels": labels}

    def as_dataset(self):
        """A ``tf.data.Dataset`` of the batches (one pass = one epoch, reshuffled after each pass)."""
        size = self.image_size
        images = tf.TensorSpec((None, size, size, 3), tf.float32)
        if self.boxes is None:
            signature = (images,)
        else:
            signature = (images, {"boxes": tf.TensorSpec((None, self.max_boxes, 4), tf.float32),
                                  "labels": tf.TensorSpec((None, self.max_boxes), tf.float32)})

        def batches():
            for index in range(len(self)):
                yield self[index]
            self.on_epoch_end()

        dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(1)
