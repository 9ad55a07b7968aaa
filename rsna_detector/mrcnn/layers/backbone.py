"""Backbones: ResNet-50/101 with matterport's layer names, a tiny CPU backbone, or your own.

:func:`build_backbone` turns the image input into the feature maps ``[C2, C3, C4, C5]``
(strides 4, 8, 16, 32) that the FPN consumes.

* ``'resnet50'`` / ``'resnet101'``: the Caffe-style ResNet of matterport's Mask_RCNN
  (stride on the first 1x1 convolution of a block, biases on every convolution) with
  its exact layer names (``conv1``, ``bn_conv1``, ``res2a_branch2a``, ``bn2a_branch2a``,
  ..., shortcut ``res2a_branch1`` / ``bn2a_branch1``), so ImageNet and COCO weight
  files load by name.
* ``'tiny'``: four strided conv/BN/ReLU stages (32-128 channels) for tests and CPU demos.
* a callable ``config.BACKBONE(input_image, stage5=True, train_bn=config.TRAIN_BN)``
  returning ``[C1, C2, C3, C4, C5]`` as matterport's ``resnet_graph`` does
  (``config.COMPUTE_BACKBONE_SHAPE`` must then give the feature shapes).

Batch normalisation uses :class:`BatchNorm`, whose training flag is fixed by
``config.TRAIN_BN`` (``False``: always inference mode, the usual setting for the
small batches of detection training; ``True``: always training mode; ``None``:
follows the Keras training flag), with Keras 2's meaning of ``trainable``.
"""
from __future__ import annotations

import keras

from ...errors import RsnaDetectorError
from .bn_folding import BatchNormFoldingConv2D, is_folded_output

__all__ = [
    "BatchNorm",
    "conv_bn",
    "build_backbone",
    "resnet_graph",
    "identity_block",
    "conv_block",
    "tiny_backbone_graph",
    "RESNET_STAGE4_BLOCKS",
    "TINY_CHANNELS",
    "TINY_INPUT_SCALE",
    "BackboneError",
]

#: Identity blocks after block 'a' in stage 4, per ResNet depth.
RESNET_STAGE4_BLOCKS = {"resnet50": 5, "resnet101": 22}
#: Channels of the tiny backbone's C2..C5.
TINY_CHANNELS = (32, 64, 96, 128)
#: The tiny backbone divides its (mean-subtracted) input by this.
TINY_INPUT_SCALE = 128.0


class BackboneError(RsnaDetectorError, ValueError):
    """The configured backbone is unknown or returned the wrong feature maps."""


@keras.saving.register_keras_serializable(package="rsna_detector")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch normalisation whose training mode is fixed at construction (Keras 2 semantics).

    Parameters
    ----------
    train_bn : bool or None
        ``False``: always use the moving statistics (frozen BN, matterport's default
        ``TRAIN_BN = False``); ``True``: always use batch statistics; ``None``:
        follow the ``training`` argument of the call.
    **kwargs
        Passed to ``keras.layers.BatchNormalization`` (``name``, ``axis``, ...).

    Notes
    -----
    ``trainable`` only decides whether gamma/beta train and the moving statistics
    are updated, as in Keras 2 (matterport's stack): a frozen layer called in
    training mode still normalises with the batch's statistics, without updating
    its moving ones. (Keras 3's own layer switches to the moving statistics when
    frozen.) With ``train_bn=False`` the moving statistics are used and never
    updated, whether gamma/beta train or not.
    """

    def __init__(self, train_bn=None, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None, mask=None):
        if mask is None and is_folded_output(inputs, self):
            return inputs  # the convolution before applied this layer (bn_folding)
        if self.train_bn is not None:
            training = bool(self.train_bn)
        if training and not self.trainable and mask is None:
            return self._normalize_with_batch_statistics(inputs)
        return super().call(inputs, training=training, mask=mask)

    def _normalize_with_batch_statistics(self, inputs):
        """``inputs`` normalised with their own mean and variance (moving statistics untouched)."""
        values = keras.ops.cast(inputs, "float32")
        axis = self.axis % len(inputs.shape)
        reduction_axes = [i for i in range(len(inputs.shape)) if i != axis]
        mean, variance = keras.ops.moments(values, axes=reduction_axes)
        outputs = keras.ops.batch_normalization(
            values, mean, variance, axis=axis,
            offset=keras.ops.cast(self.beta, "float32") if self.center else None,
            scale=keras.ops.cast(self.gamma, "float32") if self.scale else None,
            epsilon=self.epsilon)
        return keras.ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        return config


def conv_bn(x, filters, kernel_size, conv_name, bn_name, train_bn, strides=1, padding="valid", relu=True,
            use_bias=True):
    """A convolution ``conv_name``, its :class:`BatchNorm` ``bn_name`` and (``relu``) a ReLU.

    The convolution is a :class:`~.bn_folding.BatchNormFoldingConv2D` linked to its BN, so a
    frozen BN is folded into it in training calls. ``x``: KerasTensor ``[batch, h, w, c]``;
    returns ``[batch, h', w', filters]``.
    """
    conv = BatchNormFoldingConv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
                                  name=conv_name)
    batch_norm = BatchNorm(train_bn=train_bn, name=bn_name)
    conv.fold(batch_norm)
    x = batch_norm(conv(x))
    if relu:
        x = keras.layers.Activation("relu")(x)
    return x


def _bottleneck(x, kernel_size, filters, stage, block, use_bias, train_bn, strides=1, shortcut_conv=False):
    """One ResNet bottleneck block with matterport's layer names.

    ``shortcut_conv`` adds the projection shortcut ``res{stage}{block}_branch1`` and puts
    ``strides`` on ``branch2a`` and on the shortcut.
    """
    filters_a, filters_b, filters_c = filters
    conv = f"res{stage}{block}_branch"
    bn = f"bn{stage}{block}_branch"
    y = conv_bn(x, filters_a, 1, conv + "2a", bn + "2a", train_bn, strides=strides, use_bias=use_bias)
    y = conv_bn(y, filters_b, kernel_size, conv + "2b", bn + "2b", train_bn, padding="same", use_bias=use_bias)
    y = conv_bn(y, filters_c, 1, conv + "2c", bn + "2c", train_bn, relu=False, use_bias=use_bias)
    if shortcut_conv:
        x = conv_bn(x, filters_c, 1, conv + "1", bn + "1", train_bn, strides=strides, relu=False, use_bias=use_bias)
    y = keras.layers.Add(name=f"res{stage}{block}_add")([y, x])
    return keras.layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def identity_block(input_tensor, kernel_size, filters, stage, block, use_bias=True, train_bn=True):
    """matterport's ResNet block whose shortcut is the identity.

    Parameters
    ----------
    input_tensor : KerasTensor, [batch, h, w, filters[2]]
    kernel_size : int
        Side of the middle convolution (``branch2b``).
    filters : (int, int, int)
        Channels of ``branch2a``, ``branch2b``, ``branch2c``.
    stage : int
    block : str
        ``'a'``, ``'b'``, ...: layers are named ``res{stage}{block}_branch2a`` etc.
    use_bias : bool
    train_bn : bool or None
        See :class:`BatchNorm`.

    Returns
    -------
    KerasTensor, [batch, h, w, filters[2]]
        Output of the layer ``res{stage}{block}_out``.
    """
    return _bottleneck(input_tensor, kernel_size, filters, stage, block, use_bias, train_bn)


def conv_block(input_tensor, kernel_size, filters, stage, block, strides=(2, 2), use_bias=True, train_bn=True):
    """matterport's ResNet block with a projection shortcut (``res{stage}{block}_branch1``).

    Parameters as :func:`identity_block`, plus ``strides`` on ``branch2a`` and on the
    shortcut. Returns ``[batch, h / strides, w / strides, filters[2]]``.
    """
    return _bottleneck(input_tensor, kernel_size, filters, stage, block, use_bias, train_bn, strides=strides,
                       shortcut_conv=True)


def _resnet_stage(x, filters, stage, blocks, train_bn, strides):
    x = conv_block(x, 3, filters, stage, "a", strides=strides, train_bn=train_bn)
    for i in range(blocks):
        x = identity_block(x, 3, filters, stage, chr(ord("b") + i), train_bn=train_bn)
    return x


def resnet_graph(input_image, architecture, stage5=False, train_bn=True):
    """matterport's ResNet graph with its layer names, signature and defaults.

    Parameters
    ----------
    input_image : KerasTensor, [batch, H, W, C]
    architecture : {'resnet50', 'resnet101'}
    stage5 : bool
        Build stage 5 (``C5``); ``None`` is returned in its place otherwise.
    train_bn : bool or None
        See :class:`BatchNorm`.

    Returns
    -------
    list of KerasTensor
        ``[C1, C2, C3, C4, C5]`` with strides 4 (C1 after the max-pool, as
        matterport), 4, 8, 16, 32 and 64, 256, 512, 1024, 2048 channels.
    """
    if architecture not in RESNET_STAGE4_BLOCKS:
        raise BackboneError(f"BACKBONE: expected one of {sorted(RESNET_STAGE4_BLOCKS)}, got {architecture!r}")
    x = keras.layers.ZeroPadding2D((3, 3), name="conv1_pad")(input_image)
    x = conv_bn(x, 64, 7, "conv1", "bn_conv1", train_bn, strides=2)
    c1 = x = keras.layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name="pool1")(x)
    c2 = x = _resnet_stage(x, (64, 64, 256), 2, 2, train_bn, strides=1)
    c3 = x = _resnet_stage(x, (128, 128, 512), 3, 3, train_bn, strides=2)
    c4 = x = _resnet_stage(x, (256, 256, 1024), 4, RESNET_STAGE4_BLOCKS[architecture], train_bn, strides=2)
    c5 = _resnet_stage(x, (512, 512, 2048), 5, 2, train_bn, strides=2) if stage5 else None
    return [c1, c2, c3, c4, c5]


def tiny_backbone_graph(input_image, train_bn=False):
    """A small, fast backbone for tests and CPU demos.

    Input scaling by ``1 / TINY_INPUT_SCALE``, a stride-2 stem (16 channels), then four stride-2
    conv/BN/ReLU stages named ``tiny_c2`` .. ``tiny_c5`` (BN ``tiny_bn2`` .. ``tiny_bn5``) with
    :data:`TINY_CHANNELS` channels.

    Returns
    -------
    list of KerasTensor
        ``[C2, C3, C4, C5]`` with strides 4, 8, 16, 32.
    """
    # Molded pixels span about +-128; scaled to about +-1 the network trains from scratch
    # even with frozen BN (TRAIN_BN False keeps BN an identity at initialisation).
    x = keras.layers.Rescaling(1.0 / TINY_INPUT_SCALE, name="tiny_input_scale")(input_image)
    x = conv_bn(x, 16, 3, "tiny_stem", "tiny_bn_stem", train_bn, strides=2, padding="same")
    features = []
    for level, channels in zip(range(2, 6), TINY_CHANNELS, strict=True):
        x = conv_bn(x, channels, 3, f"tiny_c{level}", f"tiny_bn{level}", train_bn, strides=2, padding="same")
        features.append(x)
    return features


def build_backbone(input_image, config):
    """The backbone feature maps the FPN consumes.

    Parameters
    ----------
    input_image : KerasTensor, float32, [batch, H, W, C]
        The molded image (mean pixel subtracted); H and W multiples of 64.
    config : Config
        ``BACKBONE`` ('resnet50', 'resnet101', 'tiny' or a callable) and ``TRAIN_BN``.

    Returns
    -------
    list of KerasTensor
        ``[C2, C3, C4, C5]``, strides 4, 8, 16, 32.

    Raises
    ------
    BackboneError
        For an unknown name or a callable that does not return five feature maps.
    """
    backbone = config.BACKBONE
    if callable(backbone):
        features = backbone(input_image, stage5=True, train_bn=config.TRAIN_BN)
        if not isinstance(features, (list, tuple)) or len(features) != 5:
            raise BackboneError(
                f"BACKBONE: the callable {getattr(backbone, '__name__', backbone)!r} must return "
                f"[C1, C2, C3, C4, C5], got {type(features).__name__} of length "
                f"{len(features) if isinstance(features, (list, tuple)) else 'n/a'}")
        return list(features[1:])
    if backbone == "tiny":
        return tiny_backbone_graph(input_image, train_bn=config.TRAIN_BN)
    if backbone in RESNET_STAGE4_BLOCKS:
        return resnet_graph(input_image, backbone, stage5=True, train_bn=config.TRAIN_BN)[1:]
    raise BackboneError(
        f"BACKBONE: expected 'resnet50', 'resnet101', 'tiny' or a callable, got {backbone!r}")
