"""Numpy targets of the ROI heads from given ROIs: matterport's debugging path.

matterport's ``data_generator(random_rois=N, detection_targets=True)`` trains or
inspects the heads without the RPN: :func:`generate_random_rois` makes
RPN-like proposals around the ground truth, and :func:`build_detection_targets`
samples them and computes the heads' class, box and mask targets in numpy
(training itself does this in the graph, ``targets.DetectionTargetLayer``).

Both draw their random numbers exactly as matterport does: from the global
``np.random`` when ``rng`` is None (so ``np.random.seed`` repeats them and gives
matterport's own draws), else from the ``numpy.random.Generator`` given.

Boxes are pixel ``(y1, x1, y2, x2)``, ``y2``/``x2`` exclusive.
"""
from __future__ import annotations

import numpy as np

from ...errors import RsnaDetectorError
from ..ops.boxes import box_refinement, compute_overlaps
from ..ops.molding import resize

__all__ = ["HeadTargetError", "generate_random_rois", "build_detection_targets"]

# matterport's thresholds: a ROI is foreground above this IoU, background below it.
_FOREGROUND_IOU = 0.5
# Share of the random ROIs drawn around the ground-truth boxes (the rest anywhere).
_NEAR_GT_SHARE = 0.9
# Give up on drawing boxes with non-zero sides after this many rounds.
_MAX_DRAW_ROUNDS = 1000


class HeadTargetError(RsnaDetectorError, ValueError):
    """The inputs of a head-target builder cannot give the asked-for ROIs."""


def _randint(rng, low, high, size):
    """Ints in ``[low, high)``: the global ``np.random`` (matterport's source) or ``rng``."""
    if rng is None:
        return np.random.randint(low, high, size)
    return rng.integers(low, high, size)


def _choice(rng, ids, count, replace):
    return (np.random if rng is None else rng).choice(ids, count, replace=replace)


def _random_boxes(rng, y_range, x_range, count):
    """``count`` int boxes with corners drawn in the ranges and sides >= 1.

    As matterport: draw ``2 * count`` corner pairs per axis, keep the first
    ``count`` pairs with distinct values, redraw both axes until both have enough.
    """
    for _ in range(_MAX_DRAW_ROUNDS):
        ys = _randint(rng, y_range[0], y_range[1], (count * 2, 2))
        xs = _randint(rng, x_range[0], x_range[1], (count * 2, 2))
        ys = ys[np.abs(ys[:, 0] - ys[:, 1]) >= 1][:count]
        xs = xs[np.abs(xs[:, 0] - xs[:, 1]) >= 1][:count]
        if ys.shape[0] == count and xs.shape[0] == count:
            ys, xs = np.sort(ys, axis=1), np.sort(xs, axis=1)
            return np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)
    raise HeadTargetError(f"generate_random_rois: cannot draw boxes with non-zero sides in rows "
                          f"{tuple(y_range)} and columns {tuple(x_range)}")


def generate_random_rois(image_shape, count, gt_class_ids, gt_boxes, *, rng=None):
    """Random ROIs like an RPN's: 90 % around the ground-truth boxes, the rest anywhere.

    Parameters
    ----------
    image_shape : (H, W, ...)
    count : int
        Number of ROIs.
    gt_class_ids : array, int, [G]
        Unused (matterport's signature).
    gt_boxes : array, int, [G, (y1, x1, y2, x2)]
    rng : numpy.random.Generator, optional
        Extension: source of the draws; None uses the global ``np.random`` as matterport.

    Returns
    -------
    ndarray, int32, [count, (y1, x1, y2, x2)]
        ``int(0.9 * count / G)`` boxes per ground truth, with corners within one
        box size of it (clipped to the image), in ground-truth order; the rest
        anywhere in the image, last. Every box has height and width >= 1.

    Extension: without ground truth every ROI is drawn anywhere (matterport
    divided by zero).
    """
    del gt_class_ids
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    height, width = int(image_shape[0]), int(image_shape[1])
    rois = np.zeros((count, 4), dtype=np.int32)
    per_box = int(_NEAR_GT_SHARE * count / len(gt_boxes)) if len(gt_boxes) else 0
    for i, (y1, x1, y2, x2) in enumerate(gt_boxes):
        box_height, box_width = y2 - y1, x2 - x1
        y_range = (max(y1 - box_height, 0), min(y2 + box_height, height))
        x_range = (max(x1 - box_width, 0), min(x2 + box_width, width))
        rois[per_box * i:per_box * (i + 1)] = _random_boxes(rng, y_range, x_range, per_box)
    remaining = count - per_box * len(gt_boxes)
    if remaining:
        rois[-remaining:] = _random_boxes(rng, (0, height), (0, width), remaining)
    return rois


def _assign_rois(rpn_rois, gt_boxes):
    """Best ground truth of each ROI and its IoU (0 and index 0 without ground truth)."""
    if not len(gt_boxes):
        return np.zeros(len(rpn_rois), dtype=np.int64), np.zeros(len(rpn_rois))
    overlaps = compute_overlaps(rpn_rois, gt_boxes)
    best_gt = np.argmax(overlaps, axis=1)
    return best_gt, overlaps[np.arange(len(rpn_rois)), best_gt]


def _sample_rois(best_iou, config, rng):
    """matterport's ROI sampling: ids of the kept ROIs and of the background ones among them.

    Foreground (IoU > 0.5) up to ``int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO)``,
    background (IoU < 0.5) up to the rest, then background repeated (drawn with
    replacement) to fill ``TRAIN_ROIS_PER_IMAGE`` rows.
    """
    total = config.TRAIN_ROIS_PER_IMAGE
    fg_ids = np.where(best_iou > _FOREGROUND_IOU)[0]
    bg_ids = np.where(best_iou < _FOREGROUND_IOU)[0]
    fg_count = int(total * config.ROI_POSITIVE_RATIO)
    keep_fg = _choice(rng, fg_ids, fg_count, replace=False) if len(fg_ids) > fg_count else fg_ids
    remaining = total - len(keep_fg)
    keep_bg = _choice(rng, bg_ids, remaining, replace=False) if len(bg_ids) > remaining else bg_ids
    keep = np.concatenate([keep_fg, keep_bg])
    remaining = total - len(keep)
    if remaining > 0:
        if len(keep) == 0:
            if len(bg_ids) < remaining:
                raise HeadTargetError(f"build_detection_targets: {len(bg_ids)} background ROIs for "
                                      f"TRAIN_ROIS_PER_IMAGE = {total}")
            keep_bg = _choice(rng, bg_ids, remaining, replace=False)
            keep = keep_bg
        elif len(keep_bg) == 0:
            raise HeadTargetError("build_detection_targets: no background ROI to repeat up to "
                                  f"TRAIN_ROIS_PER_IMAGE = {total}; give more ROIs")
        else:
            keep = np.concatenate([keep, _choice(rng, keep_bg, remaining, replace=True)])
    return keep.astype(np.int64), keep_bg.astype(np.int64)


def _roi_mask(class_mask, gt_box, roi, config):
    """The ground-truth mask inside ``roi``, resized (bilinear, not rounded) to ``MASK_SHAPE``."""
    if config.USE_MINI_MASK:
        full = np.zeros(tuple(int(v) for v in config.IMAGE_SHAPE[:2]), dtype=bool)
        y1, x1, y2, x2 = (int(v) for v in gt_box)
        full[y1:y2, x1:x2] = np.round(resize(class_mask, (y2 - y1, x2 - x1))).astype(bool)
        class_mask = full
    y1, x1, y2, x2 = roi.astype(np.int32)
    return resize(class_mask[y1:y2, x1:x2], config.MASK_SHAPE)


def build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks, config, *, rng=None):
    """Sample ROIs and give them the heads' class, box and mask targets (matterport's numpy version).

    Parameters
    ----------
    rpn_rois : array, int, [N, (y1, x1, y2, x2)]
        Proposals in pixels (e.g. :func:`generate_random_rois`).
    gt_class_ids : array, int, [G]
        0 entries are padding and dropped.
    gt_boxes : array, int, [G, (y1, x1, y2, x2)]
    gt_masks : array, bool, [H, W, G] or [MINI_MASK_SHAPE..., G] when ``config.USE_MINI_MASK``
    config : Config
        ``TRAIN_ROIS_PER_IMAGE``, ``ROI_POSITIVE_RATIO``, ``NUM_CLASSES``,
        ``BBOX_STD_DEV``, ``MASK_SHAPE``, ``USE_MINI_MASK``, ``IMAGE_SHAPE``.
    rng : numpy.random.Generator, optional
        Extension: source of the sampling; None uses the global ``np.random`` as matterport.

    Returns
    -------
    rois : ndarray, [TRAIN_ROIS_PER_IMAGE, (y1, x1, y2, x2)]
        Kept ROIs (``rpn_rois``' dtype): foreground (IoU > 0.5) first, then
        background (IoU < 0.5), then background repeated to fill.
    class_ids : ndarray, [TRAIN_ROIS_PER_IMAGE]
        Class of the matched ground truth for foreground ROIs, 0 for background.
    bboxes : ndarray, float32, [TRAIN_ROIS_PER_IMAGE, NUM_CLASSES, (dy, dx, log(dh), log(dw))]
        ``box_refinement / BBOX_STD_DEV`` in the ROI's class column; zeros elsewhere.
    masks : ndarray, float32, [TRAIN_ROIS_PER_IMAGE, MASK_SHAPE..., NUM_CLASSES]
        The matched mask cropped to the ROI and resized (bilinear, not rounded)
        in the class column; zeros elsewhere.

    Extension: an image without ground truth gives background ROIs only
    (matterport asserted that the image has instances); gt arrays of other
    integer/bool dtypes are accepted (matterport asserted int32/bool).
    """
    rpn_rois = np.asarray(rpn_rois)
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    instances = np.where(gt_class_ids > 0)[0]
    gt_class_ids = gt_class_ids[instances]
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)[instances]
    gt_masks = np.asarray(gt_masks)[:, :, instances].astype(bool)
    if not len(rpn_rois):
        raise HeadTargetError("build_detection_targets: no ROIs given")

    best_gt, best_iou = _assign_rois(rpn_rois, gt_boxes)
    roi_gt_boxes = gt_boxes[best_gt] if len(gt_boxes) else np.zeros((len(rpn_rois), 4), gt_boxes.dtype)
    roi_class_ids = gt_class_ids[best_gt] if len(gt_boxes) else np.zeros(len(rpn_rois), gt_class_ids.dtype)
    keep, keep_bg = _sample_rois(best_iou, config, rng)
    roi_gt_boxes[keep_bg] = 0
    roi_class_ids[keep_bg] = 0

    rois, roi_gt_boxes, class_ids, assignment = rpn_rois[keep], roi_gt_boxes[keep], roi_class_ids[keep], best_gt[keep]
    total, num_classes = config.TRAIN_ROIS_PER_IMAGE, config.NUM_CLASSES
    bboxes = np.zeros((total, num_classes, 4), dtype=np.float32)
    positives = np.where(class_ids > 0)[0]
    bboxes[positives, class_ids[positives]] = box_refinement(rois[positives], roi_gt_boxes[positives, :4])
    bboxes /= config.BBOX_STD_DEV
    masks = np.zeros((total, config.MASK_SHAPE[0], config.MASK_SHAPE[1], num_classes), dtype=np.float32)
    for i in positives:
        gt_id = assignment[i]
        masks[i, :, :, class_ids[i]] = _roi_mask(gt_masks[:, :, gt_id], gt_boxes[gt_id], rois[i], config)
    return rois, class_ids, bboxes, masks
