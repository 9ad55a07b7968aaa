"""The exported detector as a SavedModel in TensorFlow Serving's layout: ``DIR/<version>/saved_model.pb``.

:func:`export_saved_model` (``MaskRCNN.export``) writes the version folder
atomically (TF Serving, watching ``DIR``, only ever sees a complete version) with
the two signatures of :mod:`.serving` and a description of the export,
``<version>/assets.extra/rsna_detector_export.json`` (``assets.extra`` is the folder
TF Serving leaves to the model's authors): the threshold, the input and outputs,
the config. Loading it needs TensorFlow only::

    detector = tf.saved_model.load("exported/1")
    outputs = detector.signatures["serving_default"](images=tf.constant(grey_uint8_batch))
"""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import tensorflow as tf

from ..._io import atomic_folder, write_json
from ..inference.detect import ModelError
from .preprocess import ExportError
from .serving import (
    OUTPUT_NAMES,
    SIGNATURE_ANY_RANK,
    SIGNATURE_NHWC,
    DetectorModule,
    resolve_min_confidence,
    serving_network,
)

__all__ = ["DESCRIPTION_FILE", "TARGETS", "export_saved_model", "build_module", "save_module", "export_description",
           "read_export_description"]

#: The export's description, inside the version folder.
DESCRIPTION_FILE = Path("assets.extra") / "rsna_detector_export.json"

_OUTPUTS = {
    "boxes": "int32 [N, D, (y1, x1, y2, x2)]: input-image pixels, y2/x2 exclusive; rows from num_detections on are 0",
    "class_ids": "int32 [N, D]",
    "scores": "float32 [N, D]",
    "num_detections": "int32 [N]: how many rows of each image are detections",
    "masks": "bool [N, D, H, W]: each detection's mask at the input's size (exported with masks only)",
}


def _library_version():
    try:
        return metadata.version("rsna_detector")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


#: What each format's graph is built with: (ROI align from gathers, arithmetic of the pre- and post-processing).
TARGETS = {"saved_model": (False, tf.float64), "onnx": (True, tf.float64), "tflite": (True, tf.float32)}


def build_module(model, min_confidence=None, masks=True, target="saved_model"):
    """The :class:`~.serving.DetectorModule` of an inference-mode ``MaskRCNN`` for a format.

    Parameters
    ----------
    model : MaskRCNN
    min_confidence : float, optional
    masks : bool
    target : {'saved_model', 'onnx', 'tflite'}
        ``saved_model``: the network's own ops, float64 pre- and post-processing
        (``detect``'s arithmetic); ``onnx``: ROI align from gathers (tf2onnx's
        ``CropAndResize`` is a loop over boxes); ``tflite``: that and float32 (see
        :data:`TARGETS`, :mod:`.tflite`).

    Raises
    ------
    ModelError
        When ``model`` is not in inference mode.
    ExportError
        For a threshold outside [0, 1] or a config that cannot be exported.
    """
    if getattr(model, "mode", None) != "inference":
        raise ModelError("export: create the model with mode='inference' (and load its trained weights)")
    gather_roi_align, arithmetic = TARGETS[target]
    threshold = resolve_min_confidence(model.config, min_confidence)
    network, config = serving_network(model, threshold, gather_roi_align=gather_roi_align)
    return DetectorModule(network, config, with_masks=masks, arithmetic=arithmetic, track_variables=target == "tflite")


def export_description(module, training_config):
    """The JSON-able description of an export (written beside the SavedModel and the other formats)."""
    config = module.config
    channels = int(config.IMAGE_CHANNEL_COUNT)
    return {
        "format": "rsna_detector export 1",
        "rsna_detector_version": _library_version(),
        "tensorflow_version": tf.__version__,
        "signatures": {
            SIGNATURE_ANY_RANK: f"images: uint8 [N, H, W], [N, H, W, 1] or [N, H, W, {channels}], one size per call",
            SIGNATURE_NHWC: f"images: uint8 [N, H, W, C], C = 1 or {channels} (the TFLite and ONNX input)",
        },
        "outputs": {name: text for name, text in _OUTPUTS.items() if name != "masks" or module.with_masks},
        "output_names": [name for name in OUTPUT_NAMES if name != "masks" or module.with_masks],
        "min_confidence": float(config.DETECTION_MIN_CONFIDENCE),
        "training_min_confidence": float(training_config.DETECTION_MIN_CONFIDENCE),
        "masks": module.with_masks,
        "arithmetic": module.arithmetic.name,
        "resize_mode": config.IMAGE_RESIZE_MODE,
        "config": config.to_dict(),
    }


def save_module(module, folder, description, signature_names=(SIGNATURE_ANY_RANK, SIGNATURE_NHWC)):
    """``tf.saved_model.save`` of ``module`` with the named signatures, and its description file."""
    signatures = {name: function for name, function in module.signatures().items() if name in signature_names}
    tf.saved_model.save(module, str(folder), signatures=signatures)
    (Path(folder) / DESCRIPTION_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(folder) / DESCRIPTION_FILE, description)


def _version_number(version):
    expected = f"export: version: expected a positive integer (TF Serving's version folder), got {version!r}"
    try:
        number = int(version)
    except (TypeError, ValueError) as error:
        raise ExportError(expected) from error
    if number < 1 or str(number) != str(version).strip():
        raise ExportError(expected)
    return number


def export_saved_model(model, path, *, version=1, min_confidence=None, masks=True, replace=False):
    """Write ``model`` as a SavedModel for TensorFlow Serving: ``path/<version>/``.

    Parameters
    ----------
    model : MaskRCNN
        In inference mode, with its trained weights.
    path : str or Path
        The model's base folder (TF Serving's ``--model_base_path``); created if needed.
    version : int
        The version folder's name (a positive integer).
    min_confidence : float, optional
        The exported model's threshold; None: the config's ``DETECTION_MIN_CONFIDENCE``.
        It becomes the network's own threshold (see :mod:`.serving`).
    masks : bool
        Also output each detection's mask at the input size (``[N, D, H, W]`` bool:
        at 1024 x 1024 that is 3 MB per image and detection in a REST response).
    replace : bool
        Replace an existing version folder.

    Returns
    -------
    Path
        ``path/<version>``.

    Raises
    ------
    ExportError
        Bad threshold or version, a version folder that exists, a config that
        cannot be exported (``IMAGE_RESIZE_MODE`` 'crop').
    ModelError
        When ``model`` is not in inference mode.
    """
    number = _version_number(version)
    module = build_module(model, min_confidence, masks)
    base = Path(path)
    base.mkdir(parents=True, exist_ok=True)
    target = base / str(number)
    try:
        with atomic_folder(target, replace=replace) as temporary:
            save_module(module, temporary, export_description(module, model.config))
    except FileExistsError as error:
        raise ExportError(f"export: {target} already exists: choose another version or replace it") from error
    return target


def read_export_description(version_folder):
    """The description written by :func:`export_saved_model` (a dict), from a version folder."""
    path = Path(version_folder) / DESCRIPTION_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ExportError(f"{version_folder}: not an rsna_detector export (no {DESCRIPTION_FILE})") from error
