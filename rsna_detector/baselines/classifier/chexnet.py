"""Classifier weights from files: Keras-2 HDF5 files by layer name, CheXNet's 14-class file, the registry."""
from __future__ import annotations

import keras

from ...weights import fetch_weights
from ...weights.keras2_hdf5 import WeightsFileError, is_keras2_weights_file
from ...weights.keras2_model import WeightsMismatchError, plan_hdf5_weights
from .settings import CHEXNET_CLASS_COUNT, ClassifierError

__all__ = ["load_keras2_weights", "load_chexnet_weights", "resolve_weights"]


def load_keras2_weights(model, path, *, required=None):
    """Set ``model``'s layer weights from a Keras-2 HDF5 file, matching layers by name.

    The file is read by the library's one Keras-2 reader
    (:func:`rsna_detector.weights.keras2_model.plan_hdf5_weights`, Keras 2's rules),
    its layer names in Keras 3's spelling (Keras 2.1's DenseNet ``conv1/conv`` is
    ``conv1_conv``); nothing is assigned unless every required layer is in the file.

    Parameters
    ----------
    model : keras.Model
    path : str or Path
        A Keras-2 ``save_weights`` file, or a ``model.save`` file (``model_weights``).
    required : iterable of str, optional
        Layer names that must be in the file; default every model layer that
        has weights.

    Returns
    -------
    list of str
        Names of the layers set, in model order.

    Raises
    ------
    ClassifierError
        Not a Keras-2 HDF5 file, a required layer is missing from the file, or a
        weight's shape differs (the message names the file, the layer and both shapes).
    """
    try:
        plan = plan_hdf5_weights(model, path, by_name=True, normalise_names=True)
    except (WeightsFileError, WeightsMismatchError) as error:
        raise ClassifierError(str(error)) from error
    loaded, missing_from_file = plan.result.loaded, plan.result.missing_from_file
    required = set(loaded + missing_from_file) if required is None else set(required)
    missing = sorted(required - set(loaded))
    if missing:
        held = len(loaded) + len(plan.result.unused_in_file)
        raise ClassifierError(f"{path}: no weights for {len(missing)} layer(s) of {model.name}, e.g. "
                              f"{', '.join(missing[:5])}; the file holds {held} layers with weights")
    plan.apply()
    return list(loaded)


def load_chexnet_weights(backbone, path):
    """Load CheXNet's 14-class weights into a DenseNet121 backbone (``include_top=False, pooling='avg'``).

    The file's model is rebuilt as it was saved (``backbone`` +
    ``Dense(14, sigmoid, name='predictions')``), its weights loaded (a Keras-2
    HDF5 file by layer name, or a Keras 3 ``.weights.h5`` file), and the
    14-unit model returned; ``backbone``'s layers now hold the file's weights.

    Parameters
    ----------
    backbone : keras.Model
        ``keras.applications.DenseNet121(include_top=False, pooling='avg')``.
    path : str or Path

    Returns
    -------
    keras.Model
        The 14-class CheXNet model sharing ``backbone``'s layers.
    """
    top = keras.layers.Dense(CHEXNET_CLASS_COUNT, activation="sigmoid", name="predictions")
    chexnet = keras.Model(backbone.input, top(backbone.output), name="chexnet")
    if is_keras2_weights_file(path):
        load_keras2_weights(chexnet, path)
    else:
        chexnet.load_weights(str(path))
    return chexnet


def resolve_weights(name, weights):
    """``(keras_weights, file)``: what ``keras.applications`` gets and a file to load afterwards.

    Parameters
    ----------
    name : str
        Backbone name (one of ``CLASSIFIER_NAMES``).
    weights : 'imagenet', None, 'none', a path or a registry name
        As :func:`~rsna_detector.baselines.classifier.build_classifier`'s ``weights``.

    Returns
    -------
    keras_weights : 'imagenet' or None
    file : Path or None
        A weights file (fetched through the registry) to load after building.
    """
    if weights is None or str(weights).lower() == "none":
        return None, None
    if name == "chexnet":
        return None, fetch_weights("chexnet" if weights in ("imagenet", "chexnet") else weights)
    if weights == "imagenet":
        return "imagenet", None
    return None, fetch_weights(weights)

