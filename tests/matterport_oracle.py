"""matterport's own Mask_RCNN code (v2.1, the ``mrcnn-colab==2.1.0`` wheel) as a test oracle.

The wheel is a test-only dependency, installed with ``pip install --no-deps`` (it declares none);
the library never imports it. Tests that use it call :func:`require_matterport` (or the
``matterport`` fixture in ``conftest.py``), which skips with a reason when it is not installed.

What runs as it is, and what needed an adaptation to run on today's stack (each adaptation is
the least that makes the 2018 code execute; none changes what a function computes):

* ``mrcnn.utils`` and ``mrcnn.config`` import and run unchanged, with one exception:
  scikit-image >= 0.19 refuses order-1 resizing of bool arrays, which ``minimize_mask``,
  ``expand_mask`` and ``unmold_mask`` pass. The scikit-image of 2018 converted bool input to
  float 0/1 first (``img_as_float``); :func:`utils` replaces ``mrcnn.utils.resize`` by a wrapper
  that does exactly that conversion and then calls matterport's own ``resize``. Its graph
  helpers (``box_refinement_graph``) call ``tf.log``: the module's ``tf`` is ``tf.compat.v1``.
* ``mrcnn.model`` imports ``keras.engine`` (gone in Keras 3) and asserts Keras >= 2.0.8 with
  ``distutils``. :func:`model` executes the installed file's source with its import block and
  version asserts removed, in a namespace where:
    - ``tf`` is ``tf.compat.v1`` (for ``tf.log``, ``tf.to_float``, ``tf.sets.set_intersection``,
      ``tf.random_shuffle``, ``tf.sparse_tensor_to_dense``), run eagerly;
    - ``K`` is a small shim mapping the Keras-2 backend calls the file makes onto ``keras.ops``
      / TensorFlow (``K.switch`` with a scalar condition -> the chosen branch whole, as Keras 2's
      ``tf.cond``, since matterport's branches differ in shape (an empty loss tensor or the
      scalar 0); with a tensor condition -> ``tf.where``; the cross-entropies -> ``keras.ops``
      with Keras 2's argument order);
    - ``KE.Layer`` is ``keras.layers.Layer`` (only needed for the class statements to execute;
      the graph functions are called directly, not through the layers);
    - ``utils`` is matterport's own ``mrcnn.utils`` (adapted as above).
  Functions that take ``config`` are given a matterport ``Config`` (or one of ours: they read
  the same attribute names).
"""
from __future__ import annotations

import ast
import datetime
import functools
import importlib
import importlib.util
import logging
import math
import multiprocessing
import os
import random
import re
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

MATTERPORT_MODEL_MD5 = "35657471e1f2dd96fc140d981f6bd3af"

_SKIP_REASON = ("matterport's mrcnn (pip install --no-deps mrcnn-colab==2.1.0) is not installed: "
                "differential tests against matterport skipped")


def matterport_package_dir() -> Path | None:
    """Folder of the installed matterport ``mrcnn`` package, or None when it is absent.

    Found without importing it, so that a test folder or another package named ``mrcnn`` cannot
    stand in for it: the folder must hold matterport's ``model.py``.
    """
    spec = importlib.util.find_spec("mrcnn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location)
        if (folder / "model.py").is_file() and (folder / "parallel_model.py").is_file():
            return folder
    return None


def require_matterport() -> Path:
    """The installed matterport package folder; skips the calling test when it is absent."""
    folder = matterport_package_dir()
    if folder is None:
        pytest.skip(_SKIP_REASON)
    return folder


def _resize_converting_bool(original_resize):
    """matterport's ``utils.resize`` with 2018 scikit-image's bool -> float 0/1 conversion."""

    @functools.wraps(original_resize)
    def resize(image, output_shape, *args, **kwargs):
        image = np.asarray(image)
        if image.dtype == bool:
            image = image.astype(np.float64)
        return original_resize(image, output_shape, *args, **kwargs)

    return resize


@functools.lru_cache(maxsize=None)
def utils():
    """matterport's ``mrcnn.utils`` module (bool-resize adaptation applied, see module doc)."""
    require_matterport()
    import tensorflow as tf

    module = importlib.import_module("mrcnn.utils")
    module.tf = tf.compat.v1  # box_refinement_graph calls tf.log
    if not getattr(module.resize, "_oracle_adapted", False):
        module.resize = _resize_converting_bool(module.resize)
        module.resize._oracle_adapted = True
    return module


@functools.lru_cache(maxsize=None)
def config_module():
    """matterport's ``mrcnn.config`` module, unchanged."""
    require_matterport()
    return importlib.import_module("mrcnn.config")


def make_config(**settings):
    """A matterport ``Config`` instance with the given UPPER_CASE settings (derived values
    recomputed by matterport's own ``__init__``)."""
    base = config_module().Config
    cls = type("OracleConfig", (base,), {"NAME": "oracle", **settings})
    return cls()


class _KerasBackendShim(types.SimpleNamespace):
    """The Keras-2 backend calls matterport's model.py makes, on Keras 3 / TensorFlow 2."""


def _backend_shim():
    import keras
    import tensorflow as tf

    def switch(condition, then_expression, else_expression):
        # Keras 2: a scalar condition picks one branch whole (tf.cond), so the branches may
        # differ in shape (matterport's `K.switch(tf.size(x) > 0, loss_of_x, 0.0)`); a tensor
        # condition selects elementwise.
        condition = tf.cast(condition, tf.bool)
        if condition.shape.rank == 0:
            return then_expression if bool(condition) else else_expression
        return tf.where(condition, then_expression, else_expression)

    def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
        return keras.ops.sparse_categorical_crossentropy(target, output, from_logits=from_logits, axis=axis)

    def binary_crossentropy(target, output, from_logits=False):
        return keras.ops.binary_crossentropy(target, output, from_logits=from_logits)

    def int_shape(x):
        shape = getattr(x, "shape", None)
        return tuple(shape) if shape is not None else None

    return _KerasBackendShim(
        abs=keras.ops.abs, cast=keras.ops.cast, equal=keras.ops.equal, not_equal=keras.ops.not_equal,
        less=keras.ops.less, mean=keras.ops.mean, sum=keras.ops.sum, reshape=keras.ops.reshape,
        squeeze=keras.ops.squeeze, shape=keras.ops.shape, int_shape=int_shape, switch=switch,
        sparse_categorical_crossentropy=sparse_categorical_crossentropy,
        binary_crossentropy=binary_crossentropy, learning_phase=lambda: 0,
    )


def _source_without_imports(source: str) -> str:
    """model.py's source with its top-level imports and version asserts blanked out.

    The lines are emptied rather than removed, so tracebacks point at matterport's line numbers.
    """
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assert)):
            for number in range(node.lineno - 1, node.end_lineno):
                lines[number] = ""
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def model():
    """matterport's ``mrcnn/model.py`` executed on today's stack (see the module docstring).

    Returns a namespace holding every top-level function and class of the file
    (``build_rpn_targets``, ``load_image_gt``, ``detection_targets_graph``, ``MaskRCNN``, ...).
    """
    folder = require_matterport()
    import keras
    import tensorflow as tf

    path = folder / "model.py"
    source = path.read_text(encoding="utf-8")
    namespace = {
        "__name__": "matterport_model_oracle", "__file__": str(path),
        "os": os, "random": random, "datetime": datetime, "re": re, "math": math,
        "logging": logging, "OrderedDict": OrderedDict, "multiprocessing": multiprocessing,
        "np": np, "tf": tf.compat.v1, "keras": keras, "K": _backend_shim(),
        "KL": keras.layers, "KE": types.SimpleNamespace(Layer=keras.layers.Layer),
        "KM": keras.models, "utils": utils(),
    }
    code = compile(_source_without_imports(source), str(path), "exec")
    exec(code, namespace)  # noqa: S102 - matterport's own file, the point of the oracle
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})


def model_source_md5() -> str:
    """MD5 of the installed matterport ``model.py`` (pins which matterport the oracle is)."""
    import hashlib

    folder = require_matterport()
    return hashlib.md5((folder / "model.py").read_bytes()).hexdigest()
