"""The second-stage heads: box classifier/regressor and mask predictor.

Layer names and weight shapes are matterport's (``mrcnn_class_conv1`` ... ``mrcnn_mask``),
so its weight files load by name. matterport wrapped every head layer in
``TimeDistributed`` (over the ROI axis); here the ROI axis is folded into the batch
axis instead (``[B, N, ...] -> [B * N, ...]``), which computes the same thing with
plain layers: a ``TimeDistributed(Conv2D)`` stored its kernel and bias under the
wrapper's name, which is the name the plain layer has here.

Speed (the box head on 1000 proposals is half of the inference FLOPs):

* ``mrcnn_class_conv1`` / ``mrcnn_class_conv2`` are :class:`WindowDense` layers: the
  same convolution-shaped variables, computed as one matrix product.
* ``skip_padding=True`` (the inference graph; the training mask head with frozen BN
  statistics) runs a head on the non-padding ROIs only (:class:`GatherRealRois` /
  :class:`ScatterRealRois`); the mask head then sees the few real detections instead
  of ``DETECTION_MAX_INSTANCES`` rows. When no ROI is padding (the box head's
  proposals, as a rule) the pooled features are only reshaped, not copied.

Layer outputs, as matterport's: the last layer of each head that holds weights
(``mrcnn_class_logits``, ``mrcnn_bbox_fc``, ``mrcnn_mask``; :class:`RoiDense` /
:class:`RoiConv2D`) puts the ROI axis back itself, so its output is
``[batch, num_rois, ...]`` as matterport's ``TimeDistributed`` layers gave
(``run_graph`` on ``get_layer("mrcnn_mask").output`` is ``[batch, N, 28, 28,
NUM_CLASSES]``). The layers in between (``mrcnn_class_conv1`` ...
``mrcnn_mask_deconv``) work on the folded ``[rows, ...]`` tensor: with
``skip_padding`` their first axis holds only the real ROIs plus one zero row (every
row, when none is padding and BN uses its moving statistics).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from ...errors import InvalidArgumentError
from .backbone import BatchNorm, conv_bn
from .roi_align import PyramidROIAlign

__all__ = ["fpn_classifier_graph", "build_fpn_mask_graph", "FoldRois", "UnfoldRois", "GatherRealRois",
           "ScatterRealRois", "WindowDense", "RoiDense", "RoiConv2D"]


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


class _RowsToRois(keras.layers.Layer):
    """Base of the layers that turn head rows back into ``[B, N, *rest]`` ROIs.

    Call inputs ``[rows [M, *rest], reference [B, N, ...]]``; ``target_shape``
    (optional) reshapes ``rest`` as well, e.g. ``(num_classes, 4)``. Subclasses
    define ``call``.
    """

    def __init__(self, target_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape) if target_shape is not None else None

    def compute_output_shape(self, input_shape):
        rows_shape, reference_shape = input_shape
        rest = self.target_shape if self.target_shape else tuple(rows_shape[1:])
        return tuple(reference_shape[:2]) + tuple(rest)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape) if self.target_shape else None
        return config


@keras.saving.register_keras_serializable(package="rsna_detector")
class UnfoldRois(_RowsToRois):
    """``[B * N, *rest]`` back to ``[B, N, *rest]``; ``N`` is read from a reference ``[B, N, ...]``.

    ``target_shape`` (optional) reshapes ``rest`` as well, e.g. ``(num_classes, 4)``.
    """

    def call(self, inputs):
        folded, reference = inputs
        return _unfold_rows(folded, reference, self.target_shape)


def _real_rows(rois):
    """bool [B, N]: the ROI rows that are not all-zero padding."""
    return tf.reduce_any(tf.not_equal(rois, 0.0), axis=-1)


def _unfold_rows(folded, reference, target_shape=None):
    """``[B * N, *rest]`` -> ``[B, N, *rest]`` (``rest`` reshaped to ``target_shape`` when given)."""
    rest = tf.constant(target_shape, tf.int32) if target_shape else tf.shape(folded)[1:]
    return tf.reshape(folded, tf.concat([tf.shape(reference)[:2], rest], axis=0))


def _scatter_real_rows(values, rois, target_shape=None):
    """Rows from :class:`GatherRealRois` -> ``[B, N, *rest]``, zeros on the padding rows.

    ``values`` ``[M + 1, *rest]`` (the real rows plus the zero row) is scattered; when no
    ROI is padding, ``values`` holds every row in order (``[B * N, *rest]``, or ``B * N + 1``
    rows with the zero row last) and is only reshaped.
    """
    if target_shape:
        values = tf.reshape(values, tf.concat([[-1], tf.constant(target_shape, tf.int32)], axis=0))
    real = _real_rows(rois)
    shape = tf.concat([tf.shape(rois)[:2], tf.shape(values)[1:]], axis=0)

    def reshape():
        return tf.reshape(values[: tf.size(real)], shape)

    def scatter():  # values[:-1]: without the zero row GatherRealRois appended
        return tf.scatter_nd(tf.cast(tf.where(real), tf.int32), values[:-1], shape)

    rows = tf.cond(tf.reduce_all(real), reshape, scatter)
    rows.set_shape(rois.shape[:2].concatenate(values.shape[1:]))  # the static shape tf.cond loses
    return rows


@keras.saving.register_keras_serializable(package="rsna_detector")
class GatherRealRois(keras.layers.Layer):
    """``[B, N, *rest]`` -> the rows whose ROI is not padding: ``[M + 1, *rest]``, or ``[B * N, *rest]``.

    Call inputs ``[x, rois [B, N, 4]]``. With :class:`ScatterRealRois` it lets a head
    skip the zero-padded ROIs (at inference most detection rows are padding). When some
    rows are padding, the ``M`` real rows are gathered plus one zero row, which keeps
    the batch non-empty when every ROI is padding (oneDNN kernels mishandle empty
    batches); :class:`ScatterRealRois` drops it. When no row is padding (the box head's
    proposals, as a rule) ``x`` is only reshaped to ``[B * N, *rest]``: no copy.

    Parameters
    ----------
    keep_zero_row : bool
        Append the zero row also when no row is padding (a copy of ``x``): for heads
        whose batch normalisation uses batch statistics (``TRAIN_BN`` not False),
        where that row has always entered the statistics.
    """

    def __init__(self, keep_zero_row=False, **kwargs):
        super().__init__(**kwargs)
        self.keep_zero_row = bool(keep_zero_row)

    def call(self, inputs):
        x, rois = inputs
        real = _real_rows(rois)

        def with_zero_row():
            return tf.concat([tf.boolean_mask(x, real), tf.zeros_like(x[:1, 0])], axis=0)

        if self.keep_zero_row:
            return with_zero_row()
        every_row = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))
        rows = tf.cond(tf.reduce_all(real), lambda: every_row, with_zero_row)
        rows.set_shape(tf.TensorShape([None]).concatenate(x.shape[2:]))
        return rows

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[0][2:])

    def get_config(self):
        config = super().get_config()
        config["keep_zero_row"] = self.keep_zero_row
        return config


@keras.saving.register_keras_serializable(package="rsna_detector")
class ScatterRealRois(_RowsToRois):
    """Inverse of :class:`GatherRealRois`: its rows -> ``[B, N, *rest]``, zeros on padding rows.

    Call inputs ``[rows, rois [B, N, 4]]``; ``target_shape`` (optional) reshapes ``rest`` as well.
    """

    def call(self, inputs):
        values, rois = inputs
        return _scatter_real_rows(values, rois, self.target_shape)


def _fold(x, rois, skip_padding, name, train_bn):
    if skip_padding:
        return GatherRealRois(keep_zero_row=train_bn is not False, name=f"{name}_gather")([x, rois])
    return FoldRois(name=f"{name}_fold")(x)


@keras.saving.register_keras_serializable(package="rsna_detector")
class WindowDense(keras.layers.Layer):
    """A 'valid' convolution whose kernel covers its whole input, computed as one matrix product.

    Equal to ``Conv2D(filters, kernel_size, padding='valid')`` on ``[M, kh, kw, C]``
    inputs (output ``[M, filters]`` instead of ``[M, 1, 1, filters]``), with the
    same variables: ``kernel`` ``[kh, kw, C, filters]`` and ``bias`` ``[filters]``, so
    matterport's ``mrcnn_class_conv1`` / ``mrcnn_class_conv2`` weights load into it.
    On a CPU the matrix product is several times faster than the convolution
    kernels for this shape.

    Parameters
    ----------
    filters : int
    kernel_size : (int, int)
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(v) for v in kernel_size)

    def build(self, input_shape):
        channels = input_shape[-1]
        if tuple(input_shape[1:3]) != self.kernel_size:
            raise InvalidArgumentError(f"{self.name}: expected inputs [M, {self.kernel_size[0]}, "
                                       f"{self.kernel_size[1]}, C], got {tuple(input_shape)}")
        self.kernel = self.add_weight(name="kernel", shape=self.kernel_size + (channels, self.filters),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        flat = tf.reshape(inputs, [-1, self.kernel_size[0] * self.kernel_size[1] * inputs.shape[-1]])
        kernel = tf.reshape(self.kernel, [-1, self.filters])
        return tf.nn.bias_add(tf.matmul(flat, kernel), self.bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=list(self.kernel_size))
        return config


class _PutsRoiAxisBack:
    """Mixin for a weight layer applied to folded ROI rows that returns ``[B, N, ...]``.

    Call inputs ``[x, rois]``: ``x`` the folded rows (from :class:`FoldRois`, or from
    :class:`GatherRealRois` when ``skip_padding``), ``rois`` ``[B, N, 4]``. The layer's
    variables are those of the base layer (``kernel``, ``bias``), so weight files
    written for matterport's ``TimeDistributed(Dense / Conv2D)`` of the same name load.
    """

    def __init__(self, *args, skip_padding=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip_padding = bool(skip_padding)
        self.input_spec = None  # the base layer's spec describes x alone

    def build(self, input_shape):
        super().build(tuple(input_shape[0]))
        self.input_spec = None  # the base layer's spec describes x alone

    def call(self, inputs):
        values, rois = inputs
        values = super().call(values)
        if self.skip_padding:
            return _scatter_real_rows(values, rois)
        return _unfold_rows(values, rois)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape[0], (tuple, list)):
            return super().compute_output_shape(input_shape)  # the base layer's own check in build
        values_shape, rois_shape = input_shape
        inner = super().compute_output_shape(tuple(values_shape))
        return tuple(rois_shape[:2]) + tuple(inner[1:])

    def get_config(self):
        config = super().get_config()
        config["skip_padding"] = self.skip_padding
        return config


@keras.saving.register_keras_serializable(package="rsna_detector")
class RoiDense(_PutsRoiAxisBack, keras.layers.Dense):
    """``keras.layers.Dense`` on folded ROI rows whose output is ``[B, N, units]``.

    Call inputs ``[x [rows, features], rois [B, N, 4]]``; see :class:`_PutsRoiAxisBack`.
    """


@keras.saving.register_keras_serializable(package="rsna_detector")
class RoiConv2D(_PutsRoiAxisBack, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` on folded ROI rows whose output is ``[B, N, h, w, filters]``.

    Call inputs ``[x [rows, h, w, C], rois [B, N, 4]]``; see :class:`_PutsRoiAxisBack`.
    """


def _dense_bn_relu(x, filters, kernel_size, name, bn_name, train_bn):
    x = WindowDense(filters, kernel_size, name=name)(x)
    x = BatchNorm(train_bn=train_bn, name=bn_name)(x)
    return keras.layers.Activation("relu")(x)


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         fc_layers_size=1024, *, skip_padding=False):
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
    skip_padding : bool
        Run the layers on the non-padding ROIs only; padding rows of the outputs are
        then zeros (logits, deltas) and uniform (probabilities). The inference graph
        uses it; with batch statistics (training BN) it changes what BN sees.

    Returns
    -------
    mrcnn_class_logits : KerasTensor, float32, [batch, num_rois, num_classes]
    mrcnn_probs : KerasTensor, float32, [batch, num_rois, num_classes]
        Softmax of the logits (layer ``mrcnn_class``).
    mrcnn_bbox : KerasTensor, float32, [batch, num_rois, num_classes, 4]
        Deltas ``(dy, dx, log(dh), log(dw))`` divided by ``BBOX_STD_DEV``.
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier", dtype="float32")(  # boxes stay float32
        [rois, image_meta] + list(feature_maps))
    x = _fold(x, rois, skip_padding, "mrcnn_class", train_bn)  # [B*N or M + 1, pool, pool, C]
    # matterport's pool x pool 'valid' convolution on a pool x pool input, then a 1x1
    # convolution: two fully connected layers with convolution-shaped kernels.
    x = _dense_bn_relu(x, fc_layers_size, (pool_size, pool_size), "mrcnn_class_conv1", "mrcnn_class_bn1", train_bn)
    x = keras.layers.Reshape((1, 1, fc_layers_size), name="mrcnn_class_unsqueeze")(x)
    shared = _dense_bn_relu(x, fc_layers_size, (1, 1), "mrcnn_class_conv2", "mrcnn_class_bn2", train_bn)  # [B*N, fc]

    mrcnn_class_logits = RoiDense(num_classes, skip_padding=skip_padding, name="mrcnn_class_logits")([shared, rois])
    mrcnn_probs = keras.layers.Activation("softmax", name="mrcnn_class")(mrcnn_class_logits)
    deltas = RoiDense(num_classes * 4, activation="linear", skip_padding=skip_padding,
                      name="mrcnn_bbox_fc")([shared, rois])  # [B, N, num_classes * 4]
    mrcnn_bbox = keras.layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(deltas)
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True, *,
                         skip_padding=False):
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
    skip_padding : bool
        Run the layers on the non-padding ROIs only (padding rows of the output are
        zeros). The inference graph uses it: most detection rows are padding.

    Returns
    -------
    KerasTensor, float32, [batch, num_rois, 2 * pool_size, 2 * pool_size, num_classes]
        Sigmoid mask probabilities in the frame of each ROI.
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_mask", dtype="float32")(  # boxes stay float32
        [rois, image_meta] + list(feature_maps))
    x = _fold(x, rois, skip_padding, "mrcnn_mask", train_bn)
    for i in range(1, 5):
        x = conv_bn(x, 256, (3, 3), f"mrcnn_mask_conv{i}", f"mrcnn_mask_bn{i}", train_bn, padding="same")
    x = keras.layers.Conv2DTranspose(256, (2, 2), strides=2, activation="relu", name="mrcnn_mask_deconv")(x)
    return RoiConv2D(num_classes, (1, 1), strides=1, activation="sigmoid", skip_padding=skip_padding,
                     name="mrcnn_mask")([x, rois])
