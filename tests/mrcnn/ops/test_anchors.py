"""Anchors: generate_anchors by hand, pyramid concatenation, the 4-scales-on-5-levels case, and the one
pyramid rule (``anchors.pyramid_anchors``) that training and ``MaskRCNN.get_anchors`` share."""
import math
from types import SimpleNamespace

import numpy as np

import rsna_detector.mrcnn.model as modellib
from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.ops.anchors import pyramid_anchors

S = math.sqrt(2)


def boxes_around(cy, cx):
    """The three anchors of scale 8, ratios (0.5, 1, 2) centred on (cy, cx), in that order.

    ratio 0.5 (w/h): h = 8/sqrt(0.5) = 8*sqrt(2), w = 8*sqrt(0.5) = 4*sqrt(2)
    ratio 1:         8 x 8
    ratio 2:         h = 4*sqrt(2), w = 8*sqrt(2)
    """
    return [
        [cy - 4 * S, cx - 2 * S, cy + 4 * S, cx + 2 * S],
        [cy - 4, cx - 4, cy + 4, cx + 4],
        [cy - 2 * S, cx - 4 * S, cy + 2 * S, cx + 4 * S],
    ]


def test_generate_anchors_by_hand():
    anchors = utils.generate_anchors(8, [0.5, 1, 2], (2, 2), feature_stride=4, anchor_stride=1)
    # cells in row-major order, centres at (i * 4, j * 4)
    expected = boxes_around(0, 0) + boxes_around(0, 4) + boxes_around(4, 0) + boxes_around(4, 4)
    assert anchors.shape == (12, 4)
    np.testing.assert_allclose(anchors, expected, atol=1e-9)


def test_generate_anchors_with_anchor_stride_2():
    anchors = utils.generate_anchors(8, [1], (3, 3), feature_stride=4, anchor_stride=2)
    # cells 0 and 2 of each axis -> centres 0 and 8
    expected = [[-4, -4, 4, 4], [-4, 4, 4, 12], [4, -4, 12, 4], [4, 4, 12, 12]]
    np.testing.assert_allclose(anchors, expected)


def test_several_scales_on_one_level_keep_ratio_major_order():
    anchors = utils.generate_anchors([8, 16], [1, 4], (1, 1), feature_stride=4, anchor_stride=1)
    # ratio 1: 8x8, 16x16; ratio 4: h = s/2, w = 2s
    expected = [[-4, -4, 4, 4], [-8, -8, 8, 8], [-2, -8, 2, 8], [-4, -16, 4, 16]]
    np.testing.assert_allclose(anchors, expected)


def test_pyramid_anchors_concatenate_levels_in_scale_order():
    shapes = [[4, 4], [2, 2], [1, 1]]
    strides = [4, 8, 16]
    anchors = utils.generate_pyramid_anchors((8, 16, 32), [0.5, 1, 2], shapes, strides, 1)
    assert anchors.shape == ((16 + 4 + 1) * 3, 4)
    np.testing.assert_allclose(anchors[:48], utils.generate_anchors(8, [0.5, 1, 2], (4, 4), 4, 1))
    # first anchor of level 2 (scale 16, stride 8), ratio 1 at cell (0, 0)
    np.testing.assert_allclose(anchors[49], [-8, -8, 8, 8])
    # the last level is a single cell with scale 32
    np.testing.assert_allclose(anchors[-2], [-16, -16, 16, 16])


def test_fewer_scales_than_levels_give_fewer_levels():
    shapes = [[4, 4], [2, 2], [1, 1]]
    anchors = utils.generate_pyramid_anchors((8, 16), [0.5, 1, 2], shapes, [4, 8, 16], 1)
    assert anchors.shape == ((16 + 4) * 3, 4)


def test_rsna_like_config_anchor_count():
    class RsnaLike(Config):
        NUM_CLASSES = 2
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 256
        RPN_ANCHOR_SCALES = (16, 32, 64, 128)
    config = RsnaLike()
    shapes = utils.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                             shapes, config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    # P2..P5 only (64^2 + 32^2 + 16^2 + 8^2 cells) x 3 ratios; P6's 4x4 cells get none
    assert config.RPN_PYRAMID_LEVELS == 4
    assert anchors.shape == ((64 ** 2 + 32 ** 2 + 16 ** 2 + 8 ** 2) * 3, 4)
    # the last anchor: scale 128 ratio 2 at the last P5 cell, centre (7*32, 7*32) = (224, 224)
    np.testing.assert_allclose(anchors[-1], [224 - 32 * S, 224 - 64 * S, 224 + 32 * S, 224 + 64 * S])


class RsnaLike(Config):
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (16, 32, 64, 128)


def test_pyramid_anchors_is_the_rule_for_config_and_shape():
    config = RsnaLike()
    anchors = pyramid_anchors(config)
    # P2..P5 of the 256x256 config image, as test_rsna_like_config_anchor_count counts them by hand
    assert anchors.shape == ((64 ** 2 + 32 ** 2 + 16 ** 2 + 8 ** 2) * 3, 4) and anchors.dtype == np.float64
    np.testing.assert_allclose(anchors[-1], [224 - 32 * S, 224 - 64 * S, 224 + 32 * S, 224 + 64 * S])
    # another molded shape: 128 x 192 -> P2..P5 of 32x48, 16x24, 8x12, 4x6 cells
    other = pyramid_anchors(config, (128, 192, 3))
    assert other.shape == ((32 * 48 + 16 * 24 + 8 * 12 + 4 * 6) * 3, 4)
    # the last anchor sits on the last P5 cell, centre (3*32, 5*32) = (96, 160)
    np.testing.assert_allclose(other[-1], [96 - 32 * S, 160 - 64 * S, 96 + 32 * S, 160 + 64 * S])


def test_get_anchors_normalizes_and_caches_the_same_rule():
    config = RsnaLike()
    owner = SimpleNamespace(config=config, _anchor_cache={})
    normalized = modellib.MaskRCNN.get_anchors(owner, (128, 192, 3))
    np.testing.assert_array_equal(owner.anchors, pyramid_anchors(config, (128, 192, 3)))
    # norm_boxes by hand for the last anchor: (y1, x1, y2 - 1, x2 - 1) / (127, 191, 127, 191)
    y1, x1, y2, x2 = 96 - 32 * S, 160 - 64 * S, 96 + 32 * S, 160 + 64 * S
    np.testing.assert_allclose(normalized[-1], [y1 / 127, x1 / 191, (y2 - 1) / 127, (x2 - 1) / 191], rtol=1e-6)
    assert normalized.dtype == np.float32
    assert modellib.MaskRCNN.get_anchors(owner, (128, 192, 3)) is normalized  # cached per shape
