"""The five losses on hand-made inputs, including an image without ground truth."""
import math

import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn.layers import losses

LN2 = math.log(2.0)
LN4_3 = -math.log(0.75)  # cross-entropy of a 3:1 softmax on its likely class


def _value(tensor):
    value = float(tensor.numpy())
    assert math.isfinite(value)
    return value


def test_smooth_l1_branches():
    got = losses.smooth_l1(tf.constant([0.0, 0.0, 0.0]), tf.constant([0.5, -2.0, 1.0])).numpy()
    np.testing.assert_allclose(got, [0.125, 1.5, 0.5])


class TestRpnClassLoss:
    def test_mean_over_sampled_anchors_only(self):
        match = tf.constant([[[1], [-1], [0]]])
        logits = tf.constant([[[0.0, math.log(3.0)], [0.0, 0.0], [50.0, -50.0]]])
        # positive: -log(3/4); negative: log 2; the neutral anchor (very wrong) is ignored
        assert _value(losses.rpn_class_loss_graph(match, logits)) == pytest.approx((LN4_3 + LN2) / 2, rel=1e-5)

    def test_image_without_ground_truth_still_trains_negatives(self):
        match = tf.constant([[-1, -1, 0]])
        logits = tf.constant([[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
        assert _value(losses.rpn_class_loss_graph(match, logits)) == pytest.approx(LN2, rel=1e-5)

    def test_no_sampled_anchor_gives_zero(self):
        match = tf.zeros([2, 3, 1], tf.int32)
        assert _value(losses.rpn_class_loss_graph(match, tf.ones([2, 3, 2]))) == 0.0


class TestRpnBboxLoss:
    def test_positive_anchors_match_packed_targets_in_order(self):
        # image 0: anchors 1 and 3 positive; image 1: no positive (a negative image)
        match = tf.constant([[[0], [1], [-1], [1]], [[-1], [-1], [0], [0]]])
        pred = np.zeros([2, 4, 4], np.float32)
        pred[0, 0] = [9, 9, 9, 9]  # neutral anchor: ignored
        pred[0, 1] = [0.5, 0, 0, 0]  # vs target 0 -> 0.125
        pred[0, 2] = [7, 7, 7, 7]  # negative anchor: ignored
        pred[0, 3] = [2.0, 0, 0, 0]  # vs target 0 -> 1.5
        pred[1] = 5.0  # nothing positive in image 1
        target = np.zeros([2, 4, 4], np.float32)
        target[0, 0] = [0, 0, 0, 0]  # anchor 1
        target[0, 1] = [0, 0, 0, 0.25]  # anchor 3: adds 0.5 * 0.25^2 = 0.03125
        loss = losses.rpn_bbox_loss_graph(None, tf.constant(target), match, tf.constant(pred))
        assert _value(loss) == pytest.approx((0.125 + 1.5 + 0.03125) / 8, rel=1e-6)

    def test_no_positive_gives_zero(self):
        match = -tf.ones([1, 5, 1], tf.int32)
        loss = losses.rpn_bbox_loss_graph(None, tf.zeros([1, 3, 4]), match, tf.ones([1, 5, 4]))
        assert _value(loss) == 0.0


class TestMrcnnClassLoss:
    def test_inactive_class_left_out_of_softmax_with_active_class_per_image(self):
        target = tf.constant([[0, 1]])
        logits = tf.constant([[[0.0, 0.0, 100.0], [0.0, math.log(3.0), 100.0]]])
        active = tf.constant([[1, 1, 0]])
        loss = losses.mrcnn_class_loss_graph(target, logits, active, active_class_per_image=True)
        assert _value(loss) == pytest.approx((LN2 + LN4_3) / 2, rel=1e-5)

    def test_rois_predicted_as_an_inactive_class_are_dropped_by_default(self):
        # matterport: full softmax; a ROI whose argmax class is inactive (in image 0) does not count
        target = tf.constant([[0, 1], [1, 0]])
        logits = tf.constant([[[0.0, 0.0, -9.0], [0.0, math.log(3.0), 100.0]],
                              [[0.0, math.log(3.0), -100.0], [0.0, 0.0, 100.0]]])
        active = tf.constant([[1, 1, 0], [1, 1, 1]])  # image 1's flags are not used
        loss = losses.mrcnn_class_loss_graph(target, logits, active)
        expected_first = -math.log(1 / (2 + math.exp(-9.0)))  # softmax over all three classes
        assert _value(loss) == pytest.approx((expected_first + LN4_3) / 2, rel=1e-5)

    def test_padding_rows_excluded(self):
        target = tf.constant([[1, 0]])
        logits = tf.constant([[[0.0, math.log(3.0)], [30.0, -30.0]]])
        loss = losses.mrcnn_class_loss_graph(target, logits, tf.ones([1, 2]), roi_valid=tf.constant([[True, False]]))
        assert _value(loss) == pytest.approx(LN4_3, rel=1e-5)

    def test_image_without_ground_truth_is_not_zero(self):
        target = tf.zeros([1, 3], tf.int32)  # only negatives
        logits = tf.zeros([1, 3, 2])
        assert _value(losses.mrcnn_class_loss_graph(target, logits, tf.ones([1, 2]))) == pytest.approx(LN2, rel=1e-5)


class TestMrcnnBboxLoss:
    def test_true_class_of_positive_rois_only(self):
        target = np.zeros([1, 2, 4], np.float32)
        target[0, 0] = [0.5, 0, 0, 0]
        pred = np.zeros([1, 2, 3, 4], np.float32)
        pred[0, 0, 0] = 100.0  # background deltas: ignored
        pred[0, 0, 2] = -100.0  # another class: ignored
        pred[0, 1] = 50.0  # negative ROI: ignored
        loss = losses.mrcnn_bbox_loss_graph(tf.constant(target), tf.constant([[1, 0]]), tf.constant(pred))
        assert _value(loss) == pytest.approx(0.125 / 4, rel=1e-6)

    def test_no_positive_gives_zero(self):
        loss = losses.mrcnn_bbox_loss_graph(tf.ones([2, 3, 4]), tf.zeros([2, 3], tf.int32), tf.zeros([2, 3, 2, 4]))
        assert _value(loss) == 0.0


class TestMrcnnMaskLoss:
    def test_binary_cross_entropy_of_true_class(self):
        target = np.zeros([1, 2, 2, 2], np.float32)
        target[0, 0] = [[1, 0], [0, 1]]
        pred = np.full([1, 2, 2, 2, 2], 0.5, np.float32)
        pred[0, 0, :, :, 1] = [[0.9, 0.2], [0.2, 0.9]]
        pred[0, 0, :, :, 0] = [[0.0, 1.0], [1.0, 0.0]]  # background channel, maximally wrong: ignored
        pred[0, 1] = 0.0  # negative ROI: ignored
        loss = losses.mrcnn_mask_loss_graph(tf.constant(target), tf.constant([[1, 0]]), tf.constant(pred))
        expected = (-math.log(0.9) - math.log(0.8)) / 2
        assert _value(loss) == pytest.approx(expected, rel=1e-5)

    def test_image_without_ground_truth_gives_zero(self):
        loss = losses.mrcnn_mask_loss_graph(tf.zeros([1, 3, 4, 4]), tf.zeros([1, 3], tf.int32), tf.zeros([1, 3, 4, 4, 2]))
        assert _value(loss) == 0.0


def test_gradients_are_finite_when_nothing_is_selected():
    pred_bbox = tf.Variable(tf.zeros([1, 2, 2, 4]))
    pred_mask = tf.Variable(tf.zeros([1, 2, 3, 3, 2]))
    rpn_bbox = tf.Variable(tf.zeros([1, 5, 4]))
    with tf.GradientTape() as tape:
        total = (
            losses.mrcnn_bbox_loss_graph(tf.zeros([1, 2, 4]), tf.zeros([1, 2], tf.int32), pred_bbox)
            + losses.mrcnn_mask_loss_graph(tf.zeros([1, 2, 3, 3]), tf.zeros([1, 2], tf.int32), pred_mask)
            + losses.rpn_bbox_loss_graph(None, tf.zeros([1, 4, 4]), tf.zeros([1, 5, 1], tf.int32), rpn_bbox)
        )
    assert float(total) == 0.0
    for grad in tape.gradient(total, [pred_bbox, pred_mask, rpn_bbox]):
        assert np.all(np.isfinite(grad.numpy()))
