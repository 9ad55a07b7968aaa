"""Region Proposal Network: one shared sub-model applied to each pyramid level.

Speed: the RPN losses read the ``RPN_TRAIN_ANCHORS_PER_IMAGE`` sampled anchors only
(256 of the 16,000-odd at 256 px), so the gradient reaching the shared 3x3
convolution is zero on all but a few percent of its output cells. Its layer
(:class:`~.sparse_conv.SparseGradientConv2D`) computes its weight and input gradients
from those cells only -- the same sums without the zero terms -- instead of two dense
convolutions over every cell, the largest single cost of a training step on a CPU.
"""
from __future__ import annotations

import keras

from .sparse_conv import SparseGradientConv2D

__all__ = ["build_rpn_model", "rpn_graph", "apply_rpn"]


def rpn_graph(feature_map, anchors_per_location, anchor_stride):
    """The RPN head on one feature map.

    Parameters
    ----------
    feature_map : KerasTensor, [batch, h, w, depth]
    anchors_per_location : int
        Anchors per feature-map cell (``len(RPN_ANCHOR_RATIOS)``).
    anchor_stride : int
        Cells between anchor positions (``RPN_ANCHOR_STRIDE``).

    Returns
    -------
    rpn_class_logits : KerasTensor, [batch, h*w*anchors, 2]
        Background / foreground logits, anchors ordered by row, column, then ratio
        (the order of ``utils.generate_anchors``).
    rpn_probs : KerasTensor, [batch, h*w*anchors, 2]
        Softmax of the logits.
    rpn_bbox : KerasTensor, [batch, h*w*anchors, 4]
        Deltas ``(dy, dx, log(dh), log(dw))`` divided by ``RPN_BBOX_STD_DEV``.
    """
    shared = SparseGradientConv2D(512, (3, 3), padding="same", activation="relu", strides=anchor_stride,
                                  name="rpn_conv_shared")(feature_map)
    x = keras.layers.Conv2D(2 * anchors_per_location, (1, 1), padding="valid", activation="linear",
                            name="rpn_class_raw")(shared)
    rpn_class_logits = keras.layers.Reshape((-1, 2), name="rpn_class_logits_reshape")(x)
    rpn_probs = keras.layers.Activation("softmax", name="rpn_class_xxx")(rpn_class_logits)
    x = keras.layers.Conv2D(anchors_per_location * 4, (1, 1), padding="valid", activation="linear",
                            name="rpn_bbox_pred")(shared)
    rpn_bbox = keras.layers.Reshape((-1, 4), name="rpn_bbox_reshape")(x)
    return [rpn_class_logits, rpn_probs, rpn_bbox]


def build_rpn_model(anchor_stride, anchors_per_location, depth):
    """The RPN as a Keras model named ``rpn_model`` (so its weights are shared across levels).

    Parameters
    ----------
    anchor_stride : int
    anchors_per_location : int
    depth : int
        Channels of the pyramid feature maps (``TOP_DOWN_PYRAMID_SIZE``).

    Returns
    -------
    keras.Model
        Input ``input_rpn_feature_map`` ``[batch, h, w, depth]``; outputs
        ``[rpn_class_logits, rpn_probs, rpn_bbox]`` as in :func:`rpn_graph`. Layers
        ``rpn_conv_shared`` (3x3, 512, ReLU), ``rpn_class_raw`` (1x1,
        2 x anchors), ``rpn_bbox_pred`` (1x1, 4 x anchors).
    """
    feature_map = keras.Input(shape=[None, None, depth], name="input_rpn_feature_map")
    outputs = rpn_graph(feature_map, anchors_per_location, anchor_stride)
    return keras.Model([feature_map], outputs, name="rpn_model")


def apply_rpn(rpn_model, feature_maps):
    """Run the RPN on each feature map and concatenate the levels.

    Parameters
    ----------
    rpn_model : keras.Model
        From :func:`build_rpn_model`.
    feature_maps : list of KerasTensor
        The pyramid levels that carry anchors, ``[P2, ..., P(1 + RPN_PYRAMID_LEVELS)]``
        (the anchors of ``utils.generate_pyramid_anchors`` come in the same level order).

    Returns
    -------
    list of KerasTensor
        ``[rpn_class_logits, rpn_class, rpn_bbox]`` (layers named so), each
        ``[batch, anchors, 2 | 2 | 4]``.
    """
    per_level = [rpn_model([p]) for p in feature_maps]
    names = ["rpn_class_logits", "rpn_class", "rpn_bbox"]
    outputs = []
    for index, name in enumerate(names):
        level_outputs = [level[index] for level in per_level]
        if len(level_outputs) == 1:
            outputs.append(keras.layers.Identity(name=name)(level_outputs[0]))
        else:
            outputs.append(keras.layers.Concatenate(axis=1, name=name)(level_outputs))
    return outputs
