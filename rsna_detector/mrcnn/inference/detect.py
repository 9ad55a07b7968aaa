"""Inference: the inference-mode graph and what ``MaskRCNN.detect`` does around it.

* :func:`build_inference_model` -- the Keras model of matterport's inference mode,
  assembled from the building blocks (``backbone``, ``fpn``, ``rpn``, ``proposals``,
  ``heads``, ``detection``);
* :func:`mold_one` -- one image resized and molded, with its meta and window;
* :func:`make_detect_function` -- a compiled ``tf.function`` per molded image shape
  (input signature with a free batch axis, anchors baked in as a constant), so
  repeated ``detect`` calls never retrace and never go through ``keras.Model.predict``;
* :func:`unmold_detections` -- the network's detections of one image back in the
  original image's pixels.

bfloat16 (opt-in, not the default): built under Keras' ``mixed_bfloat16`` dtype policy
(``keras.config.set_dtype_policy("mixed_bfloat16")`` before ``MaskRCNN("inference", ...)``),
the convolutions and matrix products of the backbone, FPN, RPN and heads compute in bfloat16
while the proposals, ROI align and the detection layer stay float32 (their layers are pinned to
float32, so boxes never lose precision). It pays on CPUs with native bfloat16 arithmetic
(AVX512_BF16, AMX) and GPUs; elsewhere oneDNN emulates it, slower than float32, and
:func:`build_inference_model` warns (:func:`native_bfloat16`). Results differ from float32 by
bfloat16 rounding (8 bits of mantissa): docs/PERFORMANCE.md states the measured difference.

``MaskRCNN`` (``model.py``) holds the caches and the matterport methods that call these.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ...errors import RsnaDetectorError, RsnaDetectorWarning
from ..layers.backbone import build_backbone
from ..layers.detection import DetectionLayer
from ..layers.fpn import build_fpn
from ..layers.heads import build_fpn_mask_graph, fpn_classifier_graph
from ..layers.proposals import ProposalLayer
from ..layers.rpn import apply_rpn, build_rpn_model
from ..ops.boxes import denorm_boxes, norm_boxes
from ..ops.image_meta import compose_image_meta
from ..ops.masks import unmold_mask
from ..ops.molding import mold_image, resize_image

__all__ = ["ModelError", "build_inference_model", "mold_one", "make_detect_function", "check_molded_shape",
           "unmold_detections", "native_bfloat16"]

#: CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


class ModelError(RsnaDetectorError, ValueError):
    """A MaskRCNN method got input it cannot use (wrong mode, bad image, ...)."""


def build_inference_model(config):
    """The inference-mode Mask R-CNN as a Keras functional model.

    Parameters
    ----------
    config : Config

    Returns
    -------
    keras.Model
        Named ``mask_rcnn``. Inputs: ``input_image`` float32 ``[B, H, W, C]`` (molded),
        ``input_image_meta`` ``[B, IMAGE_META_SIZE]``, ``input_anchors`` ``[B, A, 4]``
        (normalized, :meth:`MaskRCNN.get_anchors`). Outputs, as matterport:
        ``detections`` ``[B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)]``
        (normalized), ``mrcnn_class`` ``[B, N, NUM_CLASSES]``, ``mrcnn_bbox``
        ``[B, N, NUM_CLASSES, 4]``, ``mrcnn_mask`` ``[B, DETECTION_MAX_INSTANCES, 28, 28,
        NUM_CLASSES]``, ``rpn_rois`` ``[B, N, 4]``, ``rpn_class`` ``[B, A, 2]``,
        ``rpn_bbox`` ``[B, A, 4]`` with ``N = POST_NMS_ROIS_INFERENCE``.

    Under a bfloat16 dtype policy (see the module docstring) ``detections`` and ``rpn_rois``
    stay float32; warns (:class:`RsnaDetectorWarning`) when neither a GPU nor the CPU
    computes bfloat16 natively.
    """
    _check_bfloat16()
    input_image = keras.Input(shape=[None, None, config.IMAGE_CHANNEL_COUNT], name="input_image")
    input_image_meta = keras.Input(shape=[config.IMAGE_META_SIZE], name="input_image_meta")
    input_anchors = keras.Input(shape=[None, 4], name="input_anchors")

    pyramid = build_fpn(build_backbone(input_image, config), config)
    mrcnn_feature_maps = pyramid[:4]
    rpn_feature_maps = pyramid[:config.RPN_PYRAMID_LEVELS]

    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS), config.TOP_DOWN_PYRAMID_SIZE)
    _, rpn_class, rpn_bbox = apply_rpn(rpn, rpn_feature_maps)
    rpn_rois = ProposalLayer(config.POST_NMS_ROIS_INFERENCE, config.RPN_NMS_THRESHOLD, config,
                             name="ROI", dtype="float32")([rpn_class, rpn_bbox, input_anchors])

    _, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
        rpn_rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
        train_bn=config.TRAIN_BN, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE, skip_padding=True)
    detections = DetectionLayer(config, name="mrcnn_detection", dtype="float32")(
        [rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])
    detection_boxes = keras.layers.Lambda(lambda d: d[..., :4], output_shape=lambda s: tuple(s[:-1]) + (4,),
                                          name="detection_boxes")(detections)
    mrcnn_mask = build_fpn_mask_graph(detection_boxes, mrcnn_feature_maps, input_image_meta,
                                      config.MASK_POOL_SIZE, config.NUM_CLASSES, train_bn=config.TRAIN_BN,
                                      skip_padding=True)
    return keras.Model([input_image, input_image_meta, input_anchors],
                       [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox],
                       name="mask_rcnn")


def native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU computes bfloat16 natively (a flag of ``BFLOAT16_CPU_FLAGS``), or a GPU is visible."""
    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def _check_bfloat16():
    if keras.config.dtype_policy().compute_dtype == "bfloat16" and not native_bfloat16():
        warnings.warn("build_inference_model: Keras' dtype policy computes in bfloat16, but this machine has "
                      f"neither a GPU nor a CPU with native bfloat16 ({' / '.join(BFLOAT16_CPU_FLAGS)}): it is "
                      "emulated, slower than float32", RsnaDetectorWarning, stacklevel=3)


def _as_rgb(image, index, channels):
    """uint8-range image with ``channels`` channels from ``[H, W]``, ``[H, W, 1]`` or ``[H, W, C]``."""
    image = np.asarray(image)
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number):
        raise ModelError(f"detect: image {index}: expected a numeric array, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ModelError(f"detect: image {index}: expected [H, W], [H, W, 1] or [H, W, {channels}], "
                         f"got shape {image.shape}")
    if image.shape[2] == 1 and channels != 1:
        image = np.repeat(image, channels, axis=2)
    if image.shape[2] != channels:
        raise ModelError(f"detect: image {index}: expected 1 or {channels} channels "
                         f"(IMAGE_CHANNEL_COUNT), got shape {image.shape}")
    return image


def mold_one(config, image, index):
    """One image resized and molded for the network, as matterport's ``mold_inputs`` does it.

    Parameters
    ----------
    config : Config
    image : ndarray, [H, W], [H, W, 1] or [H, W, IMAGE_CHANNEL_COUNT]
        uint8 range; one channel is repeated.
    index : int
        Position of the image in the caller's list (named in errors).

    Returns
    -------
    molded : ndarray, [h, w, C]
        ``resize_image`` then ``mold_image`` (float64 with the default numpy ``MEAN_PIXEL``).
    meta : ndarray, [IMAGE_META_SIZE]
        ``compose_image_meta`` with image id 0 and no active class; its original shape is the
        image's as given (``[H, W]`` counts as ``[H, W, 1]``), before the channel repeat.
    window : ndarray, int, [(y1, x1, y2, x2)]
        The real image's pixels inside ``molded``.
    original_shape : tuple
        ``(H, W, C)`` after the channel repeat.

    Raises
    ------
    ModelError
        Naming the image, when it is not a numeric ``[H, W(, C)]`` array with 1 or ``C`` channels.
    """
    rgb = _as_rgb(image, index, config.IMAGE_CHANNEL_COUNT)
    given_shape = rgb.shape[:2] + (np.shape(image)[2] if np.ndim(image) == 3 else 1,)
    molded, window, scale, _, _ = resize_image(
        rgb, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
    molded = mold_image(molded, config)
    # The meta holds the image's own shape, as matterport's (an [H, W, 1] image: 1 channel).
    meta = compose_image_meta(0, given_shape, molded.shape, window, scale,
                              np.zeros([config.NUM_CLASSES], dtype=np.int32))
    return molded, meta, np.asarray(window), rgb.shape


def make_detect_function(keras_model, config, image_shape, anchors, on_trace=None):
    """The compiled detect graph for one molded shape: ``(images, metas) -> (detections, masks)``.

    Parameters
    ----------
    keras_model : keras.Model
        :func:`build_inference_model`'s model.
    config : Config
    image_shape : (h, w, ...)
        The molded images' shape; h and w must be multiples of 64.
    anchors : ndarray, float32, [A, 4]
        Normalized anchors of that shape (``MaskRCNN.get_anchors``).
    on_trace : callable, optional
        Called each time the function is traced (``MaskRCNN.trace_count``).

    Returns
    -------
    tf.function
        Inputs float32 ``[B, h, w, C]`` molded images and ``[B, IMAGE_META_SIZE]``
        metas; outputs ``detections`` ``[B, D, 6]`` (normalized boxes, class id,
        score) and ``masks``, the ``[B, D, 28, 28]`` probabilities of each
        detection's class.

    Raises
    ------
    ModelError
        When h or w is not a multiple of 64.
    """
    key = (int(image_shape[0]), int(image_shape[1]))
    check_molded_shape(key)
    anchors = tf.constant(anchors, tf.float32)

    def detect_graph(images, image_metas):
        if on_trace is not None:
            on_trace()
        batch = tf.shape(images)[0]
        batch_anchors = tf.broadcast_to(anchors[tf.newaxis], [batch, anchors.shape[0], 4])
        outputs = keras_model([images, image_metas, batch_anchors], training=False)
        detections, mrcnn_mask = outputs[0], outputs[3]
        class_ids = tf.cast(detections[..., 4], tf.int32)
        class_masks = tf.gather(tf.transpose(mrcnn_mask, [0, 1, 4, 2, 3]), class_ids, batch_dims=2)
        return detections, tf.cast(class_masks, tf.float32)  # bfloat16 policy: float32 out

    signature = [tf.TensorSpec([None, key[0], key[1], config.IMAGE_CHANNEL_COUNT], tf.float32),
                 tf.TensorSpec([None, config.IMAGE_META_SIZE], tf.float32)]
    return tf.function(detect_graph, input_signature=signature)


def check_molded_shape(image_shape):
    """Raise :class:`ModelError` unless the molded ``(h, w, ...)`` are multiples of 64 (the FPN halves them 6 times)."""
    key = (int(image_shape[0]), int(image_shape[1]))
    if key[0] % 64 or key[1] % 64:
        raise ModelError(f"detect: molded images of shape {key} cannot be used: height and width must "
                         "be multiples of 64 (the FPN halves them 6 times); check IMAGE_RESIZE_MODE")


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window):
    """Detections of one image in the original image's pixels (``MaskRCNN.unmold_detections``).

    Parameters
    ----------
    detections : ndarray, [D, (y1, x1, y2, x2, class_id, score)]
        Normalized boxes in the molded image; rows from the first ``class_id == 0``
        on are padding.
    mrcnn_mask : ndarray, [D, h, w, NUM_CLASSES] or [D, h, w]
        Mask probabilities per class, or already of each detection's class
        (extension).
    original_image_shape : (H, W, C)
    image_shape : (h, w, C)
        The molded image's shape.
    window : (y1, x1, y2, x2)
        Pixels of the real image inside the molded one.

    Returns
    -------
    boxes : ndarray, int32, [N, (y1, x1, y2, x2)]
        Original-image pixels, ``y2``/``x2`` exclusive; the window transform is
        computed in the detections' precision (float32), as matterport.
    class_ids : ndarray, int32, [N]
    scores : ndarray, [N], the detections' dtype
    masks : ndarray, bool, [H, W, N]
        ``masks.unmold_mask`` of each detection (threshold 0.5); with no detection
        left, float64 ``[H, W, 0]``, as matterport's.

    Detections whose box is empty are dropped. Extension: boxes are clipped
    to the original image (the detection layer keeps them inside the window,
    so matterport's never needed it).
    """
    detections = np.asarray(detections)
    padding = np.where(detections[:, 4] == 0)[0]
    count = int(padding[0]) if padding.shape[0] else detections.shape[0]
    boxes = detections[:count, :4]
    class_ids = detections[:count, 4].astype(np.int32)
    scores = detections[:count, 5]
    masks = np.asarray(mrcnn_mask)[:count]
    if masks.ndim == 4:
        masks = masks[np.arange(count), :, :, class_ids]

    # Normalized molded-image coordinates -> normalized window coordinates -> pixels.
    wy1, wx1, wy2, wx2 = norm_boxes(window, image_shape[:2])
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = denorm_boxes(np.divide(boxes - shift, scale), original_image_shape[:2])
    height, width = int(original_image_shape[0]), int(original_image_shape[1])
    boxes = np.clip(boxes, 0, [height, width, height, width]).astype(np.int32)

    visible = np.where((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[0]
    boxes, class_ids, scores, masks = boxes[visible], class_ids[visible], scores[visible], masks[visible]
    full_masks = [unmold_mask(masks[i], boxes[i], original_image_shape) for i in range(len(boxes))]
    # Without detections matterport's np.empty: float64 [H, W, 0].
    full_masks = np.stack(full_masks, axis=-1) if full_masks else np.empty((height, width, 0))
    return boxes.reshape(-1, 4), class_ids, scores, full_masks
