"""The fixed scenario whose outputs ``test_pinned_outputs.py`` pins (issue 12: speed work must not change results).

Everything here is deterministic and independent of Keras' initialisers and of the
training input pipeline's random draws:

* two small configs that take the engine's real paths on a CPU in seconds: ``four_scales``
  (``DetectorConfig``'s switches and its 4 anchor scales on P2-P5, 3 images per batch) and
  ``five_scales`` (matterport's ``Config`` defaults, 5 scales on P2-P6, so zero-padding ROIs
  in training, 2 images per batch); both use the 'tiny' backbone (ResNet-50 is too slow for
  a unit test) and 3 classes;
* weights drawn from ``numpy`` generators seeded by each variable's ``layer/weight`` name
  (:func:`set_fixed_weights`), so the inference and the training model get the same values;
* images with filled rectangles and ellipses of classes 1 and 2, one image without objects
  (:func:`scene`);
* training inputs built with the library's public target functions and a seeded generator
  (:func:`training_inputs`), and the ROI sampling of the detection targets made fixed
  (:func:`fixed_roi_sampling`: a fixed key per proposal instead of uniform noise).

:func:`inference_outputs` and :func:`training_outputs` return plain JSON-able dicts;
``make_pinned.py`` stores them, the test recomputes and compares them.
"""
from __future__ import annotations

import contextlib
import zlib

import keras
import numpy as np
import tensorflow as tf

from rsna_detector.detector.config import DetectorConfig
from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.input import rpn_targets
from rsna_detector.mrcnn.layers import detection_targets, training_graph
from rsna_detector.mrcnn.model import MaskRCNN
from rsna_detector.mrcnn.ops.anchors import pyramid_anchors
from rsna_detector.mrcnn.train import loop

IMAGE_SIZE = 128
LEARNING_RATE = 0.01


class FourScales(DetectorConfig):
    """DetectorConfig's paths (4 scales on P2-P5, its RSNA switches), small enough for a CPU test."""

    NAME = "pinned_four_scales"
    BACKBONE = "tiny"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 3
    IMAGE_MIN_DIM = IMAGE_SIZE
    IMAGE_MAX_DIM = IMAGE_SIZE
    RPN_ANCHOR_SCALES = (8, 16, 32, 64)
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 600
    POST_NMS_ROIS_TRAINING = 300
    POST_NMS_ROIS_INFERENCE = 200  # NMS leaves more: no padding among the proposals, as a rule
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 5
    DETECTION_NMS_THRESHOLD = 0.3  # DetectorConfig's DETECTION_MIN_CONFIDENCE 0.78
    SEED = 0
    DATA_LOADER_WORKERS = 0


class FiveScales(Config):
    """matterport's defaults (no RSNA switches) with 5 scales on P2-P6, small enough for a CPU test."""

    NAME = "pinned_five_scales"
    BACKBONE = "tiny"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = IMAGE_SIZE
    IMAGE_MAX_DIM = IMAGE_SIZE
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 300  # fewer than the proposals kept: zero-padding proposals in both modes
    POST_NMS_ROIS_TRAINING = 320
    POST_NMS_ROIS_INFERENCE = 320
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 5
    DETECTION_NMS_THRESHOLD = 0.3  # Config's DETECTION_MIN_CONFIDENCE 0.7
    SEED = 0


CONFIGS = {"four_scales": FourScales, "five_scales": FiveScales}

#: Per image of each scenario: the objects ``(class_id, shape, y1, x1, y2, x2)``; [] = no object.
SCENES = {
    "four_scales": [
        [(2, "ellipse", 10, 6, 76, 62), (1, "rectangle", 40, 28, 48, 36), (1, "rectangle", 20, 20, 28, 28),
         (2, "rectangle", 82, 86, 94, 96)],
        [],
        [(2, "ellipse", 18, 30, 110, 100), (1, "rectangle", 60, 60, 68, 68), (1, "rectangle", 36, 52, 44, 60)],
    ],
    "five_scales": [
        [(2, "rectangle", 4, 8, 66, 60), (1, "rectangle", 24, 24, 32, 32), (1, "rectangle", 40, 36, 48, 44)],
        [(2, "ellipse", 24, 20, 100, 104), (1, "rectangle", 56, 56, 64, 64)],
    ],
}


def config(name):
    """A fresh, validated instance of the scenario's config."""
    return CONFIGS[name]().validate()


def scene(name):
    """``(images, masks, class_ids)`` of the scenario: uint8 ``[128, 128, 3]``, bool ``[128, 128, n]``, int32 ``[n]``."""
    images, masks, class_ids = [], [], []
    for index, objects in enumerate(SCENES[name]):
        rng = np.random.default_rng(1000 + index)
        image = rng.integers(30, 90, (IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
        image_masks = np.zeros((IMAGE_SIZE, IMAGE_SIZE, len(objects)), bool)
        yy, xx = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
        for k, (class_id, shape, y1, x1, y2, x2) in enumerate(objects):
            inside = (yy >= y1) & (yy < y2) & (xx >= x1) & (xx < x2)
            if shape == "ellipse":
                cy, cx, ry, rx = (y1 + y2 - 1) / 2, (x1 + x2 - 1) / 2, (y2 - y1) / 2, (x2 - x1) / 2
                inside &= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            image_masks[..., k] = inside
            image[inside] = 150 + 50 * class_id
        images.append(np.repeat(image[..., np.newaxis], 3, axis=2))
        masks.append(image_masks)
        class_ids.append(np.array([o[0] for o in objects], np.int32))
    return images, masks, class_ids


# ----------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------

def _weight_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weight_layers(layer)
        elif layer.weights:
            yield layer


#: Output layers whose kernels are scaled down so that scores and deltas do not saturate
#: (the RPN's deltas most: its proposals stay near their anchors, so some overlap the objects).
OUTPUT_GAINS = {"rpn_class_raw": -0.3, "rpn_bbox_pred": 0.05, "mrcnn_class_logits": 0.3, "mrcnn_bbox_fc": 0.3}
#: The class logits' bias: both classes get detections, the image without objects none.
CLASS_LOGIT_BIAS = (0.0, 0.8, -0.8)


def fixed_value(key, shape):
    """The value of the variable ``key`` (``'layer/weight'``): seeded by the name, scaled by its role."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    layer, kind = key.rsplit("/", 1)
    if key == "mrcnn_class_logits/bias":
        return np.asarray(CLASS_LOGIT_BIAS, np.float64).reshape(shape)
    if kind == "kernel":
        fan_in = int(np.prod(shape[:-1])) or 1
        gain = OUTPUT_GAINS.get(layer, 1.0)
        return gain * rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    if kind == "bias":
        return rng.normal(0.0, 0.05, shape)
    if kind == "gamma":
        return 1.0 + rng.normal(0.0, 0.1, shape)
    if kind in ("beta", "moving_mean"):
        return rng.normal(0.0, 0.1, shape)
    if kind == "moving_variance":
        return rng.uniform(0.5, 1.5, shape)
    raise ValueError(f"no fixed value rule for variable {key}")


def set_fixed_weights(model):
    """Give every weight of ``model`` (nested models included) its :func:`fixed_value`; returns the count."""
    count = 0
    for layer in _weight_layers(model):
        values = [fixed_value(f"{layer.name}/{w.name}", tuple(w.shape)).astype(w.dtype) for w in layer.weights]
        layer.set_weights(values)
        count += len(values)
    return count


# ----------------------------------------------------------------------------
# inference
# ----------------------------------------------------------------------------

def _rounded(values, digits=6):
    return np.round(np.asarray(values, np.float64), digits).tolist()


def inference_outputs(name, model_dir):
    """Detections of the scenario's images through ``MaskRCNN.detect`` and through the Keras model.

    Returns
    -------
    dict
        ``detect``: per image ``rois`` (int pixel boxes), ``class_ids``, ``scores``,
        ``mask_pixels`` (pixels of each full-size mask); ``graph``: per image the rows of the
        ``detections`` output with a class (``boxes`` in pixels ``(y1, x1, y2, x2)`` = normalized
        x 128, ``class_ids``, ``scores``), ``mask_sums`` (sum of each detection's 28 x 28
        class-mask probabilities), ``proposals`` (non-padding ``rpn_rois`` rows) and
        ``proposal_sum`` (sum of their normalized coordinates).
    """
    cfg = config(name)
    images, _, _ = scene(name)
    model = MaskRCNN("inference", cfg, model_dir=str(model_dir))
    set_fixed_weights(model.keras_model)
    results = model.detect(images)
    out = {"detect": [{"rois": r["rois"].tolist(), "class_ids": r["class_ids"].tolist(),
                       "scores": _rounded(r["scores"], 7),
                       "mask_pixels": r["masks"].sum(axis=(0, 1)).tolist()}
                      for r in results]}
    molded, metas, _ = model.mold_inputs(images)
    anchors = model.get_anchors(molded.shape[1:])
    anchors = np.broadcast_to(anchors, (len(images),) + anchors.shape)
    detections, _, _, mrcnn_mask, rpn_rois, _, _ = [
        o.numpy() for o in model.keras_model([molded, metas, anchors], training=False)]
    graph = []
    for i in range(len(images)):
        rows = detections[i][detections[i][:, 4] > 0]
        class_ids = rows[:, 4].astype(int)
        masks = mrcnn_mask[i, :len(rows)]
        real = np.any(rpn_rois[i] != 0, axis=-1)
        graph.append({"boxes": _rounded(rows[:, :4] * IMAGE_SIZE, 5), "class_ids": class_ids.tolist(),
                      "scores": _rounded(rows[:, 5], 7),
                      "mask_sums": _rounded([masks[k, :, :, c].sum() for k, c in enumerate(class_ids)], 4),
                      "proposals": int(real.sum()), "proposal_sum": round(float(rpn_rois[i][real].sum()), 4)})
    out["graph"] = graph
    return out


# ----------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------

def training_inputs(name):
    """The training model's seven inputs for the scenario's images (numpy, seeded RPN target sampling)."""
    cfg = config(name)
    images, masks, class_ids = scene(name)
    anchors = pyramid_anchors(cfg)
    gt = cfg.MAX_GT_INSTANCES
    mask_shape = tuple(cfg.MINI_MASK_SHAPE) if cfg.USE_MINI_MASK else (IMAGE_SIZE, IMAGE_SIZE)
    arrays = [[] for _ in range(7)]
    for index, (image, image_masks, ids) in enumerate(zip(images, masks, class_ids)):
        boxes = utils.extract_bboxes(image_masks) if len(ids) else np.zeros((0, 4), np.int32)
        rpn_match, rpn_bbox = rpn_targets.build_rpn_targets(image.shape, anchors, ids, boxes, cfg,
                                                        rng=np.random.default_rng(index))
        if cfg.USE_MINI_MASK and len(ids):
            image_masks = utils.minimize_mask(boxes, image_masks, cfg.MINI_MASK_SHAPE)
        window = (0, 0, IMAGE_SIZE, IMAGE_SIZE)
        active = np.ones(cfg.NUM_CLASSES, np.int32)
        padded_ids, padded_boxes = np.zeros(gt, np.int32), np.zeros((gt, 4), np.float32)
        padded_masks = np.zeros(mask_shape + (gt,), np.float32)
        padded_ids[:len(ids)], padded_boxes[:len(ids)] = ids, boxes
        if len(ids):
            padded_masks[..., :len(ids)] = image_masks
        values = (utils.mold_image(image.astype(np.float32), cfg),
                  utils.compose_image_meta(index, image.shape, image.shape, window, 1.0, active),
                  rpn_match[:, np.newaxis], rpn_bbox, padded_ids, padded_boxes, padded_masks)
        for column, value in zip(arrays, values):
            column.append(value)
    dtypes = (np.float32, np.float32, np.int32, np.float32, np.int32, np.float32, np.float32)
    return tuple(np.stack(column).astype(dtype) for column, dtype in zip(arrays, dtypes))


@contextlib.contextmanager
def fixed_roi_sampling():
    """Detection targets sample their ROIs by a fixed key per proposal instead of uniform noise.

    The keys are ``frac(0.618034 * i + 0.123)`` over the flattened ``[B, N]`` proposals, so which
    positives and negatives are kept does not depend on TensorFlow's random state (which any
    change to the graph's op order would move).
    """
    original = detection_targets.detection_targets_graph

    def with_fixed_keys(proposals, gt_class_ids, gt_boxes, gt_masks, cfg, random_keys=None):
        shape = tf.shape(proposals)[:2]
        index = tf.cast(tf.range(shape[0] * shape[1]), tf.float32)
        keys = tf.reshape(tf.math.floormod(index * 0.618034 + 0.123, 1.0), shape)
        return original(proposals, gt_class_ids, gt_boxes, gt_masks, cfg, random_keys=keys)

    detection_targets.detection_targets_graph = with_fixed_keys
    try:
        yield
    finally:
        detection_targets.detection_targets_graph = original


def _losses(total, named):
    values = {key: float(value) for key, value in named.items()}
    values["total"] = float(total)
    return values


def training_outputs(name):
    """Losses of the compiled training step on the fixed weights and inputs.

    Returns
    -------
    dict
        ``before``: the five losses and the total objective (weighted losses plus L2) of the
        forward pass on the fixed weights; ``step_logs``: what the compiled training step
        (``train_function``, the step ``MaskRCNN.train`` runs; SGD, all layers) reports for
        that step; ``after``: the forward losses after that one SGD step (they pin the gradients).
    """
    cfg = config(name)
    inputs = training_inputs(name)
    with fixed_roi_sampling():
        model = training_graph.build_training_model(cfg)
        loop.set_trainable(model, "all", train_bn=cfg.TRAIN_BN)
        loop.compile_training_model(model, LEARNING_RATE, cfg)
        set_fixed_weights(model)
        objective = tf.function(lambda x: model._objective(x, training=True))
        tensors = [tf.constant(a) for a in inputs]
        before = _losses(*objective(tensors))
        model.make_train_function()
        logs = model.train_function(iter(tf.data.Dataset.from_tensors((inputs,)).repeat()))
        step_logs = {key: float(value) for key, value in logs.items()}
        after = _losses(*objective(tensors))
    return {"before": before, "step_logs": step_logs, "after": after}
