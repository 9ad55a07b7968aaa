"""Instance masks: resized with their image, shrunk into their boxes (mini masks) and pasted back.

Masks are ``[H, W, N]`` (one channel per instance); boxes are ``(y1, x1, y2, x2)``
pixels, ``y2``/``x2`` exclusive. Every function returns what matterport v2.1's
function of the same name in ``mrcnn.utils`` returns; "Extension" marks inputs on
which matterport fails.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...errors import InvalidArgumentError
from .molding import resize

__all__ = ["resize_mask", "minimize_mask", "expand_mask", "mold_mask", "unmold_mask"]


def resize_mask(mask, scale, padding, crop=None):
    """Resize masks with the scale and padding (or crop) of :func:`resize_image`.

    Parameters
    ----------
    mask : ndarray, [H, W, N]
    scale : float
    padding : list of pairs
        As returned by :func:`resize_image`.
    crop : tuple (y, x, height, width), optional

    Returns
    -------
    ndarray, same dtype, [round(H*scale) (+ padding or cropped), ..., N]
        ``scipy.ndimage.zoom(order=0)`` (nearest neighbour, corners aligned),
        exactly matterport's sampling; a scale of 1 is the identity and skips it.
    """
    import scipy.ndimage

    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InvalidArgumentError(f"resize_mask: expected masks [H, W, N], got shape {mask.shape}")
    if scale != 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old scipy warned about how it rounds the output shape
            mask = scipy.ndimage.zoom(mask, zoom=[scale, scale, 1], order=0)
    if crop is not None:
        y, x, ch, cw = crop
        return mask[y:y + ch, x:x + cw]
    pads = [tuple(p) for p in padding[:2]] + [(0, 0)]
    return np.pad(mask, pads, mode="constant", constant_values=0)


def _box_slice(bbox):
    y1, x1, y2, x2 = (int(v) for v in np.asarray(bbox)[:4])
    return y1, x1, y2, x2


def minimize_mask(bbox, mask, mini_shape):
    """Crop each mask to its box and resize it to ``mini_shape`` (saves memory).

    Parameters
    ----------
    bbox : array, int, [N, (y1, x1, y2, x2)]
    mask : ndarray, [H, W, N]
    mini_shape : (height, width)

    Returns
    -------
    ndarray, bool, [mini_h, mini_w, N]
        Bilinear resize (:func:`resize`) rounded half to even: a pixel is set
        when the interpolated value is > 0.5 (matterport's ``np.around``).

    Raises
    ------
    ValueError
        When a box has zero area.
    """
    mask = np.asarray(mask)
    mini_shape = tuple(int(v) for v in mini_shape)
    mini_mask = np.zeros(mini_shape + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = _box_slice(bbox[i])
        crop = mask[:, :, i].astype(bool)[y1:y2, x1:x2]
        if crop.size == 0:
            raise InvalidArgumentError(f"minimize_mask: box {i} {(y1, x1, y2, x2)} has zero area")
        mini_mask[:, :, i] = np.around(resize(crop, mini_shape)).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Resize mini masks back into their boxes (inverse of :func:`minimize_mask`).

    Parameters
    ----------
    bbox : array, int, [N, (y1, x1, y2, x2)]
    mini_mask : ndarray, [mini_h, mini_w, N]
    image_shape : (H, W, ...)

    Returns
    -------
    ndarray, bool, [H, W, N]
        Bilinear resize rounded half to even (> 0.5), as matterport.

    Extension: a zero-area box leaves its mask empty (matterport failed).
    """
    mini_mask = np.asarray(mini_mask)
    mask = np.zeros(tuple(int(v) for v in image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mini_mask.shape[-1]):
        y1, x1, y2, x2 = _box_slice(bbox[i])
        if y2 > y1 and x2 > x1:
            mask[y1:y2, x1:x2, i] = np.around(resize(mini_mask[:, :, i], (y2 - y1, x2 - x1))).astype(bool)
    return mask


def mold_mask(mask, config):
    """matterport's unimplemented placeholder, kept for its API: returns None."""
    del mask, config
    return None


def unmold_mask(mask, bbox, image_shape):
    """Paste a small float mask predicted by the network into a full-size binary mask.

    Parameters
    ----------
    mask : ndarray, float, [h, w]
        Typically 28x28 probabilities.
    bbox : (y1, x1, y2, x2)
        Box in pixels of ``image_shape`` to fit the mask in.
    image_shape : (H, W, ...)

    Returns
    -------
    ndarray, bool, [H, W]
        True where the bilinearly resized mask is >= 0.5 (matterport's threshold).

    Extension: the part of a box outside the image is cut off, and an empty box
    gives an empty mask (matterport failed on both).
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    full_mask = np.zeros((height, width), dtype=bool)
    y1, x1, y2, x2 = _box_slice(bbox)
    if y2 <= y1 or x2 <= x1:
        return full_mask
    resized = resize(mask, (y2 - y1, x2 - x1)) >= 0.5
    top, left = max(y1, 0), max(x1, 0)
    bottom, right = min(y2, height), min(x2, width)
    if bottom > top and right > left:
        full_mask[top:bottom, left:right] = resized[top - y1:bottom - y1, left - x1:right - x1]
    return full_mask
