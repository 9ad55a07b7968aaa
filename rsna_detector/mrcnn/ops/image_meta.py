"""The image meta: one vector of an image's attributes that travels with it through the graph.

:data:`META_FIELDS` is the one statement of its layout; :func:`image_meta_size`
(``Config.IMAGE_META_SIZE``), :func:`compose_image_meta`, the numpy parser
:func:`parse_image_meta` and the graph parser :func:`parse_image_meta_graph` are
derived from it. The layout is matterport's::

    [image_id, original_image_shape (3), image_shape (3),
     window (y1, x1, y2, x2) in pixels of image_shape (4), scale (1),
     active_class_ids (NUM_CLASSES)]

The three functions keep matterport's names, signatures and results (they are
also reachable as ``utils.compose_image_meta`` / ``utils.parse_image_meta``,
``box_ops.parse_image_meta_graph`` and ``modellib.*``). TensorFlow is imported
only when :func:`parse_image_meta_graph` runs, so that ``config`` (which sizes the
meta from this table) stays free of it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...errors import InvalidArgumentError

__all__ = [
    "MetaField",
    "META_FIELDS",
    "FIXED_META_SIZE",
    "image_meta_size",
    "compose_image_meta",
    "parse_image_meta",
    "parse_image_meta_graph",
]


class MetaField(NamedTuple):
    """One field of the image meta.

    Attributes
    ----------
    name : str
        The key in the parsers' dicts and the parameter of :func:`compose_image_meta`.
    width : int or None
        How many values it takes; 1 is one value per image (parsed without a
        field axis); None takes the rest of the vector (one value per class).
    dtype : numpy dtype
        What :func:`parse_image_meta` casts it to (the graph parser keeps float32).
    """

    name: str
    width: int | None
    dtype: type


#: The fields in order (matterport's layout); only the last may have width None.
META_FIELDS = (
    MetaField("image_id", 1, np.int32),
    MetaField("original_image_shape", 3, np.int32),
    MetaField("image_shape", 3, np.int32),
    MetaField("window", 4, np.int32),
    MetaField("scale", 1, np.float32),
    MetaField("active_class_ids", None, np.int32),
)


def _field_indices(fields):
    """``({name: int index or slice}, size of the fixed-width fields)`` of a field table."""
    indices, offset = {}, 0
    for field in fields:
        if field.width is None:
            indices[field.name] = slice(offset, None)
        elif field.width == 1:
            indices[field.name] = offset
        else:
            indices[field.name] = slice(offset, offset + field.width)
        offset += field.width or 0
    return indices, offset


_INDICES, _FIXED_WIDTH = _field_indices(META_FIELDS)
#: How many values come before the per-class flags (12).
FIXED_META_SIZE = _FIXED_WIDTH


def image_meta_size(num_classes):
    """Length of an image-meta vector: ``FIXED_META_SIZE + num_classes`` (``Config.IMAGE_META_SIZE``).

    Parameters
    ----------
    num_classes : int
        Classes including the background.

    Returns
    -------
    int
    """
    return FIXED_META_SIZE + num_classes


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale, active_class_ids):
    """Pack the attributes of an image into one vector (layout: :data:`META_FIELDS`).

    Parameters
    ----------
    image_id : int
    original_image_shape, image_shape : sequence of 3 ints
        ``(H, W, C)`` before and after ``resize_image``.
    window : sequence of 4 ints
        ``(y1, x1, y2, x2)``: the real image's pixels inside ``image_shape``.
    scale : float
    active_class_ids : sequence, [NUM_CLASSES]

    Returns
    -------
    ndarray, [IMAGE_META_SIZE]
        numpy's type for the values, as matterport: float64 as soon as one value
        is a float (the scale of a resized image), int64 when all are integers.

    Raises
    ------
    ValueError
        Naming the field, when a shape or the window has the wrong number of values.
    """
    arguments = (image_id, original_image_shape, image_shape, window, scale, active_class_ids)
    values = []
    for field, value in zip(META_FIELDS, arguments, strict=True):
        if field.width == 1:
            values.append(value)
            continue
        part = list(value)
        if field.width is not None and len(part) != field.width:
            raise InvalidArgumentError(f"compose_image_meta: {field.name}: expected {field.width} values, got {value}")
        values.extend(part)
    return np.array(values)


def parse_image_meta(meta):
    """Unpack vectors made by :func:`compose_image_meta`.

    Parameters
    ----------
    meta : ndarray, [batch, IMAGE_META_SIZE] (or one vector [IMAGE_META_SIZE])

    Returns
    -------
    dict
        ``image_id`` int32 [batch], ``original_image_shape`` int32 [batch, 3],
        ``image_shape`` int32 [batch, 3], ``window`` int32 [batch, 4] (pixels),
        ``scale`` float32 [batch], ``active_class_ids`` int32 [batch, NUM_CLASSES]
        (without the batch axis for one vector: an extension).
    """
    meta = np.asarray(meta)
    return {field.name: meta[..., _INDICES[field.name]].astype(field.dtype) for field in META_FIELDS}


def parse_image_meta_graph(meta):
    """Split image-meta rows into their fields, in the graph (layout: :data:`META_FIELDS`).

    Parameters
    ----------
    meta : Tensor, float, [batch, IMAGE_META_SIZE]

    Returns
    -------
    dict of Tensor, float32
        ``image_id`` [batch], ``original_image_shape`` [batch, 3], ``image_shape``
        [batch, 3], ``window`` [batch, 4] (pixels of the molded image), ``scale``
        [batch], ``active_class_ids`` [batch, NUM_CLASSES].
    """
    import tensorflow as tf

    meta = tf.cast(meta, tf.float32)
    return {field.name: meta[:, _INDICES[field.name]] for field in META_FIELDS}
