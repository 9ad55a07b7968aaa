"""What ``MaskRCNN.detect`` does before the network, as graph ops: checks, resize, pad, mean pixel, meta, anchors.

The exported model takes a batch of uint8 images of one size and molds them
exactly as ``inference.detect.mold_one`` does (``molding.resize_image``, ``mold_image``,
``image_meta.compose_image_meta``) and adds the anchors ``MaskRCNN.get_anchors``
would give:

* :func:`check_images` -- tf.debugging assertions with readable messages (rank,
  empty batch, channels, sizes the resize mode cannot take);
* :func:`molding_plan` -- ``resize_image``'s scale, resized size, window and molded
  size for an input size (the graph twin of ``molding._scale_for`` and its padding,
  held equal by ``tests/mrcnn/export/test_export_graph.py``);
* :func:`mold_batch` -- molded images, metas and anchors, ready for the network.

Resize modes: 'square' (molded shape fixed, anchors a constant), 'none' and
'pad64' (molded shape follows the input, anchors made in the graph from
``anchors.generate_anchors``' cell offsets). 'crop' takes a random crop (a
training mode) and is refused by :func:`check_exportable`.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ...errors import RsnaDetectorError
from ..ops.anchors import generate_anchors, pyramid_anchors
from ..ops.boxes import norm_boxes
from .resample import resize_bilinear

__all__ = ["ExportError", "EXPORTABLE_RESIZE_MODES", "check_exportable", "check_images", "molding_plan",
           "mold_batch"]

#: ``IMAGE_RESIZE_MODE`` values an exported model reproduces.
EXPORTABLE_RESIZE_MODES = ("square", "none", "pad64")

# Feature maps are halved 6 times (P2..P6): molded sides are multiples of 64 (molding._PAD_MULTIPLE).
_PAD_MULTIPLE = 64


class ExportError(RsnaDetectorError, ValueError):
    """A model that cannot be exported as asked (its settings, the format, a missing converter)."""


def check_exportable(config):
    """Raise :class:`ExportError` when the config's molding cannot be reproduced inside a graph.

    'crop' mode takes a random crop (training only); a callable ``BACKBONE`` has
    feature shapes only Python knows (``COMPUTE_BACKBONE_SHAPE``), which is fine
    for 'square' (one molded shape) and not for the modes whose shape follows the input.
    """
    mode = config.IMAGE_RESIZE_MODE
    if mode not in EXPORTABLE_RESIZE_MODES:
        raise ExportError(f"export: IMAGE_RESIZE_MODE {mode!r} cannot be exported (it takes a random crop, a "
                          f"training mode); use one of {EXPORTABLE_RESIZE_MODES}")
    if mode != "square" and callable(config.BACKBONE):
        raise ExportError(f"export: IMAGE_RESIZE_MODE {mode!r} with a callable BACKBONE cannot be exported: the "
                          "feature shapes of each input size come from COMPUTE_BACKBONE_SHAPE (Python); use 'square'")


def check_images(images, channels):
    """The assertions of the serving signature; ``images`` reshaped to ``[N, H, W, C]``.

    Parameters
    ----------
    images : Tensor, uint8, [N, H, W] or [N, H, W, C] (any static rank)
    channels : int
        ``IMAGE_CHANNEL_COUNT``; C must be 1 (repeated) or this.

    Returns
    -------
    Tensor, uint8, [N, H, W, C]
        After the checks have run (control dependencies).
    """
    shape = tf.shape(images)
    rank = tf.rank(images)
    expected = f"expected uint8 images [N, H, W], [N, H, W, 1] or [N, H, W, {channels}]"
    rank_ok = tf.debugging.Assert((rank == 3) | (rank == 4), [f"images: {expected}; got shape", shape], summarize=8)
    with tf.control_dependencies([rank_ok]):
        shape = tf.shape(images)
    size_ok = tf.debugging.Assert(
        (shape[0] > 0) & (shape[1] > 0) & (shape[2] > 0),
        ["images: the batch is empty or an image has no pixels (N, H and W must be > 0); got shape", shape],
        summarize=8)
    with tf.control_dependencies([size_ok]):
        images = tf.reshape(images, tf.stack([shape[0], shape[1], shape[2], -1]))  # [N, H, W] -> [N, H, W, 1]
    depth = tf.shape(images)[3]
    channels_ok = tf.debugging.Assert((depth == 1) | (depth == channels),
                                      [f"images: {expected}; got shape", shape], summarize=8)
    with tf.control_dependencies([channels_ok]):
        return tf.identity(images)


def _round(value):
    """Python's ``round`` of a float64 tensor (half to even), as int32."""
    return tf.cast(tf.round(value), tf.int32)


def molding_plan(config, height, width, dtype=tf.float64):
    """``resize_image``'s geometry for an input of ``height x width``, in the graph.

    Parameters
    ----------
    config : Config
        ``IMAGE_RESIZE_MODE`` 'square', 'none' or 'pad64', ``IMAGE_MIN_DIM``,
        ``IMAGE_MAX_DIM``, ``IMAGE_MIN_SCALE``.
    height, width : scalar Tensor, int32
    dtype : tf.DType
        The arithmetic of the scale: float64 is Python's; float32 (TFLite) can
        round a size that lies within float32's precision of a half differently.

    Returns
    -------
    dict of Tensor
        ``scale`` ``dtype`` (1 when not resized); ``resized`` int32 ``[2]`` (the size
        after scaling); ``window`` int32 ``[(y1, x1, y2, x2)]``; ``molded`` int32
        ``[2]`` (the padded size).
    """
    mode = config.IMAGE_RESIZE_MODE
    h, w = tf.cast(height, dtype), tf.cast(width, dtype)
    scale = tf.constant(1.0, dtype)
    if mode != "none":
        if config.IMAGE_MIN_DIM:
            scale = tf.maximum(scale, float(config.IMAGE_MIN_DIM) / tf.minimum(h, w))  # scale up, never down
        if config.IMAGE_MIN_SCALE:
            scale = tf.maximum(scale, float(config.IMAGE_MIN_SCALE))
        if config.IMAGE_MAX_DIM and mode == "square":
            longest = tf.maximum(h, w)
            scale = tf.where(_round(longest * scale) > config.IMAGE_MAX_DIM,
                             float(config.IMAGE_MAX_DIM) / longest, scale)
    resized = tf.stack([_round(h * scale), _round(w * scale)])
    if mode == "square":
        molded = tf.constant([config.IMAGE_MAX_DIM] * 2, tf.int32)
    elif mode == "pad64":
        molded = (resized + _PAD_MULTIPLE - 1) // _PAD_MULTIPLE * _PAD_MULTIPLE
    else:
        molded = resized
    top_left = (molded - resized) // 2
    window = tf.concat([top_left, top_left + resized], axis=0)
    return {"scale": scale, "resized": resized, "window": window, "molded": molded}


def _check_molded(molded, mode):
    """'none' mode: the input itself is molded, so its sides must be multiples of 64 (as ``check_molded_shape``)."""
    if mode != "none":
        return []
    return [tf.debugging.Assert(
        tf.reduce_all(molded % _PAD_MULTIPLE == 0),
        ["images: IMAGE_RESIZE_MODE 'none' uses the images as they are, so height and width must be multiples "
         "of 64 (the FPN halves them 6 times); got height, width", molded])]


def _grid_anchors(config, molded, dtype):
    """Normalized anchors of a molded size known only in the graph (the 'none' and 'pad64' modes).

    Each level's anchors are ``generate_anchors``' anchors of the cell at the origin
    (numpy, computed here once) plus each cell's offset ``(i, j) * stride``: the same
    float64 sums as ``generate_anchors``' ``centre -/+ size / 2``, so with float64 ``dtype``
    the result equals ``norm_boxes(pyramid_anchors(config, molded), molded)`` exactly.
    """
    levels = []
    for scale, stride in zip(config.RPN_ANCHOR_SCALES, config.BACKBONE_STRIDES[:config.RPN_PYRAMID_LEVELS],
                             strict=False):
        base = generate_anchors(scale, config.RPN_ANCHOR_RATIOS, (1, 1), stride, config.RPN_ANCHOR_STRIDE)
        cells = -(-molded // stride)  # compute_backbone_shapes: ceil(side / stride)
        ys = tf.cast(tf.range(0, cells[0], config.RPN_ANCHOR_STRIDE) * stride, dtype)
        xs = tf.cast(tf.range(0, cells[1], config.RPN_ANCHOR_STRIDE) * stride, dtype)
        centre_y, centre_x = tf.meshgrid(ys, xs, indexing="ij")
        centres = tf.reshape(tf.stack([centre_y, centre_x, centre_y, centre_x], axis=-1), [-1, 1, 4])
        levels.append(tf.reshape(centres + tf.constant(base[np.newaxis], dtype), [-1, 4]))
    pixels = tf.concat(levels, axis=0)
    extent = tf.cast(molded, dtype) - 1.0
    scale = tf.stack([extent[0], extent[1], extent[0], extent[1]])
    return tf.cast((pixels - tf.constant([0.0, 0.0, 1.0, 1.0], dtype)) / scale, tf.float32)


def _anchors(config, molded, dtype):
    if config.IMAGE_RESIZE_MODE == "square":
        side = int(config.IMAGE_MAX_DIM)
        return tf.constant(norm_boxes(pyramid_anchors(config, (side, side)), (side, side)), tf.float32)
    return _grid_anchors(config, molded, dtype)


def _subtract_mean(levels, config):
    """``mold_image`` of images given as int32 grey levels 0..255, as float32: a table of its values.

    ``mold_image`` computes ``float32(pixel) - MEAN_PIXEL`` in numpy's promoted type
    (float64 for the default array); ``detect`` casts that to float32. A uint8 pixel
    has 256 values, so the table holds exactly those results, in every format.
    """
    channels = int(config.IMAGE_CHANNEL_COUNT)
    mean = np.broadcast_to(np.asarray(config.MEAN_PIXEL), (channels,))
    table = (np.arange(256, dtype=np.float32)[:, np.newaxis] - mean).astype(np.float32)  # [256, C]
    index = levels * channels + tf.range(channels)
    return tf.gather(tf.constant(table.reshape(-1)), index)


def _image_metas(config, batch, height, width, depth, plan):
    """``compose_image_meta(0, (H, W, depth), molded shape, window, scale, zeros)`` of each image, float32.

    ``depth`` is the images' own channel count (1 for grey), as ``detect``'s meta holds it.
    """
    channels = float(config.IMAGE_CHANNEL_COUNT)
    sizes = tf.cast(tf.stack([height, width]), tf.float32)
    row = tf.concat([
        [0.0], sizes, [tf.cast(depth, tf.float32)], tf.cast(plan["molded"], tf.float32), [channels],
        tf.cast(plan["window"], tf.float32), [tf.cast(plan["scale"], tf.float32)],
        tf.zeros([config.NUM_CLASSES], tf.float32)], axis=0)
    return tf.tile(tf.expand_dims(row, 0), tf.stack([batch, 1]))


def mold_batch(images, config, dtype=tf.float64):
    """Molded network inputs of a batch of images of one size, as ``detect`` makes them.

    Parameters
    ----------
    images : Tensor, uint8, [N, H, W, C]
        C is 1 (repeated to ``IMAGE_CHANNEL_COUNT``, as ``detect`` does) or
        ``IMAGE_CHANNEL_COUNT`` (see :func:`check_images`).
    config : Config
    dtype : tf.DType
        The arithmetic of the resize and the geometry: float64 is ``detect``'s
        exactly; float32 is what TFLite's built-in ops offer.

    Returns
    -------
    dict of Tensor
        ``images`` float32 ``[N, h, w, C]`` (resized, zero-padded, minus ``MEAN_PIXEL``);
        ``metas`` float32 ``[N, IMAGE_META_SIZE]``; ``anchors`` float32
        ``[N, A, (y1, x1, y2, x2)]`` normalized; and the plan of :func:`molding_plan`
        (``window``, ``molded``, ``scale``, ...) for unmolding.
    """
    channels = int(config.IMAGE_CHANNEL_COUNT)
    shape = tf.shape(images)
    batch, height, width, depth = shape[0], shape[1], shape[2], shape[3]
    images = tf.broadcast_to(images, tf.stack([batch, height, width, channels]))  # one channel: repeated
    plan = molding_plan(config, height, width, dtype)
    with tf.control_dependencies(_check_molded(plan["molded"], config.IMAGE_RESIZE_MODE)):
        resized = images
        if config.IMAGE_RESIZE_MODE != "none":  # scale 1 reads every pixel with weight 1: the image itself
            resized = tf.cast(resize_bilinear(images, plan["resized"][0], plan["resized"][1], dtype), tf.uint8)
        padding = tf.stack([plan["window"][:2], plan["molded"] - plan["window"][2:]], axis=1)
        # grey levels as int32 (TFLite pads no uint8), zero padding as resize_image's
        padded = tf.pad(tf.cast(resized, tf.int32), tf.concat([[[0, 0]], padding, [[0, 0]]], axis=0))
    if config.IMAGE_RESIZE_MODE == "square":
        side = int(config.IMAGE_MAX_DIM)
        padded = tf.reshape(padded, [batch, side, side, channels])
    anchors = _anchors(config, plan["molded"], dtype)
    anchors = tf.broadcast_to(tf.expand_dims(anchors, 0), tf.stack([batch, tf.shape(anchors)[0], 4]))
    metas = _image_metas(config, batch, height, width, depth, plan)
    return dict(plan, images=_subtract_mean(padded, config), metas=metas, anchors=anchors, height=height,
                width=width)
