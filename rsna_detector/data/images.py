"""Small image conversions shared by the detector, the engine's drawing and the baselines."""
from __future__ import annotations

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["grey_to_rgb"]


def grey_to_rgb(image, name="image"):
    """A grey image repeated to three channels; a 3-channel image as it is.

    Parameters
    ----------
    image : array_like, [H, W], [H, W, 1] or [H, W, 3] (or a batch [..., H, W, 1])
        Any dtype; the values are not changed.
    name : str
        What the image is, for the error message (a file name, "detect: image 2", ...).

    Returns
    -------
    numpy.ndarray, [..., H, W, 3], the input's dtype

    Raises
    ------
    ValueError
        For another shape, naming ``name`` and the shape.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., np.newaxis]
    if image.ndim < 3 or image.shape[-1] not in (1, 3):
        raise InvalidArgumentError(f"{name}: expected a grey [H, W] or [H, W, 1], or an RGB [H, W, 3] image, "
                                   f"got shape {image.shape}")
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
