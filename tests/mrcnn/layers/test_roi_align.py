"""PyramidROIAlign: level choice by hand, crops against a numpy bilinear reference."""
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.layers.roi_align import PyramidROIAlign, pyramid_roi_align_graph, roi_pyramid_levels


def bilinear_crop(feature_map, box, pool_shape):
    """numpy reference of one crop: sample points spaced evenly from the box's first to its
    last coordinate, in feature cells ``y * (h - 1)``; bilinear; 0 outside the map."""
    height, width, channels = feature_map.shape
    y1, x1, y2, x2 = box
    out = np.zeros(tuple(pool_shape) + (channels,))
    for i in range(pool_shape[0]):
        y = y1 * (height - 1) + i * (y2 - y1) * (height - 1) / (pool_shape[0] - 1)
        for j in range(pool_shape[1]):
            x = x1 * (width - 1) + j * (x2 - x1) * (width - 1) / (pool_shape[1] - 1)
            if not (0 <= y <= height - 1 and 0 <= x <= width - 1):
                continue
            top, left = int(np.floor(y)), int(np.floor(x))
            bottom, right = min(top + 1, height - 1), min(left + 1, width - 1)
            dy, dx = y - top, x - left
            upper = feature_map[top, left] * (1 - dx) + feature_map[top, right] * dx
            lower = feature_map[bottom, left] * (1 - dx) + feature_map[bottom, right] * dx
            out[i, j] = upper * (1 - dy) + lower * dy
    return out


class TestLevels:
    @pytest.mark.parametrize("side, level", [
        (0.5, 5),     # log2(0.5 * 1024 / 224) = 1.19 -> 4 + 1
        (0.25, 4),    # log2(1.14) = 0.19 -> 4 + 0
        (0.125, 3),   # log2(0.571) = -0.81 -> 4 - 1
        (0.0625, 2),  # log2(0.286) = -1.81 -> 4 - 2
        (0.01, 2),    # clipped up
        (1.0, 5),     # log2(4.57) = 2.19 -> 6, clipped down
    ])
    def test_square_boxes_on_1024_image(self, side, level):
        box = tf.constant([[0.1, 0.1, 0.1 + side, 0.1 + side]])
        assert roi_pyramid_levels(box, tf.constant([1024.0, 1024.0, 3.0])).numpy().tolist() == [level]

    def test_uses_area_and_image_size(self):
        # 0.5 x 0.125 has the area of a 0.25 square -> level 4 on 1024; on a 256 image the
        # same normalized box is 4x smaller in pixels -> log2(0.25 * 256 / 224) = -1.81 -> 2
        box = tf.constant([[0.0, 0.0, 0.5, 0.125]])
        assert roi_pyramid_levels(box, [1024, 1024]).numpy().tolist() == [4]
        assert roi_pyramid_levels(box, [256, 256]).numpy().tolist() == [2]

    def test_padding_boxes_get_the_lowest_level(self):
        assert roi_pyramid_levels(tf.zeros([2, 3, 4]), [256, 256]).numpy().tolist() == [[2, 2, 2], [2, 2, 2]]


def _feature_maps(rng, batch=2, image=256, channels=3):
    """Random P2..P5 for an image side ``image`` (strides 4..32)."""
    return [rng.normal(size=(batch, image // s, image // s, channels)).astype(np.float32) for s in (4, 8, 16, 32)]


class TestCrops:
    def test_linear_map_gives_the_sampling_positions(self):
        # On f(y, x) = 100 y + x bilinear interpolation is exact: the crop holds
        # 100 * y_i + x_j with y_i, x_j the sample positions in feature cells.
        size = 64  # P2 of a 256 image
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        p2 = (100.0 * ys + xs).astype(np.float32)[np.newaxis, :, :, np.newaxis]
        others = [np.zeros((1, size // k, size // k, 1), np.float32) for k in (2, 4, 8)]
        box = np.array([[[0.0, 0.5, 63 / 64 * 0.25, 0.5 + 63 / 64 * 0.25]]], np.float32)  # ~64 px: level 2
        crop = pyramid_roi_align_graph(tf.constant(box), [256, 256], [p2] + others, (3, 3)).numpy()[0, 0, :, :, 0]
        sample_y = np.array([0.0, 0.25 * 63 / 64 * 63 / 2, 0.25 * 63 / 64 * 63])
        sample_x = 0.5 * 63 + sample_y
        np.testing.assert_allclose(crop, 100.0 * sample_y[:, None] + sample_x[None, :], rtol=1e-5, atol=1e-3)

    def test_each_box_from_its_level_in_input_order(self):
        rng = np.random.default_rng(0)
        maps = _feature_maps(rng, image=1024)
        # 1024 image: level = 4 + round(log2(side * 1024 / 224)): sides >= 0.31 -> 5,
        # 0.155-0.31 -> 4, 0.077-0.155 -> 3, smaller -> 2
        boxes = np.array([
            [[0.0, 0.0, 0.99, 0.99], [0.1, 0.2, 0.15, 0.26], [0.2, 0.1, 0.42, 0.32], [0.3, 0.3, 0.41, 0.41]],
            [[0.5, 0.5, 0.56, 0.56], [0.0, 0.1, 0.9, 0.99], [0.05, 0.05, 0.15, 0.15], [0.4, 0.0, 0.6, 0.2]],
        ], np.float32)
        levels = roi_pyramid_levels(tf.constant(boxes), [1024, 1024]).numpy()
        assert levels.tolist() == [[5, 2, 4, 3], [2, 5, 3, 4]]
        got = pyramid_roi_align_graph(tf.constant(boxes), [1024, 1024], maps, (5, 4)).numpy()
        assert got.shape == (2, 4, 5, 4, 3)
        for b in range(2):
            for n in range(4):
                expected = bilinear_crop(maps[levels[b, n] - 2][b], boxes[b, n], (5, 4))
                np.testing.assert_allclose(got[b, n], expected, rtol=1e-4, atol=1e-5)

    def test_box_partly_outside_the_map_is_zero_there(self):
        rng = np.random.default_rng(1)
        maps = _feature_maps(rng, batch=1)
        box = np.array([[[-0.1, -0.1, 0.05, 0.05]]], np.float32)
        got = pyramid_roi_align_graph(tf.constant(box), [256, 256], maps, (4, 4)).numpy()[0, 0]
        expected = bilinear_crop(maps[0][0], box[0, 0], (4, 4))
        assert np.all(expected[0] == 0) and np.any(expected[-1] != 0)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    def test_layer_reads_the_image_shape_from_the_meta(self):
        rng = np.random.default_rng(2)
        maps = _feature_maps(rng, batch=1)
        meta = utils.compose_image_meta(0, (256, 256, 3), (256, 256, 3), (0, 0, 256, 256), 1.0, [0, 0])
        boxes = np.array([[[0.2, 0.2, 0.8, 0.8], [0.1, 0.1, 0.2, 0.2]]], np.float32)
        layer = PyramidROIAlign((7, 7))
        got = layer([tf.constant(boxes), tf.constant(meta[np.newaxis], tf.float32)] + [tf.constant(m) for m in maps])
        assert tuple(got.shape) == (1, 2, 7, 7, 3)
        expected = pyramid_roi_align_graph(tf.constant(boxes), [256, 256], maps, (7, 7))
        np.testing.assert_allclose(got.numpy(), expected.numpy())
        assert PyramidROIAlign.from_config(layer.get_config()).pool_shape == (7, 7)
