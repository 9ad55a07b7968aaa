"""The classifiers' input: grey images to the backbone's scale, and the report's training augmentation."""
from __future__ import annotations

import imgaug.augmenters as iaa
import keras
import numpy as np

from ...data.images import grey_to_rgb
from .settings import ClassifierError, check_name

__all__ = ["preprocess_images", "classifier_augmentation"]

_PREPROCESS_MODULE = {"vgg19": "vgg19", "resnet50": "resnet", "densenet121": "densenet", "chexnet": "densenet"}


def preprocess_images(images, name, mode="backbone"):
    """Grey uint8 images -> the classifier's float input.

    Parameters
    ----------
    images : uint8 array [B, H, W] or [B, H, W, 1] (or already [B, H, W, 3])
    name : str
        Backbone name (one of ``CLASSIFIER_NAMES``).
    mode : {'backbone', 'rescale'}
        'backbone': ``keras.applications.<net>.preprocess_input`` (VGG19 and
        ResNet50: BGR mean subtraction; DenseNet121/CheXNet: 1/255 then ImageNet
        mean and std); 'rescale': the report's ``x / 255``.

    Returns
    -------
    float32 array [B, H, W, 3]
    """
    check_name(name)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ClassifierError(f"images: expected [B, H, W], [B, H, W, 1] or [B, H, W, 3], got {images.shape}")
    images = grey_to_rgb(images).astype(np.float32)
    if mode == "rescale":
        return images / 255.0
    if mode != "backbone":
        raise ClassifierError(f"preprocessing mode {mode!r}: expected 'backbone' or 'rescale'")
    module = getattr(keras.applications, _PREPROCESS_MODULE[name])
    return np.asarray(module.preprocess_input(images), np.float32)


def classifier_augmentation():
    """The report's training augmentation as an imgaug pipeline (uint8 grey images).

    Keras ``ImageDataGenerator(rotation_range=40, shear_range=0.2, zoom_range=0.2,
    horizontal_flip=True, brightness_range=(0.5, 1.5))`` semantics: rotation
    uniform in +-40 deg; shear uniform in +-0.2 *degrees* (Keras gives
    shear_range in degrees); zoom independently in x and y in [0.8, 1.2];
    flip left-right with probability 0.5; brightness multiplied by 0.5-1.5;
    borders filled with the nearest pixel (Keras' fill_mode 'nearest').

    Returns
    -------
    imgaug.augmenters.Sequential
    """
    return iaa.Sequential([
        iaa.Fliplr(0.5),
        iaa.Affine(rotate=(-40, 40), shear=(-0.2, 0.2), scale={"x": (0.8, 1.2), "y": (0.8, 1.2)}, mode="edge"),
        iaa.Multiply((0.5, 1.5)),
    ], name="report_classifier")
