"""matterport's ``data_generator``: training batches as matterport's generator yields them, draw for draw.

For notebooks and for checking the engine against matterport; training itself
uses ``input_pipeline`` (seeded, parallel). With ``config.SEED`` every draw comes
from a Generator seeded with it; without, from the global ``np.random`` /
``random`` and the augmenter's state, as matterport (so ``np.random.seed``
repeats matterport's own draws).

Boxes are pixel ``(y1, x1, y2, x2)``, ``y2``/``x2`` exclusive.
"""
from __future__ import annotations

import logging

import numpy as np

from ..ops.anchors import pyramid_anchors
from ..ops.molding import mold_image
from .ground_truth import DataPipelineError, has_objects, load_image_gt, subsample_instances
from .head_targets import build_detection_targets, generate_random_rois
from .rpn_targets import build_rpn_targets

__all__ = ["data_generator"]

logger = logging.getLogger(__name__)

# matterport gives up after this many failing images in data_generator.
_MAX_GENERATOR_ERRORS = 5


def _generator_sample(dataset, config, image_id, anchors, options, rng):
    """One image's arrays for :func:`data_generator`, or None when the image is skipped."""
    augmentation = options["augmentation"]
    if dataset.image_info[image_id]["source"] in options["no_augmentation_sources"]:
        augmentation = None
    image, image_meta, class_ids, boxes, masks = load_image_gt(
        dataset, config, image_id, augment=options["augment"], augmentation=augmentation,
        use_mini_mask=config.USE_MINI_MASK, seed=rng)
    if not config.TRAIN_ON_EMPTY_IMAGES and not has_objects(class_ids):
        return None
    rpn_match, rpn_bbox = build_rpn_targets(image.shape, anchors, class_ids, boxes, config, rng=rng)
    extras = []
    if options["random_rois"]:
        rpn_rois = generate_random_rois(image.shape, options["random_rois"], class_ids, boxes, rng=rng)
        extras.append(rpn_rois)
        if options["detection_targets"]:
            extras.extend(build_detection_targets(rpn_rois, class_ids, boxes, masks, config, rng=rng))
    class_ids, boxes, masks = subsample_instances(class_ids, boxes, masks, config.MAX_GT_INSTANCES, rng)
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
    """Write one sample into batch slot ``slot`` in matterport's order (a write that fails half-way leaves
    what matterport's leaves)."""
    image, image_meta, rpn_match, rpn_bbox, class_ids, boxes, masks = sample[:7]
    arrays[1][slot] = image_meta
    arrays[2][slot] = rpn_match[:, np.newaxis]
    arrays[3][slot] = rpn_bbox
    arrays[0][slot] = mold_image(image, config)
    arrays[4][slot, :len(class_ids)] = class_ids
    arrays[5][slot, :len(boxes)] = boxes
    arrays[6][slot, :, :, :masks.shape[-1]] = masks
    for array, extra in zip(arrays[7:], sample[7:], strict=True):
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
    anchors = pyramid_anchors(config)
    image_index, slot, errors, arrays, skipped = -1, 0, 0, None, 0
    while True:
        image_index = (image_index + 1) % len(image_ids)
        if shuffle and image_index == 0:
            (np.random if rng is None else rng).shuffle(image_ids)
        image_id = image_ids[image_index]
        try:
            sample = _generator_sample(dataset, config, image_id, anchors, options, rng)
            if sample is not None:
                # Inside the try, as matterport: an image that does not fit the batch (a molded
                # shape other than the first image's) is logged and skipped like any failure.
                if slot == 0:
                    arrays = _empty_generator_batch(sample, config, batch_size)
                _fill_generator_slot(arrays, slot, sample, config)
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
        slot += 1
        if slot >= batch_size:
            yield _generator_outputs(arrays, random_rois, detection_targets)
            slot = 0
