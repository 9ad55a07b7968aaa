"""matterport's graph-level names that the engine itself does not need, for notebooks.

matterport's ``mrcnn/model.py`` held every graph function at module level, and
notebooks reach them through ``modellib`` (``modellib.resnet_graph``,
``modellib.refine_detections_graph``, ``model.ancestor(...)``). The engine's own
building blocks live in their modules (``backbone``, ``box_ops``, ``detection``,
``losses``, ...); ``model.py`` re-exports them. This module holds what is left:

* functions with matterport's *signatures and defaults* where the engine's own
  function takes other arguments: :func:`smooth_l1_loss` (``backbone.resnet_graph``
  itself has matterport's signature and defaults);
* a small graph helper matterport exported and the engine does not use: :func:`log2_graph`;
* what ``MaskRCNN.ancestor`` needs: Keras 3 has no TensorFlow graph whose ops
  could be searched by name, so the tensors matterport's notebooks look up inside
  the ``ROI`` layer (``"ROI/pre_nms_anchors:0"``, ``"ROI/refined_anchors:0"``,
  ``"ROI/refined_anchors_clipped:0"``, ``"ROI/rpn_non_max_suppression:0"`` and its
  ``NonMaxSuppressionV2/V3`` spellings) are rebuilt by :class:`ProposalStage`, a
  layer applied to the ``ROI`` layer's own inputs that runs the same
  ``proposals.proposal_stages`` code, so ``run_graph`` can evaluate them.
"""
from __future__ import annotations

import re

import keras
import tensorflow as tf

from ...errors import InvalidArgumentError
from . import losses
from .proposals import ProposalLayer, proposal_stages

__all__ = [
    "smooth_l1_loss",
    "log2_graph",
    "ProposalStage",
    "PROPOSAL_STAGES",
    "find_ancestor",
]

#: Tensors inside matterport's ``ProposalLayer`` that :class:`ProposalStage` rebuilds.
PROPOSAL_STAGES = ("pre_nms_anchors", "refined_anchors", "refined_anchors_clipped", "rpn_non_max_suppression")

# "ROI/refined_anchors:0", "ROI_1/rpn_non_max_suppression/NonMaxSuppressionV3:0", ...
_TENSOR_NAME = re.compile(r"^(?P<layer>[^/:]+?)(?:_\d+)*/(?P<stage>[^/:]+)(?:/[^:]*)?(?::\d+)?$")


def smooth_l1_loss(y_true, y_pred):
    """matterport's name for :func:`rsna_detector.mrcnn.layers.losses.smooth_l1` (elementwise, same shape)."""
    return losses.smooth_l1(y_true, y_pred)


def log2_graph(x):
    """Base-2 logarithm of a float tensor, elementwise."""
    return tf.math.log(x) / tf.math.log(tf.constant(2.0, x.dtype))


@keras.saving.register_keras_serializable(package="rsna_detector")
class ProposalStage(keras.layers.Layer):
    """One named tensor from inside a :class:`~rsna_detector.mrcnn.layers.proposals.ProposalLayer`.

    Call it on the ``ROI`` layer's inputs ``[rpn_probs, rpn_bbox, anchors]``.

    Parameters
    ----------
    stage : str
        One of :data:`PROPOSAL_STAGES`:

        * ``pre_nms_anchors``, ``refined_anchors``, ``refined_anchors_clipped``:
          float32 ``[batch, K, (y1, x1, y2, x2)]`` normalized, ``K = min(PRE_NMS_LIMIT,
          anchors)``, in decreasing score order (see ``proposals.proposal_stages``);
        * ``rpn_non_max_suppression``: int32 ``[kept]``, the indices into image 0's
          ``refined_anchors_clipped`` that NMS keeps, best first (matterport's tensor of
          that name is image 0's, the first of its per-image NMS ops).
    proposal_count, nms_threshold, pre_nms_limit, rpn_bbox_std_dev
        Those of the ``ProposalLayer`` (:meth:`from_proposal_layer`).
    """

    def __init__(self, stage, proposal_count, nms_threshold, pre_nms_limit, rpn_bbox_std_dev, **kwargs):
        super().__init__(**kwargs)
        if stage not in PROPOSAL_STAGES:
            raise InvalidArgumentError(f"ProposalStage: stage: expected one of {PROPOSAL_STAGES}, got {stage!r}")
        self.stage = stage
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in rpn_bbox_std_dev]

    @classmethod
    def from_proposal_layer(cls, layer, stage):
        """The stage ``stage`` of ``layer`` (a ``ProposalLayer``), with its settings."""
        return cls(stage, layer.proposal_count, layer.nms_threshold, layer.pre_nms_limit, layer.rpn_bbox_std_dev,
                   name=f"{layer.name}_{stage}")

    def call(self, inputs):
        rpn_probs, rpn_bbox, anchors = inputs
        stages = proposal_stages(rpn_probs, rpn_bbox, anchors, self.pre_nms_limit, self.rpn_bbox_std_dev)
        if self.stage != "rpn_non_max_suppression":
            return stages[self.stage]
        return tf.image.non_max_suppression(stages["refined_anchors_clipped"][0], stages["scores"][0],
                                            self.proposal_count, self.nms_threshold)

    def compute_output_spec(self, inputs):
        if self.stage == "rpn_non_max_suppression":
            return keras.KerasTensor((None,), dtype="int32")
        return keras.KerasTensor((inputs[0].shape[0], None, 4), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(stage=self.stage, proposal_count=self.proposal_count, nms_threshold=self.nms_threshold,
                      pre_nms_limit=self.pre_nms_limit, rpn_bbox_std_dev=self.rpn_bbox_std_dev)
        return config


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def _upstream_layers(tensor):
    """The layers that ``tensor`` depends on, nearest first (its own producer included)."""
    seen, order, frontier = set(), [], [tensor]
    while frontier:
        current = frontier.pop(0)
        layer = _producer(current)
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        order.append(layer)
        for node in getattr(layer, "_inbound_nodes", []):
            frontier.extend(node.input_tensors)
    return order


def find_ancestor(tensor, name):
    """The tensor matterport's ``MaskRCNN.ancestor(tensor, name)`` found, rebuilt for Keras 3.

    Parameters
    ----------
    tensor : KerasTensor
        A tensor of the model (e.g. ``keras_model.get_layer("ROI").output``).
    name : str
        matterport's TensorFlow-1 tensor name ``"<layer>/<stage>[/<op>]:0"``; the
        layer part may carry Keras' ``_1``, ``_2`` suffixes.

    Returns
    -------
    KerasTensor or None
        For a ``ProposalLayer`` upstream of ``tensor`` (or ``tensor``'s own) and a stage
        of :data:`PROPOSAL_STAGES`: a new tensor computing it. None for any other name
        (matterport also returned None when nothing matched).
    """
    match = _TENSOR_NAME.match(str(name))
    if match is None or match["stage"] not in PROPOSAL_STAGES:
        return None
    for layer in _upstream_layers(tensor):
        if isinstance(layer, ProposalLayer) and layer.name == match["layer"]:
            return ProposalStage.from_proposal_layer(layer, match["stage"])(layer.input)
    return None
