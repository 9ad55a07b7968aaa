"""Ground truth loading, augmentation plumbing and the training input pipeline.

* :func:`load_image_gt` -- matterport's function: one image resized to the
  config's shape, its (optionally augmented) masks, boxes recomputed from the
  masks, and its image meta. Images without objects are returned with empty
  arrays, not skipped.
* :class:`TrainingBatches` -- builds batch ``i`` of an endless, seeded stream of
  training batches as numpy arrays (the training model's seven inputs). Batch
  ``i`` depends only on ``(seed, i)``, so a run with ``config.SEED`` is
  repeatable whatever the thread timing, and a resumed run continues the stream.
* :func:`make_input_dataset` -- the parallel pipeline: a ``tf.data`` map over
  batch indices with ``config.DATA_LOADER_WORKERS`` threads (no process fork,
  nothing that can hang), prefetching, feeding ``keras.Model.fit``.
* :func:`data_generator` -- matterport's generator signature, for notebooks.

Boxes are pixel ``(y1, x1, y2, x2)``, ``y2``/``x2`` exclusive.
"""
from __future__ import annotations

import threading

import numpy as np

from . import utils
from .parallel import EXIT_GUARD, guarded_batch, process_input_dataset
from .targets import build_rpn_targets

__all__ = [
    "MASK_AUGMENTERS",
    "DataPipelineError",
    "load_image_gt",
    "augment_image_and_masks",
    "training_anchors",
    "TrainingBatches",
    "make_input_dataset",
    "data_generator",
    "INPUT_NAMES",
]

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

#: imgaug augmenter classes applied to masks as well as to the image (geometric
#: ones and containers). Every other augmenter (colour, contrast, blur, sharpen,
#: noise...) touches the image only.
MASK_AUGMENTERS = frozenset({
    "Sequential", "SomeOf", "OneOf", "Sometimes", "Identity", "Noop",
    "Fliplr", "Flipud", "Rot90", "CropAndPad", "Crop", "Pad",
    "Affine", "ScaleX", "ScaleY", "TranslateX", "TranslateY", "Rotate", "ShearX", "ShearY",
    "PiecewiseAffine", "PerspectiveTransform", "ElasticTransformation",
})


class DataPipelineError(ValueError):
    """A dataset item or an augmentation cannot be turned into training inputs."""


# ----------------------------------------------------------------------------
# one image
# ----------------------------------------------------------------------------

def load_image_gt(dataset, config, image_id, augmentation=None, seed=None, *, use_mini_mask=None, augment=False):
    """Load an image with its ground truth, resized (and augmented) for training.

    Parameters
    ----------
    dataset : utils.Dataset
        Prepared dataset; ``load_image`` gives uint8 ``[H, W, 3]``, ``load_mask``
        bool ``[H, W, N]`` and int ``[N]`` (``N`` may be 0).
    config : Config
    image_id : int
        Index into ``dataset.image_ids``.
    augmentation : imgaug.augmenters.Augmenter, optional
        Applied to the image; only the :data:`MASK_AUGMENTERS` among it are
        applied to the masks, with the same random draws.
    seed : int, optional
        Seed of the random draws (augmentation, 'crop' position); unseeded when None.
    use_mini_mask : bool, optional
        matterport's keyword: overrides ``config.USE_MINI_MASK`` (RSNA notebooks
        pass ``use_mini_mask=False`` to get full-size masks for evaluation).
    augment : bool
        matterport's deprecated keyword: a horizontal flip with probability 0.5.

    Returns
    -------
    image : uint8 [h, w, 3]
        Resized to the config's shape (``utils.resize_image``).
    image_meta : float64 [IMAGE_META_SIZE]
        ``utils.compose_image_meta``.
    class_ids : int32 [n]
    bbox : int32 [n, (y1, x1, y2, x2)]
        Recomputed from the (augmented) masks; an instance whose mask left the
        image is dropped.
    mask : bool [h, w, n], or [MINI_MASK_SHAPE..., n] when ``config.USE_MINI_MASK``

    Raises
    ------
    DataPipelineError
        When the masks do not match the image or the class ids, or when the
        augmentation changes the image size.
    """
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    mask, class_ids = _check_ground_truth(dataset, image_id, image, mask, class_ids)
    original_shape = image.shape
    image, window, scale, padding, crop = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE,
        rng=np.random.default_rng(seed),
    )
    if mask.shape[-1]:
        mask = utils.resize_mask(mask, scale, padding, crop)
    else:
        mask = np.zeros(image.shape[:2] + (0,), dtype=bool)

    if augment and np.random.default_rng(seed).random() < 0.5:
        image, mask = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
    if augmentation is not None:
        image, mask = augment_image_and_masks(image, mask, augmentation, seed)

    present = np.any(mask, axis=(0, 1)) if mask.shape[-1] else np.zeros(0, dtype=bool)
    mask, class_ids = mask[:, :, present], class_ids[present]
    bbox = utils.extract_bboxes(mask).astype(np.int32).reshape(-1, 4)

    active_class_ids = np.zeros(dataset.num_classes, dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active_class_ids[dataset.source_class_ids[source]] = 1
    if config.USE_MINI_MASK if use_mini_mask is None else use_mini_mask:
        if mask.shape[-1]:
            mask = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
        else:
            mask = np.zeros(tuple(config.MINI_MASK_SHAPE) + (0,), dtype=bool)
    image_meta = utils.compose_image_meta(image_id, original_shape, image.shape, window, scale, active_class_ids)
    return image, image_meta, class_ids, bbox, mask


def _check_ground_truth(dataset, image_id, image, mask, class_ids):
    where = f"image {image_id} ({_reference(dataset, image_id)})"
    image = np.asarray(image)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    if image.ndim != 3:
        raise DataPipelineError(f"{where}: load_image must return [H, W, C], got shape {image.shape}")
    if mask.ndim == 2 and mask.size == 0:
        mask = np.zeros(image.shape[:2] + (0,), dtype=bool)
    if mask.ndim != 3 or mask.shape[:2] != image.shape[:2]:
        raise DataPipelineError(
            f"{where}: load_mask must return [H, W, N] with H, W = {image.shape[:2]}, got shape {mask.shape}")
    if mask.shape[-1] != len(class_ids):
        raise DataPipelineError(
            f"{where}: load_mask returned {mask.shape[-1]} masks but {len(class_ids)} class ids")
    return mask.astype(bool), class_ids


def _reference(dataset, image_id):
    try:
        return dataset.image_reference(image_id)
    except Exception:  # a reference is only decoration for the message
        return "no reference"


def augment_image_and_masks(image, mask, augmentation, seed=None):
    """Apply one random draw of ``augmentation`` to an image and its masks.

    The augmenter is frozen (``to_deterministic``) so that the image and the
    masks see the same draw; the masks only go through :data:`MASK_AUGMENTERS`.

    Parameters
    ----------
    image : uint8 [H, W, C]
    mask : bool [H, W, N]
    augmentation : imgaug.augmenters.Augmenter
    seed : int, optional
        Seeds the draw (the shared augmenter itself is left untouched).

    Returns
    -------
    (uint8 [H, W, C], bool [H, W, N])

    Raises
    ------
    DataPipelineError
        When the augmentation changes the image or mask size.
    """
    import imgaug

    frozen = augmentation.deepcopy()
    if seed is not None:
        frozen.seed_(int(seed))
    frozen = frozen.to_deterministic()
    augmented = frozen.augment_image(image)
    if augmented.shape != image.shape:
        raise DataPipelineError(
            f"augmentation changed the image shape from {image.shape} to {augmented.shape}; "
            "use size-preserving augmenters (keep_size=True)")
    if mask.shape[-1]:
        hooks = imgaug.HooksImages(activator=_mask_safe)
        # 0/255 so that interpolating augmenters can be thresholded at half way
        moved = frozen.augment_image(mask.astype(np.uint8) * 255, hooks=hooks)
        if moved.shape != mask.shape:
            raise DataPipelineError(f"augmentation changed the mask shape from {mask.shape} to {moved.shape}")
        mask = moved >= 128
    return augmented, mask


def _mask_safe(images, augmenter, parents, default):
    """imgaug activator hook: run only mask-safe augmenters on masks."""
    del images, parents, default
    return augmenter.__class__.__name__ in MASK_AUGMENTERS


# ----------------------------------------------------------------------------
# anchors
# ----------------------------------------------------------------------------

def training_anchors(config, image_shape=None):
    """Pixel anchors of the pyramid levels that get anchors, in the RPN's output order.

    Parameters
    ----------
    config : Config
    image_shape : sequence, optional
        Defaults to ``config.IMAGE_SHAPE``.

    Returns
    -------
    float32 ndarray [A, (y1, x1, y2, x2)]
        Levels ``P2 .. P(1 + RPN_PYRAMID_LEVELS)``; within a level, row-major
        positions then ratios.
    """
    image_shape = config.IMAGE_SHAPE if image_shape is None else image_shape
    levels = config.RPN_PYRAMID_LEVELS
    shapes = np.asarray(utils.compute_backbone_shapes(config, image_shape))[:levels]
    anchors = utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES[:levels], config.RPN_ANCHOR_RATIOS, shapes,
        config.BACKBONE_STRIDES[:levels], config.RPN_ANCHOR_STRIDE,
    )
    return np.asarray(anchors, dtype=np.float32)


# ----------------------------------------------------------------------------
# batches
# ----------------------------------------------------------------------------

class TrainingBatches:
    """Batch ``i`` of an endless stream of training batches, as numpy arrays.

    The stream visits the dataset epoch after epoch, each data epoch in a fresh
    permutation (when ``shuffle``), ``batch_size`` images per batch; images
    without objects are kept. Every random draw of batch ``i`` (order,
    augmentation, anchor and instance subsampling) comes from ``(seed, i)``, so
    batches can be built in any order, in parallel, and again.

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
        Default ``config.SEED``; when both are None a random seed is drawn once.
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
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.batch_size = int(batch_size or config.BATCH_SIZE)
        self.anchors = training_anchors(config)
        self._permutations = {}
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
        """Image ids of batch ``index``."""
        start = int(index) * self.batch_size
        return [self.image_id_at(start + j) for j in range(self.batch_size)]

    # ---- building ----
    def sample(self, image_id, rng):
        """The seven per-image arrays for one image (see :meth:`batch`)."""
        config = self.config
        augmentation = self.augmentation
        if self.dataset.image_info[image_id]["source"] in self.no_augmentation_sources:
            augmentation = None
        seed = int(rng.integers(2**31 - 1))
        try:
            image, image_meta, class_ids, boxes, masks = load_image_gt(
                self.dataset, config, image_id, augmentation=augmentation, seed=seed)
        except DataPipelineError:
            raise
        except Exception as exc:
            raise DataPipelineError(
                f"image {image_id} ({_reference(self.dataset, image_id)}): {type(exc).__name__}: {exc}"
            ) from exc
        if len(class_ids) > config.MAX_GT_INSTANCES:
            keep = np.sort(rng.choice(len(class_ids), config.MAX_GT_INSTANCES, replace=False))
            class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[:, :, keep]
        rpn_match, rpn_bbox = build_rpn_targets(image.shape, self.anchors, class_ids, boxes, config, rng=rng)
        return image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks

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
            image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks = self.sample(image_ids[slot], rng)
            count = len(class_ids)
            arrays[0][row] = utils.mold_image(image.astype(np.float32), self.config)
            arrays[1][row] = image_meta
            arrays[2][row, :, 0] = rpn_match
            arrays[3][row] = rpn_bbox
            arrays[4][row, :count] = class_ids
            arrays[5][row, :count] = boxes
            arrays[6][row, :, :, :count] = masks
        return tuple(arrays)

    def __getstate__(self):  # worker processes get a copy (parallel.process_input_dataset)
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
    (:data:`.parallel.EXIT_GUARD`).

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
        for array, shape in zip(arrays, shapes):
            array.set_shape(shape)
        return (tuple(arrays),)

    dataset = tf.data.Dataset.range(int(start_batch), 2**62)
    dataset = dataset.map(load, num_parallel_calls=max(workers, 1), deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    if workers == 0:
        options.threading.private_threadpool_size = 1
    return dataset.with_options(options).prefetch(max(int(prefetch), 0))


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None, random_rois=0,
                   batch_size=1, detection_targets=False, no_augmentation_sources=None):
    """matterport's generator: yields ``(inputs, [])`` forever.

    ``inputs`` are the training model's seven arrays (see
    :meth:`TrainingBatches.batch`). Images without objects are yielded too.
    ``augment`` (deprecated in matterport), ``random_rois`` and
    ``detection_targets`` (matterport debugging aids) are not supported.
    """
    if augment or random_rois or detection_targets:
        raise DataPipelineError(
            "data_generator: augment, random_rois and detection_targets are not supported; "
            "pass an imgaug augmenter as augmentation")
    batches = TrainingBatches(dataset, config, shuffle=shuffle, augmentation=augmentation,
                              no_augmentation_sources=no_augmentation_sources, batch_size=batch_size)
    index = 0
    while True:
        yield list(batches.batch(index)), []
        index += 1
