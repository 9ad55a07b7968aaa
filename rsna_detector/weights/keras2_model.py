"""A Keras model's weights to and from Keras-1/Keras-2 HDF5 files, as Keras 2 loaded and saved them.

matterport's ``MaskRCNN.load_weights`` handed the file to Keras 2's
``load_weights_from_hdf5_group_by_name`` (``by_name=True``) or
``load_weights_from_hdf5_group`` (by order). Keras 3 no longer reads that layout, so
:mod:`rsna_detector.weights.keras2_hdf5` reads the file (the layout is described there)
and this module pairs it with a model by the same rules. The Mask R-CNN engine, the
classifier baselines (CheXNet) and RetinaNet load through it.

The rules (Keras 2's)
---------------------
* ``by_name=True``: each file layer goes to the model layer of the same name; file
  layers absent from the model are ignored; a model layer the file lacks keeps its
  weights. ``by_name=False``: the file's layers that have weights are paired in order
  with the model's layers that have weights (the counts must agree).
* Inside a layer the weights are assigned **by position**, after the conversions of
  Keras 2's ``preprocess_weights_for_loading`` that concern convolutions
  (:func:`_keras2_kernel_steps`). The weight names are not used for matching, so Keras-1
  names (``_W``, ``_b``, ``_running_std``) load as Keras 2 loaded them
  (``running_std``, which Keras 1 used for the variance, into ``moving_variance``).
* Nothing is assigned when anything does not fit: a :class:`WeightsMismatchError`
  lists every layer that does not (Keras 2 stopped at the first).

What this module adds to Keras 2: a file whose Keras-2 weight names are the model
layer's names in another order is refused (Keras 2 would have put e.g. the variance
into gamma); names in ``exclude`` that match no layer, and model layers the file lacks,
are warned about (:class:`WeightsLoadWarning`); :func:`load_hdf5_weights` returns a
:class:`WeightsLoadResult` saying what was and was not loaded, and
:func:`plan_hdf5_weights` says it before anything is assigned (a caller with its own
policy, e.g. "every layer must be in the file", decides on it); file layer names can
be read in Keras 3's spelling (``normalise_names=True``: ``conv1/conv`` matches
``conv1_conv``).

:func:`save_hdf5_weights` writes the Keras-2 layout, so one loader reads matterport's
files and the library's own checkpoints.
"""
from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass

import keras
import numpy as np

from ..errors import RsnaDetectorError, RsnaDetectorWarning
from .keras2_hdf5 import KERAS1_VERSION, Keras2WeightsFile, WeightsFileError, dataset_problem, write_hdf5_weights

__all__ = ["WeightsMismatchError", "IncompleteWeightsError", "WeightsLoadWarning", "WeightsLoadResult",
           "WeightsLoadPlan", "plan_hdf5_weights", "load_hdf5_weights", "save_hdf5_weights", "model_weight_groups"]

logger = logging.getLogger(__name__)


class WeightsMismatchError(RsnaDetectorError, ValueError):
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


class IncompleteWeightsError(WeightsMismatchError):
    """A file meant to hold the whole model (for inference) leaves weighted layers of the model unloaded.

    Attributes
    ----------
    layers : list of str
        The model layers the file lacks.
    """

    def __init__(self, filepath, missing):
        self.layers = list(missing)
        self.problems = [f"{layer}: not in the file" for layer in self.layers]
        ValueError.__init__(
            self, f"{filepath}: {len(self.layers)} of the model's layers with weights are not in the file "
                  f"({_shorten(self.layers)}): predicting with their random initial weights would give "
                  "meaningless boxes; give a checkpoint of this model (trained with the same config)")


def _shorten(names, first=8):
    names = list(names)
    return ", ".join(names[:first]) + (f" and {len(names) - first} more" if len(names) > first else "")


class WeightsLoadWarning(RsnaDetectorWarning):
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


def _every_layer_name(model):
    """Names of every layer of the model, inner layers of nested models included."""
    names = set()
    for layer in model.layers:
        names.add(layer.name)
        if isinstance(layer, keras.Model):
            names |= _every_layer_name(layer)
    return names


# ----------------------------------------------------------------------------
# one layer: Keras 2's preprocessing, then assignment by position
# ----------------------------------------------------------------------------

def _keras2_kernel_steps(shape, variable, owner, keras_version, backend):
    """How Keras 2's ``preprocess_weights_for_loading`` converted a file kernel for a conv layer, from its shape.

    Only the conversions that concern the layers the library loads (Conv2D,
    Conv2DTranspose; Dense and BatchNormalization are never converted):

    * a Keras-1 file into a ``channels_first`` Conv2D: ``(filters, in, rows, cols)`` ->
      ``(rows, cols, in, filters)`` (the library builds ``channels_last`` layers only);
    * a file from the Theano backend (convolution, not correlation): both spatial axes
      reversed (Keras 2's ``convert_kernel``);
    * a kernel whose shape still differs from the layer's: transposed ``(3, 2, 0, 1)``,
      Keras 2's guess for Theano-ordered kernels (kept only when it then fits, so a
      mismatch error shows the file's own shape).

    Not done: Keras 2.0/2.1 also swapped the last two axes of a Keras-1 Conv2DTranspose
    kernel; Keras 2.2 did that twice for matterport's ``TimeDistributed(Conv2DTranspose)``
    (``mrcnn_mask_deconv``), i.e. not at all, which is what happens here.

    Returns
    -------
    (list of callable, tuple)
        The numpy steps to apply to the value once read, and the shape after them.
    """
    shape = tuple(shape)
    if not isinstance(owner, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)) or len(shape) != 4:
        return [], shape
    if variable is not owner.weights[0]:  # Keras 2 converted weights[0], the kernel
        return [], shape
    steps = []
    if keras_version == KERAS1_VERSION and isinstance(owner, keras.layers.Conv2D) \
            and getattr(owner, "data_format", "channels_last") == "channels_first":
        steps.append(lambda value: np.transpose(value, (2, 3, 1, 0)))
        shape = tuple(shape[i] for i in (2, 3, 1, 0))
    if backend == "theano":
        steps.append(lambda value: np.ascontiguousarray(value[::-1, ::-1]))
    transposed = tuple(shape[i] for i in (3, 2, 0, 1))
    if shape != tuple(variable.shape) and transposed == tuple(variable.shape):
        steps.append(lambda value: np.transpose(value, (3, 2, 0, 1)))
        shape = transposed
    return steps, shape


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
    """Pair one file layer with one model layer by position, from the file's metadata (nothing is read yet).

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
    (list of (variable, h5py.Dataset, steps), list of (layer, text))
        What to read and assign (each dataset's shape and dtype checked, the
        conversion steps of :func:`_keras2_kernel_steps`), and problems (nothing may
        be read or assigned when there are any).
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
    for (file_name, dataset), (key, variable, owner) in zip(datasets, entries, strict=False):
        steps, shape = _keras2_kernel_steps(dataset.shape, variable, owner, *versions)
        problem = dataset_problem(dataset)
        if shape != tuple(variable.shape):
            problems.append((layer_name, f"{key}: file shape {tuple(dataset.shape)} vs model shape "
                                         f"{tuple(variable.shape)} (file weight {file_name!r})"))
        elif problem:
            problems.append((layer_name, f"{key}: {problem} (file weight {file_name!r})"))
        elif owner.name not in skip_owners:
            assignments.append((variable, dataset, steps))
    return assignments, problems


def _read_assignments(filepath, pending):
    """Read the checked datasets and convert them: ``[(variable, ndarray of its dtype)]``.

    Raises WeightsFileError naming the file and the weight when a dataset cannot be read
    (a damaged chunk) or converted to the variable's dtype.
    """
    values = []
    for variable, dataset, steps in pending:
        try:
            value = np.asarray(dataset[()])
            for step in steps:
                value = step(value)
            values.append((variable, np.asarray(value, dtype=variable.dtype)))
        except (OSError, ValueError, TypeError) as error:
            raise WeightsFileError(f"{filepath}: weight {dataset.name!r} cannot be read as "
                                   f"{variable.dtype} ({type(error).__name__}: {error})") from error
    return values


# ----------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class WeightsLoadPlan:
    """What loading a file into a model will do, worked out before anything is assigned.

    Attributes
    ----------
    result : WeightsLoadResult
        What was loaded once :meth:`apply` has run.
    assignments : tuple of (keras.Variable, ndarray)
        Every model variable to set, with the file's value for it (converted as
        Keras 2 converted it, the shape checked).
    """

    result: WeightsLoadResult
    assignments: tuple = ()

    def apply(self):
        """Assign every value of the plan (read, checked and converted beforehand); returns :attr:`result`."""
        for variable, value in self.assignments:
            variable.assign(value)
        return self.result


def _pairs_by_order(weights_file, model):
    """``[(file layer, model layer)]`` in order, for the layers with weights (Keras 2's counts check)."""
    in_file = [name for name in weights_file.layers if weights_file.weight_names(name)]
    in_model = [layer for layer in model.layers if layer.weights]
    if len(in_file) != len(in_model):
        raise WeightsMismatchError(weights_file.filepath, [(
            "(layer count)",
            f"the file has {len(in_file)} layers with weights, the model {len(in_model)}: "
            "use by_name=True to load the layers whose names match")])
    return list(zip(in_file, in_model, strict=True))


def _pairs_by_name(weights_file, model, exclude):
    """``([(file layer, model layer)], unused file layers)``; layers named in ``exclude`` left out."""
    by_name = {layer.name: layer for layer in model.layers}
    pairs, unused = [], []
    for name in weights_file.layers:
        layer = by_name.get(name)
        if layer is None:
            if weights_file.weight_names(name):
                unused.append(name)
        elif name not in exclude:
            pairs.append((name, layer))
    return pairs, unused


def _unknown_exclude(model, exclude):
    return sorted(set(exclude) - _every_layer_name(model))


def plan_hdf5_weights(model, filepath, by_name=False, exclude=None, normalise_names=False):
    """Read a Keras-1/Keras-2 HDF5 weights file for a model and pair it, assigning nothing yet.

    The parameters are those of :func:`load_hdf5_weights`; nothing is warned about.

    Returns
    -------
    WeightsLoadPlan
        ``plan.result`` says what ``plan.apply()`` will load, leave missing or
        exclude; a caller may refuse the file on it before anything is assigned.

    Raises
    ------
    FileNotFoundError, WeightsFileError, WeightsMismatchError
        As :func:`load_hdf5_weights`.
    """
    exclude = set(exclude or ())
    by_name = bool(by_name or exclude)
    assignments, problems, unused = [], [], []
    with Keras2WeightsFile(filepath, normalise_names) as weights_file:
        if by_name:
            pairs, unused = _pairs_by_name(weights_file, model, exclude)
        else:
            pairs = _pairs_by_order(weights_file, model)
        versions = (weights_file.keras_version, weights_file.backend)
        for file_layer, layer in pairs:
            layer_assignments, layer_problems = _layer_assignments(
                layer.name, weights_file.datasets(file_layer), _layer_entries(layer), exclude, versions)
            assignments += layer_assignments
            problems += layer_problems
        file_layers = set(weights_file.layers)
        if problems:  # before any dataset is read: a shape of 1e6 x 1e6 is never allocated
            raise WeightsMismatchError(weights_file.filepath, problems)
        assignments = _read_assignments(weights_file.filepath, assignments)
    result = _result(model, weights_file.filepath, by_name, {layer.name for _, layer in pairs}, file_layers,
                     exclude, unused, _unknown_exclude(model, exclude))
    return WeightsLoadPlan(result, tuple(assignments))


def _warn(message):
    warnings.warn(message, WeightsLoadWarning, stacklevel=3)


def load_hdf5_weights(model, filepath, by_name=False, exclude=None, normalise_names=False, *,
                      require_complete=False):
    """Load a Keras-1/Keras-2 HDF5 weights file into a model, as Keras 2 loaded it.

    Parameters
    ----------
    model : keras.Model
    filepath : str or Path
        A Keras-2 ``save_weights`` file or a full-model ``model.save`` file (its
        ``model_weights`` group).
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
    normalise_names : bool
        Read the file's layer names in Keras 3's spelling (``conv1/conv`` as
        ``conv1_conv``: Keras 2.1's DenseNet, e.g. the CheXNet weights).
    require_complete : bool
        Refuse (:class:`IncompleteWeightsError`, nothing assigned) a file that leaves
        any model layer with weights, not excluded, unloaded: what inference needs
        (training from a partial file, e.g. COCO without the heads, only warns).

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
        Listing every layer whose weights do not fit (count, order, shapes, a dtype
        that is not numeric), found from the file's metadata
        before any value is read; nothing is assigned in that case.
        :class:`IncompleteWeightsError` (one) with ``require_complete``.
    """
    filepath = str(filepath)
    unknown_exclude = _unknown_exclude(model, exclude or ())
    if unknown_exclude:  # before a mismatch error, which a misspelt name often causes
        _warn(f"{filepath}: exclude names {unknown_exclude} match no layer of the model (nothing excluded for them)")
    plan = plan_hdf5_weights(model, filepath, by_name, exclude, normalise_names)
    if require_complete and plan.result.missing_from_file:
        raise IncompleteWeightsError(filepath, plan.result.missing_from_file)
    result = plan.apply()
    if result.unused_in_file:
        logger.debug("%s: %d file layer(s) not in the model (ignored): %s", filepath, len(result.unused_in_file),
                     list(result.unused_in_file))
    if result.missing_from_file:
        _warn(f"{filepath}: {len(result.missing_from_file)} layer(s) of the model are not in the file and keep "
              f"their current weights: {', '.join(result.missing_from_file)}")
    logger.debug("%s: loaded %d layers (%d arrays)", filepath, len(result.loaded), len(plan.assignments))
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
    config : object with ``to_dict()``, optional
        Stored as the root attribute ``config`` (JSON of ``config.to_dict()``).
    epoch : int, optional
        Stored as the root attribute ``epoch``.

    Returns
    -------
    str
        ``filepath``.
    """
    layers = {layer_name: [(f"{key}:0" if "/" in key else f"{layer_name}/{key}:0", variable)
                           for key, variable in variables.items()]
              for layer_name, variables in model_weight_groups(model).items()}
    attributes = {"backend": b"tensorflow", "keras_version": keras.__version__.encode("utf8")}
    if config is not None:
        attributes["config"] = json.dumps(config.to_dict(), sort_keys=True)
    if epoch is not None:
        attributes["epoch"] = int(epoch)
    return write_hdf5_weights(filepath, layers, attributes)
