"""The RetinaNet model: keras-hub's RetinaNet over a ResNet, RSNA anchors, the report's losses and initialisation."""
from __future__ import annotations

import math

import keras
import keras_hub
import numpy as np

from ...weights import fetch_weights
from .resnet50_imagenet import load_resnet50_imagenet_weights
from .settings import DEFAULT_IMAGE_SIZE, MAX_LEVEL, MIN_LEVEL, RSNA_ASPECT_RATIOS, SMOOTH_L1_SIGMA

__all__ = [
    "resnet50_config",
    "rsna_anchor_size",
    "rsna_anchor_generator",
    "retinanet_losses",
    "compile_retinanet",
    "build_retinanet",
    "image_size_of",
]


def resnet50_config():
    """keras-hub ``ResNetBackbone`` arguments of ResNet-50 (v1, bottleneck blocks 3-4-6-3).

    Returns
    -------
    dict
        ``input_conv_filters``, ``input_conv_kernel_sizes``, ``stackwise_num_filters``,
        ``stackwise_num_blocks``, ``stackwise_num_strides``, ``block_type``,
        ``use_pre_activation``; ``image_shape`` is added by :func:`build_retinanet`.
    """
    return {
        "input_conv_filters": [64],
        "input_conv_kernel_sizes": [7],
        "stackwise_num_filters": [64, 128, 256, 512],
        "stackwise_num_blocks": [3, 4, 6, 3],
        "stackwise_num_strides": [1, 2, 2, 2],
        "block_type": "bottleneck_block",
        "use_pre_activation": False,
    }


def rsna_anchor_size(image_size):
    """keras-hub ``anchor_size`` (base anchor side / stride) for RSNA boxes at ``image_size``: ``4 * S / 512``."""
    return 4.0 * float(image_size) / 512.0


def rsna_anchor_generator(image_size, aspect_ratios=RSNA_ASPECT_RATIOS, anchor_size=None):
    """keras-hub ``AnchorGenerator`` for RSNA boxes (levels P3-P7, 3 scales, ``yxyx`` pixels).

    Parameters
    ----------
    image_size : int
    aspect_ratios : sequence of float
        Anchor height / width.
    anchor_size : float, optional
        Default :func:`rsna_anchor_size`.

    Returns
    -------
    keras_hub.layers.AnchorGenerator
        Anchor sides ``int(2**level * anchor_size * 2**(k / 3))``, k = 0, 1, 2,
        before the aspect ratio.
    """
    return keras_hub.layers.AnchorGenerator(
        bounding_box_format="yxyx", min_level=MIN_LEVEL, max_level=MAX_LEVEL, num_scales=3,
        aspect_ratios=[float(r) for r in aspect_ratios],
        anchor_size=rsna_anchor_size(image_size) if anchor_size is None else float(anchor_size))


def retinanet_losses(sigma=SMOOTH_L1_SIGMA, alpha=0.25, gamma=2.0):
    """The report's RetinaNet losses as keras-hub ``compile`` arguments.

    Returns
    -------
    dict
        ``box_loss`` (Huber, delta ``1 / sigma**2``, summed), ``classification_loss``
        (binary focal cross-entropy from logits, class balancing ``alpha``,
        ``gamma``, summed) and ``loss_weights`` (``4 sigma**2`` for the boxes: then
        the box loss is keras-retinanet's smooth L1 summed over the 4 coordinates).
    """
    return {
        "box_loss": keras.losses.Huber(delta=1.0 / sigma ** 2, reduction="sum"),
        "classification_loss": keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=True, reduction="sum"),
        "loss_weights": {"bbox_regression": 4.0 * sigma ** 2, "cls_logits": 1.0},
    }


def compile_retinanet(model, learning_rate=1e-4, *, clipnorm=None, run_eagerly=False):
    """Compile with Adam and :func:`retinanet_losses` (the report's best learning rate: 1e-4)."""
    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    model.compile(optimizer=optimizer, run_eagerly=run_eagerly, **retinanet_losses())
    return model


def _initialise_heads(model, prior_probability, seed):
    rng = np.random.default_rng(seed)
    for head in (model.classification_head, model.box_head):
        for layer in [*head.conv_layers, head.prediction_layer]:
            layer.kernel.assign(rng.normal(0.0, 0.01, tuple(layer.kernel.shape)).astype("float32"))
            if layer.bias is not None:
                layer.bias.assign(np.zeros(tuple(layer.bias.shape), "float32"))
    bias = model.classification_head.prediction_layer.bias
    bias.assign(np.full(tuple(bias.shape), -math.log((1 - prior_probability) / prior_probability), "float32"))


def _weights_file(weights):
    if weights is None or str(weights).lower() == "none":
        return None
    return fetch_weights(weights)


def build_retinanet(image_size=DEFAULT_IMAGE_SIZE, *, weights="imagenet", backbone_config=None,
                    aspect_ratios=RSNA_ASPECT_RATIOS, anchor_size=None, learning_rate=1e-4, min_confidence=0.05,
                    nms_iou_threshold=0.5, max_detections=100, freeze_batchnorm=None, prior_probability=0.01,
                    compile=True, run_eagerly=False, seed=None):
    """A one-class RetinaNet (keras-hub) with a ResNet backbone, built offline.

    Parameters
    ----------
    image_size : int
        Square input side (a multiple of 128 keeps P7 aligned; 256 or 512 for RSNA).
    weights : 'imagenet', None or path
        'imagenet' (or a path to the same file): the registry's Keras ResNet-50
        ImageNet file, see :func:`load_resnet50_imagenet_weights`; None: random.
    backbone_config : dict, optional
        ``ResNetBackbone`` arguments; default :func:`resnet50_config` (a smaller
        config makes a small test model; ImageNet weights need ResNet-50).
    aspect_ratios, anchor_size
        See :func:`rsna_anchor_generator`.
    learning_rate : float
    min_confidence : float
        Detections scoring below it are dropped by the decoder.
    nms_iou_threshold : float
    max_detections : int
        Detections kept per image after NMS.
    freeze_batchnorm : bool, optional
        Keep the backbone's batch normalisation in inference mode; default True
        when weights are loaded.
    prior_probability : float
        Initial foreground probability of every anchor.
    compile : bool
        :func:`compile_retinanet`.
    run_eagerly : bool
    seed : int, optional
        Seeds Keras' initialisers and the head initialisation.

    Returns
    -------
    keras_hub.models.RetinaNetObjectDetector
        Input float32 ``[B, S, S, 3]`` (:func:`preprocess_images`); ``predict``
        gives ``boxes`` [B, max_detections, (y1, x1, y2, x2)] in input pixels,
        ``confidence``, ``labels`` and ``num_detections``.
    """
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    shape = (int(image_size), int(image_size), 3)
    encoder = keras_hub.models.ResNetBackbone(**(backbone_config or resnet50_config()), image_shape=shape)
    weights_file = _weights_file(weights)
    if weights_file is not None:
        load_resnet50_imagenet_weights(encoder, weights_file)
    if weights_file is not None if freeze_batchnorm is None else freeze_batchnorm:
        for layer in encoder.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=MIN_LEVEL, max_level=MAX_LEVEL,
                                                  use_p5=False, image_shape=shape)
    decoder = keras_hub.layers.NonMaxSuppression(bounding_box_format="yxyx", from_logits=True,
                                                 iou_threshold=nms_iou_threshold,
                                                 confidence_threshold=min_confidence, max_detections=max_detections)
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=1, bounding_box_format="yxyx",
        anchor_generator=rsna_anchor_generator(image_size, aspect_ratios, anchor_size),
        classification_head_prior_probability=prior_probability, prediction_decoder=decoder)
    _initialise_heads(model, prior_probability, seed)
    if compile:
        compile_retinanet(model, learning_rate, run_eagerly=run_eagerly)
    return model


def image_size_of(model):
    """The model's square input side."""
    return int(model.input_shape[1])
