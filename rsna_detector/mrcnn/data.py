"""Ground truth loading, augmentation plumbing and the training input pipeline.

* :func:`load_image_gt` -- matterport's function: one image resized to the
  config's shape, its (optionally augmented) masks, boxes recomputed from the
  masks, and its image meta.
* :class:`TrainingBatches` -- builds batch ``i`` of an endless, seeded stream of
  training batches as numpy arrays (the training model's seven inputs). Batch
  ``i`` depends only on ``(seed, i)``, so a run with ``config.SEED`` is
  repeatable whatever the thread timing, and a resumed run continues the stream.
* :func:`make_input_dataset` -- the parallel pipeline: a ``tf.data`` map over
  batch indices with ``config.DATA_LOADER_WORKERS`` threads (no process fork,
  nothing that can hang), prefetching, feeding ``keras.Model.fit``.
* :func:`data_generator` -- matterport's generator, draw for draw (for notebooks).

Images without objects: matterport skips them in training. So do
:class:`TrainingBatches` and :func:`data_generator` with the default
``config.TRAIN_ON_EMPTY_IMAGES = False``; with ``True`` (``DetectorConfig``:
77 % of RSNA images are negative) they are trained on.

Randomness: with no seed (``config.SEED`` None and no ``seed`` argument), every
draw comes from where matterport takes it -- the global ``np.random`` (order,
anchor, ROI and instance sampling), Python's ``random`` (the ``augment`` flip
and the 'crop' position) and the augmenter's own imgaug random state -- so
``np.random.seed`` (with ``random.seed`` / ``imgaug.seed`` where those are used)
repeats a run, and :func:`data_generator` repeats matterport's own draws. With a
seed, every draw comes from a ``numpy.random.Generator`` made from it.

Boxes are pixel ``(y1, x1, y2, x2)``, ``y2``/``x2`` exclusive.
"""
from __future__ import annotations

import functools
import logging
import random
import threading

import numpy as np

from ..errors import RsnaDetectorError
from . import utils
from .head_targets import build_detection_targets, generate_random_rois
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

logger = logging.getLogger(__name__)

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

#: imgaug augmenter classes applied to the masks as well as to the image:
#: matterport's list (containers and the geometric augmenters it trusted). Every
#: other augmenter touches the image only -- including geometric ones matterport
#: left out (Rot90, Crop, Pad, PerspectiveTransform, ...), so keep to these for
#: anything that moves pixels.
MASK_AUGMENTERS = frozenset({
    "Sequential", "SomeOf", "OneOf", "Sometimes",
    "Fliplr", "Flipud", "CropAndPad", "Affine", "PiecewiseAffine",
})

# matterport gives up after this many failing images in data_generator.
_MAX_GENERATOR_ERRORS = 5


class DataPipelineError(RsnaDetectorError, ValueError):
    """A dataset item or an augmentation cannot be turned into training inputs."""


# ----------------------------------------------------------------------------
# one image
# ----------------------------------------------------------------------------

def _as_rng(seed):
    """None (matterport's global sources), or a Generator from an int seed or a Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _coin(rng):
    """0 or 1: Python's ``random.randint(0, 1)`` as matterport, or ``rng``."""
    return random.randint(0, 1) if rng is None else int(rng.integers(0, 2))


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None, use_mini_mask=False, *,
                  seed=None):
    """Load an image with its ground truth, resized (and augmented) for training.

    matterport's signature and results.

    Parameters
    ----------
    dataset : utils.Dataset
        Prepared dataset; ``load_image`` gives ``[H, W, C]``, ``load_mask``
        ``[H, W, N]`` masks and ``[N]`` class ids (``N`` may be 0).
    config : Config
    image_id : int
        Index into ``dataset.image_ids``.
    augment : bool
        matterport's deprecated option: a horizontal flip with probability 0.5.
    augmentation : imgaug.augmenters.Augmenter, optional
        Applied to the image; only the :data:`MASK_AUGMENTERS` among it are
        applied to the masks, with the same random draws.
    use_mini_mask : bool
        Return masks resized to ``config.MINI_MASK_SHAPE`` inside their boxes
        (``utils.minimize_mask``) instead of image-sized ones.
    seed : int or numpy.random.Generator, optional
        Extension: the source of the random draws (crop position, flip,
        augmentation). None draws them where matterport does (Python's
        ``random``; the augmenter's own state, which advances).

    Returns
    -------
    image : [h, w, C], the image's dtype
        Resized to the config's shape (``utils.resize_image``).
    image_meta : [IMAGE_META_SIZE]
        ``utils.compose_image_meta``.
    class_ids : [n], the dtype of ``load_mask``'s class ids
    bbox : int32 [n, (y1, x1, y2, x2)]
        Recomputed from the (augmented) masks; an instance whose mask left the
        image is dropped.
    mask : bool [h, w, n], or [MINI_MASK_SHAPE..., n] with ``use_mini_mask``

    Raises
    ------
    DataPipelineError
        When the masks do not match the image or the class ids, or when the
        augmentation changes the image size.
    """
    rng = _as_rng(seed)
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    mask, class_ids = _check_ground_truth(dataset, image_id, image, mask, class_ids)
    original_shape = image.shape
    image, window, scale, padding, crop = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE, rng=rng)
    mask = utils.resize_mask(mask, scale, padding, crop)

    if augment:
        _warn_augment_deprecated()
        if _coin(rng):
            image, mask = np.fliplr(image), np.fliplr(mask)
    if augmentation:
        image, mask = augment_image_and_masks(image, mask, augmentation, rng)

    present = np.sum(mask, axis=(0, 1)) > 0
    mask, class_ids = mask[:, :, present], class_ids[present]
    bbox = utils.extract_bboxes(mask)

    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active_class_ids[dataset.source_class_ids[source]] = 1
    if use_mini_mask:
        mask = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = utils.compose_image_meta(image_id, original_shape, image.shape, window, scale, active_class_ids)
    return image, image_meta, class_ids, bbox, mask


@functools.lru_cache(maxsize=None)
def _warn_augment_deprecated():
    """Log matterport's deprecation warning, once per process (matterport logged it on every call)."""
    logger.warning("'augment' is deprecated. Use 'augmentation' instead.")


def _check_ground_truth(dataset, image_id, image, mask, class_ids):
    """bool masks [H, W, N] and class ids [N]; no-instance masks of any shape become [H, W, 0]."""
    where = f"image {image_id} ({_reference(dataset, image_id)})"
    image = np.asarray(image)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids).reshape(-1)
    if image.ndim != 3:
        raise DataPipelineError(f"{where}: load_image must return [H, W, C], got shape {image.shape}")
    if mask.size == 0 and len(class_ids) == 0:
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
    masks see the same draw; the masks (as uint8 0/1, as matterport) only go
    through :data:`MASK_AUGMENTERS`, and come back as ``!= 0``.

    Parameters
    ----------
    image : [H, W, C]
    mask : bool [H, W, N]
    augmentation : imgaug.augmenters.Augmenter
    seed : int or numpy.random.Generator, optional
        Seeds a copy of the augmenter (the shared one is left untouched, so
        threads can share it). None freezes the augmenter itself, which
        advances its random state, as matterport.

    Returns
    -------
    ([H, W, C], bool [H, W, N])

    Raises
    ------
    DataPipelineError
        When the augmentation changes the image or mask size.
    """
    import imgaug

    rng = _as_rng(seed)
    if rng is None:
        frozen = augmentation.to_deterministic()
    else:
        frozen = augmentation.deepcopy()
        frozen.seed_(int(rng.integers(2**31 - 1)))
        frozen = frozen.to_deterministic()
    augmented = frozen.augment_image(image)
    if augmented.shape != image.shape:
        raise DataPipelineError(
            f"augmentation changed the image shape from {image.shape} to {augmented.shape}; "
            "use size-preserving augmenters (keep_size=True)")
    if mask.shape[-1]:
        hooks = imgaug.HooksImages(activator=_mask_safe)
        moved = frozen.augment_image(mask.astype(np.uint8), hooks=hooks)
        if moved.shape != mask.shape:
            raise DataPipelineError(f"augmentation changed the mask shape from {mask.shape} to {moved.shape}")
        mask = moved.astype(bool)
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
    float64 ndarray [A, (y1, x1, y2, x2)]
        Levels ``P2 .. P(1 + RPN_PYRAMID_LEVELS)``; within a level, row-major
        positions then ratios. The anchors matterport's ``data_generator`` uses
        (float64, so that the IoUs of the RPN targets are matterport's).
    """
    image_shape = config.IMAGE_SHAPE if image_shape is None else image_shape
    levels = config.RPN_PYRAMID_LEVELS
    shapes = np.asarray(utils.compute_backbone_shapes(config, image_shape))[:levels]
    return utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES[:levels], config.RPN_ANCHOR_RATIOS, shapes,
        config.BACKBONE_STRIDES[:levels], config.RPN_ANCHOR_STRIDE,
    )


def _subsample_instances(class_ids, boxes, masks, limit, rng):
    """At most ``limit`` instances, chosen at random (matterport's draw, unsorted)."""
    if len(class_ids) <= limit:
        return class_ids, boxes, masks
    ids = (np.random if rng is None else rng).choice(np.arange(len(class_ids)), limit, replace=False)
    return class_ids[ids], boxes[ids], masks[:, :, ids]


def _has_objects(class_ids):
    return bool(np.any(np.asarray(class_ids) > 0))


# ----------------------------------------------------------------------------
# batches
# ----------------------------------------------------------------------------

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
        self.anchors = training_anchors(config)
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
                f"image {image_id} ({_reference(self.dataset, image_id)}): {type(exc).__name__}: {exc}"
            ) from exc
        if not config.TRAIN_ON_EMPTY_IMAGES and not _has_objects(class_ids):
            return None
        # RPN targets from every instance, then the instance cap (matterport's order).
        rpn_match, rpn_bbox = build_rpn_targets(image.shape, self.anchors, class_ids, boxes, config, rng=rng)
        class_ids, boxes, masks = _subsample_instances(class_ids, boxes, masks, config.MAX_GT_INSTANCES, rng)
        return image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks

    def _may_have_objects(self, image_id):
        """Whether ``load_mask`` gives an object (asked once per image): if not, the image is never loaded."""
        verdict = self._mask_verdicts.get(image_id)
        if verdict is None:
            verdict = self._mask_verdicts[image_id] = _has_objects(self.dataset.load_mask(image_id)[1])
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
            arrays[0][row] = utils.mold_image(image, self.config)
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


# ----------------------------------------------------------------------------
# matterport's generator
# ----------------------------------------------------------------------------

def _generator_sample(dataset, config, image_id, anchors, options, rng):
    """One image's arrays for :func:`data_generator`, or None when the image is skipped."""
    augmentation = options["augmentation"]
    if dataset.image_info[image_id]["source"] in options["no_augmentation_sources"]:
        augmentation = None
    image, image_meta, class_ids, boxes, masks = load_image_gt(
        dataset, config, image_id, augment=options["augment"], augmentation=augmentation,
        use_mini_mask=config.USE_MINI_MASK, seed=rng)
    if not config.TRAIN_ON_EMPTY_IMAGES and not _has_objects(class_ids):
        return None
    rpn_match, rpn_bbox = build_rpn_targets(image.shape, anchors, class_ids, boxes, config, rng=rng)
    extras = []
    if options["random_rois"]:
        rpn_rois = generate_random_rois(image.shape, options["random_rois"], class_ids, boxes, rng=rng)
        extras.append(rpn_rois)
        if options["detection_targets"]:
            extras.extend(build_detection_targets(rpn_rois, class_ids, boxes, masks, config, rng=rng))
    class_ids, boxes, masks = _subsample_instances(class_ids, boxes, masks, config.MAX_GT_INSTANCES, rng)
    return [image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks] + extras


def _empty_generator_batch(sample, config, batch_size):
    """Zero arrays for one batch, typed as matterport's generator types them."""
    image, image_meta, rpn_match, rpn_bbox, _, _, masks = sample[:7]
    limit = config.MAX_GT_INSTANCES
    arrays = [
        np.zeros((batch_size,) + image.shape, dtype=np.float32),
        np.zeros((batch_size,) + image_meta.shape, dtype=image_meta.dtype),
        np.zeros((batch_size, rpn_match.shape[0], 1), dtype=rpn_match.dtype),
        np.zeros((batch_size,) + rpn_bbox.shape, dtype=rpn_bbox.dtype),
        np.zeros((batch_size, limit), dtype=np.int32),
        np.zeros((batch_size, limit, 4), dtype=np.int32),
        np.zeros((batch_size, masks.shape[0], masks.shape[1], limit), dtype=masks.dtype),
    ]
    return arrays + [np.zeros((batch_size,) + extra.shape, dtype=extra.dtype) for extra in sample[7:]]


def _fill_generator_slot(arrays, slot, sample, config):
    image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks = sample[:7]
    arrays[0][slot] = utils.mold_image(image, config)
    arrays[1][slot] = image_meta
    arrays[2][slot] = rpn_match[:, np.newaxis]
    arrays[3][slot] = rpn_bbox
    arrays[4][slot, :len(class_ids)] = class_ids
    arrays[5][slot, :len(boxes)] = boxes
    arrays[6][slot, :, :, :masks.shape[-1]] = masks
    for array, extra in zip(arrays[7:], sample[7:]):
        array[slot] = extra


def _generator_outputs(arrays, random_rois, detection_targets):
    """matterport's ``(inputs, outputs)`` lists of a full batch."""
    inputs, outputs = arrays[:7], []
    if random_rois:
        inputs.append(arrays[7])  # rpn_rois
        if detection_targets:
            rois, class_ids, bbox, mask = arrays[8:]
            inputs.append(rois)
            outputs = [np.expand_dims(class_ids, -1), bbox, mask]
    return inputs, outputs


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None, random_rois=0,
                   batch_size=1, detection_targets=False, no_augmentation_sources=None):
    """matterport's generator: yields ``(inputs, outputs)`` forever, draw for draw as matterport.

    Parameters
    ----------
    dataset : utils.Dataset
    config : Config
    shuffle : bool
        A fresh ``shuffle`` of the image ids at the start of every data epoch.
    augment : bool
        matterport's deprecated horizontal flip (see :func:`load_image_gt`).
    augmentation : imgaug augmenter, optional
    random_rois : int
        When > 0, that many random ROIs per image (``head_targets.generate_random_rois``).
    batch_size : int
    detection_targets : bool
        With ``random_rois``, also the heads' targets of those ROIs
        (``head_targets.build_detection_targets``).
    no_augmentation_sources : list of str, optional

    Yields
    ------
    inputs : list of ndarrays
        ``images`` float32 [B, H, W, C] (molded), ``image_meta`` [B, META]
        (``compose_image_meta``'s dtype), ``rpn_match`` int32 [B, A, 1],
        ``rpn_bbox`` float64 [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], ``gt_class_ids``
        int32 [B, MAX_GT_INSTANCES], ``gt_boxes`` int32 [B, MAX_GT_INSTANCES, 4],
        ``gt_masks`` bool [B, h, w, MAX_GT_INSTANCES]; then with ``random_rois``
        ``rpn_rois`` int32 [B, random_rois, 4], and with ``detection_targets``
        ``rois`` int32 [B, TRAIN_ROIS_PER_IMAGE, 4].
    outputs : list of ndarrays
        Empty, or with ``detection_targets``: class ids [B, T, 1], box deltas
        float32 [B, T, NUM_CLASSES, 4], masks float32 [B, T, 28, 28, NUM_CLASSES].

    Images without objects are skipped unless ``config.TRAIN_ON_EMPTY_IMAGES``
    (two passes over the data without one image with objects raise
    :class:`DataPipelineError`; matterport looped forever).
    An image that fails is logged (with its info) and skipped; after more than
    5 failures the error is raised, as matterport does. With ``config.SEED``
    every draw comes from a Generator seeded with it; without, from the global
    ``np.random`` / ``random`` as matterport (see the module docstring).
    """
    rng = None if config.SEED is None else np.random.default_rng(config.SEED)
    options = {"augment": augment, "augmentation": augmentation, "random_rois": random_rois,
               "detection_targets": detection_targets, "no_augmentation_sources": no_augmentation_sources or []}
    image_ids = np.copy(dataset.image_ids)
    anchors = training_anchors(config)
    image_index, slot, errors, arrays, skipped = -1, 0, 0, None, 0
    while True:
        image_index = (image_index + 1) % len(image_ids)
        if shuffle and image_index == 0:
            (np.random if rng is None else rng).shuffle(image_ids)
        image_id = image_ids[image_index]
        try:
            sample = _generator_sample(dataset, config, image_id, anchors, options, rng)
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception:
            logger.exception("Error processing image %s", dataset.image_info[image_id])
            errors += 1
            if errors > _MAX_GENERATOR_ERRORS:
                raise
            continue
        if sample is None:
            skipped += 1
            if skipped > 2 * len(image_ids):  # matterport looped forever here
                raise DataPipelineError(
                    f"data_generator: no image with objects in two passes over {len(image_ids)} images; "
                    "set config.TRAIN_ON_EMPTY_IMAGES = True to train on images without objects")
            continue
        skipped = 0
        if slot == 0:
            arrays = _empty_generator_batch(sample, config, batch_size)
        _fill_generator_slot(arrays, slot, sample, config)
        slot += 1
        if slot >= batch_size:
            yield _generator_outputs(arrays, random_rois, detection_targets)
            slot = 0
