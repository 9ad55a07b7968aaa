"""Anchors: one feature map's, the pyramid's, and the one rule of which levels get them.

:func:`pyramid_anchors` is the rule the RPN, its targets and ``MaskRCNN.get_anchors``
share: the first ``config.RPN_PYRAMID_LEVELS`` pyramid levels (one anchor scale per
level; P2..P5 for four scales), in the RPN's output order. Anchors are
``(y1, x1, y2, x2)`` pixels (normalize them with ``boxes.norm_boxes`` for the graph).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes", "pyramid_anchors"]


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchors of one feature map.

    Parameters
    ----------
    scales : float or array, [S]
        Anchor sides in pixels (of a square anchor of the same area).
    ratios : array, [R]
        Width / height ratios.
    shape : (height, width)
        Feature-map size in cells.
    feature_stride : int
        Image pixels per feature-map cell.
    anchor_stride : int
        Anchors on every ``anchor_stride``-th cell.

    Returns
    -------
    ndarray, float64, [cells * R * S, (y1, x1, y2, x2)]
        Centred on ``(i * feature_stride, j * feature_stride)``; cells in row-major
        order, and at each cell the ratios in the given order (scales within ratios).
        Height ``scale / sqrt(ratio)``, width ``scale * sqrt(ratio)``.
    """
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    ratios = np.asarray(ratios, dtype=np.float64).reshape(-1)
    ratio_grid, scale_grid = np.meshgrid(ratios, scales, indexing="ij")
    sizes = np.stack([scale_grid / np.sqrt(ratio_grid), scale_grid * np.sqrt(ratio_grid)], axis=-1)
    sizes = sizes.reshape(-1, 2)  # [K, (height, width)]
    ys = np.arange(0, shape[0], anchor_stride) * feature_stride
    xs = np.arange(0, shape[1], anchor_stride) * feature_stride
    centre_y, centre_x = np.meshgrid(ys, xs, indexing="ij")
    centres = np.stack([centre_y.ravel(), centre_x.ravel()], axis=-1).astype(np.float64)  # [P, 2]
    top_left = centres[:, None, :] - 0.5 * sizes[None, :, :]
    bottom_right = centres[:, None, :] + 0.5 * sizes[None, :, :]
    return np.concatenate([top_left, bottom_right], axis=-1).reshape(-1, 4)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride):
    """Anchors of every pyramid level, one scale per level, concatenated.

    Levels are taken from ``zip(scales, feature_shapes, feature_strides)``: with
    fewer scales than levels, only the first ``len(scales)`` levels get anchors
    (see ``Config.RPN_PYRAMID_LEVELS``).

    Returns
    -------
    ndarray, float64, [N, (y1, x1, y2, x2)]
        Anchors of ``scales[0]`` first, then ``scales[1]``, ...
    """
    levels = [  # not strict: with fewer scales than levels, the last levels get no anchors
        generate_anchors(scale, ratios, shape, stride, anchor_stride)
        for scale, shape, stride in zip(scales, feature_shapes, feature_strides, strict=False)
    ]
    if not levels:
        return np.zeros((0, 4))
    return np.concatenate(levels, axis=0)


def compute_backbone_shapes(config, image_shape):
    """Feature-map sizes of the backbone levels.

    Parameters
    ----------
    config : Config
    image_shape : (H, W, ...)

    Returns
    -------
    ndarray, int, [len(BACKBONE_STRIDES), (height, width)]
        ``ceil(H / stride), ceil(W / stride)`` per stride, or
        ``config.COMPUTE_BACKBONE_SHAPE(image_shape)`` when ``BACKBONE`` is a callable.
    """
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    height, width = int(image_shape[0]), int(image_shape[1])
    return np.array([[math.ceil(height / s), math.ceil(width / s)] for s in config.BACKBONE_STRIDES])


def pyramid_anchors(config, image_shape=None):
    """Pixel anchors of the pyramid levels that get anchors, in the RPN's output order.

    The one anchors rule of the engine: the first ``config.RPN_PYRAMID_LEVELS``
    levels (one ``RPN_ANCHOR_SCALES`` entry each) of :func:`compute_backbone_shapes`,
    with their ``BACKBONE_STRIDES``. The training pipeline uses the pixel anchors
    (RPN targets); the training graph and ``MaskRCNN.get_anchors`` normalize them
    (``boxes.norm_boxes``), the latter caching them per image shape.

    Parameters
    ----------
    config : Config
    image_shape : sequence, optional
        ``(H, W, ...)`` of the molded image; defaults to ``config.IMAGE_SHAPE``.

    Returns
    -------
    ndarray, float64, [A, (y1, x1, y2, x2)]
        Levels ``P2 .. P(1 + RPN_PYRAMID_LEVELS)``; within a level, row-major
        positions then ratios. float64, so that the IoUs of the RPN targets are
        matterport's (its ``data_generator`` uses these anchors).
    """
    image_shape = config.IMAGE_SHAPE if image_shape is None else image_shape
    levels = config.RPN_PYRAMID_LEVELS
    shapes = np.asarray(compute_backbone_shapes(config, image_shape))[:levels]
    return generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES[:levels], config.RPN_ANCHOR_RATIOS, shapes,
        config.BACKBONE_STRIDES[:levels], config.RPN_ANCHOR_STRIDE,
    )
