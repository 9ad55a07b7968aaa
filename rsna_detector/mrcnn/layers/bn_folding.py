"""A ``Conv2D`` that applies the frozen batch norm after it, folded into its kernel, in training.

With frozen BN statistics (``TRAIN_BN = False``, matterport's default) every BN layer of a
training step is a fixed per-channel affine map of the convolution's output::

    y = (conv(x, W) + b) * a + s,   a = gamma / sqrt(moving_variance + epsilon),
                                    s = beta - moving_mean * a

which costs two element-wise passes over the activations forward and about four backward
(``dy * a`` and the reductions behind the gradients of gamma and beta) per BN layer: about
8% of a ResNet-50 training step's CPU time at 256 px (measured with the BN layers removed).
The same ``y`` is one convolution with the folded kernel ``W * a`` and bias ``b * a + s``;
the gradients of ``W``, ``b``, gamma and beta then follow from the convolution's own kernel
and bias gradients through products the size of the weights, not of the activations.

:class:`BatchNormFoldingConv2D` does that in a training call (``training=True``) when the
:class:`~.backbone.BatchNorm` after it is frozen and both compute in float32, and marks its
output so that this BN layer passes it through unchanged (:func:`is_folded_output`). Every
other call (inference, evaluation, batch statistics, mixed precision, a BN applied to another
tensor) is the plain ``Conv2D`` followed by the plain BN. Results are equal up to float
rounding order. *Visible*: in a training call the convolution layer's own output already
holds the normalised values.
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["BatchNormFoldingConv2D", "is_folded_output"]

# Attribute set on a training call's output tensor: the BN layer that was folded into it.
_FOLDED_ATTRIBUTE = "_rsna_detector_folded_batch_norm"


def is_folded_output(tensor, batch_norm):
    """True when ``tensor`` came from a convolution that already applied ``batch_norm``."""
    return getattr(tensor, _FOLDED_ATTRIBUTE, None) is batch_norm


def _frozen_affine(batch_norm):
    """``(a, s)``, float32 ``[channels]``: the frozen ``batch_norm`` as ``y = x * a + s``.

    The same operations, in the same order, as ``tf.nn.batch_normalization``, which Keras'
    layer runs with its moving statistics.
    """
    scale = tf.math.rsqrt(tf.convert_to_tensor(batch_norm.moving_variance) + batch_norm.epsilon)
    if batch_norm.scale:
        scale = scale * tf.convert_to_tensor(batch_norm.gamma)
    shift = -tf.convert_to_tensor(batch_norm.moving_mean) * scale
    if batch_norm.center:
        shift = shift + tf.convert_to_tensor(batch_norm.beta)
    return scale, shift


@keras.saving.register_keras_serializable(package="rsna_detector")
class BatchNormFoldingConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` that can apply the frozen BN layer after it, folded into its weights.

    Variables, configuration and every call outside training are ``Conv2D``'s. After
    :meth:`fold` names the :class:`~.backbone.BatchNorm` layer that normalises this layer's
    output, a training call computes ``conv(x, W * a) + (b * a + s)`` (float32
    ``[batch, h, w, filters]``, the normalised output) and marks it for that BN layer,
    which then returns it unchanged. The link is not saved with the model (a reloaded
    model runs the two layers one after the other, with the same results).
    """

    _folded_batch_norm = None  # set by fold()

    def fold(self, batch_norm):
        """Fold ``batch_norm`` (the layer applied to this layer's output) into training calls."""
        # Not an attribute Keras tracks: the BN layer's weights stay its own, in weight
        # files and in the model's weight lists.
        object.__setattr__(self, "_folded_batch_norm", batch_norm)

    def _folding_applies(self):
        batch_norm = self._folded_batch_norm
        return (batch_norm is not None and batch_norm.train_bn is False
                and batch_norm.axis in (-1, self.rank + 1) and self.data_format == "channels_last"
                and self.activation is keras.activations.linear
                and self.compute_dtype == "float32" and batch_norm.compute_dtype == "float32")

    def call(self, inputs, training=None):
        if not (training and self._folding_applies()):
            return super().call(inputs)
        batch_norm = self._folded_batch_norm
        scale, shift = _frozen_affine(batch_norm)
        kernel = tf.convert_to_tensor(self.kernel) * scale
        bias = tf.convert_to_tensor(self.bias) * scale + shift if self.use_bias else shift
        outputs = tf.nn.bias_add(self.convolution_op(inputs, kernel), bias)
        setattr(outputs, _FOLDED_ATTRIBUTE, batch_norm)
        return outputs
