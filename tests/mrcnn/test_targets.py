"""RPN targets (numpy) and detection targets (TF) on hand-made boxes."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.input import rpn_targets
from rsna_detector.mrcnn.layers import detection_targets

STD = np.array([0.1, 0.1, 0.2, 0.2])


def rpn_config(total=8):
    return SimpleNamespace(RPN_TRAIN_ANCHORS_PER_IMAGE=total, RPN_BBOX_STD_DEV=STD)


# anchors (pixels): IoU with the box (0, 0, 10, 11) in the comments
ANCHORS = np.array([
    [0, 0, 10, 10],    # 100/110 = 0.909 -> positive
    [0, 0, 10, 12],    # 110/120 = 0.917 -> positive (also the best)
    [20, 20, 30, 30],  # 0 -> negative
    [2, 2, 12, 12],    # 72/138 = 0.522 -> neutral
    [40, 40, 50, 50],  # 0 -> negative
], dtype=np.float32)
GT_BOX = np.array([[0, 0, 10, 11]])


class TestRpnTargets:
    def test_labels_and_deltas_of_a_hand_made_box(self):
        match, deltas = rpn_targets.build_rpn_targets((64, 64, 3), ANCHORS, np.array([1]), GT_BOX, rpn_config(),
                                                  rng=np.random.default_rng(0))
        assert match.dtype == np.int32 and deltas.dtype == np.float64  # matterport's types
        np.testing.assert_array_equal(match, [1, 1, -1, 0, -1])
        assert deltas.shape == (8, 4)
        # anchor 0: centre (5, 5) size 10x10; box centre (5, 5.5) size 10x11
        expected0 = np.array([0, 0.5 / 10, 0, math.log(1.1)]) / STD
        # anchor 1: centre (5, 6) size 10x12
        expected1 = np.array([0, -0.5 / 12, 0, math.log(11 / 12)]) / STD
        np.testing.assert_allclose(deltas[0], expected0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(deltas[1], expected1, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(deltas[2:], 0)

    def test_best_anchor_is_positive_below_threshold(self):
        box = np.array([[20, 20, 30, 36]])  # best anchor 2: IoU 100/160 = 0.625 < 0.7
        match, deltas = rpn_targets.build_rpn_targets((64, 64, 3), ANCHORS, np.array([1]), box, rpn_config())
        np.testing.assert_array_equal(match, [-1, -1, 1, -1, -1])
        np.testing.assert_allclose(deltas[0], np.array([0, 3 / 10, 0, math.log(1.6)]) / STD, rtol=1e-5)

    def test_box_no_anchor_touches_adds_no_positive(self):
        box = np.array([[55, 55, 60, 60]])
        match, _ = rpn_targets.build_rpn_targets((64, 64, 3), ANCHORS, np.array([1]), box, rpn_config())
        np.testing.assert_array_equal(match, [-1, -1, -1, -1, -1])

    def test_zero_ground_truth_all_sampled_anchors_negative(self):
        anchors = np.array([[y, x, y + 8, x + 8] for y in range(0, 40, 8) for x in range(0, 32, 8)], np.float32)
        match, deltas = rpn_targets.build_rpn_targets((64, 64, 3), anchors, np.zeros(0, np.int32),
                                                  np.zeros((0, 4)), rpn_config(total=8),
                                                  rng=np.random.default_rng(1))
        assert np.sum(match == -1) == 8 and np.sum(match == 1) == 0 and np.sum(match == 0) == 12
        np.testing.assert_array_equal(deltas, 0)

    def test_positives_capped_at_half_and_negatives_fill(self):
        # 6 anchors equal to the box (positive), 10 far away (negative)
        anchors = np.array([[0, 0, 10, 10]] * 6 + [[30, 30, 40, 40]] * 10, np.float32)
        match, deltas = rpn_targets.build_rpn_targets((64, 64, 3), anchors, np.array([1]), np.array([[0, 0, 10, 10]]),
                                                  rpn_config(total=8), rng=np.random.default_rng(2))
        assert np.sum(match == 1) == 4 and np.sum(match == -1) == 4
        assert set(np.flatnonzero(match == 1)) <= set(range(6))
        np.testing.assert_array_equal(deltas, 0)  # identical boxes: zero deltas

    def test_crowd_box_anchors_are_not_negative(self):
        crowd = np.array([[20, 20, 30, 30]])
        match, _ = rpn_targets.build_rpn_targets((64, 64, 3), ANCHORS, np.array([1, -1]),
                                             np.concatenate([GT_BOX, crowd]), rpn_config())
        np.testing.assert_array_equal(match, [1, 1, 0, 0, -1])

    def test_mismatched_inputs_raise(self):
        with pytest.raises(ValueError, match="gt_class_ids has 2 entries"):
            rpn_targets.build_rpn_targets((64, 64, 3), ANCHORS, np.array([1, 1]), GT_BOX, rpn_config())


def detection_config(total=6, ratio=0.5, mini=False, mask_shape=(4, 4), fill=False):
    return SimpleNamespace(TRAIN_ROIS_PER_IMAGE=total, ROI_POSITIVE_RATIO=ratio, BBOX_STD_DEV=STD,
                           MASK_SHAPE=list(mask_shape), USE_MINI_MASK=mini, ROI_FILL_NEGATIVES=fill)


GT_NORM = [0.1, 0.1, 0.5, 0.5]
PROPOSALS = np.array([
    [0.1, 0.1, 0.5, 0.5],    # IoU 1      positive
    [0.1, 0.1, 0.5, 0.6],    # IoU 0.8    positive
    [0.1, 0.15, 0.5, 0.5],   # IoU 0.875  positive
    [0.12, 0.1, 0.5, 0.55],  # IoU ~0.86  positive
    [0.6, 0.6, 0.9, 0.9],    # negatives ...
    [0.6, 0.1, 0.9, 0.4],
    [0.1, 0.6, 0.4, 0.9],
    [0.3, 0.3, 0.7, 0.7],    # IoU 0.04/0.28 = 0.14
    [0.0, 0.0, 0.2, 0.2],
    [0.0, 0.0, 0.0, 0.0],    # padding
], np.float32)


def run_targets(config, gt_boxes, gt_class_ids, gt_masks, proposals=PROPOSALS, keys=None):
    out = detection_targets.detection_targets_graph(
        tf.constant(proposals[np.newaxis]), tf.constant(np.array(gt_class_ids, np.int32)[np.newaxis]),
        tf.constant(np.array(gt_boxes, np.float32).reshape(1, -1, 4)), tf.constant(gt_masks[np.newaxis]), config,
        random_keys=None if keys is None else tf.constant(np.array(keys, np.float32)[np.newaxis]))
    return [t.numpy()[0] for t in out]


def iou(box, boxes):
    return utils.compute_overlaps(np.array([box]), boxes)[0]


class TestDetectionTargets:
    masks = np.ones((10, 10, 2), np.float32)

    # 4 positive and 5 negative candidates. matterport: P = min(4, int(T / 2)), then
    # int(P / 0.5) - P = P negatives; ROI_FILL_NEGATIVES: negatives fill the other T - P rows.
    @pytest.mark.parametrize("total,fill,positives,negatives", [
        (6, False, 3, 3), (8, False, 4, 4), (12, False, 4, 4), (20, False, 4, 4),
        (6, True, 3, 3), (8, True, 4, 4), (12, True, 4, 5), (20, True, 4, 5)])
    def test_sampling_counts(self, total, fill, positives, negatives):
        config = detection_config(total=total, ratio=0.5, fill=fill)
        rois, class_ids, bbox, masks = run_targets(config, [GT_NORM, [0, 0, 0, 0]], [1, 0], self.masks)
        assert rois.shape == (total, 4) and class_ids.shape == (total,)
        assert bbox.shape == (total, 4) and masks.shape == (total, 4, 4)
        assert np.sum(class_ids == 1) == positives
        np.testing.assert_array_equal(class_ids[:positives], 1)  # positives first
        kept = np.any(rois != 0, axis=1)
        assert np.sum(kept) == positives + negatives  # then negatives, then padding
        assert not np.any(kept[positives + negatives:])
        overlaps = utils.compute_overlaps(rois[kept], np.array([GT_NORM]))[:, 0]
        assert np.all(overlaps[:positives] >= 0.5) and np.all(overlaps[positives:] < 0.5)
        np.testing.assert_array_equal(bbox[positives:], 0)
        np.testing.assert_array_equal(masks[positives:], 0)

    def test_positive_ratio_caps_positives(self):
        config = detection_config(total=6, ratio=0.33)  # int(1.98) = 1 positive
        _, class_ids, _, _ = run_targets(config, [GT_NORM], [1], self.masks[..., :1])
        assert np.sum(class_ids == 1) == 1

    def test_zero_ground_truth_gives_no_roi_as_matterport(self):
        outputs = run_targets(detection_config(total=6), np.zeros((2, 4)), [0, 0], np.zeros((10, 10, 2), np.float32))
        for output in outputs:
            np.testing.assert_array_equal(output, 0)

    def test_zero_ground_truth_only_negatives_with_fill(self):
        config = detection_config(total=6, fill=True)
        rois, class_ids, bbox, masks = run_targets(config, np.zeros((2, 4)), [0, 0], np.zeros((10, 10, 2), np.float32))
        np.testing.assert_array_equal(class_ids, 0)
        assert np.all(np.any(rois != 0, axis=1))  # 6 of the 9 valid proposals, no padding
        assert all(any(np.allclose(r, p) for p in PROPOSALS[:9]) for r in rois)
        np.testing.assert_array_equal(bbox, 0)
        np.testing.assert_array_equal(masks, 0)

    def test_box_deltas_hand_computed(self):
        config = detection_config(total=2, ratio=0.5)
        keys = np.zeros(10)
        keys[1] = 0.9  # pick proposal 1 as the positive, proposal 4 as the negative
        keys[4] = 0.8
        rois, class_ids, bbox, _ = run_targets(config, [GT_NORM], [1], self.masks[..., :1], keys=keys)
        np.testing.assert_allclose(rois, PROPOSALS[[1, 4]])
        np.testing.assert_array_equal(class_ids, [1, 0])
        # roi centre x 0.35 width 0.5; box centre x 0.3 width 0.4
        expected = np.array([0, -0.05 / 0.5, 0, math.log(0.8)]) / STD
        np.testing.assert_allclose(bbox[0], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(bbox[1], 0)

    def test_full_mask_cropped_to_roi(self):
        mask = np.zeros((10, 10, 1), np.float32)
        mask[2:6, 2:6, 0] = 1  # pixel box (2, 2, 6, 6) -> normalized (2, 2, 5, 5) / 9
        gt = np.array([2, 2, 5, 5]) / 9
        roi = np.array([2, 1, 5, 5]) / 9  # IoU 0.75; samples x = 1, 2.33, 3.67, 5
        proposals = np.array([roi, [0.7, 0.7, 0.9, 0.9]], np.float32)
        rois, class_ids, _, masks = run_targets(detection_config(total=2), [gt], [1], mask, proposals=proposals)
        assert class_ids[0] == 1
        np.testing.assert_array_equal(masks[0], np.tile([0, 1, 1, 1], (4, 1)))
        np.testing.assert_array_equal(masks[1], 0)

    def test_mini_mask_cropped_in_box_frame(self):
        mini = np.zeros((4, 4, 1), np.float32)
        mini[:, :2, 0] = 1  # left half of the box
        proposals = np.array([GT_NORM, [0.7, 0.7, 0.9, 0.9]], np.float32)
        _, class_ids, _, masks = run_targets(detection_config(total=2, mini=True), [GT_NORM], [1], mini,
                                             proposals=proposals)
        assert class_ids[0] == 1
        np.testing.assert_array_equal(masks[0], mini[..., 0])

    def test_crowd_box_proposals_neither_positive_nor_negative(self):
        crowd = [0.6, 0.6, 0.9, 0.9]
        config = detection_config(total=20, ratio=0.5)
        rois, class_ids, _, _ = run_targets(config, [GT_NORM, crowd], [1, -1], self.masks)
        kept = rois[np.any(rois != 0, axis=1)]
        # proposal 4 is the crowd box, proposal 7 touches it (IoU 0.04): both left out
        assert not any(np.allclose(r, PROPOSALS[4]) or np.allclose(r, PROPOSALS[7]) for r in kept)
        assert len(kept) == 7 and np.sum(class_ids == 1) == 4

    def test_layer_batches_images_with_and_without_objects(self):
        config = detection_config(total=6)
        layer = detection_targets.DetectionTargetLayer(config)
        gt_boxes = np.array([[GT_NORM, [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
        rois, class_ids, bbox, masks = layer([tf.constant(np.stack([PROPOSALS, PROPOSALS])),
                                              tf.constant([[1, 0], [0, 0]]), tf.constant(gt_boxes),
                                              tf.ones([2, 10, 10, 2])])
        assert class_ids.shape == (2, 6) and masks.shape == (2, 6, 4, 4)
        assert np.sum(class_ids.numpy()[0] > 0) == 3 and np.sum(class_ids.numpy()[1] > 0) == 0
