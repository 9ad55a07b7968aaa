"""The training-mode Mask R-CNN graph and its training step.

:func:`build_training_model` assembles the graph from the shared building blocks
(backbone, FPN, RPN, proposals, ROI heads) plus the training targets and the five
losses. Layer names are those of the inference graph, so weights move between
the two modes by name.

Inputs (in order, as :class:`~rsna_detector.mrcnn.input.pipeline.TrainingBatches` makes them)::

    input_image         float32 [B, H, W, C]   molded (mean pixel subtracted)
    input_image_meta    float32 [B, IMAGE_META_SIZE]
    input_rpn_match     int32   [B, A, 1]      1 / -1 / 0 per anchor
    input_rpn_bbox      float32 [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4]
    input_gt_class_ids  int32   [B, MAX_GT_INSTANCES]       0 = padding
    input_gt_boxes      float32 [B, MAX_GT_INSTANCES, 4]    pixels (y1, x1, y2, x2)
    input_gt_masks      float32 [B, mh, mw, MAX_GT_INSTANCES]  0 or 1
    input_roi           float32 [B, POST_NMS_ROIS_TRAINING, 4]  pixels; only with USE_RPN_ROIS = False

With ``USE_RPN_ROIS = False`` (matterport's switch) the detection targets are sampled
from the ROIs given as ``input_roi`` (zero rows are padding; e.g. the ``random_rois``
of ``data_generator``) instead of from the RPN's proposals; the RPN still trains
on its own targets. As in matterport, ``MaskRCNN.train`` does not make these ROIs:
compile the model (``MaskRCNN.compile``) and fit it on ``data_generator(...,
random_rois=POST_NMS_ROIS_TRAINING)`` batches.

Outputs: ``rpn_class_logits, rpn_class, rpn_bbox, mrcnn_class_logits,
mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, output_rois`` then the five loss
scalars ``rpn_class_loss, rpn_bbox_loss, mrcnn_class_loss, mrcnn_bbox_loss,
mrcnn_mask_loss``.

Speed: the RPN runs on ``config.RPN_PYRAMID_LEVELS`` levels only, and the mask
head runs on the first ``int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO)`` ROIs
only -- the detection targets put the positives first, and the mask loss only
looks at positives -- so ``mrcnn_mask`` is ``[B, that many, ...]``. With
``TRAIN_BN = False`` (frozen statistics: each ROI's mask depends on that ROI
alone) the mask head computes the positive ones among them only
(:class:`KeepPositiveRois` then the heads' ``skip_padding`` path): ``mrcnn_mask``
is zero on the other rows, which no loss reads; losses and gradients are those
of running it on every row.

The model is built inside :func:`training_strategy`'s scope: the default
strategy for one device, ``tf.distribute.MirroredStrategy`` over ``GPU_COUNT``
devices otherwise (global batch ``BATCH_SIZE = IMAGES_PER_GPU * GPU_COUNT``), and
``tf.distribute.MultiWorkerMirroredStrategy`` when the ``TF_CONFIG`` environment
variable describes a cluster of more than one task (global batch
``IMAGES_PER_GPU * num_replicas_in_sync``; ``docs/DISTRIBUTED.md``).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os

import keras
import numpy as np
import tensorflow as tf

from ...errors import RsnaDetectorError
from ..input.pipeline import INPUT_NAMES
from ..ops.anchors import pyramid_anchors
from ..ops.boxes import norm_boxes
from ..ops.image_meta import FIXED_META_SIZE, parse_image_meta_graph
from . import box_ops, losses
from .backbone import build_backbone
from .detection_targets import DetectionTargetLayer
from .fpn import build_fpn
from .heads import build_fpn_mask_graph, fpn_classifier_graph
from .proposals import ProposalLayer
from .rpn import apply_rpn, build_rpn_model

__all__ = [
    "build_training_model",
    "training_strategy",
    "multi_worker_task",
    "is_chief",
    "is_multi_worker",
    "MaskRCNNTrainingModel",
    "AnchorsLayer",
    "LossLayer",
    "FiniteBoxes",
    "KeepPositiveRois",
    "TrainingGraphError",
    "LOSS_NAMES",
]

LOSS_NAMES = losses.LOSS_NAMES


class TrainingGraphError(RsnaDetectorError, ValueError):
    """The config asks for a training graph this engine does not build."""


# ----------------------------------------------------------------------------
# strategy
# ----------------------------------------------------------------------------

def multi_worker_task(environ=None):
    """``(task_type, task_index, cluster)`` from ``TF_CONFIG`` when it describes several tasks, else None.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Raises
    ------
    TrainingGraphError
        ``TF_CONFIG`` that is not JSON, lacks ``cluster`` or ``task``, or names a
        task type other than ``chief`` and ``worker`` (evaluators and parameter
        servers are not supported).
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        return None
    try:
        tf_config = json.loads(text)
        cluster, task = dict(tf_config["cluster"]), dict(tf_config["task"])
        task_type, task_index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise TrainingGraphError(f"TF_CONFIG: expected JSON with 'cluster' ({{'worker': ['host:port', ...]}}) and "
                                 f"'task' ({{'type': 'worker', 'index': 0}}), got {text[:200]!r} ({error})") from error
    unsupported = sorted(set(cluster) - {"chief", "worker"}) + ([task_type] if task_type not in cluster else [])
    if unsupported or task_type not in ("chief", "worker"):
        raise TrainingGraphError(f"TF_CONFIG: only 'chief' and 'worker' tasks are supported (synchronous "
                                 f"MultiWorkerMirroredStrategy), got cluster {sorted(cluster)} and task {task_type!r}")
    if sum(len(hosts) for hosts in cluster.values()) < 2:
        return None
    return task_type, task_index, cluster


def is_chief(strategy=None):
    """Whether this process writes the run's files (checkpoints, run.json, logs).

    True for one process; under a multi-worker strategy, for its chief only
    (the ``chief`` task, or worker 0 when the cluster has none:
    ``strategy.extended.should_checkpoint``).

    Parameters
    ----------
    strategy : tf.distribute.Strategy, optional
        Default: the current one (``tf.distribute.get_strategy()``).
    """
    strategy = strategy or tf.distribute.get_strategy()
    return bool(strategy.extended.should_checkpoint)


def is_multi_worker(strategy):
    """Whether ``strategy`` spans several processes (more replicas than this worker's devices)."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.num_replicas_in_sync > len(strategy.extended.worker_devices))


_MULTI_WORKER_STRATEGY = []  # created once per process: TensorFlow allows one collective set-up


def training_strategy(config):
    """The distribution strategy for ``config.GPU_COUNT`` devices, or for the cluster in ``TF_CONFIG``.

    ``TF_CONFIG`` naming more than one task: ``MultiWorkerMirroredStrategy``
    over every worker's visible GPUs (or its CPU), created once per process and
    returned again on later calls. It must be created before the process runs
    any TensorFlow operation: call this function first in a training script.
    Otherwise, one device: the default strategy (TensorFlow places the work on
    the GPU if there is one). More: ``MirroredStrategy`` over the first
    ``GPU_COUNT`` GPUs, or, on a machine without GPUs, over the first
    ``GPU_COUNT`` logical CPU devices (``tf.config.set_logical_device_configuration``,
    for tests).

    Raises
    ------
    TrainingGraphError
        When fewer devices than ``GPU_COUNT`` are visible, or for a bad ``TF_CONFIG``.
    """
    if multi_worker_task() is not None:
        if not _MULTI_WORKER_STRATEGY:
            _MULTI_WORKER_STRATEGY.append(tf.distribute.MultiWorkerMirroredStrategy())
        return _MULTI_WORKER_STRATEGY[0]
    count = int(config.GPU_COUNT)
    if count <= 1:
        return tf.distribute.get_strategy()
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    if not devices:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < count:
        raise TrainingGraphError(
            f"GPU_COUNT is {count} but only {len(devices)} device(s) are visible: {devices}")
    return tf.distribute.MirroredStrategy(devices[:count])


# ----------------------------------------------------------------------------
# small layers of the training graph
# ----------------------------------------------------------------------------

class AnchorsLayer(keras.layers.Layer):
    """Outputs the fixed normalized anchors ``[1, A, 4]`` (a constant, not a weight)."""

    def __init__(self, anchors, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.anchors = np.asarray(anchors, np.float32)

    def call(self, image):
        del image  # only ties the constant into the graph
        return tf.constant(self.anchors[np.newaxis])

    def compute_output_spec(self, image):
        return keras.KerasTensor((1,) + self.anchors.shape, dtype="float32")


class NormBoxesLayer(keras.layers.Layer):
    """Pixel ``(y1, x1, y2, x2)`` boxes to the graph's normalized boxes (zero rows stay zero)."""

    def __init__(self, image_shape, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_shape = [int(v) for v in image_shape[:2]]

    def call(self, boxes):
        real = tf.reduce_any(tf.not_equal(boxes, 0.0), axis=-1, keepdims=True)
        return tf.where(real, box_ops.norm_boxes_graph(boxes, self.image_shape), 0.0)


class FiniteBoxes(keras.layers.Layer):
    """Rows with a NaN or infinite coordinate become zero (padding).

    Once weights diverge the proposals turn NaN, and ROI Align would abort the
    step with an opaque error before any loss is reported; zeroed instead, the
    step finishes and the trainer's NaN stop names the loss that broke.
    """

    def call(self, boxes):
        finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1, keepdims=True)
        return tf.where(finite, boxes, 0.0)


class LossLayer(keras.layers.Layer):
    """A float32 scalar computed by ``loss_fn(*inputs)`` (one of :mod:`.losses`), named after the loss."""

    def __init__(self, loss_fn, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.loss_fn = loss_fn

    def call(self, inputs):
        return tf.cast(self.loss_fn(*inputs), tf.float32)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((), dtype="float32")


class SliceRois(keras.layers.Layer):
    """``x[:, :count]``: the first ``count`` ROIs (the positives come first)."""

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, x):
        return x[:, : self.count]

    def compute_output_spec(self, x):
        return keras.KerasTensor((x.shape[0], self.count) + tuple(x.shape[2:]), dtype=x.dtype)


class KeepPositiveRois(keras.layers.Layer):
    """``rois [B, P, 4]`` with every row whose ``class_ids [B, >= P]`` is not positive set to zero.

    Zero rows are padding to the heads' ``skip_padding`` path, so a head given these
    ROIs runs on the positive ones only (the only rows the mask loss reads).
    """

    def call(self, inputs):
        rois, class_ids = inputs
        positive = class_ids[:, : tf.shape(rois)[1]] > 0
        return tf.where(positive[..., tf.newaxis], rois, tf.zeros_like(rois))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)


class RoiValid(keras.layers.Layer):
    """bool ``[B, T]``: ROI rows that are not zero padding."""

    def call(self, rois):
        return tf.reduce_any(tf.not_equal(rois, 0.0), axis=-1)

    def compute_output_spec(self, rois):
        return keras.KerasTensor(tuple(rois.shape[:2]), dtype="bool")


class ActiveClassIds(keras.layers.Layer):
    """``[B, NUM_CLASSES]`` active-class flags read from the image meta."""

    def call(self, image_meta):
        return parse_image_meta_graph(image_meta)["active_class_ids"]

    def compute_output_spec(self, image_meta):
        return keras.KerasTensor((image_meta.shape[0], image_meta.shape[1] - FIXED_META_SIZE), dtype="float32")


# ----------------------------------------------------------------------------
# the model class with its training step
# ----------------------------------------------------------------------------

class MaskRCNNTrainingModel(keras.Model):
    """The training graph with a custom ``train_step`` / ``test_step``.

    The objective is ``sum(LOSS_WEIGHTS[name] * loss) + WEIGHT_DECAY * sum_w
    mean(w ** 2)`` over the trainable weights other than BN gamma/beta
    (matterport's L2 term, kernels and biases). Reported metrics: ``loss`` (that
    objective) and the five unweighted losses. Under a multi-replica strategy the
    objective is divided by the replica count before the gradients are summed
    across replicas, so one step equals one step on the global batch (with
    clipping active the two can differ where Keras clips each replica's share
    before the sum).

    Attributes set by :func:`build_training_model`: ``config``, ``loss_weights``
    (dict), ``weight_decay`` (float).
    """

    def _setup_training(self, config):
        self.config = config
        self.loss_weights = {name: float(config.LOSS_WEIGHTS.get(name, 1.0)) for name in LOSS_NAMES}
        self.weight_decay = float(config.WEIGHT_DECAY)
        self._trackers = [keras.metrics.Mean(name="loss")] + [keras.metrics.Mean(name=n) for n in LOSS_NAMES]

    @property
    def metrics(self):
        return list(self._trackers)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras' pre-fit build under a strategy, without touching the input.

        Keras (3.x) takes the first batch of the input and averages it across
        replicas with ``strategy.reduce`` before building: that reduction fails
        for a nest of tensors under ``MultiWorkerMirroredStrategy``
        (keras-team/keras#20585), and the batch it takes is lost to training.
        This graph is built when it is constructed, so only shapes are needed:
        they come from the model's own inputs, and no batch is read.
        """
        del iterator, data_batch
        if self._distribute_strategy is None:
            return
        specs = (tuple(tf.TensorSpec(tensor.shape, tensor.dtype) for tensor in self.inputs),)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=specs)

    def _objective(self, inputs, training):
        outputs = self(inputs, training=training)
        named = dict(zip(LOSS_NAMES, outputs[-len(LOSS_NAMES):], strict=True))
        total = tf.add_n([self.loss_weights[name] * named[name] for name in LOSS_NAMES])
        if self.weight_decay:
            total = total + self.weight_decay_loss()
        return total, named

    def weight_decay_loss(self):
        """``WEIGHT_DECAY * sum(mean(w ** 2))`` over trainable non-BN-scale/offset weights (float32 scalar)."""
        terms = [tf.reduce_mean(tf.square(tf.cast(w, tf.float32))) for w in self.trainable_weights
                 if w.name not in ("gamma", "beta")]
        if not terms:
            return tf.constant(0.0)
        return self.weight_decay * tf.add_n(terms)

    def fit(self, x=None, *args, validation_data=None, **kwargs):
        """``keras.Model.fit`` that also takes matterport's ``data_generator`` (``(inputs, [])`` items).

        Keras 3 cannot build a signature for the empty output list of matterport's
        generator items, so a Python generator's items are passed on as ``(inputs,)``.
        """
        return super().fit(_inputs_only(x), *args, validation_data=_inputs_only(validation_data), **kwargs)

    def train_step(self, data):
        inputs = _model_inputs(data)
        with tf.GradientTape() as tape:
            total, named = self._objective(inputs, training=True)
            scaled = _scale_for_replicas(total)
            scaled = self.optimizer.scale_loss(scaled)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        return self._track(total, named)

    def test_step(self, data):
        total, named = self._objective(_model_inputs(data), training=False)
        return self._track(total, named)

    def _track(self, total, named):
        self._trackers[0].update_state(total)
        for tracker, name in zip(self._trackers[1:], LOSS_NAMES, strict=True):
            tracker.update_state(named[name])
        results = {tracker.name: tracker.result() for tracker in self._trackers}
        if is_multi_worker(self.distribute_strategy):
            # Keras averages each step's values across workers with strategy.reduce(..., axis=0),
            # which needs a dimension to reduce (keras-team/keras#20585): give it one of size 1.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results


def _model_inputs(data):
    """The input tensors from a pipeline element ``((x...),)``, ``(x...)`` or matterport's ``([x...], [y...])``."""
    if isinstance(data, (tuple, list)) and len(data) == 1:
        data = data[0]
    if _is_inputs_and_outputs(data):
        data = data[0]  # data_generator's (inputs, outputs); the outputs are not targets here
    if isinstance(data, dict):
        return data
    return list(data)


def _inputs_only(data):
    """A Python generator of matterport's ``(inputs, outputs)`` items as one of ``(tuple(inputs),)``."""
    if not inspect.isgenerator(data):
        return data
    return ((tuple(item[0]),) if _is_inputs_and_outputs(item) else item for item in data)


def _is_inputs_and_outputs(item):
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (tuple, list))


def _scale_for_replicas(value):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / replicas if replicas > 1 else value


# ----------------------------------------------------------------------------
# graph assembly
# ----------------------------------------------------------------------------

def build_training_model(config, strategy=None):
    """Build the training-mode Mask R-CNN graph.

    Parameters
    ----------
    config : Config
    strategy : tf.distribute.Strategy, optional
        Default :func:`training_strategy(config) <training_strategy>`; the model
        and (later) its optimizer live in its scope.

    Returns
    -------
    MaskRCNNTrainingModel
        Named ``mask_rcnn``; inputs and outputs as in the module docstring. With
        ``config.MIXED_PRECISION`` the backbone, FPN and RPN compute in float16;
        proposals, targets, ROI heads and losses stay float32.

    """
    strategy = strategy or training_strategy(config)  # first: a multi-worker strategy precedes any TF op
    if config.SEED is not None:
        keras.utils.set_random_seed(int(config.SEED))
    with strategy.scope(), _dtype_policy("mixed_float16" if config.MIXED_PRECISION else None):
        inputs, outputs = _training_graph(config)
        model = MaskRCNNTrainingModel(inputs=inputs, outputs=outputs, name="mask_rcnn")
        model._setup_training(config)
    return model


@contextlib.contextmanager
def _dtype_policy(name):
    """Set Keras' global dtype policy to ``name`` (None: leave it) for the layers built inside."""
    previous = keras.config.dtype_policy()
    try:
        if name is not None:
            keras.config.set_dtype_policy(name)
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _training_inputs(config):
    image_shape = tuple(int(v) for v in config.IMAGE_SHAPE)
    num_anchors = len(pyramid_anchors(config))
    if config.USE_MINI_MASK:
        mask_shape = tuple(int(v) for v in config.MINI_MASK_SHAPE)
    else:
        mask_shape = image_shape[:2]
    gt = config.MAX_GT_INSTANCES
    specs = [
        (image_shape, "float32"),
        ((config.IMAGE_META_SIZE,), "float32"),
        ((num_anchors, 1), "int32"),
        ((config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), "float32"),
        ((gt,), "int32"),
        ((gt, 4), "float32"),
        (mask_shape + (gt,), "float32"),
    ]
    inputs = [keras.Input(shape=shape, name=name, dtype=dtype)
              for name, (shape, dtype) in zip(INPUT_NAMES, specs, strict=True)]
    if not config.USE_RPN_ROIS:  # matterport's "input_roi": ROIs given from outside, in pixels
        inputs.append(keras.Input(shape=(config.POST_NMS_ROIS_TRAINING, 4), name="input_roi", dtype="float32"))
    return inputs


def _training_graph(config):
    inputs = _training_inputs(config)
    image, image_meta, rpn_match, rpn_bbox_target, gt_class_ids, gt_boxes_px, gt_masks = inputs[:7]
    gt_boxes = NormBoxesLayer(config.IMAGE_SHAPE, name="norm_gt_boxes")(gt_boxes_px)

    pyramid = build_fpn(build_backbone(image, config), config)  # [P2..P6]
    rpn_maps = pyramid[: config.RPN_PYRAMID_LEVELS]
    head_maps = pyramid[:4]  # P2..P5
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS), config.TOP_DOWN_PYRAMID_SIZE)
    rpn_class_logits, rpn_class, rpn_bbox = apply_rpn(rpn, rpn_maps)

    anchors = norm_boxes(pyramid_anchors(config), tuple(int(v) for v in config.IMAGE_SHAPE[:2]))
    anchors = AnchorsLayer(anchors, name="anchors")(image)
    rpn_rois = ProposalLayer(proposal_count=config.POST_NMS_ROIS_TRAINING, nms_threshold=config.RPN_NMS_THRESHOLD,
                             config=config, name="ROI", dtype="float32")([rpn_class, rpn_bbox, anchors])
    rpn_rois = FiniteBoxes(name="finite_rpn_rois", dtype="float32")(rpn_rois)
    target_rois = rpn_rois
    if not config.USE_RPN_ROIS:
        target_rois = NormBoxesLayer(config.IMAGE_SHAPE, name="norm_input_rois")(inputs[7])

    rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(config, name="proposal_targets",
                                                                            dtype="float32")(
        [target_rois, gt_class_ids, gt_boxes, gt_masks])
    positive_cap = int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO)
    # The ROI heads stay float32 under mixed precision: ROI Align needs float32 boxes, and
    # the backbone, FPN and RPN (where the work is) are the part that gains from float16.
    with _dtype_policy("float32" if config.MIXED_PRECISION else None):
        mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
            rois, head_maps, image_meta, config.POOL_SIZE, config.NUM_CLASSES, train_bn=config.TRAIN_BN,
            fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
        mask_rois = SliceRois(positive_cap, name="positive_rois")(rois)
        # With frozen BN statistics a ROI's mask depends on that ROI alone and the mask loss
        # reads the positive rows only: the mask head then runs on those alone (its output is
        # zero on the other rows), with the same loss and gradients for a fraction of the work.
        positives_only = config.TRAIN_BN is False
        if positives_only:
            mask_rois = KeepPositiveRois(name="positive_mask_rois")([mask_rois, target_class_ids])
        mrcnn_mask = build_fpn_mask_graph(mask_rois, head_maps, image_meta, config.MASK_POOL_SIZE,
                                          config.NUM_CLASSES, train_bn=config.TRAIN_BN,
                                          skip_padding=positives_only)
    output_rois = keras.layers.Identity(name="output_rois", dtype="float32")(rois)

    class_loss_inputs = [target_class_ids, mrcnn_class_logits, ActiveClassIds(name="active_class_ids")(image_meta)]
    if config.CLASS_LOSS_SKIPS_PADDING:
        class_loss_inputs.append(RoiValid(name="roi_valid")(rois))
    mask_class_ids = SliceRois(positive_cap, name="positive_class_ids")(target_class_ids)
    mask_targets = SliceRois(positive_cap, name="positive_mask_targets")(target_mask)
    loss_outputs = [
        LossLayer(losses.rpn_class_loss_graph, name="rpn_class_loss")([rpn_match, rpn_class_logits]),
        LossLayer(lambda *x: losses.rpn_bbox_loss_graph(config, *x), name="rpn_bbox_loss")(
            [rpn_bbox_target, rpn_match, rpn_bbox]),
        LossLayer(_class_loss_fn(config), name="mrcnn_class_loss")(class_loss_inputs),
        LossLayer(losses.mrcnn_bbox_loss_graph, name="mrcnn_bbox_loss")([target_bbox, target_class_ids, mrcnn_bbox]),
        LossLayer(losses.mrcnn_mask_loss_graph, name="mrcnn_mask_loss")([mask_targets, mask_class_ids, mrcnn_mask]),
    ]
    outputs = [rpn_class_logits, rpn_class, rpn_bbox, mrcnn_class_logits, mrcnn_class, mrcnn_bbox, mrcnn_mask,
               rpn_rois, output_rois] + loss_outputs
    return inputs, outputs


def _class_loss_fn(config):
    """``mrcnn_class_loss_graph`` with the config's active-class rule (see losses)."""
    per_image = bool(config.ACTIVE_CLASS_PER_IMAGE)

    def class_loss(*inputs):
        return losses.mrcnn_class_loss_graph(*inputs, active_class_per_image=per_image)

    return class_loss
