"""The classifiers' fixed settings: backbone names, input shape, the model-name rule, the package's error.

Keras-free, so that the command line can offer the names without importing TensorFlow.
"""
from __future__ import annotations

from ...errors import RsnaDetectorError

__all__ = [
    "CLASSIFIER_NAMES",
    "CHEXNET_CLASS_COUNT",
    "DEFAULT_INPUT_SHAPE",
    "MODEL_SUFFIX",
    "ClassifierError",
    "check_name",
    "backbone_name",
]

CLASSIFIER_NAMES = ("vgg19", "resnet50", "densenet121", "chexnet")
CHEXNET_CLASS_COUNT = 14
DEFAULT_INPUT_SHAPE = (224, 224, 3)
MODEL_SUFFIX = "_pneumonia"  # a classifier of backbone <name> is the Keras model '<name>_pneumonia'


class ClassifierError(RsnaDetectorError, ValueError):
    """Invalid classifier input: unknown backbone, weights file of another layout, bad labels."""


def check_name(name):
    """Raise ClassifierError unless ``name`` is one of ``CLASSIFIER_NAMES``."""
    if name not in CLASSIFIER_NAMES:
        raise ClassifierError(f"classifier name {name!r}: expected one of {', '.join(CLASSIFIER_NAMES)}")


def backbone_name(model, name=None, default=None):
    """The backbone name: ``name`` if given, else from the model's name ``<name>_pneumonia``, else ``default``.

    Raises
    ------
    ClassifierError
        ``name`` or ``default`` is not a known backbone, or none is given and the
        model's name tells none.
    """
    if name is not None:
        check_name(name)
        return name
    prefix = model.name[: -len(MODEL_SUFFIX)] if model.name.endswith(MODEL_SUFFIX) else model.name
    if prefix in CLASSIFIER_NAMES:
        return prefix
    if default is not None:
        check_name(default)
        return default
    raise ClassifierError(f"model {model.name!r}: cannot tell its backbone; pass name= one of "
                          f"{', '.join(CLASSIFIER_NAMES)}")
