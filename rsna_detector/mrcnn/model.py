"""The Mask R-CNN facade, compatible with matterport's ``mrcnn.model``.

Use it as matterport's module::

    import rsna_detector.mrcnn.model as modellib

    model = modellib.MaskRCNN(mode="inference", config=config, model_dir="logs")
    model.load_weights("mask_rcnn_coco.h5", by_name=True,
                       exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    results = model.detect([image])           # list of dicts: rois, class_ids, scores, masks

The inference graph is assembled here from the building blocks (``backbone``, ``fpn``,
``rpn``, ``proposals``, ``heads``, ``detection``); the training graph comes from
``training.build_training_model`` and the training loop from ``trainer.train``.

``detect`` runs a compiled ``tf.function`` per molded image shape (input signature with
a free batch axis, anchors baked in as a constant), so repeated calls never retrace and
never go through ``keras.Model.predict``.
"""
from __future__ import annotations

import copy
import datetime
import os
import re
import warnings
from collections import OrderedDict

import keras
import numpy as np
import tensorflow as tf

from ..errors import RsnaDetectorError, RsnaDetectorWarning
from . import utils
from .backbone import build_backbone
from .detection import DetectionLayer, refine_detections_graph
from .fpn import build_fpn
from .heads import build_fpn_mask_graph, fpn_classifier_graph
from .proposals import ProposalLayer
from .rpn import apply_rpn, build_rpn_model
from .utils import compose_image_meta, mold_image, parse_image_meta
from .weights import load_hdf5_weights, save_hdf5_weights

# --- matterport's graph-level names, re-exported for notebooks (``modellib.resnet_graph``, ...) ---
# Where the engine's function takes other arguments, ``compat`` gives matterport's signature.
from .backbone import BatchNorm, conv_block, identity_block
from .box_ops import (apply_box_deltas_graph, batch_pack_graph, clip_boxes_graph, denorm_boxes_graph,
                      norm_boxes_graph, overlaps_graph, parse_image_meta_graph, trim_zeros_graph)
from .compat import find_ancestor, log2_graph, resnet_graph, smooth_l1_loss
from .losses import (mrcnn_bbox_loss_graph, mrcnn_class_loss_graph, mrcnn_mask_loss_graph,
                     rpn_bbox_loss_graph, rpn_class_loss_graph)
from .roi_align import PyramidROIAlign
from .rpn import rpn_graph
from .targets import DetectionTargetLayer, detection_targets_graph
# --- end of matterport's graph-level names ---

__all__ = [
    "MaskRCNN",
    "ModelError",
    "UnreadableCheckpointWarning",
    "build_inference_model",
    "log",
    "format_log",
    "mold_image",
    "compose_image_meta",
    "parse_image_meta",
    "load_image_gt",
    "data_generator",
    "MODES",
    "CHECKPOINT_PATTERN",
] + [
    # matterport's graph-level names, re-exported for notebooks (block below the imports)
    "BatchNorm", "resnet_graph", "identity_block", "conv_block", "rpn_graph", "build_rpn_model",
    "ProposalLayer", "PyramidROIAlign", "DetectionTargetLayer", "DetectionLayer", "fpn_classifier_graph",
    "build_fpn_mask_graph", "norm_boxes_graph", "denorm_boxes_graph", "parse_image_meta_graph",
    "apply_box_deltas_graph", "clip_boxes_graph", "overlaps_graph", "trim_zeros_graph", "batch_pack_graph",
    "log2_graph", "smooth_l1_loss", "rpn_class_loss_graph", "rpn_bbox_loss_graph", "mrcnn_class_loss_graph",
    "mrcnn_bbox_loss_graph", "mrcnn_mask_loss_graph", "detection_targets_graph", "refine_detections_graph",
]

#: Modes of :class:`MaskRCNN`.
MODES = ("training", "inference")
#: Checkpoint file names inside a log directory (``str.format`` with ``name`` and ``epoch``).
CHECKPOINT_PATTERN = "mask_rcnn_{name}_{epoch:04d}.h5"
# A run folder's time stamp: matterport's minutes, or seconds plus a suffix (_2, _3, ...) when taken.
_RUN_STAMP = r"(?P<stamp>\d{8}T\d{4}(?:\d{2})?)(?:_(?P<suffix>\d+))?"
# <model_dir>/<name><stamp>/mask_rcnn_<name>_<epoch>.h5, either path separator.
_CHECKPOINT_RE = re.compile(
    r".*[/\\](?P<run>[\w-]*?" + _RUN_STAMP + r")[/\\]mask_rcnn_[\w-]+?_(?P<epoch>\d{4})\.h5$")


class ModelError(RsnaDetectorError, ValueError):
    """A MaskRCNN method got input it cannot use (wrong mode, bad image, ...)."""


class UnreadableCheckpointWarning(RsnaDetectorWarning):
    """``find_last`` skipped a checkpoint it cannot read (truncated, empty, not HDF5); the message names it."""


# ---- matterport's numpy-side model.py names that notebooks reach as ``modellib.<name>`` ----
from .data import data_generator, load_image_gt  # noqa: E402
from .head_targets import build_detection_targets, generate_random_rois  # noqa: E402
from .targets import build_rpn_targets  # noqa: E402
from .utils import compute_backbone_shapes, unmold_image  # noqa: E402

__all__ += ["compute_backbone_shapes", "unmold_image", "build_rpn_targets", "build_detection_targets",
            "generate_random_rois"]
# ---- end of the numpy-side names ----


def format_log(text, array=None):
    """The line :func:`log` prints: ``text``, then the shape, min, max and dtype of ``array``."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25) + f"shape: {str(array.shape):20}  "
        if array.size:
            text += f"min: {array.min():10.5f}  max: {array.max():10.5f}"
        else:
            text += f"min: {'':10}  max: {'':10}"
        text += f"  {array.dtype}"
    return text


def log(text, array=None):
    """Print ``text``, followed by the shape, min, max and dtype of ``array`` when given.

    matterport's debugging helper; returns None, as matterport's, so that a notebook
    cell ending with it shows the line once (:func:`format_log` gives the text).
    """
    print(format_log(text, array))


# ----------------------------------------------------------------------------
# the inference graph
# ----------------------------------------------------------------------------

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
    """
    input_image = keras.Input(shape=[None, None, config.IMAGE_CHANNEL_COUNT], name="input_image")
    input_image_meta = keras.Input(shape=[config.IMAGE_META_SIZE], name="input_image_meta")
    input_anchors = keras.Input(shape=[None, 4], name="input_anchors")

    pyramid = build_fpn(build_backbone(input_image, config), config)
    mrcnn_feature_maps = pyramid[:4]
    rpn_feature_maps = pyramid[:config.RPN_PYRAMID_LEVELS]

    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS), config.TOP_DOWN_PYRAMID_SIZE)
    _, rpn_class, rpn_bbox = apply_rpn(rpn, rpn_feature_maps)
    rpn_rois = ProposalLayer(config.POST_NMS_ROIS_INFERENCE, config.RPN_NMS_THRESHOLD, config,
                             name="ROI")([rpn_class, rpn_bbox, input_anchors])

    _, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
        rpn_rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
        train_bn=config.TRAIN_BN, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE, skip_padding=True)
    detections = DetectionLayer(config, name="mrcnn_detection")([rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])
    detection_boxes = keras.layers.Lambda(lambda d: d[..., :4], output_shape=lambda s: tuple(s[:-1]) + (4,),
                                          name="detection_boxes")(detections)
    mrcnn_mask = build_fpn_mask_graph(detection_boxes, mrcnn_feature_maps, input_image_meta,
                                      config.MASK_POOL_SIZE, config.NUM_CLASSES, train_bn=config.TRAIN_BN,
                                      skip_padding=True)
    return keras.Model([input_image, input_image_meta, input_anchors],
                       [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox],
                       name="mask_rcnn")


# ----------------------------------------------------------------------------
# images in and out
# ----------------------------------------------------------------------------

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


def _mold_one(config, image, index):
    """``(molded image, meta, window, original shape)`` of one image, as matterport's ``mold_inputs``."""
    image = _as_rgb(image, index, config.IMAGE_CHANNEL_COUNT)
    molded, window, scale, _, _ = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
    molded = mold_image(molded, config)
    meta = compose_image_meta(0, image.shape, molded.shape, window, scale,
                              np.zeros([config.NUM_CLASSES], dtype=np.int32))
    return molded, meta, np.asarray(window), image.shape


class MaskRCNN:
    """matterport's ``MaskRCNN``: build, detect, load/save weights, train.

    Parameters
    ----------
    mode : {'training', 'inference'}
    config : Config
    model_dir : str or Path
        Where training logs and checkpoints go (``<model_dir>/<name><timestamp>/``).

    Attributes
    ----------
    keras_model : keras.Model
    epoch : int
        Epochs already trained (recovered from a checkpoint's name by ``load_weights``).
    log_dir, checkpoint_path : str
        See :meth:`set_log_dir`.
    trace_count : int
        How many times a detect function was traced (stays 1 per molded image shape).
    """

    def __init__(self, mode, config, model_dir):
        if mode not in MODES:
            raise ModelError(f"MaskRCNN: mode: expected one of {MODES}, got {mode!r}")
        self.mode = mode
        self.config = config
        self.model_dir = str(model_dir)
        self.trace_count = 0
        self._anchor_cache = {}
        self._detect_functions = {}
        self.set_log_dir()
        self.keras_model = self.build(mode=mode, config=config)

    # ------------------------------------------------------------------
    # building
    # ------------------------------------------------------------------
    def build(self, mode, config):
        """The Keras model of ``mode`` (training graph from ``training.build_training_model``)."""
        if mode == "training":
            from .training import build_training_model

            return build_training_model(config)
        return build_inference_model(config)

    def get_anchors(self, image_shape):
        """Normalized anchors for a molded image shape, computed once per shape.

        Parameters
        ----------
        image_shape : (H, W, ...)

        Returns
        -------
        ndarray, float32, [A, (y1, x1, y2, x2)]
            The first ``RPN_PYRAMID_LEVELS`` pyramid levels, in the RPN's output order.
            The pixel anchors of the last shape asked for are kept in ``self.anchors``.
        """
        key = (int(image_shape[0]), int(image_shape[1]))
        if key not in self._anchor_cache:
            config = self.config
            levels = config.RPN_PYRAMID_LEVELS
            shapes = np.asarray(utils.compute_backbone_shapes(config, image_shape))[:levels]
            pixel_anchors = utils.generate_pyramid_anchors(
                config.RPN_ANCHOR_SCALES[:levels], config.RPN_ANCHOR_RATIOS, shapes,
                config.BACKBONE_STRIDES[:levels], config.RPN_ANCHOR_STRIDE)
            self.anchors = pixel_anchors
            self._anchor_cache[key] = utils.norm_boxes(pixel_anchors, key).astype(np.float32)
        return self._anchor_cache[key]

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def _mold_one(self, image, index):
        return _mold_one(self.config, image, index)

    def mold_inputs(self, images):
        """Resize and normalize images as the network expects them (matterport's method).

        Parameters
        ----------
        images : list of ndarray
            RGB ``[H, W, 3]`` (or grayscale ``[H, W]`` / ``[H, W, 1]``), uint8 range.
            After resizing they must share one shape (true in 'square' mode).

        Returns
        -------
        molded_images : ndarray, [N, h, w, C]
            ``utils.mold_image`` of the resized images (float64 with the default
            numpy ``MEAN_PIXEL``, as matterport).
        image_metas : ndarray, [N, IMAGE_META_SIZE]
            ``utils.compose_image_meta`` (image id 0, no active class).
        windows : ndarray, int, [N, (y1, x1, y2, x2)]
            The real image's pixels inside each molded image.
        """
        molded = [_mold_one(self.config, image, i) for i, image in enumerate(images)]
        shapes = {m[0].shape for m in molded}
        if len(shapes) > 1:
            raise ModelError(f"mold_inputs: images resize to different shapes {sorted(shapes)}; "
                             "mold them one shape at a time (detect does this for you)")
        return (np.stack([m[0] for m in molded]), np.stack([m[1] for m in molded]),
                np.stack([m[2] for m in molded]))

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape, window):
        """Detections of one image in the original image's pixels (matterport's method).

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
            ``utils.unmold_mask`` of each detection (threshold 0.5).

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
        wy1, wx1, wy2, wx2 = utils.norm_boxes(window, image_shape[:2])
        shift = np.array([wy1, wx1, wy1, wx1])
        scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
        boxes = utils.denorm_boxes(np.divide(boxes - shift, scale), original_image_shape[:2])
        height, width = int(original_image_shape[0]), int(original_image_shape[1])
        boxes = np.clip(boxes, 0, [height, width, height, width]).astype(np.int32)

        visible = np.where((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[0]
        boxes, class_ids, scores, masks = boxes[visible], class_ids[visible], scores[visible], masks[visible]
        full_masks = [utils.unmold_mask(masks[i], boxes[i], original_image_shape) for i in range(len(boxes))]
        full_masks = (np.stack(full_masks, axis=-1) if full_masks
                      else np.zeros((height, width, 0), dtype=bool))
        return boxes.reshape(-1, 4), class_ids, scores, full_masks

    def _detect_function(self, image_shape):
        """The compiled detect graph for one molded shape: ``(images, metas) -> (detections, masks)``.

        ``masks`` are the ``[B, D, 28, 28]`` probabilities of each detection's class.
        """
        key = (int(image_shape[0]), int(image_shape[1]))
        if key in self._detect_functions:
            return self._detect_functions[key]
        if key[0] % 64 or key[1] % 64:
            raise ModelError(f"detect: molded images of shape {key} cannot be used: height and width must "
                             "be multiples of 64 (the FPN halves them 6 times); check IMAGE_RESIZE_MODE")
        anchors = tf.constant(self.get_anchors(key), tf.float32)
        model = self.keras_model
        config = self.config

        def detect_graph(images, image_metas):
            self.trace_count += 1
            batch = tf.shape(images)[0]
            batch_anchors = tf.broadcast_to(anchors[tf.newaxis], [batch, anchors.shape[0], 4])
            outputs = model([images, image_metas, batch_anchors], training=False)
            detections, mrcnn_mask = outputs[0], outputs[3]
            class_ids = tf.cast(detections[..., 4], tf.int32)
            class_masks = tf.gather(tf.transpose(mrcnn_mask, [0, 1, 4, 2, 3]), class_ids, batch_dims=2)
            return detections, class_masks

        signature = [tf.TensorSpec([None, key[0], key[1], config.IMAGE_CHANNEL_COUNT], tf.float32),
                     tf.TensorSpec([None, config.IMAGE_META_SIZE], tf.float32)]
        function = tf.function(detect_graph, input_signature=signature)
        self._detect_functions[key] = function
        return function

    def detect(self, images, verbose=0):
        """Detect objects in images of any size and number.

        Parameters
        ----------
        images : list of ndarray
            RGB ``[H, W, 3]`` or grayscale ``[H, W]`` / ``[H, W, 1]``, uint8 range; sizes
            may differ. Run in chunks of ``config.BATCH_SIZE`` (the last may be shorter).
        verbose : int
            1 prints what goes in (matterport's logging).

        Returns
        -------
        list of dict, one per image
            ``rois`` int32 ``[N, (y1, x1, y2, x2)]`` in the original image's pixels,
            ``class_ids`` int32 ``[N]``, ``scores`` float32 ``[N]``, ``masks`` bool
            ``[H, W, N]`` (the original size).
        """
        if self.mode != "inference":
            raise ModelError("detect: create the model with mode='inference'")
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        if not isinstance(images, (list, tuple)):
            raise ModelError(f"detect: expected a list of images, got {type(images).__name__}")
        if verbose:
            log(f"Processing {len(images)} images")
            for image in images:
                log("image", image)
        results = [None] * len(images)
        batch_size = self.config.BATCH_SIZE
        for start in range(0, len(images), batch_size):
            indices = range(start, min(start + batch_size, len(images)))
            molded = {i: self._mold_one(images[i], i) for i in indices}
            by_shape = OrderedDict()
            for i in indices:
                by_shape.setdefault(molded[i][0].shape, []).append(i)
            for shape, members in by_shape.items():
                self._detect_group(shape, [molded[i] for i in members], members, results, verbose)
        return results

    def _detect_group(self, shape, molded, indices, results, verbose):
        molded_images = np.stack([m[0] for m in molded]).astype(np.float32)
        image_metas = np.stack([m[1] for m in molded]).astype(np.float32)
        if verbose:
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", self.get_anchors(shape))
        detections, masks = self._detect_function(shape)(molded_images, image_metas)
        detections, masks = detections.numpy(), masks.numpy()
        for k, i in enumerate(indices):
            _, _, window, original_shape = molded[k]
            rois, class_ids, scores, full_masks = self.unmold_detections(
                detections[k], masks[k], original_shape, shape, window)
            results[i] = {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": full_masks}

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """Detect objects in images already molded (as ``load_image_gt`` + ``mold_image`` give them).

        matterport's debugging entry point: no resizing, and the results are in the
        molded images' pixels (window = the whole molded image).

        Parameters
        ----------
        molded_images : ndarray or list, float32, [BATCH_SIZE, H, W, C]
            Mean pixel subtracted; one shape (H, W multiples of 64).
        image_metas : ndarray, [BATCH_SIZE, IMAGE_META_SIZE]
        verbose : int
            1 logs the inputs.

        Returns
        -------
        list of dict
            As :meth:`detect`, boxes and masks in molded-image pixels.

        Raises
        ------
        ModelError
            Not in inference mode, a batch that is not ``BATCH_SIZE`` long (matterport's
            rule), or images of different shapes.
        """
        if self.mode != "inference":
            raise ModelError("detect_molded: create the model with mode='inference'")
        if len(molded_images) != self.config.BATCH_SIZE:
            raise ModelError(f"detect_molded: expected BATCH_SIZE={self.config.BATCH_SIZE} molded images, "
                             f"got {len(molded_images)}")
        shapes = {tuple(np.shape(image)) for image in molded_images}
        if len(shapes) > 1:
            raise ModelError(f"detect_molded: the molded images must share one shape, got {sorted(shapes)}")
        molded_images = np.asarray(molded_images, np.float32)
        image_metas = np.asarray(image_metas, np.float32)
        if verbose:
            log(f"Processing {len(molded_images)} images")
            for image in molded_images:
                log("image", image)
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", self.get_anchors(molded_images.shape[1:]))
        shape = molded_images.shape[1:]
        detections, masks = self._detect_function(shape)(molded_images, image_metas)
        detections, masks = detections.numpy(), masks.numpy()
        results = []
        for i in range(len(molded_images)):
            window = np.array([0, 0, shape[0], shape[1]], np.int32)
            rois, class_ids, scores, full_masks = self.unmold_detections(
                detections[i], masks[i], shape, shape, window)
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": full_masks})
        return results

    def ancestor(self, tensor, name, checked=None):
        """A tensor computed inside the graph upstream of ``tensor``, by matterport's TF-1 name.

        Keras 3 has no TensorFlow graph to search, so the names matterport's notebooks
        use are resolved explicitly: ``"ROI/pre_nms_anchors:0"``,
        ``"ROI/refined_anchors:0"``, ``"ROI/refined_anchors_clipped:0"`` and
        ``"ROI/rpn_non_max_suppression:0"`` (also its ``/NonMaxSuppressionV2:0`` and
        ``/NonMaxSuppressionV3:0`` spellings) give a tensor that :meth:`run_graph` can
        evaluate (see ``compat.find_ancestor`` for shapes). Any other name gives None,
        as matterport's search did when nothing matched. ``checked`` is accepted for
        compatibility and ignored.
        """
        return find_ancestor(tensor, name)

    def run_graph(self, images, outputs, image_metas=None):
        """Values of intermediate tensors for the given images (debugging, as matterport).

        Parameters
        ----------
        images : list of ndarray
            Raw images, molded here; or, when ``image_metas`` is given, images already
            molded (resized, padded, mean subtracted: ``mold_image`` of
            ``load_image_gt``'s image), used as they are.
        outputs : list of (str, KerasTensor)
            Tensors of ``keras_model`` (e.g. ``model.keras_model.get_layer("ROI").output``)
            or from :meth:`ancestor`.
        image_metas : ndarray, optional
            ``[N, IMAGE_META_SIZE]`` of the molded ``images``.

        Returns
        -------
        OrderedDict
            ``name -> ndarray``; each is also logged (:func:`log`), as matterport does.
        """
        if self.mode != "inference":
            raise ModelError("run_graph: create the model with mode='inference'")
        outputs = OrderedDict(outputs)
        missing = [name for name, tensor in outputs.items() if tensor is None]
        if missing:
            raise ModelError(f"run_graph: no tensor given for {missing} (ancestor() found none?)")
        probe = keras.Model(self.keras_model.inputs, list(outputs.values()))
        if image_metas is None:
            molded_images, metas, _ = self.mold_inputs(images)
        else:
            molded_images = np.asarray(images, np.float32)
            metas = np.asarray(image_metas, np.float32)
        anchors = self.get_anchors(molded_images.shape[1:])
        anchors = np.ascontiguousarray(np.broadcast_to(anchors, (len(molded_images),) + anchors.shape))
        values = probe([molded_images, metas, anchors], training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        results = OrderedDict((name, keras.ops.convert_to_numpy(v)) for name, v in zip(outputs, values))
        for name, value in results.items():
            log(name, value)
        return results

    # ------------------------------------------------------------------
    # weights and checkpoints
    # ------------------------------------------------------------------
    def load_weights(self, filepath, by_name=False, exclude=None):
        """Load a Keras-1/Keras-2 HDF5 weights file (matterport's, Keras' ImageNet, ours); adopt its log dir.

        See ``weights.load_hdf5_weights`` for ``by_name`` and ``exclude``; as in
        matterport, giving ``exclude`` forces ``by_name=True``. When the path is a
        checkpoint of this library's naming, ``epoch`` and ``log_dir`` follow it
        (training resumes there).

        Returns
        -------
        weights.WeightsLoadResult
            The layers loaded, missing from the file, excluded and unused
            (matterport returned None).
        """
        if exclude:
            by_name = True
        result = load_hdf5_weights(self.keras_model, filepath, by_name=by_name, exclude=exclude)
        self.set_log_dir(str(filepath))
        return result

    def get_imagenet_weights(self):
        """Path of the ImageNet ResNet-50 file matterport starts from (``init_with="imagenet"``).

        The file ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`` (Keras 1
        layout, MD5 a268eb855778b3df3c7506639542a6af) comes from the weights registry
        (``rsna_detector.weights.fetch_weights("imagenet")``): found in
        ``$RSNA_DETECTOR_WEIGHTS_DIR`` or the cache, else downloaded, and checked.
        Load it with ``load_weights(path, by_name=True)``.

        Returns
        -------
        str
        """
        from rsna_detector.weights import fetch_weights

        return str(fetch_weights("imagenet"))

    def save_weights(self, filepath):
        """Write the weights (Keras-2 HDF5 layout, atomically, with config and epoch)."""
        return save_hdf5_weights(self.keras_model, filepath, config=self.config, epoch=self.epoch)

    def set_log_dir(self, model_path=None):
        """Set ``log_dir``, ``checkpoint_path`` and ``epoch`` (matterport's naming, to the second).

        New run: ``log_dir = <model_dir>/<name><now:%Y%m%dT%H%M%S>`` and ``epoch = 0``;
        the folder is created by :meth:`make_log_dir` when training starts, with a
        suffix ``_2``, ``_3``, ... when another run already took that name.
        With ``model_path`` of the form ``.../<run folder>/mask_rcnn_<name>_<EEEE>.h5``
        (run folder ``<name><YYYYmmddTHHMM[SS][_N]>``) the run continues in
        ``<model_dir>/<run folder>`` with ``epoch = EEEE`` (epochs done).
        ``checkpoint_path`` is ``<log_dir>/mask_rcnn_<name>_{epoch:04d}.h5``.
        """
        self.epoch = 0
        name = str(self.config.NAME).lower()
        match = _CHECKPOINT_RE.match(str(model_path)) if model_path else None
        if match:
            self.epoch = int(match.group("epoch"))
            self._new_run = False
            self._set_run_folder(os.path.join(self.model_dir, match.group("run")))
        else:
            self._new_run = True
            self._set_run_folder(os.path.join(self.model_dir, f"{name}{datetime.datetime.now():%Y%m%dT%H%M%S}"))

    def _set_run_folder(self, folder):
        name = str(self.config.NAME).lower()
        self.log_dir = folder
        self.checkpoint_path = os.path.join(folder, f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    def make_log_dir(self):
        """Create ``log_dir`` before anything is written there; returns it.

        A new run's folder is created atomically (``os.mkdir``): when another run
        already has that name (two runs started in the same second), the suffix
        ``_2``, ``_3``, ... is added, so no run ever writes into another's
        folder. A resumed run (``load_weights`` of one of its checkpoints) keeps
        its folder.
        """
        if not getattr(self, "_new_run", False):
            os.makedirs(self.log_dir, exist_ok=True)
            return self.log_dir
        os.makedirs(self.model_dir, exist_ok=True)
        base, number = self.log_dir, 1
        while True:
            folder = base if number == 1 else f"{base}_{number}"
            try:
                os.mkdir(folder)
                break
            except FileExistsError:
                number += 1
        self._new_run = False
        self._set_run_folder(folder)
        return folder

    def find_last(self):
        """Path of the newest readable checkpoint of the newest run of this config's NAME.

        Run folders ``<model_dir>/<name><YYYYmmddTHHMM[SS][_N]>`` are searched newest
        first (time stamp, then suffix), and in each the ``mask_rcnn_*.h5`` files
        from the highest epoch down. A file that cannot be read as a weights file
        (truncated by a crash or a full disk, empty, not HDF5) is skipped with an
        :class:`UnreadableCheckpointWarning` naming it and why.

        Raises
        ------
        FileNotFoundError
            Naming ``model_dir`` and what was looked for (no run folder, no
            checkpoint, or none readable).
        """
        name = str(self.config.NAME).lower()
        runs = self._run_folders(name)
        if not runs:
            raise FileNotFoundError(f"find_last: no run folder '{name}YYYYmmddTHHMM' in model_dir "
                                    f"{self.model_dir!r}: train first or give a weights path")
        unreadable = []
        for run in runs:
            folder = os.path.join(self.model_dir, run)
            checkpoints = sorted((f for f in os.listdir(folder) if f.startswith("mask_rcnn") and f.endswith(".h5")),
                                 reverse=True)
            for checkpoint in checkpoints:
                path = os.path.join(folder, checkpoint)
                problem = _checkpoint_problem(path)
                if problem is None:
                    return path
                unreadable.append(path)
                warnings.warn(f"find_last: skipping the unreadable checkpoint {path} ({problem})",
                              UnreadableCheckpointWarning, stacklevel=2)
        if unreadable:
            raise FileNotFoundError(f"find_last: no readable mask_rcnn_*.h5 checkpoint in the run folders {runs} "
                                    f"of {self.model_dir!r} (unreadable: {', '.join(unreadable)})")
        raise FileNotFoundError(f"find_last: no mask_rcnn_*.h5 checkpoint in the run folders {runs} of "
                                f"{self.model_dir!r}")

    def _run_folders(self, name):
        """This NAME's run folders in ``model_dir``, newest first."""
        run_re = re.compile(re.escape(name) + _RUN_STAMP + "$")
        try:
            entries = os.listdir(self.model_dir)
        except FileNotFoundError:
            return []
        runs = []
        for entry in entries:
            match = run_re.match(entry)
            if match and os.path.isdir(os.path.join(self.model_dir, entry)):
                stamp = match.group("stamp").ljust(15, "0")  # minute stamps sort as second 00
                runs.append(((stamp, int(match.group("suffix") or 1)), entry))
        return [entry for _, entry in sorted(runs, reverse=True)]

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, augmentation=None,
              custom_callbacks=None, no_augmentation_sources=None, **options):
        """Train up to epoch ``epochs`` (see ``trainer.train``).

        ``layers`` is 'heads', '3+', '4+', '5+', 'all' or a regex; ``options`` (e.g.
        ``verbose``) go to ``trainer.train``. Returns what it returns.
        """
        if self.mode != "training":
            raise ModelError("train: create the model with mode='training'")
        if not self.config.USE_RPN_ROIS:
            # matterport's train() did not feed input_roi either (its fit failed on the input count).
            raise ModelError(
                "train: USE_RPN_ROIS is False, so the model takes its ROIs as the input 'input_roi', which "
                "train() does not make; call compile(learning_rate, momentum) and then keras_model.fit("
                "data_generator(dataset, config, random_rois=config.POST_NMS_ROIS_TRAINING, "
                "batch_size=config.BATCH_SIZE), steps_per_epoch=...)")
        from .trainer import train

        return train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
                     augmentation=augmentation, custom_callbacks=custom_callbacks,
                     no_augmentation_sources=no_augmentation_sources, **options)

    def compile(self, learning_rate, momentum):
        """Compile ``keras_model`` for training: SGD with ``momentum`` and the config's clip norm.

        matterport's method (``train`` calls it). The five losses and the L2 weight
        decay are part of the training model's own step
        (``training.MaskRCNNTrainingModel``), so after ``compile`` the model trains with
        ``keras_model.fit`` on ``data_generator`` batches as matterport's did.
        """
        if self.mode != "training":
            raise ModelError("compile: create the model with mode='training'")
        from .trainer import compile_training_model

        config = copy.copy(self.config)
        config.LEARNING_MOMENTUM = momentum
        compile_training_model(self.keras_model, learning_rate, config)

    def find_trainable_layer(self, layer):
        """The layer that owns the weights (matterport unwrapped ``TimeDistributed``; no wrappers here)."""
        if isinstance(layer, keras.layers.TimeDistributed):
            return self.find_trainable_layer(layer.layer)
        return layer

    def get_trainable_layers(self):
        """Top-level layers of ``keras_model`` that have weights (the nested ``rpn_model`` included)."""
        return [self.find_trainable_layer(layer) for layer in self.keras_model.layers if layer.weights]

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1):
        """matterport's method: make the layers matching ``layer_regex`` trainable, freeze the others.

        ``layer_regex`` is a preset ('heads', '3+', '4+', '5+', 'all') or a regular
        expression; batch normalisation stays frozen unless ``config.TRAIN_BN``.
        ``indent`` is accepted for compatibility and ignored. Returns the names of the
        trainable layers (see ``trainer.set_trainable``).
        """
        from .trainer import set_trainable

        return set_trainable(keras_model or self.keras_model, layer_regex, train_bn=self.config.TRAIN_BN,
                             verbose=verbose)


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------

def _checkpoint_problem(path):
    """Why ``path`` cannot be read as a Keras-2 HDF5 weights file, or None (reads the layout, not the values)."""
    from .weights import WeightsFileError, read_weight_file_layers

    try:
        if not read_weight_file_layers(path):
            return "no layers in the file"
    except (OSError, WeightsFileError, KeyError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None
