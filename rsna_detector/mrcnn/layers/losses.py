"""The five Mask R-CNN training losses (TF graph functions).

Each loss is a float32 scalar and equals matterport's (``tests/mrcnn/
test_matterport_losses.py`` holds them equal), with one exception: an empty
selection (no positive anchor, no positive ROI, an image without ground truth,
no ROI counted by the class loss) gives exactly 0, never NaN: every mean is a
masked sum divided by ``max(count, 1)``. (matterport guards the empty case too,
except in the class loss, where it divides by zero.) Predictions are cast to
float32 first, so the losses stay float32 under mixed precision.

Box deltas are ``(dy, dx, log(dh), log(dw))`` divided by the config's
``RPN_BBOX_STD_DEV`` / ``BBOX_STD_DEV`` (as the targets are).
"""
from __future__ import annotations

import tensorflow as tf

__all__ = [
    "smooth_l1",
    "rpn_class_loss_graph",
    "rpn_bbox_loss_graph",
    "mrcnn_class_loss_graph",
    "mrcnn_bbox_loss_graph",
    "mrcnn_mask_loss_graph",
    "LOSS_NAMES",
]

#: Names of the losses, in the order the training graph outputs them.
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")

_BCE_EPSILON = 1e-7


def smooth_l1(y_true, y_pred):
    """Elementwise smooth L1 (Huber with delta 1): ``0.5 d^2`` if ``|d| < 1`` else ``|d| - 0.5``."""
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    return tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5)


def _masked_mean(values, weights):
    """``sum(values * weights) / max(sum(weights), 1)``: 0 when nothing is selected."""
    weights = tf.cast(weights, tf.float32)
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def rpn_class_loss_graph(rpn_match, rpn_class_logits):
    """Anchor objectness cross-entropy over the sampled (non-neutral) anchors.

    Parameters
    ----------
    rpn_match : Tensor, int, [B, A, 1] or [B, A]
        1 positive, -1 negative, 0 neutral (ignored).
    rpn_class_logits : Tensor, [B, A, 2]
        Background / foreground logits.

    Returns
    -------
    Tensor, float32, scalar
        Mean over positive and negative anchors of the batch; 0 if there are none.
    """
    rpn_match = tf.reshape(tf.cast(rpn_match, tf.int32), tf.shape(rpn_class_logits)[:2])
    labels = tf.cast(tf.equal(rpn_match, 1), tf.int32)
    entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(rpn_class_logits, tf.float32)
    )
    return _masked_mean(entropy, tf.not_equal(rpn_match, 0))


def rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox):
    """Smooth-L1 loss of the RPN deltas on positive anchors.

    Parameters
    ----------
    config : Config
        Kept for matterport's signature (the packing length is read from the
        shape of ``target_bbox``).
    target_bbox : Tensor, float32, [B, K, 4]
        Deltas of the positive anchors in ascending anchor order, zero rows after
        them (``K = RPN_TRAIN_ANCHORS_PER_IMAGE``, as ``build_rpn_targets`` makes them).
    rpn_match : Tensor, int, [B, A, 1] or [B, A]
    rpn_bbox : Tensor, [B, A, 4]
        Predicted deltas of every anchor.

    Returns
    -------
    Tensor, float32, scalar
        Mean over positive anchors and the 4 coordinates; 0 without positives.
    """
    del config
    num_anchors = tf.shape(rpn_bbox)[1]
    rpn_match = tf.reshape(tf.cast(rpn_match, tf.int32), tf.shape(rpn_bbox)[:2])
    positive = tf.equal(rpn_match, 1)  # [B, A]
    packed = target_bbox.shape[1]
    if rpn_bbox.shape[1] is not None and rpn_bbox.shape[1] < packed:
        packed = rpn_bbox.shape[1]  # fewer anchors than target rows: the rest is padding
        target_bbox = target_bbox[:, :packed]
    # The first K positive anchors in ascending order: rank positives by index,
    # the others after all of them.
    order_key = tf.where(positive, tf.range(num_anchors)[tf.newaxis, :], num_anchors + tf.range(num_anchors))
    _, first = tf.math.top_k(-order_key, k=packed, sorted=True)  # [B, K]
    predicted = tf.gather(rpn_bbox, first, batch_dims=1)  # [B, K, 4]
    selected = tf.gather(positive, first, batch_dims=1)  # [B, K]
    loss = tf.reduce_sum(smooth_l1(target_bbox, predicted), axis=-1)  # [B, K]
    return _masked_mean(loss, selected) / 4.0


def mrcnn_class_loss_graph(target_class_ids, pred_class_logits, active_class_ids, roi_valid=None,
                           active_class_per_image=False):
    """ROI classification cross-entropy (matterport's rule by default).

    Parameters
    ----------
    target_class_ids : Tensor, int, [B, T]
        0 for background (negative ROIs and zero padding).
    pred_class_logits : Tensor, [B, T, num_classes]
    active_class_ids : Tensor, [B, num_classes]
        1 for the classes of the image's dataset source (from ``image_meta``),
        0 for the others.
    roi_valid : Tensor, bool or float, [B, T], optional
        ROIs to count (``CLASS_LOSS_SKIPS_PADDING``: the rows that are not zero
        padding). Default: every row, padding included, counts as background
        (matterport).
    active_class_per_image : bool
        False (matterport): the softmax runs over every class, and the loss of a
        ROI whose *predicted* (argmax) class is inactive in image 0 is dropped,
        for every image of the batch. True (``ACTIVE_CLASS_PER_IMAGE``): each
        image's inactive classes are left out of its softmax; every ROI counts.

    Returns
    -------
    Tensor, float32, scalar
        Mean cross-entropy over the counted ROIs; 0 if none counts (matterport
        divides by zero there and gives NaN).
    """
    logits = tf.cast(pred_class_logits, tf.float32)
    labels = tf.cast(target_class_ids, tf.int32)
    active_class_ids = tf.cast(active_class_ids, tf.float32)
    if active_class_per_image:
        active = active_class_ids[:, tf.newaxis, :] > 0.5  # [B, 1, C]
        logits = tf.where(active, logits, -1e9)
        counted = tf.ones_like(labels, tf.float32)
    else:
        predicted = tf.argmax(logits, axis=2, output_type=tf.int32)  # [B, T]
        counted = tf.gather(active_class_ids[0], predicted)  # image 0's flags, as matterport
    entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if roi_valid is not None:
        counted = counted * tf.cast(roi_valid, tf.float32)
    return _masked_mean(entropy, counted)


def mrcnn_bbox_loss_graph(target_bbox, target_class_ids, pred_bbox):
    """Smooth-L1 loss of the class-specific box deltas on positive ROIs.

    Parameters
    ----------
    target_bbox : Tensor, float32, [B, T, 4]
    target_class_ids : Tensor, int, [B, T]
        ROIs with a class id > 0 are positive.
    pred_bbox : Tensor, [B, T, num_classes, 4]
        Deltas predicted for every class; the true class's are used.

    Returns
    -------
    Tensor, float32, scalar
        Mean over positive ROIs and the 4 coordinates; 0 without positives.
    """
    class_ids = tf.cast(target_class_ids, tf.int32)
    positive = class_ids > 0
    predicted = tf.gather(pred_bbox, tf.maximum(class_ids, 0), batch_dims=2)  # [B, T, 4]
    loss = tf.reduce_sum(smooth_l1(target_bbox, predicted), axis=-1)
    return _masked_mean(loss, positive) / 4.0


def mrcnn_mask_loss_graph(target_masks, target_class_ids, pred_masks):
    """Binary cross-entropy of the true class's mask on positive ROIs.

    Parameters
    ----------
    target_masks : Tensor, [B, T, h, w]
        Values in {0, 1}.
    target_class_ids : Tensor, int, [B, T]
    pred_masks : Tensor, [B, T, h, w, num_classes]
        Sigmoid probabilities.

    Returns
    -------
    Tensor, float32, scalar
        Mean over the pixels of positive ROIs; 0 without positives.
    """
    class_ids = tf.cast(target_class_ids, tf.int32)
    positive = class_ids > 0
    probabilities = tf.transpose(tf.cast(pred_masks, tf.float32), [0, 1, 4, 2, 3])  # [B, T, C, h, w]
    predicted = tf.gather(probabilities, tf.maximum(class_ids, 0), batch_dims=2)  # [B, T, h, w]
    predicted = tf.clip_by_value(predicted, _BCE_EPSILON, 1.0 - _BCE_EPSILON)
    target = tf.cast(target_masks, tf.float32)
    entropy = -(target * tf.math.log(predicted) + (1.0 - target) * tf.math.log(1.0 - predicted))
    return _masked_mean(tf.reduce_mean(entropy, axis=[2, 3]), positive)
