"""Keras-1/Keras-2 HDF5 weight files, loaded as Keras 2 (and so matterport) loaded them.

matterport's ``MaskRCNN.load_weights`` handed the file to Keras 2's
``load_weights_from_hdf5_group_by_name`` (``by_name=True``) or
``load_weights_from_hdf5_group`` (by order). Keras 3 no longer reads that layout, so
this module reads it with h5py and follows the same rules.

The layout
----------
* The root, or in a ``model.save`` file its top-level ``model_weights`` group, holds
  the attribute ``layer_names``: a 1-D array of byte strings naming every layer of the
  saved model, weightless ones included. Keras 2 split an attribute longer than 64 KB
  into ``layer_names0``, ``layer_names1``, ... (the same for ``weight_names``).
  Keras 2 also wrote ``keras_version`` and ``backend`` there; Keras 1's ``save_weights``
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

The rules (Keras 2's)
---------------------
* ``by_name=True``: each file layer goes to the model layer of the same name; file
  layers absent from the model are ignored; a model layer the file lacks keeps its
  weights. ``by_name=False``: the file's layers that have weights are paired in order
  with the model's layers that have weights (the counts must agree).
* Inside a layer the weights are assigned **by position**, after the conversions of
  Keras 2's ``preprocess_weights_for_loading`` that concern this engine's layers
  (:func:`_keras2_kernel`). The weight names are not used for matching, so Keras-1
  names (``_W``, ``_b``, ``_running_std``) load as Keras 2 loaded them
  (``running_std``, which Keras 1 used for the variance, into ``moving_variance``).
* Nothing is assigned when anything does not fit: a :class:`WeightsMismatchError`
  lists every layer that does not (Keras 2 stopped at the first).

What this module adds to Keras 2: a file whose Keras-2 weight names are the model
layer's names in another order is refused (Keras 2 would have put e.g. the variance
into gamma); names in ``exclude`` that match no layer, and model layers the file lacks,
are warned about (:class:`WeightsLoadWarning`); the loaders return a
:class:`WeightsLoadResult` saying what was and was not loaded.

:func:`save_hdf5_weights` writes the Keras-2 layout, so one loader reads matterport's
files and the library's own checkpoints.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np

__all__ = ["WeightsMismatchError", "WeightsFileError", "WeightsLoadWarning", "WeightsLoadResult",
           "load_hdf5_weights", "save_hdf5_weights", "model_weight_groups", "read_weight_file_layers"]

logger = logging.getLogger(__name__)

# HDF5 object headers hold at most 64 KiB; Keras 2 split longer attributes into numbered chunks.
_ATTRIBUTE_CHUNK_BYTES = 64000
# Keras 2 read a file without 'keras_version' as a Keras 1 file.
_KERAS1 = "1"


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


class WeightsLoadWarning(UserWarning):
    """Loading by name left model layers unloaded, or ``exclude`` named layers the model lacks."""


@dataclass(frozen=True)
class WeightsLoadResult:
    """What :func:`load_hdf5_weights` did; every field is a tuple of top-level layer names.

    Attributes
    ----------
    filepath : str
    by_name : bool
        How the layers were matched (True when ``exclude`` was given, as in matterport).
    loaded : tuple of str
        Model layers assigned from the file, in model order.
    missing_from_file : tuple of str
        Model layers with weights, not excluded, that the file lacks: they keep their
        current (usually random initial) weights. Warned about.
    excluded : tuple of str
        Model layers with weights left alone because ``exclude`` named them (inner
        layers of a nested model included).
    unused_in_file : tuple of str
        File layers with weights that no model layer has the name of (ignored).
    unknown_exclude : tuple of str
        Names in ``exclude`` that match no layer of the model. Warned about.
    """

    filepath: str
    by_name: bool
    loaded: tuple = ()
    missing_from_file: tuple = ()
    excluded: tuple = ()
    unused_in_file: tuple = ()
    unknown_exclude: tuple = ()


# ----------------------------------------------------------------------------
# the model side
# ----------------------------------------------------------------------------

def _inner_layers(model, prefix=""):
    """``(key prefix, layer)`` for the weight-owning layers of a nested model, depth first."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _inner_layers(layer, f"{prefix}{layer.name}/")
        elif layer.weights:
            yield f"{prefix}{layer.name}/", layer


def _layer_entries(layer):
    """``[(key, variable, owner)]`` of a top-level layer in the order Keras 2 saved and assigned them.

    A plain layer: its weights in creation order (Keras 2's ``trainable_weights +
    non_trainable_weights`` of one layer, e.g. gamma, beta, moving_mean, moving_variance).
    A nested model: the weights of all its inner layers, the trainable ones first (Keras
    2's ``Network.weights``); ``key`` is ``'inner_layer/variable'``.
    """
    if not isinstance(layer, keras.Model):
        return [(variable.name, variable, layer) for variable in layer.weights]
    entries = [(f"{prefix}{variable.name}", variable, inner)
               for prefix, inner in _inner_layers(layer) for variable in inner.weights]
    return [e for e in entries if e[1].trainable] + [e for e in entries if not e[1].trainable]


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
        ``{layer_name: {key: variable}}`` in layer order, for layers with weights, each
        layer's variables in Keras 2's order (:func:`_layer_entries`). ``key`` is the
        variable's name (``'kernel'``) or, inside a nested model,
        ``'inner_layer/variable'`` (``'rpn_conv_shared/kernel'``).
    """
    exclude = set(exclude or ())
    groups = {}
    for layer in model.layers:
        if layer.name in exclude:
            continue
        variables = {key: variable for key, variable, owner in _layer_entries(layer) if owner.name not in exclude}
        if variables:
            groups[layer.name] = variables
    return groups


def _all_layer_names(model):
    """Names of every layer of the model, inner layers of nested models included."""
    names = set()
    for layer in model.layers:
        names.add(layer.name)
        if isinstance(layer, keras.Model):
            names |= _all_layer_names(layer)
    return names


# ----------------------------------------------------------------------------
# the file side
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


def _weights_root(handle, filepath):
    """The group holding ``layer_names``: the root, else ``model_weights`` (matterport's test)."""
    if "layer_names" not in handle.attrs and "layer_names0" not in handle.attrs and "model_weights" in handle:
        handle = handle["model_weights"]
    if _read_text_list_attribute(handle, "layer_names") is None:
        raise WeightsFileError(
            f"{filepath}: not a Keras-2 HDF5 weights file (no 'layer_names' attribute at the root or in "
            "'model_weights'); Keras-3 '.weights.h5' files load with keras_model.load_weights instead")
    return handle


def _group_weight_names(root, layer_name, filepath):
    if layer_name not in root:
        raise WeightsFileError(f"{filepath}: layer {layer_name!r} is listed in 'layer_names' but has no group")
    return _read_text_list_attribute(root[layer_name], "weight_names") or []


def _group_datasets(root, layer_name, filepath):
    """The datasets of one file layer, ``[(weight name, h5py.Dataset)]`` in file order."""
    weight_names = _group_weight_names(root, layer_name, filepath)
    group = root[layer_name]
    datasets = []
    for weight_name in weight_names:
        if weight_name not in group or not isinstance(group[weight_name], h5py.Dataset):
            raise WeightsFileError(f"{filepath}: layer {layer_name!r} lists the weight {weight_name!r}, "
                                   "which is not a dataset of its group")
        datasets.append((weight_name, group[weight_name]))
    return datasets


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
        return {name: [(weight_name, tuple(dataset.shape)) for weight_name, dataset in
                       _group_datasets(root, name, filepath)]
                for name in _read_text_list_attribute(root, "layer_names")}


# ----------------------------------------------------------------------------
# one layer: Keras 2's preprocessing, then assignment by position
# ----------------------------------------------------------------------------

def _keras2_kernel(value, variable, owner, keras_version, backend):
    """A file kernel as Keras 2's ``preprocess_weights_for_loading`` handed it to a conv layer.

    Only what concerns the layer types of this engine (Conv2D, Conv2DTranspose; Dense and
    BatchNormalization are never converted):

    * a Keras-1 file into a ``channels_first`` Conv2D: ``(filters, in, rows, cols)`` ->
      ``(rows, cols, in, filters)`` (this engine builds ``channels_last`` layers only);
    * a file from the Theano backend (convolution, not correlation): both spatial axes
      reversed (Keras 2's ``convert_kernel``);
    * a kernel whose shape still differs from the layer's: transposed ``(3, 2, 0, 1)``,
      Keras 2's guess for Theano-ordered kernels (kept only when it then fits, so a
      mismatch error shows the file's own shape).

    Not done: Keras 2.0/2.1 also swapped the last two axes of a Keras-1 Conv2DTranspose
    kernel; Keras 2.2 did that twice for matterport's ``TimeDistributed(Conv2DTranspose)``
    (``mrcnn_mask_deconv``), i.e. not at all, which is what happens here.
    """
    if not isinstance(owner, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)) or value.ndim != 4:
        return value
    if variable is not owner.weights[0]:  # Keras 2 converted weights[0], the kernel
        return value
    if keras_version == _KERAS1 and isinstance(owner, keras.layers.Conv2D) \
            and getattr(owner, "data_format", "channels_last") == "channels_first":
        value = np.transpose(value, (2, 3, 1, 0))
    if backend == "theano":
        value = np.ascontiguousarray(value[::-1, ::-1])
    if tuple(value.shape) != tuple(variable.shape):
        transposed = np.transpose(value, (3, 2, 0, 1))
        if tuple(transposed.shape) == tuple(variable.shape):
            value = transposed
    return value


def _variable_name(weight_name):
    """``'bn1/rpn_x_1/gamma:0'`` -> ``'gamma'``."""
    return re.sub(r":\d+$", "", weight_name).rsplit("/", 1)[-1]


def _reordered(file_names, entries):
    """True when Keras-2 weight names are the model's variable names in another order."""
    if not all("/" in name for name in file_names):
        return False  # Keras-1 or other names: only positions count, as in Keras 2
    in_file = [_variable_name(name) for name in file_names]
    in_model = [variable.name for _, variable, _ in entries]
    return in_file != in_model and sorted(in_file) == sorted(in_model)


def _layer_assignments(layer_name, datasets, entries, skip_owners, versions):
    """Pair one file layer with one model layer by position.

    Parameters
    ----------
    layer_name : str
        The model layer's name (for messages).
    datasets : list of (str, h5py.Dataset)
        The file layer's weights in file order.
    entries : list of (key, variable, owner)
        The model layer's weights in Keras 2's order (:func:`_layer_entries`).
    skip_owners : set of str
        Inner layers (of a nested model) named in ``exclude``: their positions are
        consumed but not assigned.
    versions : (str, str or None)
        The file's ``keras_version`` (``'1'`` when absent) and ``backend``.

    Returns
    -------
    (list of (variable, ndarray), list of (layer, text))
        Assignments, and problems (nothing may be assigned when there are any).
    """
    file_names = [name for name, _ in datasets]
    if len(datasets) != len(entries):
        return [], [(layer_name, f"the model layer has {len(entries)} weight(s) "
                                 f"{[key for key, _, _ in entries]}, the file {len(datasets)} {file_names}")]
    if _reordered(file_names, entries):
        return [], [(layer_name, f"the file lists the weights {file_names} in another order than the model "
                                 f"{[key for key, _, _ in entries]}; they are assigned by position, so the file "
                                 "must follow the layer's weight order")]
    assignments, problems = [], []
    for (file_name, dataset), (key, variable, owner) in zip(datasets, entries):
        value = _keras2_kernel(np.asarray(dataset[()]), variable, owner, *versions)
        if tuple(value.shape) != tuple(variable.shape):
            problems.append((layer_name, f"{key}: file shape {tuple(value.shape)} vs model shape "
                                         f"{tuple(variable.shape)} (file weight {file_name!r})"))
        elif owner.name not in skip_owners:
            assignments.append((variable, value))
    return assignments, problems


# ----------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------

def _file_versions(root):
    """``(keras_version, backend)`` as Keras 2 read them (``'1'`` and None when absent)."""
    return _read_text_attribute(root, "keras_version") or _KERAS1, _read_text_attribute(root, "backend")


def _pairs_by_order(root, file_layers, model, filepath):
    """``[(file layer, model layer)]`` in order, for the layers with weights (Keras 2's counts check)."""
    in_file = [name for name in file_layers if _group_weight_names(root, name, filepath)]
    in_model = [layer for layer in model.layers if layer.weights]
    if len(in_file) != len(in_model):
        raise WeightsMismatchError(filepath, [(
            "(layer count)",
            f"the file has {len(in_file)} layers with weights, the model {len(in_model)}: "
            "use by_name=True to load the layers whose names match")])
    return list(zip(in_file, in_model))


def _pairs_by_name(root, file_layers, model, exclude, filepath):
    """``([(file layer, model layer)], unused file layers)``; layers named in ``exclude`` left out."""
    by_name = {layer.name: layer for layer in model.layers}
    pairs, unused = [], []
    for name in file_layers:
        layer = by_name.get(name)
        if layer is None:
            if _group_weight_names(root, name, filepath):
                unused.append(name)
        elif name not in exclude:
            pairs.append((name, layer))
    return pairs, unused


def _warn(message):
    warnings.warn(message, WeightsLoadWarning, stacklevel=3)


def load_hdf5_weights(model, filepath, by_name=False, exclude=None):
    """Load a Keras-1/Keras-2 HDF5 weights file into a model, as Keras 2 loaded it.

    Parameters
    ----------
    model : keras.Model
    filepath : str or Path
        A weights file (root ``layer_names``) or a full-model file (``model_weights``).
    by_name : bool
        True: load each file layer into the model layer of the same name; file layers
        absent from the model are ignored (logged at debug level), model layers absent
        from the file keep their weights (one :class:`WeightsLoadWarning` lists them).
        False: the file's layers with weights are paired in order with the model's
        (counts must agree). Either way, the weights inside a layer are assigned by
        position (see the module docstring).
    exclude : list of str, optional
        Model layer names to leave untouched (e.g. matterport's class-specific heads
        ``['mrcnn_class_logits', 'mrcnn_bbox_fc', 'mrcnn_bbox', 'mrcnn_mask']``); also
        layers inside a nested model. Given, it forces ``by_name=True`` (matterport).
        Names that match no layer of the model are warned about.

    Returns
    -------
    WeightsLoadResult
        The loaded, missing, excluded and unused layer names.

    Raises
    ------
    FileNotFoundError
        When ``filepath`` does not exist.
    WeightsFileError
        When the file is not in the Keras-2 layout (or a listed group or dataset is absent).
    WeightsMismatchError
        Listing every layer whose weights do not fit (count, order or shapes); nothing
        is assigned in that case.
    """
    filepath = str(filepath)
    if not os.path.isfile(filepath):
        raise FileNotFoundError(f"{filepath}: weights file not found")
    exclude = set(exclude or ())
    by_name = bool(by_name or exclude)
    unknown_exclude = sorted(exclude - _all_layer_names(model))
    if unknown_exclude:
        _warn(f"{filepath}: exclude names {unknown_exclude} match no layer of the model (nothing excluded for them)")
    try:
        handle = h5py.File(filepath, "r")
    except OSError as exc:
        raise WeightsFileError(f"{filepath}: not a readable HDF5 file ({exc})") from exc
    assignments, problems, unused = [], [], []
    with handle:
        root = _weights_root(handle, filepath)
        versions = _file_versions(root)
        file_layers = _read_text_list_attribute(root, "layer_names")
        if by_name:
            pairs, unused = _pairs_by_name(root, file_layers, model, exclude, filepath)
        else:
            pairs = _pairs_by_order(root, file_layers, model, filepath)
        for file_layer, layer in pairs:
            layer_assignments, layer_problems = _layer_assignments(
                layer.name, _group_datasets(root, file_layer, filepath), _layer_entries(layer), exclude, versions)
            assignments += layer_assignments
            problems += layer_problems
    if problems:
        raise WeightsMismatchError(filepath, problems)
    for variable, value in assignments:
        variable.assign(np.asarray(value, dtype=variable.dtype))
    result = _result(model, filepath, by_name, {layer.name for _, layer in pairs}, set(file_layers), exclude,
                     unused, unknown_exclude)
    if unused:
        logger.debug("%s: %d file layer(s) not in the model (ignored): %s", filepath, len(unused), unused)
    if result.missing_from_file:
        _warn(f"{filepath}: {len(result.missing_from_file)} layer(s) of the model are not in the file and keep "
              f"their current weights: {', '.join(result.missing_from_file)}")
    logger.debug("%s: loaded %d layers (%d arrays)", filepath, len(result.loaded), len(assignments))
    return result


def _result(model, filepath, by_name, paired, file_layers, exclude, unused, unknown_exclude):
    weighted = [layer for layer in model.layers if layer.weights]
    excluded = []
    for layer in weighted:
        if layer.name in exclude:
            excluded.append(layer.name)
        elif isinstance(layer, keras.Model):
            excluded += [inner.name for _, inner in _inner_layers(layer) if inner.name in exclude]
    return WeightsLoadResult(
        filepath=filepath,
        by_name=by_name,
        loaded=tuple(layer.name for layer in weighted if layer.name in paired),
        missing_from_file=tuple(layer.name for layer in weighted if by_name  # by order, every layer is paired
                                and layer.name not in file_layers and layer.name not in exclude),
        excluded=tuple(excluded),
        unused_in_file=tuple(unused),
        unknown_exclude=tuple(unknown_exclude),
    )


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

    Layers without weights are not listed; each layer's weights are written in Keras
    2's order (:func:`model_weight_groups`), so Keras 2 could load the file too.

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
