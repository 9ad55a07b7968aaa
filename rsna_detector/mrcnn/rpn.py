"""Region Proposal Network: one shared sub-model applied to each pyramid level.

Speed: the RPN losses read the ``RPN_TRAIN_ANCHORS_PER_IMAGE`` sampled anchors only
(256 of the 16,000-odd at 256 px), so the gradient reaching the shared 3x3
convolution is zero on all but a few percent of its output cells. Its layer
(:class:`SparseGradientConv2D`) computes its weight and input gradients from those
cells only -- the same sums without the zero terms -- instead of two dense
convolutions over every cell, the largest single cost of a training step on a CPU.
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["build_rpn_model", "rpn_graph", "apply_rpn", "SparseGradientConv2D"]

#: The sparse gradient is used while at most this fraction of output cells has a gradient.
SPARSE_GRADIENT_MAX_DENSITY = 0.125


@keras.saving.register_keras_serializable(package="rsna_detector")
class SparseGradientConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose backward pass skips the output cells without gradient.

    The forward pass is ``Conv2D``'s (same ops, same variables ``kernel`` and ``bias``).
    The gradients of ``kernel``, ``bias`` and the input are computed from the output
    cells ``(image, y, x)`` whose incoming gradient (after the ReLU) is not zero:
    ``dkernel = patches^T @ dy`` and ``dinput`` = those cells' ``dy @ kernel^T``
    scattered back onto their patches. These are the sums the dense backward
    convolutions compute, without their zero terms (so equal up to float rounding
    order). When more than :data:`SPARSE_GRADIENT_MAX_DENSITY` of the cells carry a
    gradient, the dense backward convolutions are used.

    Used for a stride-1, 'same', channels-last convolution with a ReLU or no
    activation and no dilation, on a machine without GPUs (the dense kernels are
    fast there, and scatters on a GPU are not deterministic); any other layer is a
    plain ``Conv2D``.
    """

    def _sparse_backward_applies(self):
        kernel_size = tuple(self.kernel_size)
        return (tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1) and self.padding == "same"
                and self.data_format == "channels_last" and self.groups == 1
                and all(k % 2 == 1 for k in kernel_size)
                and self.activation in (keras.activations.relu, keras.activations.linear)
                and not tf.config.list_logical_devices("GPU"))

    def call(self, inputs):
        if not self._sparse_backward_applies():
            return super().call(inputs)
        kernel = tf.convert_to_tensor(self.kernel)
        bias = tf.convert_to_tensor(self.bias) if self.use_bias else None
        return _conv_with_sparse_gradient(self, inputs, kernel, bias)


def _conv_with_sparse_gradient(layer, inputs, kernel, bias):
    """``layer``'s forward pass on ``inputs`` with the given ``kernel`` / ``bias`` tensors, sparse backward."""
    relu = layer.activation is keras.activations.relu

    @tf.custom_gradient
    def forward(x, kernel, *bias_arg):
        outputs = layer.convolution_op(x, kernel)
        if bias_arg:
            outputs = keras.ops.add(outputs, keras.ops.reshape(bias_arg[0], (1, 1, 1, layer.filters)))
        if relu:
            outputs = layer.activation(outputs)

        def backward(upstream):
            grad = tf.raw_ops.ReluGrad(gradients=upstream, features=outputs) if relu else upstream
            active = tf.reduce_any(tf.not_equal(grad, 0), axis=-1)  # [B, H, W]
            cells = tf.cast(tf.where(active), tf.int32)  # [N, 3]
            dense = tf.cast(tf.shape(cells)[0], tf.float32) > SPARSE_GRADIENT_MAX_DENSITY * tf.cast(
                tf.size(active), tf.float32)
            grads = tf.cond(dense, lambda: _dense_conv_gradients(x, kernel, grad),
                            lambda: _sparse_conv_gradients(x, kernel, grad, cells))
            return grads[:2] + (grads[2:] if bias_arg else ())

        return outputs, backward

    return forward(inputs, kernel, *([bias] if bias is not None else []))


def _dense_conv_gradients(x, kernel, grad):
    """``(dx, dkernel, dbias)`` of a stride-1 'same' convolution, by the dense backward convolutions."""
    strides = [1, 1, 1, 1]
    dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=grad, strides=strides,
                                        padding="SAME")
    dkernel = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=grad,
                                              strides=strides, padding="SAME")
    return dx, dkernel, tf.reduce_sum(grad, axis=[0, 1, 2])


def _sparse_conv_gradients(x, kernel, grad, cells):
    """``(dx, dkernel, dbias)`` from the output ``cells`` ``[N, (image, y, x)]`` that carry a gradient."""
    kh, kw, cin, cout = kernel.shape
    pad_y, pad_x = kh // 2, kw // 2
    padded = tf.pad(x, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]])
    dy, dx_ = tf.meshgrid(tf.range(kh), tf.range(kw), indexing="ij")
    offsets = tf.stack([tf.zeros([kh * kw], tf.int32), tf.reshape(dy, [-1]), tf.reshape(dx_, [-1])], axis=1)
    where = cells[:, tf.newaxis, :] + offsets[tf.newaxis]  # [N, kh*kw, 3] in the padded input
    values = tf.gather_nd(grad, cells)  # [N, cout]
    patches = tf.reshape(tf.gather_nd(padded, where), [-1, kh * kw * cin])  # [N, kh*kw*cin]
    flat_kernel = tf.reshape(kernel, [kh * kw * cin, cout])
    dkernel = tf.reshape(tf.matmul(patches, values, transpose_a=True), tf.shape(kernel))
    dpatches = tf.reshape(tf.matmul(values, flat_kernel, transpose_b=True), [-1, kh * kw, cin])
    dpadded = tf.scatter_nd(where, dpatches, tf.shape(padded))
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    dx = dpadded[:, pad_y:pad_y + height, pad_x:pad_x + width]
    return dx, dkernel, tf.reduce_sum(values, axis=0)


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
