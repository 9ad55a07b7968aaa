"""Images for the network ("molding", matterport's word): ``resize_image``, ``mold_image``, ``unmold_image``.

An image is resized to the config's shape and padded or cropped (:func:`resize_image`,
over matterport's ``skimage`` wrapper :func:`resize`), then the mean pixel is
subtracted (:func:`mold_image`; :func:`unmold_image` adds it back).

Windows are ``(y1, x1, y2, x2)`` pixels, ``y2``/``x2`` exclusive. Every function
returns what matterport v2.1's function of the same name in ``mrcnn.utils``
returns; "Extension" marks inputs on which matterport fails.
"""
from __future__ import annotations

import random

import numpy as np

from ...errors import InvalidArgumentError

__all__ = ["resize", "resize_image", "mold_image", "unmold_image"]

# Feature maps are halved 6 times (P2..P6), so padded sides are multiples of 2**6.
_PAD_MULTIPLE = 64


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True, preserve_range=False,
           anti_aliasing=False, anti_aliasing_sigma=None):
    """``skimage.transform.resize`` with matterport's defaults (matterport's wrapper).

    Bool input is converted to float64 0/1 first, which is what the scikit-image
    of matterport's time did (today's refuses to interpolate bool arrays).

    Returns
    -------
    ndarray, float, ``output_shape`` (plus the trailing axes of ``image``)
    """
    import skimage.transform

    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.float64)
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing, anti_aliasing_sigma=anti_aliasing_sigma)


def _scale_for(h, w, min_dim, max_dim, min_scale, mode):
    scale = 1
    if min_dim:
        scale = max(1, min_dim / min(h, w))  # scale up, never down
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        longest = max(h, w)
        if round(longest * scale) > max_dim:
            scale = max_dim / longest
    return scale


def _centre_padding(size, target):
    before = (target - size) // 2
    return before, target - size - before


def _random_offset(rng, high):
    """Uniform int in ``[0, high]``: Python's ``random`` when ``rng`` is None (matterport's source)."""
    if rng is None:
        return random.randint(0, high)
    return int(rng.integers(0, high + 1))


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square", *, rng=None):
    """Resize an image keeping its aspect ratio, then pad or crop it.

    Parameters
    ----------
    image : ndarray, [H, W] or [H, W, C]
    min_dim : int, optional
        Scale up (never down) so that the short side is at least ``min_dim``.
    max_dim : int, optional
        'square' mode: the long side is at most ``max_dim`` (this wins over
        ``min_dim``/``min_scale``) and the image is padded to ``max_dim x max_dim``.
    min_scale : float, optional
        Scale up by at least this factor.
    mode : {'none', 'square', 'pad64', 'crop'}
        'none': unchanged. 'square': scale and zero-pad (centred) to a square of
        ``max_dim``. 'pad64': scale by ``min_dim``/``min_scale``, then zero-pad each
        side (centred) up to a multiple of 64 (``min_dim`` must be a multiple of 64).
        'crop': scale by ``min_dim``/``min_scale``, then take a random
        ``min_dim x min_dim`` crop (training only).
    rng : numpy.random.Generator, optional
        Extension: source of the crop position. None uses Python's ``random``
        module, as matterport (seed it with ``random.seed``).

    Returns
    -------
    image : ndarray, same dtype as the input
        Resized bilinearly (``skimage``, no anti-aliasing) and cast back to the
        input dtype: integer images are *truncated*, as matterport's
        ``astype`` does. A scale of exactly 1 skips the resize.
    window : tuple (y1, x1, y2, x2)
        Where the image lies in the result, exclusive ``y2``/``x2``.
    scale : float
        Resizing factor (the int 1 when not resized).
    padding : list
        ``[(top, bottom), (left, right), (0, 0)]``, three pairs whatever the image's rank, as
        matterport's (``resize_mask`` pads ``[H, W, N]`` masks with it).
    crop : tuple (y, x, height, width) or None

    Extension: 2-D images are accepted in every mode (matterport's padding
    failed on them).
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise InvalidArgumentError(f"resize_image: expected an image [H, W] or [H, W, C], got shape {image.shape}")
    if mode not in ("none", "square", "pad64", "crop"):
        raise InvalidArgumentError(f"resize_image: mode must be 'none', 'square', 'pad64' or 'crop', got {mode!r}")
    h, w = image.shape[:2]
    window, scale, padding, crop = (0, 0, h, w), 1, [(0, 0), (0, 0), (0, 0)], None
    if mode == "none":
        return image, window, scale, padding, crop
    if mode == "square" and not max_dim:
        raise InvalidArgumentError("resize_image: 'square' mode needs max_dim")
    if mode == "crop" and not min_dim:
        raise InvalidArgumentError("resize_image: 'crop' mode needs min_dim")
    if mode == "pad64" and min_dim and min_dim % _PAD_MULTIPLE:
        raise InvalidArgumentError(f"resize_image: 'pad64' mode needs min_dim a multiple of 64, got {min_dim}")

    dtype = image.dtype
    scale = _scale_for(h, w, min_dim, max_dim, min_scale, mode)
    if scale != 1:
        image = resize(image, (round(h * scale), round(w * scale)), preserve_range=True).astype(dtype)
    h, w = image.shape[:2]

    if mode == "crop":
        y = _random_offset(rng, h - min_dim)
        x = _random_offset(rng, w - min_dim)
        crop = (y, x, min_dim, min_dim)
        return image[y:y + min_dim, x:x + min_dim], (0, 0, min_dim, min_dim), scale, padding, crop

    if mode == "square":
        target_h = target_w = max_dim
    else:  # pad64
        target_h = -(-h // _PAD_MULTIPLE) * _PAD_MULTIPLE
        target_w = -(-w // _PAD_MULTIPLE) * _PAD_MULTIPLE
    top, bottom = _centre_padding(h, target_h)
    left, right = _centre_padding(w, target_w)
    padding = [(top, bottom), (left, right), (0, 0)]
    image = np.pad(image, padding[:image.ndim], mode="constant", constant_values=0)
    return image, (top, left, top + h, left + w), scale, padding, crop


def mold_image(images, config):
    """Network input from RGB images ``[..., C]``: float32 pixels minus ``config.MEAN_PIXEL``.

    Returns
    -------
    ndarray
        In the promoted type of float32 and ``MEAN_PIXEL`` (float64 for the
        default numpy array), exactly matterport's ``astype(float32) - MEAN_PIXEL``.
    """
    return np.asarray(images).astype(np.float32) - config.MEAN_PIXEL


def unmold_image(normalized_images, config):
    """Inverse of :func:`mold_image`: add the mean pixel back and cast to uint8.

    The cast truncates, as matterport's ``astype(np.uint8)`` (so a molded pixel
    can come back one lower than it was). Values outside 0..255 are clipped
    first (matterport's cast wrapped them around; extension).
    """
    images = np.asarray(normalized_images) + config.MEAN_PIXEL
    return np.clip(images, 0, 255).astype(np.uint8)
