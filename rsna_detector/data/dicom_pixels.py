"""Decoded DICOM pixel values -> 8-bit grey, and the one resize both decode paths use.

:func:`to_uint8` applies the file's photometric interpretation, modality LUT and
window; :func:`resize_square` brings an image to ``[size, size]``.
:mod:`rsna_detector.data.dicom` reads the files and re-exports both.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import InvalidArgumentError, RsnaDetectorWarning

__all__ = ["DicomMetadataWarning", "to_uint8", "resize_square", "power_of_two_reduction", "warn_header"]


class DicomMetadataWarning(RsnaDetectorWarning):
    """A header value of a DICOM file cannot be parsed or applied; the message names the file, the field and
    what is done instead (the field reads as None, or the window is not used)."""


def warn_header(path, field, problem, consequence):
    """Warn ``'FILE: field FIELD: PROBLEM; CONSEQUENCE'`` (:class:`DicomMetadataWarning`)."""
    warnings.warn(f"{path}: field {field}: {problem}; {consequence}", DicomMetadataWarning, stacklevel=5)


# ---------------------------------------------------------------- pixels -> uint8
def _grey_from_colour(array):
    """[H, W, 3] RGB -> [H, W] float64 luma (ITU-R BT.601 weights)."""
    return array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _scale_to_uint8(array, low, high):
    """Map ``[low, high]`` linearly to ``[0, 255]``; a constant image becomes 0."""
    if not high > low:
        return np.zeros(array.shape, np.uint8)
    scaled = (np.asarray(array, np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _voi_output_range(dataset):
    """(low, high) of what pydicom's ``apply_voi_lut`` can output for this dataset."""
    from pydicom.pixels import apply_voi_lut

    if dataset.get("VOILUTSequence"):
        descriptor = dataset.VOILUTSequence[0].LUTDescriptor
        entries, first_map = descriptor[0] or 2 ** 16, descriptor[1]
        lut = apply_voi_lut(np.arange(first_map, first_map + entries, dtype=np.int64), dataset)
        return float(lut.min()), float(lut.max())
    # a window saturates at its output bounds: probing with -inf/+inf yields them
    bounds = apply_voi_lut(np.array([-np.inf, np.inf]), dataset, prefer_lut=False)
    return float(bounds[0]), float(bounds[1])


def _header_lut(fields, dataset, apply, consequence):
    """``apply()``, or None with a :class:`DicomMetadataWarning` when the header's values cannot be applied."""
    try:
        return apply()
    except Exception as error:  # noqa: BLE001 - e.g. WindowWidth 0: pydicom raises ValueError
        warn_header(getattr(dataset, "filename", None) or "<dataset>", fields,
                     f"cannot be applied ({type(error).__name__}: {error})", consequence)
        return None


def _has_voi(dataset):
    return bool(dataset.get("VOILUTSequence")) or ("WindowCenter" in dataset and "WindowWidth" in dataset)


def to_uint8(array, dataset):
    """Decoded pixel values -> uint8 grey [H, W], bone bright.

    Rules, in order:

    1. colour ([H, W, 3], RGB after pydicom's YBR->RGB conversion; PALETTE
       COLOR through its colour LUT) becomes grey by BT.601 luma;
    2. uint8 data (8 bits stored or fewer) are used as stored;
    3. wider data (12/16-bit, signed, float): the modality LUT / rescale is
       applied, then, when the file has a VOI LUT or WindowCenter/WindowWidth,
       pydicom's ``apply_voi_lut`` (the first LUT, else the first window) and
       the VOI output range is mapped linearly to 0..255 (values outside the
       window saturate at 0 / 255); without VOI data, or when the header's
       LUT or window cannot be applied (a WindowWidth of 0: a
       :class:`DicomMetadataWarning` names the file), the image is min-max
       scaled to 0..255;
    4. MONOCHROME1 images are inverted (``255 - v``) so that bone is bright as
       in MONOCHROME2.

    Parameters
    ----------
    array : numpy.ndarray
        One frame as pydicom decodes it: [H, W] or [H, W, samples].
    dataset : pydicom.Dataset
        Its header (photometric interpretation, LUTs, windows).

    Returns
    -------
    numpy.ndarray
        uint8 [H, W].
    """
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, dataset)
    if array.ndim == 3:
        grey = _grey_from_colour(array)
        if array.dtype == np.uint8:
            image = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        else:
            image = _scale_to_uint8(grey, grey.min(), grey.max())
    elif array.dtype == np.uint8:
        image = array
    else:
        values = _header_lut("RescaleSlope/RescaleIntercept or ModalityLUTSequence", dataset,
                             lambda: apply_modality_lut(array, dataset), "the stored values are used")
        values = array if values is None else values
        windowed = _header_lut("WindowCenter/WindowWidth or VOILUTSequence", dataset,
                               lambda: (apply_voi_lut(values, dataset), *_voi_output_range(dataset)),
                               "the image is min-max scaled instead") if _has_voi(dataset) else None
        if windowed is not None:
            image = _scale_to_uint8(*windowed)
        else:
            image = _scale_to_uint8(values, float(np.min(values)), float(np.max(values)))
    if photometric == "MONOCHROME1":
        image = 255 - image
    return np.ascontiguousarray(image, dtype=np.uint8)


# ---------------------------------------------------------------- resizing
def resize_square(image, size):
    """Resize a uint8 grey image to ``[size, size]`` (aspect ratio not kept).

    The one resize used by both decode paths. Shrinking happens in two steps:
    first a block average over ``k x k`` pixels (Pillow ``Image.reduce``),
    ``k`` the largest power of two with ``k * size <= min(H, W)`` -- the
    reduction libjpeg performs in the DCT domain on the fast path -- then
    Pillow ``BOX`` (area average) to exactly ``size``. Enlarging uses
    ``BILINEAR``. An image already ``[size, size]`` is returned unchanged.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 [H, W].
    size : int
        Output side in pixels.

    Returns
    -------
    numpy.ndarray
        uint8 [size, size].
    """
    from PIL import Image

    return _resize_pil(Image.fromarray(np.asarray(image, np.uint8)), size)


def power_of_two_reduction(width, height, size):
    """Largest power of two ``k`` with ``k * size <= min(width, height)`` (1 when none)."""
    ratio = min(width, height) // size
    return 1 << (ratio.bit_length() - 1) if ratio >= 1 else 1


def _resize_pil(picture, size):
    from PIL import Image

    size = int(size)
    if size <= 0:
        raise InvalidArgumentError(f"size must be a positive number of pixels, got {size}")
    factor = power_of_two_reduction(*picture.size, size)
    if factor > 1:
        picture = picture.reduce(factor)
    if picture.size != (size, size):
        shrinking = size <= min(picture.size)
        picture = picture.resize((size, size), Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    return np.asarray(picture, np.uint8)


