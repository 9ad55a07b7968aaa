"""RetinaNet's input images: reading (DICOM, PNG, JPEG), the BGR-mean scale, the report's random transform."""
from __future__ import annotations

import math
from pathlib import Path

import imgaug.augmenters as iaa
import numpy as np
from imgaug.augmentables.bbs import BoundingBox, BoundingBoxesOnImage
from PIL import Image

from ...data.dicom import read_dicom, resize_square
from ...data.images import grey_to_rgb
from .settings import RetinaNetError

__all__ = ["read_grey_image", "preprocess_images", "retinanet_augmentation", "augment_image_and_boxes",
           "CAFFE_MEAN_BGR"]

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # Keras 'caffe' preprocessing, the old ResNet-50 file's


def read_grey_image(path, size=None):
    """A uint8 grey image and the file's own size.

    Parameters
    ----------
    path : str or Path
        A DICOM (``.dcm``, read through ``read_dicom``'s fast path) or an image
        Pillow reads (PNG, JPEG).
    size : int, optional
        Resize to ``[size, size]`` (``resize_square``); None keeps the size.

    Returns
    -------
    image : uint8 [H, W] or [size, size]
    original_size : (int, int)
        The file's (height, width); boxes in the file's pixels scale from it.
    """
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        image, metadata = read_dicom(path, size=size)
        return image, (int(metadata.rows), int(metadata.columns))
    try:
        with Image.open(path) as picture:
            grey = np.asarray(picture.convert("L"))
    except OSError as error:
        raise RetinaNetError(f"{path}: not a readable image ({error})") from error
    return (grey if size is None else resize_square(grey, size)), grey.shape[:2]


def preprocess_images(images):
    """uint8 grey ``[B, H, W]`` (or ``[B, H, W, 1]``) -> float32 ``[B, H, W, 3]`` minus the ImageNet BGR means."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise RetinaNetError(f"images: expected [B, H, W] grey images, got shape {images.shape}")
    return grey_to_rgb(images[..., None]).astype(np.float32) - np.asarray(CAFFE_MEAN_BGR, np.float32)


def retinanet_augmentation():
    """The report's random transform (keras-retinanet's ``random_transform_generator``) as imgaug.

    Rotation +-0.1 rad, translation +-0.1 of the image side, shear +-0.1 rad,
    scaling 0.9-1.1 independently in x and y, flip left-right and up-down each
    with probability 0.5; outside pixels black.

    Returns
    -------
    imgaug.augmenters.Sequential
    """
    degrees = math.degrees(0.1)
    return iaa.Sequential([
        iaa.Affine(rotate=(-degrees, degrees), shear=(-degrees, degrees),
                   translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)},
                   scale={"x": (0.9, 1.1), "y": (0.9, 1.1)}, mode="constant", cval=0),
        iaa.Fliplr(0.5),
        iaa.Flipud(0.5),
    ], name="retinanet_random_transform")


def augment_image_and_boxes(augmenter, image, boxes, *, min_visible=0.5):
    """Apply one random draw of ``augmenter`` to an image and its boxes.

    Parameters
    ----------
    augmenter : imgaug augmenter
    image : uint8 [H, W]
    boxes : float [N, (y1, x1, y2, x2)]
        Pixels of ``image``.
    min_visible : float
        A box keeping less than this share of its (transformed) area inside the
        image is dropped.

    Returns
    -------
    image : uint8 [H, W]
    boxes : float32 [M, (y1, x1, y2, x2)]
        The enclosing boxes of the transformed corners, clipped to the image.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    on_image = BoundingBoxesOnImage([BoundingBox(x1=b[1], y1=b[0], x2=b[3], y2=b[2]) for b in boxes],
                                    shape=image.shape[:2] + (1,))
    out_image, out_boxes = augmenter(image=image[..., None], bounding_boxes=on_image)
    kept = out_boxes.remove_out_of_image_fraction_(1.0 - min_visible).clip_out_of_image_()
    result = np.asarray([[b.y1, b.x1, b.y2, b.x2] for b in kept.bounding_boxes], np.float32).reshape(-1, 4)
    return out_image[..., 0], result
