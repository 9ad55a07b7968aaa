"""ROI-head training targets in the graph: :class:`DetectionTargetLayer` (TF).

:class:`DetectionTargetLayer` works in *normalized* coordinates (the graph's
convention, ``utils.norm_boxes``): proposals come from ``ProposalLayer`` and the
ground-truth boxes are normalized by the training graph before they get here.
The RPN's anchor targets (numpy, built by the input pipeline) are
``mrcnn/input/rpn_targets.py``.

Images without ground truth: their ROIs follow matterport's rule by default
(negatives are kept in proportion to the positives, so such an image gets none:
only zero padding); with ``config.ROI_FILL_NEGATIVES`` negatives fill every row
that positives leave, which is how negative images train the classifier.
"""
from __future__ import annotations

from collections.abc import Mapping

import keras
import tensorflow as tf

from ..config import Config
from ..input.rpn_targets import CROWD_IOU, TargetError
from . import box_ops

__all__ = [
    "ROI_POSITIVE_IOU",
    "DetectionTargetLayer",
    "detection_targets_graph",
]

#: A proposal whose best IoU with a ground-truth box reaches this is a positive ROI;
#: every other (valid, non-crowd) proposal is a negative ROI.
ROI_POSITIVE_IOU = 0.5


# ----------------------------------------------------------------------------
# Detection targets (TF graph)
# ----------------------------------------------------------------------------

def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, config, random_keys=None):
    """Sample ROIs among the proposals and give them class, box and mask targets.

    Every shape is static (no boolean masks, no dynamic gathers), so the graph
    compiles and distributes the same way for any content.

    Parameters
    ----------
    proposals : Tensor, float32, [B, N, 4]
        Normalized ``(y1, x1, y2, x2)``; all-zero rows are padding.
    gt_class_ids : Tensor, int, [B, G]
        ``G = MAX_GT_INSTANCES``; 0 for padding, < 0 for crowd boxes.
    gt_boxes : Tensor, float32, [B, G, 4]
        Normalized ``(y1, x1, y2, x2)``; all-zero rows are padding.
    gt_masks : Tensor, bool or float, [B, h, w, G]
        Full-image masks (``h, w = IMAGE_SHAPE[:2]``) or, when
        ``config.USE_MINI_MASK``, mini masks (``MINI_MASK_SHAPE``) in the frame
        of their box.
    config : Config
        ``TRAIN_ROIS_PER_IMAGE``, ``ROI_POSITIVE_RATIO``, ``BBOX_STD_DEV``,
        ``MASK_SHAPE``, ``USE_MINI_MASK``, ``ROI_FILL_NEGATIVES`` (absent, as in
        matterport's ``Config``: False).
    random_keys : Tensor, float32, [B, N], optional
        Sampling priority in [0, 1) (higher first); uniform noise by default.

    Returns
    -------
    rois : Tensor, float32, [B, T, 4]
        ``T = TRAIN_ROIS_PER_IMAGE`` rows: positives first, then negatives, then
        zero padding.
    target_class_ids : Tensor, int32, [B, T]
        Class of the matched box for positives, 0 for negatives and padding.
    target_bbox : Tensor, float32, [B, T, 4]
        ``box_refinement(roi, gt) / BBOX_STD_DEV`` for positives, zeros elsewhere.
    target_mask : Tensor, float32, [B, T, MASK_SHAPE[0], MASK_SHAPE[1]]
        The matched mask cropped to the ROI, resized and rounded to {0, 1} for
        positives; zeros elsewhere.

    Notes
    -----
    Positives are the proposals whose best IoU with a (non-crowd) box is >= 0.5,
    negatives those below 0.5 that do not touch a crowd box; both are sampled at
    random. ``P``, the number of positives, is capped at
    ``int(T * ROI_POSITIVE_RATIO)``. The number of negatives is matterport's
    ``int(P / ROI_POSITIVE_RATIO) - P`` (computed in float32 as matterport does),
    so an image without positives gets no ROI at all; with
    ``ROI_FILL_NEGATIVES`` it is ``T - P`` instead (every row a negative for an
    image without ground truth). Either way there are at most as many as the
    candidates, and zero rows pad the output to ``T``.
    """
    proposals = tf.cast(proposals, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    gt_class_ids = tf.cast(gt_class_ids, tf.int32)
    total = int(config.TRAIN_ROIS_PER_IMAGE)
    positive_cap = int(total * config.ROI_POSITIVE_RATIO)

    valid_proposal = tf.reduce_any(tf.not_equal(proposals, 0.0), axis=-1)  # [B, N]
    gt_real = tf.reduce_any(tf.not_equal(gt_boxes, 0.0), axis=-1) & tf.not_equal(gt_class_ids, 0)
    gt_object = gt_real & (gt_class_ids > 0)  # [B, G]
    gt_crowd = gt_real & (gt_class_ids < 0)

    overlaps = box_ops.overlaps_graph(proposals, gt_boxes)  # [B, N, G]
    object_overlaps = tf.where(gt_object[:, tf.newaxis, :], overlaps, -1.0)
    crowd_overlaps = tf.where(gt_crowd[:, tf.newaxis, :], overlaps, 0.0)
    best_iou = tf.reduce_max(object_overlaps, axis=2)  # [B, N]; -1 without gt
    best_gt = tf.argmax(object_overlaps, axis=2, output_type=tf.int32)  # [B, N]
    clear_of_crowd = tf.reduce_max(crowd_overlaps, axis=2) < CROWD_IOU

    positive = valid_proposal & (best_iou >= ROI_POSITIVE_IOU)
    negative = valid_proposal & (best_iou < ROI_POSITIVE_IOU) & clear_of_crowd
    if random_keys is None:
        random_keys = tf.random.uniform(tf.shape(valid_proposal), dtype=tf.float32)
    pos_index, pos_count = _pick(positive, random_keys, positive_cap)
    neg_index, neg_count = _pick(negative, random_keys, total)
    neg_count = tf.minimum(neg_count, _negative_quota(config, pos_count))

    # Output row j holds positive j, then negative (j - pos_count), then padding.
    row = tf.range(total)[tf.newaxis, :]  # [1, T]
    is_positive = row < pos_count[:, tf.newaxis]  # [B, T]
    is_negative = ~is_positive & (row < (pos_count + neg_count)[:, tf.newaxis])
    pos_source = tf.gather(pos_index, tf.minimum(row, max(positive_cap - 1, 0))[0], axis=1)
    neg_source = tf.gather(neg_index, tf.clip_by_value(row - pos_count[:, tf.newaxis], 0, total - 1),
                           batch_dims=1)
    source = tf.where(is_positive, pos_source, neg_source)  # [B, T] proposal index
    keep = tf.cast(is_positive | is_negative, tf.float32)

    rois = tf.gather(proposals, source, batch_dims=1) * keep[..., tf.newaxis]
    matched_gt = tf.gather(best_gt, source, batch_dims=1)  # [B, T]
    matched_boxes = tf.gather(gt_boxes, matched_gt, batch_dims=1)  # [B, T, 4]
    target_class_ids = tf.where(is_positive, tf.gather(gt_class_ids, matched_gt, batch_dims=1), 0)

    positive_f = tf.cast(is_positive, tf.float32)
    # Other rows get a unit box on both sides: no log(0) or 0/0 in the deltas.
    unit_box = tf.constant([0.0, 0.0, 1.0, 1.0])
    safe_rois = tf.where(is_positive[..., tf.newaxis], rois, unit_box)
    safe_boxes = tf.where(is_positive[..., tf.newaxis], matched_boxes, unit_box)
    deltas = box_ops.box_refinement_graph(safe_rois, safe_boxes) / tf.constant(config.BBOX_STD_DEV, tf.float32)
    target_bbox = deltas * positive_f[..., tf.newaxis]

    target_mask = _mask_targets(rois, matched_boxes, matched_gt, gt_masks, config)
    target_mask = target_mask * positive_f[..., tf.newaxis, tf.newaxis]
    return (tf.stop_gradient(rois), tf.stop_gradient(target_class_ids),
            tf.stop_gradient(target_bbox), tf.stop_gradient(target_mask))


def _negative_quota(config, pos_count):
    """int32 [B]: how many negatives may follow ``pos_count`` positives (see detection_targets_graph)."""
    total = int(config.TRAIN_ROIS_PER_IMAGE)
    if getattr(config, "ROI_FILL_NEGATIVES", False):
        return total - pos_count
    # matterport: tf.cast(r * tf.cast(P, tf.float32), tf.int32) - P with r = 1 / ratio.
    inverse_ratio = tf.constant(1.0 / config.ROI_POSITIVE_RATIO, tf.float32)
    quota = tf.cast(inverse_ratio * tf.cast(pos_count, tf.float32), tf.int32) - pos_count
    return tf.minimum(quota, total - pos_count)


def _pick(candidates, keys, k):
    """Up to ``k`` candidate indices per image, highest key first.

    Returns ``(indices int32 [B, k], count int32 [B])``; entries past ``count``
    point at non-candidates and must be masked by the caller.
    """
    count = tf.minimum(tf.reduce_sum(tf.cast(candidates, tf.int32), axis=1), k)
    if k <= 0:
        return tf.zeros([tf.shape(candidates)[0], 0], tf.int32), count
    num = candidates.shape[1]
    if num is None:
        raise TargetError("detection targets need a static number of proposals")
    scored = tf.where(candidates, keys, keys - 2.0)  # every candidate ranks above every other
    _, indices = tf.math.top_k(scored, k=min(k, num), sorted=True)
    if k > num:
        indices = tf.pad(indices, [[0, 0], [0, k - num]])
    return tf.cast(indices, tf.int32), count


def _mask_targets(rois, matched_boxes, matched_gt, gt_masks, config):
    """float32 [B, T, mh, mw]: the matched gt mask cropped to each ROI and rounded."""
    masks = tf.cast(gt_masks, tf.float32)  # [B, h, w, G]
    height, width, num_gt = masks.shape[1], masks.shape[2], masks.shape[3]
    masks = tf.reshape(tf.transpose(masks, [0, 3, 1, 2]), [-1, height, width, 1])  # [B*G, h, w, 1]
    boxes = _in_box_frame(rois, matched_boxes) if config.USE_MINI_MASK else rois
    batch = tf.shape(rois)[0]
    total = rois.shape[1]
    box_indices = tf.range(batch)[:, tf.newaxis] * num_gt + matched_gt  # [B, T]
    crops = tf.image.crop_and_resize(
        masks, tf.reshape(boxes, [-1, 4]), tf.reshape(box_indices, [-1]), list(config.MASK_SHAPE)
    )  # [B*T, mh, mw, 1]
    return tf.reshape(tf.round(crops), [batch, total, config.MASK_SHAPE[0], config.MASK_SHAPE[1]])


def _in_box_frame(rois, boxes):
    """``rois`` in the frame of ``boxes`` (0..1 spans the box), where mini masks live."""
    y1, x1, y2, x2 = tf.unstack(rois, axis=-1)
    gy1, gx1, gy2, gx2 = tf.unstack(boxes, axis=-1)
    height = tf.where(gy2 - gy1 > 0, gy2 - gy1, 1.0)
    width = tf.where(gx2 - gx1 > 0, gx2 - gx1, 1.0)
    return tf.stack([(y1 - gy1) / height, (x1 - gx1) / width,
                     (y2 - gy1) / height, (x2 - gx1) / width], axis=-1)


class DetectionTargetLayer(keras.layers.Layer):
    """Subsample proposals and build their class, box and mask targets.

    Call it on ``[proposals, gt_class_ids, gt_boxes, gt_masks]`` (see
    :func:`detection_targets_graph` for shapes); it returns ``[rois,
    target_class_ids, target_bbox, target_mask]`` with ``TRAIN_ROIS_PER_IMAGE``
    rows per image, positives first. Outputs carry no gradient.

    Parameters
    ----------
    config : Config or dict
        The settings, or their :meth:`Config.to_dict` form (what :meth:`get_config` stores).
    """

    def __init__(self, config, **kwargs):
        kwargs.setdefault("name", "proposal_targets")
        super().__init__(**kwargs)
        self.config = Config.from_dict(dict(config)) if isinstance(config, Mapping) else config

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        return list(detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, self.config))

    def compute_output_shape(self, input_shape):
        """matterport's: ``[(None, T, 4), (None, T), (None, T, 4), (None, T, mh, mw)]``."""
        total = self.config.TRAIN_ROIS_PER_IMAGE
        mask_height, mask_width = self.config.MASK_SHAPE
        return [(None, total, 4), (None, total), (None, total, 4), (None, total, mask_height, mask_width)]

    def compute_output_spec(self, inputs):
        batch = inputs[0].shape[0]
        dtypes = ("float32", "int32", "float32", "float32")
        return [keras.KerasTensor((batch,) + shape[1:], dtype=dtype)
                for shape, dtype in zip(self.compute_output_shape(None), dtypes, strict=True)]

    def compute_mask(self, inputs, mask=None):
        """matterport's: no output carries a mask (Keras calls it ``(inputs, previous_mask)``)."""
        return [None, None, None, None]

    def get_config(self):
        base = super().get_config()
        base["config"] = self.config.to_dict()
        return base
