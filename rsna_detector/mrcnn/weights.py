"""Weights in Keras-2 HDF5 files, matched to the model's layers by name.

Keras 3 no longer reads the Keras-2 HDF5 layout that matterport's ``mask_rcnn_coco.h5``
and the ImageNet ResNet files use, so this module reads it with h5py:

* the root (or, in a full-model file, the ``model_weights`` group) has the attribute
  ``layer_names`` (possibly split into ``layer_names0``, ``layer_names1``, ... when long);
* each layer has a group of that name whose attribute ``weight_names`` lists its
  weights (``conv1/kernel:0``, ``bn_conv1/gamma:0``, ...); the datasets sit at those
  paths inside the group;
* a nested model (matterport's ``rpn_model``) is one group whose weight names carry the
  inner layer's name (``rpn_conv_shared/kernel:0``).

A file weight is matched to a model variable by its name (``kernel``, ``bias``,
``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, prefixed by the inner layer's
name inside a nested model), never by position. :func:`save_hdf5_weights` writes the
same layout, so one loader reads matterport's files and the library's own checkpoints.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

import h5py
import keras
import numpy as np

__all__ = ["WeightsMismatchError", "WeightsFileError", "load_hdf5_weights", "save_hdf5_weights",
           "model_weight_groups", "read_weight_file_layers"]

logger = logging.getLogger(__name__)

# HDF5 object headers hold at most 64 KiB; Keras 2 split longer attributes into numbered chunks.
_ATTRIBUTE_CHUNK_BYTES = 64000


class WeightsFileError(ValueError):
    """The file is not a Keras-2 HDF5 weights file, or its layout is broken."""


class WeightsMismatchError(ValueError):
    """Weights of the file do not fit the model's layers.

    Attributes
    ----------
    layers : list of str
        Names of every layer that did not fit (what ``exclude=`` takes).
    problems : list of str
        One line per problem: layer, weight, file shape and model shape.
    """

    def __init__(self, filepath, problems):
        self.layers = sorted({layer for layer, _ in problems})
        self.problems = [f"{layer}: {text}" for layer, text in problems]
        lines = "\n  ".join(self.problems)
        super().__init__(
            f"{filepath}: {len(self.layers)} layer(s) do not fit the model:\n  {lines}\n"
            f"Skip them with exclude={self.layers} (e.g. when the number of classes differs)."
        )


# ----------------------------------------------------------------------------
# the model side
# ----------------------------------------------------------------------------

def _strip_suffix(name):
    """``'conv1/kernel:0'`` -> ``'conv1/kernel'``."""
    return re.sub(r":\d+$", "", name)


def model_weight_groups(model, exclude=()):
    """The model's weights grouped as a Keras-2 file groups them.

    Parameters
    ----------
    model : keras.Model
    exclude : iterable of str
        Names of top-level layers (or of layers inside a nested model) to leave out.

    Returns
    -------
    dict
        ``{layer_name: {key: variable}}`` in layer order, for layers with weights.
        ``key`` is the variable's name (``'kernel'``) or, inside a nested model,
        ``'inner_layer/variable'`` (``'rpn_conv_shared/kernel'``).
    """
    exclude = set(exclude or ())
    groups = {}
    for layer in model.layers:
        if layer.name in exclude or not layer.weights:
            continue
        if isinstance(layer, keras.Model):
            variables = {}
            for prefix, inner in _inner_layers(layer):
                if inner.name in exclude:
                    continue
                for variable in inner.weights:
                    variables[f"{prefix}{variable.name}"] = variable
        else:
            variables = {variable.name: variable for variable in layer.weights}
        if variables:
            groups[layer.name] = variables
    return groups


def _inner_layers(model, prefix=""):
    """``(key prefix, layer)`` for the weight-owning layers of a nested model, depth first."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _inner_layers(layer, f"{prefix}{layer.name}/")
        elif layer.weights:
            yield f"{prefix}{layer.name}/", layer


# ----------------------------------------------------------------------------
# the file side
# ----------------------------------------------------------------------------

def _read_text_list_attribute(group, name):
    """A list-of-strings attribute, joining Keras 2's numbered chunks (``name0``, ``name1``...)."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
        if chunk == 0:
            return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _weights_root(handle, filepath):
    if "layer_names" not in handle.attrs and "layer_names0" not in handle.attrs and "model_weights" in handle:
        handle = handle["model_weights"]
    if _read_text_list_attribute(handle, "layer_names") is None:
        raise WeightsFileError(
            f"{filepath}: not a Keras-2 HDF5 weights file (no 'layer_names' attribute at the root or in "
            "'model_weights'); Keras-3 '.weights.h5' files load with keras_model.load_weights instead")
    return handle


def read_weight_file_layers(filepath):
    """Layer names and their weight names/shapes in a Keras-2 HDF5 weights file.

    Returns
    -------
    dict
        ``{layer_name: [(weight_name, shape), ...]}`` in file order (layers without
        weights included, with an empty list).
    """
    with h5py.File(filepath, "r") as handle:
        root = _weights_root(handle, filepath)
        return {name: [(weight_name, shape) for weight_name, shape in _group_weight_shapes(root, name, filepath)]
                for name in _read_text_list_attribute(root, "layer_names")}


def _group_weight_names(root, layer_name, filepath):
    if layer_name not in root:
        raise WeightsFileError(f"{filepath}: layer {layer_name!r} is listed in 'layer_names' but has no group")
    return _read_text_list_attribute(root[layer_name], "weight_names") or []


def _group_weight_shapes(root, layer_name, filepath):
    group = root[layer_name] if layer_name in root else None
    for weight_name in _group_weight_names(root, layer_name, filepath):
        yield weight_name, tuple(group[weight_name].shape)


def _same_path(file_parts, key_parts):
    """Path components equal, allowing Keras 2's uniquifying suffix on layer names (``conv_1``)."""
    if len(file_parts) != len(key_parts) or file_parts[-1] != key_parts[-1]:
        return False
    return all(f == k or re.fullmatch(re.escape(k) + r"_\d+", f) for f, k in zip(file_parts[:-1], key_parts[:-1]))


def _match_weights(layer_name, file_names, variables):
    """Pair file weight names with model variable keys by name.

    Returns ``(pairs [(file_name, key)], problems [(layer, text)])``. A file name matches
    a key when its last path components equal the key's (a prefix such as the outer
    model's name is allowed, and an inner layer name may carry a ``_N`` suffix).
    """
    pairs, problems, used = [], [], set()
    for key in variables:
        key_parts = key.split("/")
        found = [name for name in file_names
                 if name not in used and _same_path(_strip_suffix(name).split("/")[-len(key_parts):], key_parts)]
        if len(found) != 1:
            problems.append((layer_name, f"weight {key!r}: {'not in the file' if not found else 'ambiguous'} "
                                         f"(file has {file_names})"))
            continue
        used.add(found[0])
        pairs.append((found[0], key))
    for name in file_names:
        if name not in used:
            problems.append((layer_name, f"file weight {name!r} has no variable in the model layer "
                                         f"(model has {list(variables)})"))
    return pairs, problems


# ----------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------

def _pair_layers(file_layers, groups, by_name, exclude, filepath):
    """``[(file_layer_name, model_layer_name)]`` to load."""
    if by_name:
        pairs = [(name, name) for name in file_layers if name in groups]
        ignored = [name for name in file_layers if name not in groups and name not in exclude]
        if ignored:
            logger.debug("%s: %d file layer(s) not in the model (ignored): %s", filepath, len(ignored), ignored)
        missing = [name for name in groups if name not in set(file_layers)]
        if missing:
            logger.debug("%s: %d model layer(s) not in the file (unchanged): %s", filepath, len(missing), missing)
        return pairs
    if len(file_layers) != len(groups):
        raise WeightsMismatchError(filepath, [(
            "(layer count)",
            f"the file has {len(file_layers)} layers with weights, the model {len(groups)}: "
            "use by_name=True to load the layers whose names match")])
    return list(zip(file_layers, groups))


def load_hdf5_weights(model, filepath, by_name=False, exclude=None):
    """Load a Keras-2 HDF5 weights file (matterport's or :func:`save_hdf5_weights`'s) into a model.

    Parameters
    ----------
    model : keras.Model
    filepath : str or Path
        A weights file (root ``layer_names``) or a full-model file (``model_weights``).
    by_name : bool
        True: load each file layer into the model layer of the same name; file layers
        absent from the model are ignored (logged at debug level). False: the file's
        layers with weights are paired in order with the model's (counts must agree).
        Either way, the weights inside a layer are matched by name.
    exclude : list of str, optional
        Model layer names to leave untouched (e.g. matterport's class-specific heads
        ``['mrcnn_class_logits', 'mrcnn_bbox_fc', 'mrcnn_bbox', 'mrcnn_mask']``).

    Returns
    -------
    list of str
        The model layers that were loaded.

    Raises
    ------
    FileNotFoundError
        When ``filepath`` does not exist.
    WeightsFileError
        When the file is not in the Keras-2 layout.
    WeightsMismatchError
        Listing every layer whose weights do not fit (names or shapes); nothing is
        assigned in that case.
    """
    filepath = str(filepath)
    if not os.path.isfile(filepath):
        raise FileNotFoundError(f"{filepath}: weights file not found")
    exclude = set(exclude or ())
    groups = model_weight_groups(model, exclude)
    assignments, problems, loaded = [], [], []
    try:
        handle = h5py.File(filepath, "r")
    except OSError as exc:
        raise WeightsFileError(f"{filepath}: not a readable HDF5 file ({exc})") from exc
    with handle:
        root = _weights_root(handle, filepath)
        file_layers = [name for name in _read_text_list_attribute(root, "layer_names")
                       if name not in exclude and _group_weight_names(root, name, filepath)]
        for file_layer, model_layer in _pair_layers(file_layers, groups, by_name, exclude, filepath):
            group = root[file_layer]
            variables = groups[model_layer]
            pairs, layer_problems = _match_weights(model_layer, _group_weight_names(root, file_layer, filepath),
                                                   variables)
            for weight_name, key in pairs:
                value = group[weight_name][()]
                variable = variables[key]
                if tuple(value.shape) != tuple(variable.shape):
                    layer_problems.append((model_layer, f"{key}: file shape {tuple(value.shape)} vs model shape "
                                                        f"{tuple(variable.shape)}"))
                else:
                    assignments.append((variable, value))
            problems.extend(layer_problems)
            loaded.append(model_layer)
    if problems:
        raise WeightsMismatchError(filepath, problems)
    for variable, value in assignments:
        variable.assign(np.asarray(value, dtype=variable.dtype))
    logger.debug("%s: loaded %d layers (%d arrays)", filepath, len(loaded), len(assignments))
    return loaded


# ----------------------------------------------------------------------------
# saving
# ----------------------------------------------------------------------------

def _write_text_list_attribute(group, name, values):
    encoded = np.array([v.encode("utf8") for v in values]) if values else np.array([], dtype="S1")
    chunks = max(1, -(-encoded.nbytes // _ATTRIBUTE_CHUNK_BYTES))
    if chunks == 1:
        group.attrs[name] = encoded
        return
    for index, part in enumerate(np.array_split(encoded, chunks)):
        group.attrs[f"{name}{index}"] = part


def save_hdf5_weights(model, filepath, config=None, epoch=None):
    """Write the model's weights in the Keras-2 HDF5 layout, atomically.

    Parameters
    ----------
    model : keras.Model
    filepath : str or Path
        Written through a temporary file in the same folder, then renamed, so a
        crash never leaves a half-written checkpoint under this name.
    config : Config, optional
        Stored as the root attribute ``config`` (JSON of ``config.to_dict()``).
    epoch : int, optional
        Stored as the root attribute ``epoch``.

    Returns
    -------
    str
        ``filepath``.
    """
    filepath = str(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    groups = model_weight_groups(model)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=Path(filepath).name + ".", suffix=".tmp")
    os.close(descriptor)
    try:
        with h5py.File(temporary, "w") as handle:
            _write_text_list_attribute(handle, "layer_names", list(groups))
            handle.attrs["backend"] = b"tensorflow"
            handle.attrs["keras_version"] = keras.__version__.encode("utf8")
            if config is not None:
                handle.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
            if epoch is not None:
                handle.attrs["epoch"] = int(epoch)
            for layer_name, variables in groups.items():
                group = handle.create_group(layer_name)
                names = [f"{key}:0" if "/" in key else f"{layer_name}/{key}:0" for key in variables]
                _write_text_list_attribute(group, "weight_names", names)
                for name, variable in zip(names, variables.values()):
                    value = keras.ops.convert_to_numpy(variable)
                    group.create_dataset(name, data=value)
        os.replace(temporary, filepath)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return filepath
