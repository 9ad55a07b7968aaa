"""Multi-level ROI Align: crop each box from the pyramid level that suits its size."""
from __future__ import annotations

import keras
import tensorflow as tf

from ..ops.image_meta import parse_image_meta_graph

__all__ = ["PyramidROIAlign", "roi_pyramid_levels", "pyramid_roi_align_graph"]

#: Canonical ImageNet pre-training size: a box of this side (in pixels of a
#: 224 x 224 image) maps to level 4 (the FPN paper's k0).
CANONICAL_SIZE = 224.0
CANONICAL_LEVEL = 4
MIN_LEVEL, MAX_LEVEL = 2, 5


def roi_pyramid_levels(boxes, image_shape):
    """Pyramid level of each box (FPN paper, eq. 1, with matterport's normalized form).

    ``level = clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(H * W)))), 2, 5)`` where
    ``h, w`` are the normalized box sides and ``H, W`` the molded image size.

    Parameters
    ----------
    boxes : Tensor, float32, [..., 4]
        Normalized ``(y1, x1, y2, x2)``.
    image_shape : Tensor or sequence, [2+]
        ``(H, W, ...)`` of the molded image in pixels.

    Returns
    -------
    Tensor, int32, [...]
        Values in 2..5. Degenerate (zero-area, e.g. padding) boxes get level 2.
    """
    boxes = tf.cast(boxes, tf.float32)
    y1, x1, y2, x2 = tf.unstack(boxes, num=4, axis=-1)
    image_shape = tf.cast(image_shape, tf.float32)
    image_area = image_shape[0] * image_shape[1]
    # A tiny floor keeps log2(0) = -inf (and its undefined int cast) away from padding boxes.
    box_side = tf.sqrt(tf.maximum((y2 - y1) * (x2 - x1), 1e-12))
    level = tf.math.log(box_side / (CANONICAL_SIZE / tf.sqrt(image_area))) / tf.math.log(2.0)
    level = CANONICAL_LEVEL + tf.cast(tf.round(level), tf.int32)
    return tf.clip_by_value(level, MIN_LEVEL, MAX_LEVEL)


def pyramid_roi_align_graph(boxes, image_shape, feature_maps, pool_shape):
    """Bilinear crops of every box from its pyramid level.

    Parameters
    ----------
    boxes : Tensor, float32, [batch, num_boxes, 4]
        Normalized ``(y1, x1, y2, x2)``.
    image_shape : Tensor, [2+]
        Molded image ``(H, W, ...)`` (the same for the whole batch).
    feature_maps : list of Tensor
        ``[P2, P3, P4, P5]``, each ``[batch, h_i, w_i, channels]``.
    pool_shape : (int, int)

    Returns
    -------
    Tensor, float32, [batch, num_boxes, pool_h, pool_w, channels]
        In the order of ``boxes``. Each crop is ``tf.image.crop_and_resize``
        (bilinear, sample points spaced evenly from the box's first to its last
        coordinate, ``y * (h_i - 1)`` in feature-map cells; 0 outside the map).
    """
    boxes = tf.cast(boxes, tf.float32)  # crop_and_resize needs float32 boxes (mixed precision)
    batch = tf.shape(boxes)[0]
    num_boxes = tf.shape(boxes)[1]
    flat_boxes = tf.reshape(boxes, [-1, 4])
    levels = roi_pyramid_levels(flat_boxes, image_shape)
    image_index = tf.range(tf.shape(flat_boxes)[0], dtype=tf.int32) // num_boxes

    pooled, order = [], []
    for level, feature_map in zip(range(MIN_LEVEL, MAX_LEVEL + 1), feature_maps, strict=True):
        selected = tf.cast(tf.reshape(tf.where(tf.equal(levels, level)), [-1]), tf.int32)
        level_boxes = tf.stop_gradient(tf.gather(flat_boxes, selected))
        level_images = tf.stop_gradient(tf.gather(image_index, selected))
        pooled.append(tf.image.crop_and_resize(feature_map, level_boxes, level_images, pool_shape,
                                               method="bilinear"))
        order.append(selected)
    pooled = tf.concat(pooled, axis=0)
    # Every box sits on exactly one level, so `order` is a permutation of 0..n-1.
    pooled = tf.gather(pooled, tf.math.invert_permutation(tf.concat(order, axis=0)))
    channels = feature_maps[0].shape[-1] if feature_maps[0].shape[-1] is not None else tf.shape(feature_maps[0])[-1]
    return tf.reshape(pooled, [batch, num_boxes, pool_shape[0], pool_shape[1], channels])


@keras.saving.register_keras_serializable(package="rsna_detector")
class PyramidROIAlign(keras.layers.Layer):
    """ROI Align over the FPN levels (matterport's ``PyramidROIAlign``).

    Parameters
    ----------
    pool_shape : (int, int)
        Output ``(height, width)`` of each crop.

    Call inputs ``[boxes [B, N, 4] normalized, image_meta [B, META], P2, P3, P4, P5]``;
    output ``[B, N, pool_h, pool_w, channels]`` in box order. The image shape is read
    from the first image's meta (a batch shares one molded shape).

    ``align_graph`` is the function that does the work (:func:`pyramid_roi_align_graph`);
    an exporter may set another of the same signature and results on a layer
    (``mrcnn/export``: TFLite's built-in ops have no ``CropAndResize``, tf2onnx makes it a loop).
    """

    align_graph = staticmethod(pyramid_roi_align_graph)

    def __init__(self, pool_shape, **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)

    def call(self, inputs):
        boxes, image_meta = inputs[0], inputs[1]
        feature_maps = list(inputs[2:])
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][0]
        return self.align_graph(boxes, image_shape, feature_maps, self.pool_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:2]) + self.pool_shape + (input_shape[2][-1],)

    def get_config(self):
        config = super().get_config()
        config["pool_shape"] = list(self.pool_shape)
        return config
