"""Graph box ops: hand-computed values, and equality with their numpy twins in utils."""
import math

import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.layers import box_ops


def _random_boxes(rng, n, low=0.0, high=100.0):
    corners = rng.uniform(low, high, size=(n, 2, 2))
    sizes = rng.uniform(1.0, 40.0, size=(n, 2))
    return np.concatenate([corners[:, 0], corners[:, 0] + sizes], axis=1).astype(np.float32)


class TestApplyBoxDeltas:
    def test_hand_computed(self):
        # center (5, 5), size 10 x 10 -> center (5 + 0.1*10, 5 + 0.2*10) = (6, 7), height 20, width 10
        boxes = tf.constant([[0.0, 0.0, 10.0, 10.0]])
        deltas = tf.constant([[0.1, 0.2, math.log(2.0), 0.0]])
        got = box_ops.apply_box_deltas_graph(boxes, deltas).numpy()
        np.testing.assert_allclose(got, [[-4.0, 2.0, 16.0, 12.0]], atol=1e-5)

    def test_equals_numpy_twin(self):
        rng = np.random.default_rng(0)
        boxes = _random_boxes(rng, 50)
        deltas = rng.normal(0, 0.3, size=(50, 4)).astype(np.float32)
        got = box_ops.apply_box_deltas_graph(tf.constant(boxes), tf.constant(deltas)).numpy()
        np.testing.assert_allclose(got, utils.apply_box_deltas(boxes, deltas), rtol=1e-5, atol=1e-4)

    def test_batched_equals_per_item(self):
        rng = np.random.default_rng(1)
        boxes = _random_boxes(rng, 12).reshape(3, 4, 4)
        deltas = rng.normal(0, 0.3, size=(3, 4, 4)).astype(np.float32)
        got = box_ops.apply_box_deltas_graph(tf.constant(boxes), tf.constant(deltas)).numpy()
        for b in range(3):
            np.testing.assert_allclose(got[b], utils.apply_box_deltas(boxes[b], deltas[b]), rtol=1e-5, atol=1e-4)


class TestBoxRefinement:
    def test_hand_computed(self):
        box = tf.constant([[0.0, 0.0, 10.0, 10.0]])
        gt = tf.constant([[-4.0, 2.0, 16.0, 12.0]])
        got = box_ops.box_refinement_graph(box, gt).numpy()
        np.testing.assert_allclose(got, [[0.1, 0.2, math.log(2.0), 0.0]], atol=1e-6)

    def test_equals_numpy_twin_and_inverts_apply(self):
        rng = np.random.default_rng(2)
        boxes, gt = _random_boxes(rng, 40), _random_boxes(rng, 40)
        got = box_ops.box_refinement_graph(tf.constant(boxes), tf.constant(gt)).numpy()
        np.testing.assert_allclose(got, utils.box_refinement(boxes, gt), rtol=1e-5, atol=1e-5)
        back = box_ops.apply_box_deltas_graph(tf.constant(boxes), tf.constant(got)).numpy()
        np.testing.assert_allclose(back, gt, rtol=1e-4, atol=1e-3)


class TestOverlaps:
    def test_hand_computed(self):
        a = tf.constant([[0.0, 0.0, 10.0, 10.0]])
        b = tf.constant([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0],
                         [0.0, 0.0, 10.0, 5.0]])
        # intersections 25, 100, 0, 50; unions 175, 100, 200, 100
        np.testing.assert_allclose(box_ops.overlaps_graph(a, b).numpy(), [[1 / 7, 1.0, 0.0, 0.5]], rtol=1e-6)

    def test_equals_numpy_twin(self):
        rng = np.random.default_rng(3)
        boxes1, boxes2 = _random_boxes(rng, 30, high=50), _random_boxes(rng, 20, high=50)
        got = box_ops.overlaps_graph(tf.constant(boxes1), tf.constant(boxes2)).numpy()
        expected = utils.compute_overlaps(boxes1, boxes2)
        assert got.shape == (30, 20)
        assert (expected > 0).sum() > 20  # the data really overlaps
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    def test_batched_and_degenerate(self):
        boxes1 = tf.constant([[[0.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 2.0, 2.0]]])
        boxes2 = tf.constant([[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], [[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]]])
        got = box_ops.overlaps_graph(boxes1, boxes2).numpy()
        np.testing.assert_allclose(got, [[[0.0, 0.0]], [[1 / 7, 1.0]]], rtol=1e-6)


def test_clip_boxes_to_window():
    boxes = tf.constant([[-0.5, 0.2, 0.5, 1.5], [0.3, 0.3, 0.4, 0.4], [1.2, 1.2, 1.5, 1.5]])
    got = box_ops.clip_boxes_graph(boxes, tf.constant([0.0, 0.1, 1.0, 0.9])).numpy()
    np.testing.assert_allclose(got, [[0.0, 0.2, 0.5, 0.9], [0.3, 0.3, 0.4, 0.4], [1.0, 0.9, 1.0, 0.9]])


def test_clip_boxes_per_image_windows():
    boxes = tf.constant([[[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]])
    windows = tf.constant([[[0.25, 0.0, 0.75, 1.0]], [[0.0, 0.1, 1.0, 0.9]]])
    got = box_ops.clip_boxes_graph(boxes, windows).numpy()
    np.testing.assert_allclose(got, [[[0.25, 0.0, 0.75, 1.0]], [[0.0, 0.1, 1.0, 0.9]]])


def test_norm_and_denorm_match_utils():
    boxes = np.array([[0, 0, 128, 128], [10, 20, 50, 90], [32, 0, 96, 128]], dtype=np.int32)
    got = box_ops.norm_boxes_graph(tf.constant(boxes), tf.constant([128, 128])).numpy()
    # (y1, x1, y2 - 1, x2 - 1) / 127
    np.testing.assert_allclose(got[1], np.array([10, 20, 49, 89]) / 127.0, rtol=1e-6)
    np.testing.assert_allclose(got, utils.norm_boxes(boxes, (128, 128)), rtol=1e-6)
    back = box_ops.denorm_boxes_graph(tf.constant(got), (128, 128)).numpy()
    np.testing.assert_array_equal(back, boxes)
    np.testing.assert_array_equal(back, utils.denorm_boxes(got, (128, 128)))


def test_parse_image_meta_graph_matches_compose():
    meta = utils.compose_image_meta(7, (100, 200, 3), (128, 128, 3), (32, 0, 96, 128), 0.64, [1, 1, 0])
    parsed = box_ops.parse_image_meta_graph(tf.constant(np.stack([meta, meta]), tf.float32))
    np.testing.assert_array_equal(parsed["image_id"].numpy(), [7, 7])
    np.testing.assert_array_equal(parsed["original_image_shape"].numpy()[0], [100, 200, 3])
    np.testing.assert_array_equal(parsed["image_shape"].numpy()[1], [128, 128, 3])
    np.testing.assert_array_equal(parsed["window"].numpy()[0], [32, 0, 96, 128])
    np.testing.assert_allclose(parsed["scale"].numpy(), [0.64, 0.64], rtol=1e-6)
    np.testing.assert_array_equal(parsed["active_class_ids"].numpy()[0], [1, 1, 0])


def test_trim_zeros_graph():
    boxes = tf.constant([[0.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
    kept, non_zeros = box_ops.trim_zeros_graph(boxes)
    np.testing.assert_allclose(kept.numpy(), [[0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.0, 0.0]])
    np.testing.assert_array_equal(non_zeros.numpy(), [False, True, False, True])


def test_batch_slice_runs_per_item_and_stacks():
    a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    b = tf.constant([10.0, 20.0])
    total, product = box_ops.batch_slice([a, b], lambda x, y: (tf.reduce_sum(x) + y, x * y), 2)
    np.testing.assert_allclose(total.numpy(), [13.0, 27.0])
    np.testing.assert_allclose(product.numpy(), [[10.0, 20.0], [60.0, 80.0]])
    single = box_ops.batch_slice(a, lambda x: x[::-1], 2)
    np.testing.assert_allclose(single.numpy(), [[2.0, 1.0], [4.0, 3.0]])


@pytest.mark.parametrize("shape", [(4,), (2, 4), (2, 3, 4)])
def test_areas_any_rank(shape):
    boxes = np.broadcast_to(np.array([1.0, 2.0, 4.0, 7.0], np.float32), shape)
    np.testing.assert_allclose(box_ops.box_areas_graph(tf.constant(boxes)).numpy(), np.full(shape[:-1], 15.0))
