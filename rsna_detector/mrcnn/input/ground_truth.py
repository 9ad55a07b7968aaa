"""One training image with its ground truth: ``load_image_gt`` and the augmentation plumbing.

* :func:`load_image_gt` -- matterport's function: one image resized to the
  config's shape, its (optionally augmented) masks, boxes recomputed from the
  masks, and its image meta.
* :func:`augment_image_and_masks` -- one imgaug draw applied to an image and,
  through the :data:`MASK_AUGMENTERS` only, to its masks.
* :func:`has_objects`, :func:`subsample_instances`, :func:`describe_image` --
  what both training pipelines (``input_pipeline.TrainingBatches`` and matterport's
  ``generator.data_generator``) do with a loaded image.

Randomness: with no seed every draw comes from where matterport takes it --
Python's ``random`` (the ``augment`` flip and the 'crop' position), the global
``np.random`` (instance subsampling) and the augmenter's own imgaug random state --
so ``np.random.seed`` (with ``random.seed`` / ``imgaug.seed`` where those are used)
repeats a run. With a seed, every draw comes from a ``numpy.random.Generator``.

Boxes are pixel ``(y1, x1, y2, x2)``, ``y2``/``x2`` exclusive.
"""
from __future__ import annotations

import functools
import logging
import random

import numpy as np

from ...errors import RsnaDetectorError
from ..ops.boxes import extract_bboxes
from ..ops.image_meta import compose_image_meta
from ..ops.masks import minimize_mask, resize_mask
from ..ops.molding import resize_image

__all__ = [
    "MASK_AUGMENTERS",
    "DataPipelineError",
    "load_image_gt",
    "augment_image_and_masks",
    "has_objects",
    "subsample_instances",
    "describe_image",
]

logger = logging.getLogger(__name__)

#: imgaug augmenter classes applied to the masks as well as to the image:
#: matterport's list (containers and the geometric augmenters it trusted). Every
#: other augmenter touches the image only -- including geometric ones matterport
#: left out (Rot90, Crop, Pad, PerspectiveTransform, ...), so keep to these for
#: anything that moves pixels.
MASK_AUGMENTERS = frozenset({
    "Sequential", "SomeOf", "OneOf", "Sometimes",
    "Fliplr", "Flipud", "CropAndPad", "Affine", "PiecewiseAffine",
})


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
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE, rng=rng)
    mask = resize_mask(mask, scale, padding, crop)

    if augment:
        _warn_augment_deprecated()
        if _coin(rng):
            image, mask = np.fliplr(image), np.fliplr(mask)
    if augmentation:
        image, mask = augment_image_and_masks(image, mask, augmentation, rng)

    present = np.sum(mask, axis=(0, 1)) > 0
    mask, class_ids = mask[:, :, present], class_ids[present]
    bbox = extract_bboxes(mask)

    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active_class_ids[dataset.source_class_ids[source]] = 1
    if use_mini_mask:
        mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale, active_class_ids)
    return image, image_meta, class_ids, bbox, mask


@functools.lru_cache(maxsize=None)
def _warn_augment_deprecated():
    """Log matterport's deprecation warning, once per process (matterport logged it on every call)."""
    logger.warning("'augment' is deprecated. Use 'augmentation' instead.")


def _check_ground_truth(dataset, image_id, image, mask, class_ids):
    """bool masks [H, W, N] and class ids [N]; no-instance masks of any shape become [H, W, 0]."""
    where = describe_image(dataset, image_id)
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


def describe_image(dataset, image_id):
    """``"image <id> (<dataset.image_reference(id)>)"``, for error messages; never raises.

    Returns
    -------
    str
        With ``"no reference"`` when ``image_reference`` fails.
    """
    try:
        reference = dataset.image_reference(image_id)
    except Exception:  # a reference is only decoration for the message
        reference = "no reference"
    return f"image {image_id} ({reference})"


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
# what the training pipelines do with a loaded image
# ----------------------------------------------------------------------------

def subsample_instances(class_ids, boxes, masks, limit, rng):
    """At most ``limit`` instances, chosen at random (matterport's draw, unsorted).

    Parameters
    ----------
    class_ids : ndarray, [N]
    boxes : ndarray, [N, (y1, x1, y2, x2)]
    masks : ndarray, [h, w, N]
    limit : int
        ``config.MAX_GT_INSTANCES``.
    rng : numpy.random.Generator or None
        None draws from the global ``np.random``, as matterport.

    Returns
    -------
    (class_ids, boxes, masks)
        The same arrays when ``N <= limit``, else ``limit`` of their instances.
    """
    if len(class_ids) <= limit:
        return class_ids, boxes, masks
    ids = (np.random if rng is None else rng).choice(np.arange(len(class_ids)), limit, replace=False)
    return class_ids[ids], boxes[ids], masks[:, :, ids]


def has_objects(class_ids):
    """Whether an image has an object: a class id > 0 (matterport's test for skipping it)."""
    return bool(np.any(np.asarray(class_ids) > 0))
