"""ProposalLayer: RPN scores and deltas on the anchors -> the best non-overlapping boxes."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ...errors import InvalidArgumentError
from .box_ops import apply_box_deltas_graph, clip_boxes_graph

__all__ = ["ProposalLayer", "proposals_graph", "proposal_stages"]


def proposals_graph(rpn_probs, rpn_bbox, anchors, proposal_count, nms_threshold, pre_nms_limit, rpn_bbox_std_dev):
    """Turn RPN outputs into up to ``proposal_count`` proposals per image.

    Steps: foreground score -> the ``pre_nms_limit`` best anchors -> their deltas
    times ``rpn_bbox_std_dev`` applied -> clipped to ``[0, 1]`` -> greedy NMS at
    ``nms_threshold`` -> zero rows appended up to ``proposal_count``.

    Parameters
    ----------
    rpn_probs : Tensor, float32, [batch, A, 2]
        Background / foreground probabilities.
    rpn_bbox : Tensor, float32, [batch, A, 4]
        Deltas ``(dy, dx, log(dh), log(dw))`` divided by the std-dev.
    anchors : Tensor, float32, [batch or 1, A, 4]
        Normalized anchors ``(y1, x1, y2, x2)``.
    proposal_count : int
    nms_threshold : float
    pre_nms_limit : int
    rpn_bbox_std_dev : sequence of 4 float

    Returns
    -------
    Tensor, float32, [batch, proposal_count, 4]
        Normalized ``(y1, x1, y2, x2)`` in decreasing score order; all-zero rows are
        padding.
    """
    stages = proposal_stages(rpn_probs, rpn_bbox, anchors, pre_nms_limit, rpn_bbox_std_dev)
    boxes, scores = stages["refined_anchors_clipped"], stages["scores"]

    def nms_one_image(args):
        image_boxes, image_scores = args
        keep, count = tf.raw_ops.NonMaxSuppressionV4(
            boxes=image_boxes, scores=image_scores, max_output_size=proposal_count,
            iou_threshold=nms_threshold, score_threshold=float("-inf"), pad_to_max_output_size=True)
        valid = tf.range(proposal_count) < count
        return tf.where(valid[:, tf.newaxis], tf.gather(image_boxes, keep), 0.0)

    return tf.map_fn(nms_one_image, (boxes, scores),
                     fn_output_signature=tf.TensorSpec([proposal_count, 4], tf.float32))


def proposal_stages(rpn_probs, rpn_bbox, anchors, pre_nms_limit, rpn_bbox_std_dev):
    """The steps of :func:`proposals_graph` before NMS, each as matterport named it.

    Parameters
    ----------
    rpn_probs, rpn_bbox, anchors, pre_nms_limit, rpn_bbox_std_dev
        As in :func:`proposals_graph`.

    Returns
    -------
    dict of Tensor, each ``[batch, K, ...]`` with ``K = min(pre_nms_limit, A)``, best score first
        ``scores`` float32 ``[batch, K]`` (foreground probability);
        ``pre_nms_anchors`` the anchors of those scores, normalized ``(y1, x1, y2, x2)``;
        ``refined_anchors`` the same after their deltas (times ``rpn_bbox_std_dev``);
        ``refined_anchors_clipped`` the same clipped to ``[0, 1]``.
    """
    scores = rpn_probs[:, :, 1]
    deltas = rpn_bbox * tf.constant(np.reshape(rpn_bbox_std_dev, [1, 1, 4]), tf.float32)
    batch = tf.shape(scores)[0]
    anchors = tf.broadcast_to(tf.cast(anchors, tf.float32), [batch, tf.shape(anchors)[1], 4])
    num_anchors = scores.shape[1]
    k = min(pre_nms_limit, num_anchors) if num_anchors is not None else tf.minimum(pre_nms_limit, tf.shape(scores)[1])
    scores, top = tf.math.top_k(scores, k=k, sorted=True)
    deltas = tf.gather(deltas, top, batch_dims=1)
    anchors = tf.gather(anchors, top, batch_dims=1)
    refined = apply_box_deltas_graph(anchors, deltas)
    clipped = clip_boxes_graph(refined, tf.constant([0.0, 0.0, 1.0, 1.0]))
    return {"scores": scores, "pre_nms_anchors": anchors, "refined_anchors": refined,
            "refined_anchors_clipped": clipped}


@keras.saving.register_keras_serializable(package="rsna_detector")
class ProposalLayer(keras.layers.Layer):
    """Keras layer around :func:`proposals_graph` (matterport's ``ProposalLayer``).

    Parameters
    ----------
    proposal_count : int
        Proposals per image after NMS (``POST_NMS_ROIS_TRAINING`` / ``_INFERENCE``).
    nms_threshold : float
        IoU above which the lower-scored box is suppressed (``RPN_NMS_THRESHOLD``).
    config : Config, optional
        Supplies ``PRE_NMS_LIMIT`` and ``RPN_BBOX_STD_DEV`` (or pass
        ``pre_nms_limit=`` / ``rpn_bbox_std_dev=``).

    Call inputs ``[rpn_probs [B, A, 2], rpn_bbox [B, A, 4], anchors [B, A, 4]]``;
    output ``[B, proposal_count, (y1, x1, y2, x2)]`` normalized, zero-padded.
    """

    def __init__(self, proposal_count, nms_threshold, config=None, pre_nms_limit=None, rpn_bbox_std_dev=None,
                 **kwargs):
        super().__init__(**kwargs)
        if config is None and (pre_nms_limit is None or rpn_bbox_std_dev is None):
            raise InvalidArgumentError("ProposalLayer: give config= or both pre_nms_limit= and rpn_bbox_std_dev=")
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit if pre_nms_limit is not None else config.PRE_NMS_LIMIT)
        std = rpn_bbox_std_dev if rpn_bbox_std_dev is not None else config.RPN_BBOX_STD_DEV
        self.rpn_bbox_std_dev = [float(v) for v in np.reshape(std, [-1])]

    def call(self, inputs):
        rpn_probs, rpn_bbox, anchors = inputs
        return proposals_graph(rpn_probs, rpn_bbox, anchors, self.proposal_count, self.nms_threshold,
                               self.pre_nms_limit, self.rpn_bbox_std_dev)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update(proposal_count=self.proposal_count, nms_threshold=self.nms_threshold,
                      pre_nms_limit=self.pre_nms_limit, rpn_bbox_std_dev=self.rpn_bbox_std_dev)
        return config
