"""Box arithmetic as TensorFlow graph ops (the graph-side twins of ``boxes``' numpy functions).

Box format everywhere: ``(y1, x1, y2, x2)`` on the last axis. Inside the graph boxes
are *normalized* (see :func:`norm_boxes_graph`); the functions that do not care about
the coordinate system say so. Every function broadcasts over leading axes, so the
same op serves ``[N, 4]`` and ``[batch, N, 4]`` tensors.

The numpy twins in ``boxes`` (``apply_box_deltas``, ``box_refinement``,
``compute_overlaps``) use the same formulas; ``tests/mrcnn/layers/test_box_ops.py`` holds
them equal. :func:`parse_image_meta_graph` is defined in ``image_meta`` (with the
layout it parses) and reachable here too.
"""
from __future__ import annotations

import tensorflow as tf

from ..ops.image_meta import parse_image_meta_graph

__all__ = [
    "apply_box_deltas_graph",
    "clip_boxes_graph",
    "overlaps_graph",
    "box_refinement_graph",
    "norm_boxes_graph",
    "denorm_boxes_graph",
    "parse_image_meta_graph",
    "trim_zeros_graph",
    "batch_slice",
    "batch_pack_graph",
    "box_areas_graph",
]


def _centers_and_sizes(boxes):
    """``(center_y, center_x, height, width)`` of ``[..., 4]`` boxes."""
    y1, x1, y2, x2 = tf.unstack(boxes, num=4, axis=-1)
    height = y2 - y1
    width = x2 - x1
    return y1 + 0.5 * height, x1 + 0.5 * width, height, width


def apply_box_deltas_graph(boxes, deltas):
    """Move and resize boxes by regression deltas.

    Parameters
    ----------
    boxes : Tensor, float32, [..., 4]
        ``(y1, x1, y2, x2)`` in any coordinate system.
    deltas : Tensor, float32, [..., 4]
        ``(dy, dx, log(dh), log(dw))``, already multiplied by the std-dev; broadcast
        against ``boxes``.

    Returns
    -------
    Tensor, float32, [..., 4]
        The refined ``(y1, x1, y2, x2)``: the center moves by ``(dy * h, dx * w)``,
        the size scales by ``(exp(dh), exp(dw))``.
    """
    center_y, center_x, height, width = _centers_and_sizes(boxes)
    dy, dx, dh, dw = tf.unstack(deltas, num=4, axis=-1)
    center_y = center_y + dy * height
    center_x = center_x + dx * width
    height = height * tf.exp(dh)
    width = width * tf.exp(dw)
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1, name="apply_box_deltas_out")


def clip_boxes_graph(boxes, window):
    """Clip boxes to lie inside a window.

    Parameters
    ----------
    boxes : Tensor, float32, [..., 4]
        ``(y1, x1, y2, x2)``.
    window : Tensor or sequence, float32, [4] or broadcastable to ``boxes``
        ``(wy1, wx1, wy2, wx2)`` in the same coordinate system.

    Returns
    -------
    Tensor, float32, same shape as ``boxes``
        Each coordinate is ``max(min(c, w_high), w_low)`` (matterport's order, which
        decides the result for an inverted window: the low edge wins).
    """
    window = tf.cast(window, boxes.dtype)
    wy1, wx1, wy2, wx2 = tf.unstack(window, num=4, axis=-1)
    y1, x1, y2, x2 = tf.unstack(boxes, num=4, axis=-1)
    y1 = tf.maximum(tf.minimum(y1, wy2), wy1)
    x1 = tf.maximum(tf.minimum(x1, wx2), wx1)
    y2 = tf.maximum(tf.minimum(y2, wy2), wy1)
    x2 = tf.maximum(tf.minimum(x2, wx2), wx1)
    return tf.stack([y1, x1, y2, x2], axis=-1, name="clipped_boxes")


def box_areas_graph(boxes):
    """``(y2 - y1) * (x2 - x1)`` of ``[..., 4]`` boxes (may be negative for inverted boxes)."""
    y1, x1, y2, x2 = tf.unstack(boxes, num=4, axis=-1)
    return (y2 - y1) * (x2 - x1)


def overlaps_graph(boxes1, boxes2):
    """IoU of every pair of boxes.

    Parameters
    ----------
    boxes1 : Tensor, float32, [..., N, 4]
    boxes2 : Tensor, float32, [..., M, 4]
        ``(y1, x1, y2, x2)`` in one coordinate system; leading axes broadcast.

    Returns
    -------
    Tensor, float32, [..., N, M]
        ``intersection / union``; 0 where the union is empty (degenerate boxes).
    """
    b1 = tf.expand_dims(boxes1, -2)  # [..., N, 1, 4]
    b2 = tf.expand_dims(boxes2, -3)  # [..., 1, M, 4]
    height = tf.maximum(tf.minimum(b1[..., 2], b2[..., 2]) - tf.maximum(b1[..., 0], b2[..., 0]), 0.0)
    width = tf.maximum(tf.minimum(b1[..., 3], b2[..., 3]) - tf.maximum(b1[..., 1], b2[..., 1]), 0.0)
    intersection = height * width
    union = box_areas_graph(b1) + box_areas_graph(b2) - intersection
    return tf.math.divide_no_nan(intersection, union)


def box_refinement_graph(box, gt_box):
    """Deltas that move ``box`` onto ``gt_box`` (inverse of :func:`apply_box_deltas_graph`).

    Parameters
    ----------
    box, gt_box : Tensor, float32, [..., 4]
        ``(y1, x1, y2, x2)`` with positive heights and widths.

    Returns
    -------
    Tensor, float32, [..., 4]
        ``(dy, dx, log(dh), log(dw))`` (not divided by the std-dev).
    """
    box = tf.cast(box, tf.float32)
    gt_box = tf.cast(gt_box, tf.float32)
    center_y, center_x, height, width = _centers_and_sizes(box)
    gt_center_y, gt_center_x, gt_height, gt_width = _centers_and_sizes(gt_box)
    return tf.stack([
        (gt_center_y - center_y) / height,
        (gt_center_x - center_x) / width,
        tf.math.log(gt_height / height),
        tf.math.log(gt_width / width),
    ], axis=-1)


def _norm_scale_and_shift(shape, dtype):
    height, width = tf.unstack(tf.cast(shape, dtype)[:2])
    scale = tf.stack([height - 1.0, width - 1.0, height - 1.0, width - 1.0])
    shift = tf.constant([0.0, 0.0, 1.0, 1.0], dtype)
    return scale, shift


def norm_boxes_graph(boxes, shape):
    """Pixel boxes to normalized boxes.

    Parameters
    ----------
    boxes : Tensor, [..., 4]
        Pixel ``(y1, x1, y2, x2)`` with ``y2``/``x2`` exclusive.
    shape : Tensor or sequence, [2] (or longer: only the first two are used)
        ``(height, width)`` of the image in pixels.

    Returns
    -------
    Tensor, float32, [..., 4]
        ``(y1, x1, y2 - 1, x2 - 1) / (H - 1, W - 1, H - 1, W - 1)``: the image spans
        ``[0, 1]`` with ``y2``/``x2`` inclusive (matterport's convention).
    """
    boxes = tf.cast(boxes, tf.float32)
    scale, shift = _norm_scale_and_shift(shape, tf.float32)
    return (boxes - shift) / scale


def denorm_boxes_graph(boxes, shape):
    """Normalized boxes to int32 pixel boxes (inverse of :func:`norm_boxes_graph`, rounded)."""
    boxes = tf.cast(boxes, tf.float32)
    scale, shift = _norm_scale_and_shift(shape, tf.float32)
    return tf.cast(tf.round(boxes * scale + shift), tf.int32)


def trim_zeros_graph(boxes, name="trim_zeros"):
    """Drop the all-zero (padding) rows of ``[N, 4]`` boxes.

    Returns
    -------
    boxes : Tensor, [M, 4]
        The rows with at least one non-zero coordinate, in order.
    non_zeros : Tensor, bool, [N]
        Which rows were kept.
    """
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    return tf.boolean_mask(boxes, non_zeros, name=name), non_zeros


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Run a per-image graph function on each batch item and stack the results.

    Parameters
    ----------
    inputs : Tensor or list of Tensor
        Each with the batch on axis 0.
    graph_fn : callable
        Called as ``graph_fn(*slices)`` with one item of each input; returns a Tensor
        or a list/tuple of Tensors.
    batch_size : int
        Number of items (a Python int: the loop is unrolled).
    names : list of str, optional
        Names of the stacked outputs.

    Returns
    -------
    Tensor or list of Tensor
        The per-item outputs stacked on a new axis 0 (a single Tensor when
        ``graph_fn`` returns one).
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    outputs = []
    for i in range(batch_size):
        result = graph_fn(*[x[i] for x in inputs])
        if not isinstance(result, (list, tuple)):
            result = [result]
        outputs.append(result)
    per_output = list(zip(*outputs, strict=True))
    if names is None:
        names = [None] * len(per_output)
    stacked = [tf.stack(list(items), axis=0, name=name) for items, name in zip(per_output, names, strict=False)]
    return stacked[0] if len(stacked) == 1 else stacked


def batch_pack_graph(x, counts, num_rows):
    """Concatenate the first ``counts[i]`` rows of every batch item (matterport's helper).

    Parameters
    ----------
    x : Tensor, [batch, N, ...]
    counts : Tensor or sequence, int, [batch]
        Rows to take from each item (at most ``N``).
    num_rows : int
        Number of batch items to take (a Python int: the loop is unrolled).

    Returns
    -------
    Tensor, [sum(counts[:num_rows]), ...]
        ``x[0, :counts[0]]``, then ``x[1, :counts[1]]``, ... stacked on axis 0.
    """
    return tf.concat([x[i, : counts[i]] for i in range(num_rows)], axis=0)
