"""The Keras-1/Keras-2 HDF5 weights layout: the one reader and writer of the file (h5py, numpy).

Keras 2's ``save_weights`` (and the ``model_weights`` group of its ``model.save``)
wrote this layout: matterport's ``mask_rcnn_coco.h5``, Keras' ImageNet files, the
CheXNet weights and this library's Mask R-CNN checkpoints are in it. Keras 3 no
longer reads it. This module reads and writes the file only;
:mod:`rsna_detector.weights.keras2_model` pairs it with a Keras model.

The layout
----------
* The root, or in a ``model.save`` file its top-level ``model_weights`` group, holds
  the attribute ``layer_names``: a 1-D array of byte strings naming every layer of the
  saved model, weightless ones included. Keras 2 split an attribute longer than 64 KB
  into ``layer_names0``, ``layer_names1``, ... (the same for ``weight_names``). An
  attribute with a null dataspace (``h5py.Empty``) is an empty list. The root wins
  when it has ``layer_names`` and a ``model_weights`` group as well (Keras 2's rule).
* Keras 2 also wrote ``keras_version`` and ``backend`` there; Keras 1's ``save_weights``
  wrote ``layer_names`` only (the ImageNet ResNet-50 file of 2016), which Keras 2 read
  as version ``'1'`` with an unknown backend.
* Each listed layer has a group of its name with the attribute ``weight_names``, the
  layer's weights in the layer's own order (Keras 1 and 2 saved
  ``trainable_weights + non_trainable_weights``; a weightless layer has an empty list).
  Each weight name is the path of its dataset inside the group: Keras 2's
  ``conv1/kernel:0`` is the dataset ``kernel:0`` of the subgroup ``conv1``; Keras 1's
  ``conv1_W:0``, ``bn_conv1_running_std:0`` sit directly in the group.
* A nested model (matterport's ``rpn_model``) is one group listing the weights of its
  inner layers (``rpn_conv_shared/kernel:0``, ...), every trainable weight first.

Layer names
-----------
Keras 2.1's DenseNet named its stem ``conv1/conv``, ``conv1/bn``; Keras 3 spells these
layers ``conv1_conv``, ``conv1_bn``. Opened with ``normalise_names=True``, a file's
layer names read with every ``/`` as ``_`` (:func:`normalise_layer_name`).
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from .._io import atomic_path
from ..errors import InputFileNotFoundError, RsnaDetectorError

__all__ = ["WeightsFileError", "Keras2WeightsFile", "KERAS1_VERSION", "normalise_layer_name", "dataset_problem",
           "weights_file_problem", "is_keras2_weights_file", "read_weight_file_layers", "read_hdf5_weights",
           "write_hdf5_weights"]

# HDF5 object headers hold at most 64 KiB; Keras 2 split longer attributes into numbered chunks.
_ATTRIBUTE_CHUNK_BYTES = 64000
KERAS1_VERSION = "1"
"""The ``keras_version`` Keras 2 gave a file without one (a Keras-1 file)."""


class WeightsFileError(RsnaDetectorError, ValueError):
    """The file is not a Keras-2 HDF5 weights file, or its layout is broken."""


def normalise_layer_name(name):
    """A Keras-2 layer name in Keras 3's spelling: ``'conv1/conv'`` -> ``'conv1_conv'``."""
    return name.replace("/", "_")


# ----------------------------------------------------------------------------
# attributes
# ----------------------------------------------------------------------------

def _as_text_list(value):
    if isinstance(value, h5py.Empty):  # an attribute with a null dataspace: an empty list
        return []
    if isinstance(value, (bytes, str)):
        return [value]
    return list(np.atleast_1d(value))


def _read_text_list_attribute(group, name):
    """A list-of-strings attribute, joining Keras 2's numbered chunks (``name0``, ``name1``...).

    Returns None when the group has neither ``name`` nor ``name0``.
    """
    if name in group.attrs:
        values = _as_text_list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(_as_text_list(group.attrs[f"{name}{chunk}"]))
            chunk += 1
        if chunk == 0:
            return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_text_attribute(group, name):
    if name not in group.attrs:
        return None
    value = group.attrs[name]
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _write_text_list_attribute(group, name, values):
    encoded = np.array([v.encode("utf8") for v in values]) if values else np.array([], dtype="S1")
    chunks = max(1, -(-encoded.nbytes // _ATTRIBUTE_CHUNK_BYTES))
    if chunks == 1:
        group.attrs[name] = encoded
        return
    for index, part in enumerate(np.array_split(encoded, chunks)):
        group.attrs[f"{name}{index}"] = part


def _has_layer_names(group):
    return "layer_names" in group.attrs or "layer_names0" in group.attrs


def _weights_root(handle):
    """The group holding ``layer_names``: the root, else ``model_weights``; None when neither does."""
    if _has_layer_names(handle):
        return handle
    if "model_weights" in handle and isinstance(handle["model_weights"], h5py.Group) \
            and _has_layer_names(handle["model_weights"]):
        return handle["model_weights"]
    return None


# ----------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------

class Keras2WeightsFile:
    """An open Keras-1/Keras-2 HDF5 weights file, read only; a context manager.

    Parameters
    ----------
    filepath : str or Path
        A weights file (root ``layer_names``) or a full-model file (``model_weights``).
    normalise_names : bool
        Read layer names in Keras 3's spelling (:func:`normalise_layer_name`).

    Attributes
    ----------
    filepath : str
    layers : list of str
        The names of every layer the file lists, weightless ones included, in file order.
    keras_version : str
        The file's ``keras_version``; :data:`KERAS1_VERSION` when it has none.
    backend : str or None
        The file's ``backend`` (``'tensorflow'``, ``'theano'``), None when absent.

    Raises
    ------
    FileNotFoundError
        When ``filepath`` does not exist.
    WeightsFileError
        Not HDF5; no ``layer_names`` at the root or in ``model_weights`` (e.g. a Keras 3
        ``.weights.h5`` file); a layer listed twice (after normalisation).
    """

    def __init__(self, filepath, normalise_names=False):
        self.filepath = str(filepath)
        if not os.path.isfile(self.filepath):
            raise InputFileNotFoundError(f"{self.filepath}: weights file not found")
        try:
            self._handle = h5py.File(self.filepath, "r")
        except OSError as error:
            raise WeightsFileError(f"{self.filepath}: not a readable HDF5 file ({error})") from error
        try:
            self._root = _weights_root(self._handle)
            if self._root is None:
                raise WeightsFileError(
                    f"{self.filepath}: not a Keras-2 HDF5 weights file (no 'layer_names' attribute at the root or "
                    "in 'model_weights'); Keras-3 '.weights.h5' files load with keras_model.load_weights instead")
            self._groups = self._group_names(normalise_names)
        except BaseException:
            self._handle.close()
            raise
        self.layers = list(self._groups)
        self.keras_version = _read_text_attribute(self._root, "keras_version") or KERAS1_VERSION
        self.backend = _read_text_attribute(self._root, "backend")

    def _group_names(self, normalise_names):
        """``{layer name as read: group name in the file}`` in file order."""
        groups = {}
        for group_name in _read_text_list_attribute(self._root, "layer_names"):
            name = normalise_layer_name(group_name) if normalise_names else group_name
            if name in groups:
                raise WeightsFileError(f"{self.filepath}: the layer {name!r} is listed twice in 'layer_names' "
                                       f"(as {groups[name]!r} and {group_name!r})")
            groups[name] = group_name
        return groups

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the HDF5 file (the datasets handed out become unreadable)."""
        self._handle.close()

    def _group(self, layer_name):
        group_name = self._groups[layer_name]
        if group_name not in self._root:
            raise WeightsFileError(f"{self.filepath}: layer {group_name!r} is listed in 'layer_names' but has no group")
        return self._root[group_name]

    def weight_names(self, layer_name):
        """The file's weight names of one layer (``'conv1/kernel:0'``), in file order; [] when weightless."""
        return _read_text_list_attribute(self._group(layer_name), "weight_names") or []

    def datasets(self, layer_name):
        """The weights of one layer as ``[(weight name, h5py.Dataset)]`` in file order (read on access)."""
        group = self._group(layer_name)
        datasets = []
        for weight_name in self.weight_names(layer_name):
            if weight_name not in group or not isinstance(group[weight_name], h5py.Dataset):
                raise WeightsFileError(f"{self.filepath}: layer {self._groups[layer_name]!r} lists the weight "
                                       f"{weight_name!r}, which is not a dataset of its group")
            datasets.append((weight_name, group[weight_name]))
        return datasets


def dataset_problem(dataset, *, require_storage=False):
    """Why an HDF5 dataset cannot hold weights, from its metadata alone (nothing is read), or None.

    Refused: a dtype that is not a number (strings, compounds, references). With
    ``require_storage`` also a dataset whose storage was never written, wholly or in
    part (a contiguous one storing fewer bytes than its shape needs, a chunked one with
    unwritten chunks): such a file can declare 1e6 x 1e6 values in a few KB. Loading
    does not require it (an unwritten dataset reads as its fill value, a valid HDF5
    value); :func:`weights_file_problem` does, for the library's checkpoints, which are
    always written whole.
    """
    if dataset.dtype.kind not in "fiub":
        return f"file dtype {dataset.dtype} is not numeric"
    expected = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize
    if not require_storage or not expected:
        return None
    if dataset.chunks is None:
        stored = dataset.id.get_storage_size()
        if stored < expected:
            return f"the file stores {stored} of its {expected} bytes (never written or cut short)"
        return None
    chunks = int(np.prod([-(-n // c) for n, c in zip(dataset.shape, dataset.chunks, strict=True)], dtype=np.int64))
    written = dataset.id.get_num_chunks()
    if written < chunks:
        return f"the file has written {written} of its {chunks} chunks (never written or cut short)"
    return None


def weights_file_problem(filepath):
    """Why a file cannot be a whole Keras-2 HDF5 weights file, from its layout and metadata (no value read), or None.

    The layout as :class:`Keras2WeightsFile` reads it, at least one layer, and every
    listed weight a numeric dataset whose storage is all written
    (:func:`dataset_problem` with ``require_storage``): a checkpoint ``find_last`` may
    pick. Does not know the model: shapes are compared on loading.
    """
    try:
        with Keras2WeightsFile(filepath) as weights_file:
            if not weights_file.layers:
                return "no layers in the file"
            for layer in weights_file.layers:
                for weight_name, dataset in weights_file.datasets(layer):
                    problem = dataset_problem(dataset, require_storage=True)
                    if problem:
                        return f"layer {layer!r}, weight {weight_name!r}: {problem}"
    except (OSError, WeightsFileError, KeyError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def is_keras2_weights_file(filepath):
    """True when ``filepath`` is an HDF5 file in the Keras-2 layout (root or ``model_weights``).

    False for other HDF5 files (a Keras 3 ``.weights.h5``) and for files that are not
    HDF5 (a Keras 3 ``.keras`` archive).

    Raises
    ------
    FileNotFoundError
        When ``filepath`` does not exist.
    """
    if not os.path.isfile(filepath):
        raise InputFileNotFoundError(f"{filepath}: weights file not found")
    try:
        with h5py.File(filepath, "r") as handle:
            return _weights_root(handle) is not None
    except OSError:
        return False


def read_weight_file_layers(filepath, normalise_names=False):
    """Layer names and their weight names/shapes in a Keras-2 HDF5 weights file.

    Returns
    -------
    dict
        ``{layer_name: [(weight_name, shape), ...]}`` in file order (layers without
        weights included, with an empty list).
    """
    with Keras2WeightsFile(filepath, normalise_names) as weights_file:
        return {name: [(weight_name, tuple(dataset.shape)) for weight_name, dataset in weights_file.datasets(name)]
                for name in weights_file.layers}


def read_hdf5_weights(filepath, normalise_names=False):
    """The arrays of a Keras-2 HDF5 weights file, by layer, as stored (no conversion).

    Parameters
    ----------
    filepath : str or Path
    normalise_names : bool
        Layer names in Keras 3's spelling (``conv1/conv`` -> ``conv1_conv``).

    Returns
    -------
    dict
        ``{layer_name: [ndarray, ...]}`` in file order, each layer's arrays in its
        ``weight_names`` order; layers without weights left out. A nested model is one
        entry holding the weights of all its inner layers.

    Raises
    ------
    FileNotFoundError, WeightsFileError
        As :class:`Keras2WeightsFile`.
    """
    with Keras2WeightsFile(filepath, normalise_names) as weights_file:
        layers = {name: [np.asarray(dataset[()]) for _, dataset in weights_file.datasets(name)]
                  for name in weights_file.layers}
    return {name: arrays for name, arrays in layers.items() if arrays}


# ----------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------

def write_hdf5_weights(filepath, layers, attributes=None):
    """Write weights in the Keras-2 HDF5 layout, atomically.

    Parameters
    ----------
    filepath : str or Path
        Written through a temporary file in the same folder (created when absent),
        then renamed, so a crash never leaves a half-written file under this name.
    layers : dict
        ``{layer_name: [(weight_name, array), ...]}`` in the order to list them; each
        weight name (``'conv1/kernel:0'``) is the dataset's path inside the layer's
        group; an array is anything ``numpy.asarray`` takes (a Keras variable too),
        converted one at a time while writing.
    attributes : dict, optional
        Root attributes besides ``layer_names`` (``keras_version``, ``backend``, ...).

    Returns
    -------
    str
        ``filepath``.
    """
    filepath = str(filepath)
    Path(filepath).absolute().parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(filepath) as temporary, h5py.File(temporary, "w") as handle:
        _write_text_list_attribute(handle, "layer_names", list(layers))
        for key, value in (attributes or {}).items():
            handle.attrs[key] = value
        for layer_name, weights in layers.items():
            group = handle.create_group(layer_name)
            _write_text_list_attribute(group, "weight_names", [name for name, _ in weights])
            for name, value in weights:
                group.create_dataset(name, data=np.asarray(value))
    return filepath
