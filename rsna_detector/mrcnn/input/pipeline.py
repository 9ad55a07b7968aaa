"""The training input pipeline: seeded batches of the training model's inputs, built in parallel.

* :class:`TrainingBatches` -- builds batch ``i`` of an endless, seeded stream of
  training batches as numpy arrays (the training model's seven inputs,
  :data:`INPUT_NAMES`). Batch ``i`` depends only on ``(seed, i)``, so a run with
  ``config.SEED`` is repeatable whatever the thread timing, and a resumed run
  continues the stream.
* :func:`make_input_dataset` -- the parallel pipeline: a ``tf.data`` map over
  batch indices with ``config.DATA_LOADER_WORKERS`` threads (no process fork,
  nothing that can hang) or ``config.DATA_LOADER_PROCESSES`` worker processes,
  prefetching, feeding ``keras.Model.fit``.

Images without objects: matterport skips them in training, and so does
:class:`TrainingBatches` with the default ``config.TRAIN_ON_EMPTY_IMAGES = False``;
with ``True`` (``DetectorConfig``: 77 % of RSNA images are negative) they are
trained on. Each image is loaded by ``data.load_image_gt``.

Boxes are pixel ``(y1, x1, y2, x2)``, ``y2``/``x2`` exclusive.
"""
from __future__ import annotations

import threading

import numpy as np

from ..ops.anchors import pyramid_anchors
from ..ops.molding import mold_image
from .ground_truth import DataPipelineError, describe_image, has_objects, load_image_gt, subsample_instances
from .rpn_targets import build_rpn_targets
from .workers import EXIT_GUARD, guarded_batch, process_input_dataset

__all__ = ["INPUT_NAMES", "TrainingBatches", "make_input_dataset"]

#: Names of the training model's inputs, in order.
INPUT_NAMES = (
    "input_image",
    "input_image_meta",
    "input_rpn_match",
    "input_rpn_bbox",
    "input_gt_class_ids",
    "input_gt_boxes",
    "input_gt_masks",
)


class TrainingBatches:
    """Batch ``i`` of an endless stream of training batches, as numpy arrays.

    The stream visits the dataset epoch after epoch, each data epoch in a fresh
    permutation (when ``shuffle``), ``batch_size`` images per batch. Every random
    draw of batch ``i`` (order, augmentation, anchor and instance subsampling)
    comes from ``(seed, i)``, so batches can be built in any order, in parallel,
    and again.

    Images without objects (no class id > 0 after loading and augmenting) are
    trained on when ``config.TRAIN_ON_EMPTY_IMAGES``; otherwise, as matterport,
    they are skipped: the slot takes an image drawn at random (from the slot's
    own random stream) until one has objects. Whether ``load_mask`` gives an
    object is asked once per image, so an image without any is never decoded.

    Parameters
    ----------
    dataset : utils.Dataset
        Prepared; its ``num_classes`` must equal ``config.NUM_CLASSES``.
    config : Config
    shuffle : bool
    augmentation : imgaug augmenter, optional
    no_augmentation_sources : list of str, optional
        Dataset sources whose images are never augmented.
    seed : int, optional
        Default ``config.SEED``; when both are None one is drawn from the global
        ``np.random`` (so ``np.random.seed`` repeats the stream).
    batch_size : int, optional
        Default ``config.BATCH_SIZE``.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None, no_augmentation_sources=None,
                 seed=None, batch_size=None):
        if dataset.num_classes != config.NUM_CLASSES:
            raise DataPipelineError(
                f"dataset has {dataset.num_classes} classes (with BG) but config.NUM_CLASSES is "
                f"{config.NUM_CLASSES}")
        if not len(dataset.image_ids):
            raise DataPipelineError("dataset has no images (did you call prepare()?)")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.no_augmentation_sources = set(no_augmentation_sources or ())
        if seed is None:
            seed = config.SEED
        self.seed = int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
        self.batch_size = int(batch_size or config.BATCH_SIZE)
        self.anchors = pyramid_anchors(config)
        self._permutations = {}
        self._mask_verdicts = {}  # image id -> whether load_mask gives an object
        self._lock = threading.Lock()  # batches are built by several threads

    # ---- which image goes where ----
    def image_id_at(self, position):
        """Image id at ``position`` of the stream (any non-negative int)."""
        count = len(self.dataset.image_ids)
        data_epoch, offset = divmod(int(position), count)
        if not self.shuffle:
            return int(self.dataset.image_ids[offset])
        with self._lock:
            order = self._permutations.get(data_epoch)
            if order is None:
                order = np.random.default_rng([self.seed, data_epoch]).permutation(count)
                if len(self._permutations) > 4:  # keep a few: workers straddle epoch ends
                    self._permutations.pop(min(self._permutations))
                self._permutations[data_epoch] = order
        return int(self.dataset.image_ids[order[offset]])

    def batch_image_ids(self, index):
        """Image ids at the positions of batch ``index`` (before any empty image is replaced)."""
        start = int(index) * self.batch_size
        return [self.image_id_at(start + j) for j in range(self.batch_size)]

    # ---- building ----
    def sample(self, image_id, rng):
        """The seven per-image arrays for one image (see :meth:`batch`).

        Returns None for an image without objects when images without objects
        are skipped (``config.TRAIN_ON_EMPTY_IMAGES`` False).
        """
        config = self.config
        augmentation = self.augmentation
        if self.dataset.image_info[image_id]["source"] in self.no_augmentation_sources:
            augmentation = None
        try:
            image, image_meta, class_ids, boxes, masks = load_image_gt(
                self.dataset, config, image_id, augmentation=augmentation,
                use_mini_mask=config.USE_MINI_MASK, seed=rng)
        except DataPipelineError:
            raise
        except Exception as exc:
            raise DataPipelineError(
                f"{describe_image(self.dataset, image_id)}: {type(exc).__name__}: {exc}"
            ) from exc
        if not config.TRAIN_ON_EMPTY_IMAGES and not has_objects(class_ids):
            return None
        # RPN targets from every instance, then the instance cap (matterport's order).
        rpn_match, rpn_bbox = build_rpn_targets(image.shape, self.anchors, class_ids, boxes, config, rng=rng)
        class_ids, boxes, masks = subsample_instances(class_ids, boxes, masks, config.MAX_GT_INSTANCES, rng)
        return image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks

    def _may_have_objects(self, image_id):
        """Whether ``load_mask`` gives an object (asked once per image): if not, the image is never loaded."""
        verdict = self._mask_verdicts.get(image_id)
        if verdict is None:
            verdict = self._mask_verdicts[image_id] = has_objects(self.dataset.load_mask(image_id)[1])
        return verdict

    def _sample_for_slot(self, image_id, rng):
        """:meth:`sample` of ``image_id`` or, when it is skipped, of random replacements."""
        if self.config.TRAIN_ON_EMPTY_IMAGES:
            return self.sample(image_id, rng)
        ids = self.dataset.image_ids
        for _ in range(10 * len(ids) + 100):
            if self._may_have_objects(image_id):
                sample = self.sample(image_id, rng)
                if sample is not None:
                    return sample
            image_id = int(ids[rng.integers(len(ids))])
        raise DataPipelineError(
            f"no image with objects found in {10 * len(ids) + 100} draws from {len(ids)} images; "
            "set config.TRAIN_ON_EMPTY_IMAGES = True to train on images without objects")

    def batch(self, index, slots=None):
        """Batch ``index`` of the stream, or some of its slots.

        Parameters
        ----------
        index : int
        slots : range, optional
            Positions within the batch to build (a replica's share under a
            distribution strategy); default all ``batch_size``. A slot's arrays
            do not depend on which other slots are built.

        Returns
        -------
        tuple of ndarrays, in :data:`INPUT_NAMES` order
            images float32 [B, H, W, C] (molded: mean pixel subtracted);
            image_meta float32 [B, IMAGE_META_SIZE];
            rpn_match int32 [B, A, 1];
            rpn_bbox float32 [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4];
            gt_class_ids int32 [B, MAX_GT_INSTANCES] (0 = padding);
            gt_boxes float32 [B, MAX_GT_INSTANCES, 4] (pixels, zero padding);
            gt_masks float32 [B, mh, mw, MAX_GT_INSTANCES] in {0, 1} (not bool:
            ``tf.distribute`` cannot reduce bool tensors when Keras builds the model).
        """
        slots = range(self.batch_size) if slots is None else slots
        arrays = self._empty_batch(len(slots))
        image_ids = self.batch_image_ids(index)
        for row, slot in enumerate(slots):
            rng = np.random.default_rng([self.seed, int(index), slot])
            image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks = self._sample_for_slot(
                image_ids[slot], rng)
            count = len(class_ids)
            arrays[0][row] = mold_image(image, self.config)
            arrays[1][row] = image_meta
            arrays[2][row, :, 0] = rpn_match
            arrays[3][row] = rpn_bbox
            arrays[4][row, :count] = class_ids
            arrays[5][row, :count] = boxes
            arrays[6][row, :, :, :count] = masks
        return tuple(arrays)

    def __getstate__(self):  # worker processes get a copy (workers.process_input_dataset)
        state = dict(self.__dict__)
        state.pop("_lock")
        state["_permutations"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def empty_batch(self, batch=None):
        """All-zero arrays of :meth:`batch`'s dtypes and shapes (``batch`` images, default ``batch_size``)."""
        return tuple(self._empty_batch(batch))

    def _empty_batch(self, batch=None):
        batch, config = self.batch_size if batch is None else batch, self.config
        return [
            np.zeros((batch,) + tuple(int(v) for v in config.IMAGE_SHAPE), np.float32),
            np.zeros((batch, config.IMAGE_META_SIZE), np.float32),
            np.zeros((batch, len(self.anchors), 1), np.int32),
            np.zeros((batch, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), np.float32),
            np.zeros((batch, config.MAX_GT_INSTANCES), np.int32),
            np.zeros((batch, config.MAX_GT_INSTANCES, 4), np.float32),
            np.zeros((batch,) + self.gt_mask_shape() + (config.MAX_GT_INSTANCES,), np.float32),
        ]

    def gt_mask_shape(self):
        """``(mh, mw)`` of the ground-truth masks in a batch."""
        if self.config.USE_MINI_MASK:
            return tuple(int(v) for v in self.config.MINI_MASK_SHAPE)
        return tuple(int(v) for v in self.config.IMAGE_SHAPE[:2])

    def signature(self, batch=None):
        """``(dtypes, shapes)`` of :meth:`batch`'s arrays (batch dimension ``batch``, default ``batch_size``)."""
        arrays = self._empty_batch(batch)
        return [a.dtype for a in arrays], [a.shape for a in arrays]


def make_input_dataset(batches, start_batch=0, workers=None, prefetch=2, processes=None):
    """An endless ``tf.data.Dataset`` of batches ``start_batch, start_batch + 1, ...``.

    Batches are built by ``processes`` worker processes (default
    ``config.DATA_LOADER_PROCESSES``; :func:`.parallel.process_input_dataset`)
    or, when that is 0, by ``workers`` threads (default
    ``config.DATA_LOADER_WORKERS``; 0 builds them in the consuming thread), in
    a deterministic order: the same batches either way. An exception in a
    worker stops the input with the image it concerns named; nothing is forked,
    and a live pipeline does not keep the process from exiting
    (:data:`.parallel.EXIT_GUARD`). Images without objects are skipped or kept
    as :class:`TrainingBatches` says (``config.TRAIN_ON_EMPTY_IMAGES``).

    Parameters
    ----------
    batches : TrainingBatches
    start_batch : int
        First batch index (``initial_epoch * STEPS_PER_EPOCH`` continues a run).
    workers : int, optional
    prefetch : int
        Batches built ahead of the training step.
    processes : int, optional
        Worker processes; 0 builds in threads. A builder that a fresh process
        cannot import (classes defined in ``__main__``) is built in threads.

    Returns
    -------
    tf.data.Dataset
        Elements ``((images, image_meta, rpn_match, rpn_bbox, gt_class_ids,
        gt_boxes, gt_masks),)``: a 1-tuple, so that Keras takes the seven
        arrays as ``x``.
    """
    import tensorflow as tf

    workers = batches.config.DATA_LOADER_WORKERS if workers is None else int(workers)
    processes = getattr(batches.config, "DATA_LOADER_PROCESSES", 0) if processes is None else int(processes)
    dtypes, shapes = batches.signature()
    tf_dtypes = [tf.as_dtype(d) for d in dtypes]

    if processes:
        dataset = process_input_dataset(batches, processes, start_batch, prefetch)
        if dataset is not None:
            return dataset
    EXIT_GUARD.register()

    def build(index):
        return guarded_batch(batches, index)

    def load(index):
        arrays = tf.numpy_function(build, [index], tf_dtypes, stateful=False)
        for array, shape in zip(arrays, shapes, strict=True):
            array.set_shape(shape)
        return (tuple(arrays),)

    dataset = tf.data.Dataset.range(int(start_batch), 2**62)
    dataset = dataset.map(load, num_parallel_calls=max(workers, 1), deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    if workers == 0:
        options.threading.private_threadpool_size = 1
    return dataset.with_options(options).prefetch(max(int(prefetch), 0))
