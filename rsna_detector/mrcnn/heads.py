"""The second-stage heads: box classifier/regressor and mask predictor.

Layer names and weight shapes are matterport's (``mrcnn_class_conv1`` ... ``mrcnn_mask``),
so its weight files load by name. matterport wrapped every head layer in
``TimeDistributed`` (over the ROI axis); here the ROI axis is folded into the batch
axis instead (``[B, N, ...] -> [B * N, ...]``), which computes the same thing with
plain layers: a ``TimeDistributed(Conv2D)`` stored its kernel and bias under the
wrapper's name, which is the name the plain layer has here.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .backbone import BatchNorm
from .roi_align import PyramidROIAlign

__all__ = ["fpn_classifier_graph", "build_fpn_mask_graph", "FoldRois", "UnfoldRois"]


@keras.saving.register_keras_serializable(package="rsna_detector")
class FoldRois(keras.layers.Layer):
    """``[B, N, *rest] -> [B * N, *rest]``: the ROI axis folded into the batch axis."""

    def call(self, inputs):
        shape = tf.shape(inputs)
        return tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))

    def compute_output_shape(self, input_shape):
        batch, rois = input_shape[0], input_shape[1]
        folded = batch * rois if batch is not None and rois is not None else None
        return (folded,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="rsna_detector")
class UnfoldRois(keras.layers.Layer):
    """``[B * N, *rest]`` back to ``[B, N, *rest]``; ``N`` is read from a reference ``[B, N, ...]``.

    ``target_shape`` (optional) reshapes ``rest`` as well, e.g. ``(num_classes, 4)``.
    """

    def __init__(self, target_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape) if target_shape is not None else None

    def call(self, inputs):
        folded, reference = inputs
        rest = tf.constant(self.target_shape, tf.int32) if self.target_shape else tf.shape(folded)[1:]
        head = tf.shape(reference)[:2]
        return tf.reshape(folded, tf.concat([head, rest], axis=0))

    def compute_output_shape(self, input_shape):
        folded_shape, reference_shape = input_shape
        rest = self.target_shape if self.target_shape else tuple(folded_shape[1:])
        return tuple(reference_shape[:2]) + tuple(rest)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape) if self.target_shape else None
        return config


def _conv_bn_relu(x, filters, kernel_size, conv_name, bn_name, train_bn, padding="valid"):
    x = keras.layers.Conv2D(filters, kernel_size, padding=padding, name=conv_name)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name)(x)
    return keras.layers.Activation("relu")(x)


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         fc_layers_size=1024):
    """Class scores and class-specific box deltas for every ROI.

    Parameters
    ----------
    rois : KerasTensor, float32, [batch, num_rois, 4]
        Normalized ``(y1, x1, y2, x2)``; zero rows are padding.
    feature_maps : list of KerasTensor
        ``[P2, P3, P4, P5]``.
    image_meta : KerasTensor, [batch, IMAGE_META_SIZE]
    pool_size : int
        ROI Align output side (``POOL_SIZE``).
    num_classes : int
        Including background.
    train_bn : bool or None
        See ``backbone.BatchNorm``.
    fc_layers_size : int
        Width of the two "fully connected" layers (``FPN_CLASSIF_FC_LAYERS_SIZE``).

    Returns
    -------
    mrcnn_class_logits : KerasTensor, float32, [batch, num_rois, num_classes]
    mrcnn_probs : KerasTensor, float32, [batch, num_rois, num_classes]
        Softmax of the logits (layer ``mrcnn_class``).
    mrcnn_bbox : KerasTensor, float32, [batch, num_rois, num_classes, 4]
        Deltas ``(dy, dx, log(dh), log(dw))`` divided by ``BBOX_STD_DEV``.
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier")([rois, image_meta] + list(feature_maps))
    x = FoldRois(name="mrcnn_class_fold")(x)  # [B*N, pool, pool, C]
    # A pool x pool 'valid' convolution on a pool x pool input: a fully connected layer.
    x = _conv_bn_relu(x, fc_layers_size, (pool_size, pool_size), "mrcnn_class_conv1", "mrcnn_class_bn1", train_bn)
    x = _conv_bn_relu(x, fc_layers_size, (1, 1), "mrcnn_class_conv2", "mrcnn_class_bn2", train_bn)
    shared = keras.layers.Reshape((fc_layers_size,), name="pool_squeeze")(x)  # [B*N, fc]

    logits = keras.layers.Dense(num_classes, name="mrcnn_class_logits")(shared)
    deltas = keras.layers.Dense(num_classes * 4, activation="linear", name="mrcnn_bbox_fc")(shared)
    mrcnn_class_logits = UnfoldRois(name="mrcnn_class_logits_unfold")([logits, rois])
    mrcnn_probs = keras.layers.Activation("softmax", name="mrcnn_class")(mrcnn_class_logits)
    mrcnn_bbox = UnfoldRois(target_shape=(num_classes, 4), name="mrcnn_bbox")([deltas, rois])
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True):
    """Per-class mask probabilities for every ROI.

    Parameters
    ----------
    rois : KerasTensor, float32, [batch, num_rois, 4]
        Normalized ``(y1, x1, y2, x2)`` (the detections at inference).
    feature_maps : list of KerasTensor
        ``[P2, P3, P4, P5]``.
    image_meta : KerasTensor, [batch, IMAGE_META_SIZE]
    pool_size : int
        ROI Align output side (``MASK_POOL_SIZE``); masks are twice that.
    num_classes : int
    train_bn : bool or None

    Returns
    -------
    KerasTensor, float32, [batch, num_rois, 2 * pool_size, 2 * pool_size, num_classes]
        Sigmoid mask probabilities in the frame of each ROI.
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_mask")([rois, image_meta] + list(feature_maps))
    x = FoldRois(name="mrcnn_mask_fold")(x)
    for i in range(1, 5):
        x = _conv_bn_relu(x, 256, (3, 3), f"mrcnn_mask_conv{i}", f"mrcnn_mask_bn{i}", train_bn, padding="same")
    x = keras.layers.Conv2DTranspose(256, (2, 2), strides=2, activation="relu", name="mrcnn_mask_deconv")(x)
    x = keras.layers.Conv2D(num_classes, (1, 1), strides=1, activation="sigmoid", name="mrcnn_mask")(x)
    return UnfoldRois(name="mrcnn_mask_unfold")([x, rois])
