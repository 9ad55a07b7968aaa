"""scikit-image's bilinear ``resize``, bit for bit, as TensorFlow graph ops.

``molding.resize`` (matterport's wrapper) calls ``skimage.transform.resize`` with
``order=1, mode='constant', cval=0, clip=True, anti_aliasing=False``, which is
``scipy.ndimage.zoom(grid_mode=True, mode='grid-constant')`` followed by a clip to
the input's value range. For an output pixel ``k`` of an axis resized from ``n`` to
``m`` samples, scipy reads the input at

    c = (k + 0.5) * (n / m) - 0.5,  i0 = floor(c),  w1 = c - i0,  w0 = 1 - w1

(float64), takes 0 for an index outside ``[0, n)``, and sums ``value * wy * wx``
over the four neighbours in the order ``(i0, j0), (i0, j1), (i1, j0), (i1, j1)``.
The functions here do exactly those float64 operations in that order, so the
results are identical to scikit-image's (``tests/mrcnn/export/test_export_graph.py``
holds them equal on images and on detection masks), which plain
``tf.image.resize`` (float32, edges clamped instead of blended with 0) is not.

* :func:`resize_bilinear` -- ``molding.resize(image, (height, width), preserve_range=True)``
  of a batch of images, in float64;
* :func:`paste_masks` -- ``masks.unmold_mask`` of each detection: its small mask
  resized into its box of a full-size boolean mask.
"""
from __future__ import annotations

import tensorflow as tf

__all__ = ["axis_samples", "resize_bilinear", "paste_masks"]


def axis_samples(in_size, out_size, positions, dtype=tf.float64):
    """Where scikit-image's bilinear resize reads one axis, with scipy's arithmetic.

    Parameters
    ----------
    in_size, out_size : scalar Tensor, int32
        The axis' length before and after the resize.
    positions : Tensor, int32, [...]
        Output sample indices (``0 .. out_size - 1`` for a whole axis; other values
        give the same formula outside it).
    dtype : tf.DType
        float64 gives scipy's weights exactly.

    Returns
    -------
    list of two (index, weight, inside)
        The two input samples of each position, in scipy's order: ``index`` int32
        ``[...]`` clamped into ``[0, in_size)``, ``weight`` ``dtype`` ``[...]``
        (``1 - t`` and ``t``), ``inside`` bool ``[...]``: False where the index was
        outside the axis, where scipy reads the constant 0 ('grid-constant').
    """
    zoom = tf.cast(in_size, dtype) / tf.cast(out_size, dtype)
    coordinate = (tf.cast(positions, dtype) + 0.5) * zoom - 0.5
    start = tf.floor(coordinate)
    # coordinate - floor(coordinate), exactly; as a subtraction, Grappler's arithmetic optimizer would turn
    # the weight 1 - (coordinate - floor) into (floor + 1) - coordinate, which rounds differently
    fraction = tf.math.floormod(coordinate, 1.0)
    samples = []
    for offset, weight in ((0, 1.0 - fraction), (1, fraction)):
        index = tf.cast(start, tf.int32) + offset
        inside = (index >= 0) & (index < in_size)
        samples.append((tf.clip_by_value(index, 0, in_size - 1), weight, inside))
    return samples


def _weighted_sum(read, rows, columns, dtype):
    """scipy's sum over the four neighbours in its order: ``value * wy * wx`` at (y0, x0), (y0, x1), (y1, x0), (y1, x1).

    ``read(row_index, column_index)`` gives the values of one neighbour (already
    broadcastable against the weights); ``rows`` and ``columns`` are
    :func:`axis_samples`' lists, each weight and mask already expanded for broadcasting.
    """
    total = None
    for row_index, row_weight, row_inside in rows:
        for column_index, column_weight, column_inside in columns:
            value = tf.where(row_inside & column_inside, tf.cast(read(row_index, column_index), dtype),
                             tf.zeros([], dtype))
            # weights broadcast to the values' shape first: Grappler's MinimizeBroadcasts would otherwise
            # reorder (value * wy) * wx into value * (wy * wx), which rounds differently
            shape = tf.shape(value)
            term = value * tf.broadcast_to(row_weight, shape) * tf.broadcast_to(column_weight, shape)
            if total is None:
                total = term
            elif dtype == tf.float64:  # the exact path: keep scipy's order of the additions
                total = _ordered(total) + term
            else:
                total = total + term
    return total


def _ordered(partial_sum):
    """``partial_sum`` as it is, but opaque to Grappler's AddOpsRewrite.

    That rewrite turns a chain of additions into one AddN with its inputs in another
    order, which rounds differently.
    """
    return tf.raw_ops.Snapshot(input=partial_sum)


def _expanded(samples, axis):
    """:func:`axis_samples`' weights and masks with a new axis at ``axis`` (indices unchanged)."""
    return [(index, tf.expand_dims(weight, axis), tf.expand_dims(inside, axis)) for index, weight, inside in samples]


def resize_bilinear(images, height, width, dtype=tf.float64):
    """scikit-image's bilinear resize of a batch of images to ``height x width``.

    Parameters
    ----------
    images : Tensor, [N, H, W, C], any real dtype
    height, width : scalar Tensor, int32
    dtype : tf.DType
        The arithmetic: float64 is scikit-image's, bit for bit; float32 (for
        TFLite's built-in ops) differs by rounding, so an image cast back to uint8
        can differ by one grey level where the exact value is near an integer.

    Returns
    -------
    Tensor, ``dtype``, [N, height, width, C]
        ``molding.resize(image, (height, width), preserve_range=True)`` of each image,
        clipped to that image's value range as scikit-image does (cast it to the
        input dtype afterwards to get ``resize_image``'s truncation).
    """
    shape = tf.shape(images)
    rows = axis_samples(shape[1], height, tf.range(height), dtype)  # weights [height]
    columns = axis_samples(shape[2], width, tf.range(width), dtype)  # weights [width]
    rows = [(index, tf.reshape(weight, [1, -1, 1, 1]), tf.reshape(inside, [1, -1, 1, 1]))
            for index, weight, inside in rows]
    columns = [(index, tf.reshape(weight, [1, 1, -1, 1]), tf.reshape(inside, [1, 1, -1, 1]))
               for index, weight, inside in columns]

    def read(row_index, column_index):
        return tf.gather(tf.gather(images, row_index, axis=1), column_index, axis=2)

    total = _weighted_sum(read, rows, columns, dtype)
    values = tf.reshape(images, [shape[0], -1])  # the clip range: each image's own minimum and maximum
    if values.dtype == tf.uint8:
        values = tf.cast(values, tf.int32)  # TFLite reduces no uint8 this way; exact either way
    low = tf.cast(tf.reduce_min(values, axis=1), dtype)
    high = tf.cast(tf.reduce_max(values, axis=1), dtype)
    return tf.clip_by_value(total, tf.reshape(low, [-1, 1, 1, 1]), tf.reshape(high, [-1, 1, 1, 1]))


def paste_masks(masks, boxes, height, width, dtype=tf.float64):
    """``masks.unmold_mask`` of every detection: small masks resized into their boxes, thresholded.

    Parameters
    ----------
    masks : Tensor, float32, [N, D, h, w]
        Mask probabilities of each detection's class (28 x 28 for matterport's head).
    boxes : Tensor, int32, [N, D, (y1, x1, y2, x2)]
        Pixels of the full image, ``y2``/``x2`` exclusive; an empty box gives an empty mask.
    height, width : scalar Tensor, int
        The full image's size.
    dtype : tf.DType
        The resize's arithmetic (see :func:`resize_bilinear`).

    Returns
    -------
    Tensor, bool, [N, D, height, width]
        True where the mask, resized bilinearly (scikit-image, float32 result clipped
        to the small mask's range) to the box's size and placed on it, is >= 0.5;
        parts of a box outside the image are cut off.
    """
    shape = tf.shape(masks)
    y1, x1, y2, x2 = tf.unstack(boxes, num=4, axis=-1)  # each [N, D]
    box_height, box_width = tf.expand_dims(y2 - y1, -1), tf.expand_dims(x2 - x1, -1)
    # The resize runs on a canvas as large as the batch's largest box (not the whole image), then each
    # detection's canvas is placed at its box with one gather per axis.
    rows = tf.reshape(tf.range(tf.maximum(tf.reduce_max(box_height), 1)), [1, 1, -1])  # [1, 1, canvas height]
    columns = tf.reshape(tf.range(tf.maximum(tf.reduce_max(box_width), 1)), [1, 1, -1])
    row_samples = _expanded(axis_samples(shape[2], tf.maximum(box_height, 1), rows, dtype), -1)
    column_samples = _expanded(axis_samples(shape[3], tf.maximum(box_width, 1), columns, dtype), -2)

    def read(row_index, column_index):
        return tf.gather(tf.gather(masks, row_index, axis=2, batch_dims=2), column_index, axis=3, batch_dims=2)

    total = _weighted_sum(read, row_samples, column_samples, dtype)  # [N, D, canvas height, canvas width]
    low = tf.reshape(tf.reduce_min(tf.reshape(masks, [shape[0], shape[1], -1]), axis=2), [shape[0], shape[1], 1, 1])
    high = tf.reshape(tf.reduce_max(tf.reshape(masks, [shape[0], shape[1], -1]), axis=2), [shape[0], shape[1], 1, 1])
    canvas = tf.clip_by_value(tf.cast(total, tf.float32), low, high) >= 0.5
    return _place(canvas, y1, x1, box_height, box_width, tf.cast(height, tf.int32), tf.cast(width, tf.int32))


def _place(canvas, y1, x1, box_height, box_width, height, width):
    """Each detection's canvas ``[N, D, ch, cw]`` (bool) at its box in a ``[N, D, height, width]`` image."""
    rows = tf.reshape(tf.range(height), [1, 1, -1]) - tf.expand_dims(y1, -1)  # [N, D, height], in the box
    columns = tf.reshape(tf.range(width), [1, 1, -1]) - tf.expand_dims(x1, -1)
    inside_rows = (rows >= 0) & (rows < box_height)
    inside_columns = (columns >= 0) & (columns < box_width)
    rows = tf.clip_by_value(rows, 0, tf.shape(canvas)[2] - 1)
    columns = tf.clip_by_value(columns, 0, tf.shape(canvas)[3] - 1)
    placed = tf.gather(tf.gather(canvas, rows, axis=2, batch_dims=2), columns, axis=3, batch_dims=2)
    return tf.expand_dims(inside_rows, -1) & tf.expand_dims(inside_columns, -2) & placed
