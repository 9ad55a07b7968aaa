"""Numpy box math of the engine: boxes from masks, IoU, non-maximum suppression, box deltas, normalisation.

Box convention: pixel boxes are ``(y1, x1, y2, x2)`` with ``y2``/``x2`` *exclusive*
(a box covering rows 2..4 is ``y1=2, y2=5``). Inside the graph boxes are
normalized by :func:`norm_boxes`: ``(y1, x1, y2 - 1, x2 - 1) / (H - 1, W - 1)``.
The TF graph twins (``apply_box_deltas_graph``, ``box_refinement_graph``,
``overlaps_graph``, ...) live in ``box_ops``; ``tests/mrcnn/layers/test_box_ops.py`` holds
them equal.

Every function returns what matterport v2.1's function of the same name in
``mrcnn.utils`` returns (values, dtypes, edge cases); "Extension" marks inputs on
which matterport fails.
"""
from __future__ import annotations

import numpy as np

from ...errors import InvalidArgumentError

__all__ = [
    "extract_bboxes",
    "compute_iou",
    "compute_overlaps",
    "compute_overlaps_masks",
    "non_max_suppression",
    "box_refinement",
    "apply_box_deltas",
    "norm_boxes",
    "denorm_boxes",
    "trim_zeros",
    "as_boxes",
    "box_array",
]


def extract_bboxes(mask):
    """Bounding boxes of instance masks.

    Parameters
    ----------
    mask : ndarray, [H, W, N]
        Instance masks (any dtype; non-zero is inside).

    Returns
    -------
    ndarray, int32, [N, (y1, x1, y2, x2)]
        ``y2``/``x2`` exclusive. An empty mask gives ``(0, 0, 0, 0)``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InvalidArgumentError(f"extract_bboxes: expected masks [H, W, N], got shape {mask.shape}")
    boxes = np.zeros([mask.shape[-1], 4], dtype=np.int32)
    for i in range(mask.shape[-1]):
        rows = np.flatnonzero(np.any(mask[:, :, i], axis=1))
        cols = np.flatnonzero(np.any(mask[:, :, i], axis=0))
        if rows.size:
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def _areas(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def as_boxes(boxes, name):
    """Boxes as float64 ``[N, (y1, x1, y2, x2)]`` for drawing and checks.

    Parameters
    ----------
    boxes : array, [N, >= 4], or None
        Extra columns (a class id, a score) are dropped.
    name : str
        Names the argument in the error message (``"draw_boxes: boxes"``).

    Returns
    -------
    ndarray, float64, [N, 4]
        ``[0, 4]`` for None or an empty input.

    Raises
    ------
    ValueError
        Naming ``name`` and the shape, when ``boxes`` is not ``[N, >= 4]``.
    """
    if boxes is None:
        return np.zeros((0, 4))
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise InvalidArgumentError(f"{name}: expected boxes [N, (y1, x1, y2, x2)], got shape {boxes.shape}")
    return boxes[:, :4]


def box_array(boxes):
    """``boxes`` as an ndarray of its own dtype (not converted); an empty input becomes ``[0, 4]``.

    Parameters
    ----------
    boxes : array, [N, (y1, x1, y2, x2)]

    Returns
    -------
    ndarray, [N, 4], the input's dtype
    """
    boxes = np.asarray(boxes)
    return boxes.reshape(0, 4) if boxes.size == 0 else boxes


def _iou(intersection, union):
    """``intersection / union`` without numpy's 0/0 warning (the result is NaN there, as in matterport)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / union


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box with each of ``boxes``.

    Parameters
    ----------
    box : array, [4]
        ``(y1, x1, y2, x2)``.
    boxes : array, [N, 4]
    box_area : float
        Area of ``box``.
    boxes_area : array, [N]
        Areas of ``boxes`` (passed in so that callers can compute them once).

    Returns
    -------
    ndarray, [N]
        In the promoted dtype of the inputs (float64 for integer boxes); NaN
        where the union is empty (two zero-area boxes), as in matterport.
    """
    box, boxes = np.asarray(box), box_array(boxes)
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    return _iou(intersection, box_area + np.asarray(boxes_area) - intersection)


def compute_overlaps(boxes1, boxes2):
    """IoU of every pair of boxes.

    Parameters
    ----------
    boxes1 : array, [N1, (y1, x1, y2, x2)]
    boxes2 : array, [N2, (y1, x1, y2, x2)]

    Returns
    -------
    ndarray, float64, [N1, N2]
        Computed in the promoted dtype of the inputs (float32 boxes give float32
        IoUs stored as float64, as matterport's loop did); NaN for pairs of
        zero-area boxes.
    """
    boxes1, boxes2 = box_array(boxes1), box_array(boxes2)
    y1 = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    y2 = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x1 = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    x2 = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = _areas(boxes2)[None, :] + _areas(boxes1)[:, None] - intersection
    return np.asarray(_iou(intersection, union), dtype=np.float64)


def compute_overlaps_masks(masks1, masks2):
    """IoU of every pair of masks.

    Parameters
    ----------
    masks1 : array, [H, W, N1]
    masks2 : array, [H, W, N2]
        Values > 0.5 are inside.

    Returns
    -------
    ndarray, [N1, N2]
        float32 (matterport's precision: pixel counts are exact up to 2**24
        pixels); float64 zeros when either set is empty; NaN for two empty masks.
    """
    masks1, masks2 = np.asarray(masks1), np.asarray(masks2)
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    if masks1.shape[:-1] != masks2.shape[:-1]:
        raise InvalidArgumentError("compute_overlaps_masks: mask sizes differ: "
                                   f"{masks1.shape[:-1]} vs {masks2.shape[:-1]}")
    flat1 = (masks1 > 0.5).reshape(-1, masks1.shape[-1]).astype(np.float32)
    flat2 = (masks2 > 0.5).reshape(-1, masks2.shape[-1]).astype(np.float32)
    intersection = np.dot(flat1.T, flat2)
    union = np.sum(flat1, axis=0)[:, None] + np.sum(flat2, axis=0)[None, :] - intersection
    return _iou(intersection, union)


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : array, [N, (y1, x1, y2, x2)]
        Integer boxes are computed in float32, float boxes in their own dtype.
    scores : array, [N]
    threshold : float
        A box is dropped when its IoU with a kept, higher-scoring box is > threshold.

    Returns
    -------
    ndarray, int32, [K]
        Indices of the kept boxes, highest score first (ties in matterport's
        order: ``argsort(scores)[::-1]``).

    Extension: no boxes give an empty result (matterport asserted ``N > 0``).
    """
    boxes = box_array(boxes)
    scores = np.asarray(scores).reshape(-1)
    if len(scores) != len(boxes):
        raise InvalidArgumentError(f"non_max_suppression: {len(boxes)} boxes but {len(scores)} scores")
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    areas = _areas(boxes)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        iou = compute_iou(boxes[best], boxes[rest], areas[best], areas[rest])
        order = rest[~(iou > threshold)]
    return np.array(keep, dtype=np.int32)


def box_refinement(box, gt_box):
    """Deltas that move ``box`` onto ``gt_box`` (matterport's parameterisation).

    Parameters
    ----------
    box, gt_box : array, [N, (y1, x1, y2, x2)]
        Boxes with positive height and width.

    Returns
    -------
    ndarray, float32, [N, (dy, dx, log(dh), log(dw))]
        ``dy = (gt_center_y - center_y) / height``, ``dh = gt_height / height``.
    """
    box = np.asarray(box, dtype=np.float32).reshape(-1, 4)
    gt_box = np.asarray(gt_box, dtype=np.float32).reshape(-1, 4)
    size = box[:, 2:] - box[:, :2]
    center = box[:, :2] + 0.5 * size
    gt_size = gt_box[:, 2:] - gt_box[:, :2]
    gt_center = gt_box[:, :2] + 0.5 * gt_size
    shift = (gt_center - center) / size
    log_scale = np.log(gt_size / size)
    return np.concatenate([shift, log_scale], axis=1).astype(np.float32)


def apply_box_deltas(boxes, deltas):
    """Apply deltas from :func:`box_refinement` (the inverse operation).

    Parameters
    ----------
    boxes : array, [N, (y1, x1, y2, x2)]
    deltas : array, [N, (dy, dx, log(dh), log(dw))]

    Returns
    -------
    ndarray, float32, [N, (y1, x1, y2, x2)]
        Each step is rounded to float32 as matterport's in-place float32
        arithmetic does (products with float64 deltas are taken in float64).
    """
    boxes = np.asarray(boxes).astype(np.float32).reshape(-1, 4)
    deltas = np.asarray(deltas).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]
    center = boxes[:, :2] + 0.5 * size
    center = (center + deltas[:, :2] * size).astype(np.float32)
    size = (size * np.exp(deltas[:, 2:])).astype(np.float32)
    top_left = center - 0.5 * size
    return np.concatenate([top_left, top_left + size], axis=1).astype(np.float32)


def _norm_scale_shift(shape):
    height, width = int(shape[0]), int(shape[1])
    scale = np.array([height - 1, width - 1, height - 1, width - 1], dtype=np.float64)
    shift = np.array([0, 0, 1, 1], dtype=np.float64)
    return scale, shift


def norm_boxes(boxes, shape):
    """Pixel boxes to normalized coordinates.

    Parameters
    ----------
    boxes : array, [..., (y1, x1, y2, x2)]
        Pixels, ``y2``/``x2`` exclusive.
    shape : (height, width) or (height, width, channels)

    Returns
    -------
    ndarray, float32, [..., 4]
        ``(y1, x1, y2 - 1, x2 - 1) / (H - 1, W - 1, H - 1, W - 1)``: in normalized
        coordinates ``(y2, x2)`` is inside the box.
    """
    scale, shift = _norm_scale_shift(shape)
    return ((np.asarray(boxes, dtype=np.float64) - shift) / scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalized boxes back to pixels (inverse of :func:`norm_boxes`).

    Returns
    -------
    ndarray, int32, [..., (y1, x1, y2, x2)]
        Rounded to the nearest pixel (half to even), ``y2``/``x2`` exclusive.
    """
    scale, shift = _norm_scale_shift(shape)
    return np.around(np.asarray(boxes, dtype=np.float64) * scale + shift).astype(np.int32)


def trim_zeros(x):
    """Drop the rows of a 2-D array that are all zero (padding).

    Parameters
    ----------
    x : array, [rows, columns]

    Returns
    -------
    ndarray, [kept rows, columns]
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise InvalidArgumentError(f"trim_zeros: expected a 2-D array, got shape {x.shape}")
    return x[~np.all(x == 0, axis=1)]
