"""RPN training targets (numpy, run by the input pipeline's threads and worker processes).

:func:`build_rpn_targets` works in *pixel* coordinates ``(y1, x1, y2, x2)`` with
``y2``/``x2`` exclusive, as ``utils.extract_bboxes`` and
``utils.generate_pyramid_anchors`` produce them. Images without ground truth: their
anchors are all sampled as negatives.

This module imports no TensorFlow: the input worker processes import it
(``tests/mrcnn/input/test_worker_imports.py``). The graph's ROI-head targets are
``mrcnn/layers/detection_targets.py``.
"""
from __future__ import annotations

import numpy as np

from ...errors import RsnaDetectorError
from ..ops.boxes import compute_overlaps

__all__ = [
    "TargetError",
    "RPN_POSITIVE_IOU",
    "RPN_NEGATIVE_IOU",
    "CROWD_IOU",
    "build_rpn_targets",
]

#: An anchor whose best IoU with a ground-truth box reaches this is positive.
RPN_POSITIVE_IOU = 0.7
#: An anchor whose best IoU with every ground-truth box is below this is negative.
RPN_NEGATIVE_IOU = 0.3
#: An anchor or proposal touching a crowd box (class id < 0) by more than this is
#: neither positive nor negative (also the ROI rule of ``DetectionTargetLayer``).
CROWD_IOU = 0.001


class TargetError(RsnaDetectorError, ValueError):
    """Inputs of a target builder have the wrong shape or content."""


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config, rng=None):
    """Label anchors for the RPN and compute the deltas of the positive ones (matterport's rules).

    Parameters
    ----------
    image_shape : tuple
        ``(H, W, C)`` of the molded image (unused by the labelling itself; kept
        for matterport's signature).
    anchors : ndarray, [A, 4]
        Anchors in pixels ``(y1, x1, y2, x2)`` (float64 as generated: the IoUs
        are computed in the inputs' own precision, as matterport).
    gt_class_ids : ndarray, int, [G]
        Class id of each ground-truth box; ``< 0`` marks a crowd box (its anchors
        are never negative). ``G`` may be 0.
    gt_boxes : ndarray, [G, 4]
        Ground-truth boxes in pixels ``(y1, x1, y2, x2)`` (every one of the
        image's boxes: matterport builds the RPN targets before capping the
        instances at ``MAX_GT_INSTANCES``).
    config : Config
        Uses ``RPN_TRAIN_ANCHORS_PER_IMAGE`` and ``RPN_BBOX_STD_DEV``.
    rng : numpy.random.Generator, optional
        Source of the subsampling; None draws from the global ``np.random``
        with matterport's calls (so ``np.random.seed`` gives matterport's own
        result).

    Returns
    -------
    rpn_match : ndarray, int32, [A]
        1 positive, -1 negative, 0 neutral (not trained on).
    rpn_bbox : ndarray, float64, [RPN_TRAIN_ANCHORS_PER_IMAGE, 4]
        ``(dy, dx, log(dh), log(dw)) / RPN_BBOX_STD_DEV`` of the positive anchors
        (towards their best box) in ascending anchor order, zero rows after them.

    Notes
    -----
    An anchor is negative when its best IoU is < 0.3 (and it does not touch a
    crowd box); then, for every box, the anchors overlapping it best (ties
    included) are positive, and so is every anchor with an IoU >= 0.7. Extra
    positives beyond half of ``RPN_TRAIN_ANCHORS_PER_IMAGE`` are reset to
    neutral at random, then extra negatives beyond the rest. When crowd boxes
    are present, boxes of class 0 are dropped with them (matterport's filter).

    Extensions (inputs on which matterport fails): with no ground truth (or
    crowds only) every anchor clear of crowds is negative before sampling; a
    box that no anchor touches (best IoU 0, e.g. a zero-area box) gets no
    positive anchor (matterport's tie rule made *every* anchor positive, with
    infinite deltas).
    """
    anchors = np.asarray(anchors)
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise TargetError(f"anchors: expected shape [A, 4], got {anchors.shape}")
    if len(gt_class_ids) != len(gt_boxes):
        raise TargetError(
            f"gt_class_ids has {len(gt_class_ids)} entries but gt_boxes has {len(gt_boxes)} rows"
        )
    total = int(config.RPN_TRAIN_ANCHORS_PER_IMAGE)
    rpn_match = np.zeros([anchors.shape[0]], dtype=np.int32)
    rpn_bbox = np.zeros((total, 4))

    crowd = gt_class_ids < 0
    clear_of_crowd = _clear_of_crowd(anchors, gt_boxes[crowd])
    if np.any(crowd):
        gt_boxes = gt_boxes[gt_class_ids > 0]
    if not len(gt_boxes):
        rpn_match[clear_of_crowd] = -1
        _subsample(rpn_match, -1, total, rng)
        return rpn_match, rpn_bbox

    overlaps = compute_overlaps(anchors, gt_boxes)  # [A, G]
    best_gt = np.argmax(overlaps, axis=1)
    best_iou = overlaps[np.arange(overlaps.shape[0]), best_gt]
    rpn_match[(best_iou < RPN_NEGATIVE_IOU) & clear_of_crowd] = -1
    rpn_match[_best_anchor_per_box(overlaps)] = 1
    rpn_match[best_iou >= RPN_POSITIVE_IOU] = 1

    _subsample(rpn_match, 1, total // 2, rng)
    _subsample(rpn_match, -1, total - np.sum(rpn_match == 1), rng)

    positive = np.where(rpn_match == 1)[0]
    rpn_bbox[:len(positive)] = _anchor_deltas(anchors[positive], gt_boxes[best_gt[positive]])
    rpn_bbox[:len(positive)] /= config.RPN_BBOX_STD_DEV
    return rpn_match, rpn_bbox


def _anchor_deltas(anchors, boxes):
    """``(dy, dx, log(dh), log(dw))`` from anchors to boxes, in the inputs' promoted precision."""
    box_height, box_width = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    box_center_y, box_center_x = boxes[:, 0] + 0.5 * box_height, boxes[:, 1] + 0.5 * box_width
    height, width = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    center_y, center_x = anchors[:, 0] + 0.5 * height, anchors[:, 1] + 0.5 * width
    return np.stack([(box_center_y - center_y) / height, (box_center_x - center_x) / width,
                     np.log(box_height / height), np.log(box_width / width)], axis=1)


def _clear_of_crowd(anchors, crowd_boxes):
    """bool [A]: anchors that do not touch any crowd box."""
    if not len(crowd_boxes):
        return np.ones(len(anchors), dtype=bool)
    crowd_overlaps = compute_overlaps(anchors, crowd_boxes)
    return np.max(crowd_overlaps, axis=1) < CROWD_IOU


def _best_anchor_per_box(overlaps):
    """Indices of the anchors that overlap some box best (ties included), as ``np.argwhere`` lists them.

    A box that no anchor touches (best IoU 0) gets no anchor: matterport's
    ``overlaps == max`` rule would make every anchor positive for it.
    """
    best = np.max(overlaps, axis=0)  # [G]
    hits = (overlaps == best[np.newaxis, :]) & (best[np.newaxis, :] > 0)
    return np.argwhere(hits)[:, 0]


def _subsample(rpn_match, label, keep, rng):
    """Reset random anchors labelled ``label`` to neutral until ``keep`` remain (matterport's draw)."""
    ids = np.where(rpn_match == label)[0]
    extra = len(ids) - keep
    if extra > 0:
        drop = (np.random if rng is None else rng).choice(ids, extra, replace=False)
        rpn_match[drop] = 0
