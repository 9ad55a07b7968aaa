"""Multi-level ROI Align from gathers and arithmetic: what TFLite's built-in ops can run, and ONNX runs fast.

``roi_align.pyramid_roi_align_graph`` crops with ``tf.image.crop_and_resize``, which
TFLite has no built-in kernel for (and the TFLite interpreter of TensorFlow >= 2.20,
like ``ai_edge_litert``, cannot run TensorFlow "select" ops at all), and which tf2onnx
converts into a loop over the boxes that copies the whole feature map each time. This
twin does the same sampling with ``Gather`` and float32 arithmetic, in the kernel's
order of operations (``crop_and_resize_op.cc``)::

    in_y = y1 * (H - 1) + y * ((y2 - y1) * (H - 1) / (crop_h - 1))    (0 outside [0, H - 1])
    top  = top_left + (top_right - top_left) * x_lerp
    crop = top + (bottom - top) * y_lerp

so its crops equal ``crop_and_resize``'s when run eagerly, and up to float rounding in a
graph, where Grappler may regroup the arithmetic (``tests/mrcnn/export/test_export_graph.py``).
All levels are read from one flattened pyramid, so the crops come out in box order
without ``crop_and_resize``'s per-level split and ``InvertPermutation``.
"""
from __future__ import annotations

import tensorflow as tf

from ..layers.roi_align import MIN_LEVEL, roi_pyramid_levels

__all__ = ["pyramid_roi_align_gather"]


def _axis_samples(start, end, size, count):
    """Sample positions of one axis: ``(index_low, index_high, lerp, inside)``, each ``[B, N, count]``."""
    extent = tf.cast(size - 1, tf.float32)
    scale = (end - start) * extent / float(count - 1)
    position = tf.expand_dims(start * extent, -1) + tf.range(count, dtype=tf.float32) * tf.expand_dims(scale, -1)
    inside = (position >= 0.0) & (position <= tf.expand_dims(extent, -1))
    low = tf.floor(position)
    lerp = position - low
    limit = tf.expand_dims(size, -1) - 1
    low_index = tf.clip_by_value(tf.cast(low, tf.int32), 0, limit)
    high_index = tf.clip_by_value(tf.cast(tf.math.ceil(position), tf.int32), 0, limit)
    return low_index, high_index, lerp, inside


def pyramid_roi_align_gather(boxes, image_shape, feature_maps, pool_shape):
    """Bilinear crops of every box from its pyramid level (``pyramid_roi_align_graph``'s twin).

    Parameters
    ----------
    boxes : Tensor, float32, [batch, num_boxes, 4]
        Normalized ``(y1, x1, y2, x2)``.
    image_shape : Tensor, [2+]
        Molded image ``(H, W, ...)``.
    feature_maps : list of Tensor
        ``[P2, P3, P4, P5]``, each ``[batch, h_i, w_i, channels]``.
    pool_shape : (int, int)
        Both at least 2.

    Returns
    -------
    Tensor, float32, [batch, num_boxes, pool_h, pool_w, channels]
    """
    boxes = tf.cast(boxes, tf.float32)
    levels = roi_pyramid_levels(boxes, image_shape) - MIN_LEVEL  # [B, N], 0..3
    shapes = tf.stack([tf.shape(level_map)[1:3] for level_map in feature_maps])  # [L, 2]
    flat = tf.concat([tf.reshape(level_map, [tf.shape(level_map)[0], -1, tf.shape(level_map)[3]])
                      for level_map in feature_maps], axis=1)  # [B, sum(h_i * w_i), C]
    sizes = shapes[:, 0] * shapes[:, 1]
    offsets = tf.cumsum(sizes, exclusive=True)
    height, width = tf.gather(shapes[:, 0], levels), tf.gather(shapes[:, 1], levels)  # [B, N]
    offset = tf.gather(offsets, levels)
    y1, x1, y2, x2 = tf.unstack(boxes, num=4, axis=-1)
    top, bottom, y_lerp, inside_y = _axis_samples(y1, y2, height, pool_shape[0])
    left, right, x_lerp, inside_x = _axis_samples(x1, x2, width, pool_shape[1])

    row_start = tf.expand_dims(offset, -1) + top * tf.expand_dims(width, -1)  # [B, N, pool_h] (top row)
    row_start = (row_start, tf.expand_dims(offset, -1) + bottom * tf.expand_dims(width, -1))

    def read(row, columns):
        index = tf.expand_dims(row_start[row], -1) + tf.expand_dims(columns, -2)  # [B, N, pool_h, pool_w]
        return tf.gather(flat, index, batch_dims=1)  # [B, N, pool_h, pool_w, C]

    x_lerp = tf.expand_dims(tf.expand_dims(x_lerp, -2), -1)  # [B, N, 1, pool_w, 1]
    y_lerp = tf.expand_dims(tf.expand_dims(y_lerp, -1), -1)  # [B, N, pool_h, 1, 1]
    top_left, top_right = read(0, left), read(0, right)
    bottom_left, bottom_right = read(1, left), read(1, right)
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    crops = upper + (lower - upper) * y_lerp
    inside = tf.expand_dims(inside_y, -1) & tf.expand_dims(inside_x, -2)
    return tf.where(tf.expand_dims(inside, -1), crops, 0.0)
