"""What ``MaskRCNN.detect`` does after the network, as graph ops: detections back in the input's pixels.

:func:`unmold_batch` is ``inference.detect.unmold_detections`` for a batch whose images
share one molded geometry, with fixed-size outputs: the first ``num_detections``
rows of each image are its detections, in ``detect``'s order; the rest are zeros.
The arithmetic is numpy's (float32 window transform, float64 denormalisation
rounded half to even, clip to the image, empty boxes dropped), so the boxes are
``detect``'s to the pixel.
"""
from __future__ import annotations

import tensorflow as tf

from .resample import paste_masks

__all__ = ["unmold_batch"]


def _window_transform(window, molded, dtype):
    """``(shift, scale)`` float32 ``[4]`` of ``unmold_detections``: the window normalized in the molded image."""
    extent = tf.cast(molded, dtype) - 1.0
    norm_scale = tf.stack([extent[0], extent[1], extent[0], extent[1]])
    normalized = tf.cast((tf.cast(window, dtype) - tf.constant([0.0, 0.0, 1.0, 1.0], dtype)) / norm_scale,
                         tf.float32)  # boxes.norm_boxes(window, molded)
    wy1, wx1, wy2, wx2 = tf.unstack(normalized)
    return tf.stack([wy1, wx1, wy1, wx1]), tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])


def _to_input_pixels(boxes, plan, dtype):
    """Normalized molded-image boxes ``[N, D, 4]`` float32 -> int32 pixels of the input, clipped to it."""
    shift, scale = _window_transform(plan["window"], plan["molded"], dtype)
    in_window = tf.cast((boxes - shift) / scale, dtype)
    height, width = plan["height"], plan["width"]
    extent = tf.cast(tf.stack([height - 1, width - 1, height - 1, width - 1]), dtype)
    pixels = tf.cast(tf.round(in_window * extent + tf.constant([0.0, 0.0, 1.0, 1.0], dtype)), tf.int32)
    return tf.clip_by_value(pixels, 0, tf.stack([height, width, height, width]))


def _leading_count(valid):
    """Per row of ``valid`` ``[N, D]``, how many entries come before the first False."""
    falses_so_far = tf.cumsum(tf.cast(~valid, tf.int32), axis=1)
    return tf.reduce_sum(tf.cast(falses_so_far == 0, tf.int32), axis=1)


def unmold_batch(detections, masks, plan, with_masks=True, dtype=tf.float64):
    """Detections of a batch in the input images' pixels, ``detect``'s results as fixed-size tensors.

    Parameters
    ----------
    detections : Tensor, float32, [N, D, (y1, x1, y2, x2, class_id, score)]
        The detection layer's output: normalized boxes in the molded images,
        zero rows (class 0) after the last detection.
    masks : Tensor, float32, [N, D, h, w]
        Mask probabilities of each detection's class.
    plan : dict
        :func:`preprocess.mold_batch`'s geometry: ``window``, ``molded``, ``height``, ``width``.
    with_masks : bool
        Also return the full-size masks.
    dtype : tf.DType
        The arithmetic of the denormalisation and of the masks' resize: float64
        is numpy's; with float32 (TFLite) a coordinate within float32's precision
        of a half pixel can round the other way.

    Returns
    -------
    dict of Tensor
        ``boxes`` int32 ``[N, D, (y1, x1, y2, x2)]`` input pixels, ``y2``/``x2``
        exclusive; ``class_ids`` int32 ``[N, D]``; ``scores`` float32 ``[N, D]``;
        ``num_detections`` int32 ``[N]``; with ``with_masks``, ``masks`` bool
        ``[N, D, H, W]`` (``masks.unmold_mask`` of each detection). Detections whose
        box is empty in input pixels are dropped, as ``unmold_detections`` drops
        them; rows from ``num_detections`` on are zero (masks False).
    """
    class_ids = tf.cast(detections[..., 4], tf.int32)
    boxes = _to_input_pixels(detections[..., :4], plan, dtype)
    depth = tf.shape(detections)[1]
    listed = tf.expand_dims(tf.range(depth), 0) < tf.expand_dims(_leading_count(class_ids != 0), 1)
    visible = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    keep = listed & visible
    order = tf.argsort(tf.cast(~keep, tf.int32), axis=1, stable=True)  # kept rows first, in their order
    kept = tf.gather(keep, order, batch_dims=1)
    outputs = {
        "boxes": tf.where(tf.expand_dims(kept, -1), tf.gather(boxes, order, batch_dims=1), 0),
        "class_ids": tf.where(kept, tf.gather(class_ids, order, batch_dims=1), 0),
        "scores": tf.where(kept, tf.gather(detections[..., 5], order, batch_dims=1), 0.0),
        "num_detections": tf.reduce_sum(tf.cast(keep, tf.int32), axis=1),
    }
    if with_masks:
        outputs["masks"] = paste_masks(tf.gather(masks, order, batch_dims=1), outputs["boxes"],
                                       plan["height"], plan["width"], dtype)
    return outputs
