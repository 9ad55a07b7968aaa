"""The exported detector as TFLite flatbuffers: float32, float16 and dynamic-range quantised.

The TFLite model is converted (``tf.lite.TFLiteConverter.from_saved_model``) from
its own SavedModel, the :class:`~.serving.DetectorModule` built for the ``tflite``
target (``saved_model.TARGETS``), written to a temporary folder: TFLite's built-in ops have no
float64 arithmetic and no ``CropAndResize``, and the TFLite interpreter of
TensorFlow >= 2.20 (and LiteRT's ``ai-edge-litert``) cannot run TensorFlow
("select", Flex) ops from Python at all, so a model that needed them would convert
and then fail to run. That module does the same work with built-in ops only:
pre- and post-processing in float32, ROI Align from gathers
(:mod:`.roi_align_gather`, crops equal to ``crop_and_resize``'s). The converter is
given built-in ops only, so an op without a built-in kernel is an error naming it,
never a model that needs a delegate the user lacks.

What float32 changes: a resized input can differ from ``detect``'s by one grey
level where scikit-image's float64 value lies within float32's precision of an
integer (a few pixels in ten thousand, and none for power-of-two scale factors
such as 1024 -> 256); docs/DEPLOY.md gives the measured effect.

Quantisation: ``float16`` stores the weights as float16 (computed in float32);
``dynamic_range`` stores them as int8 and quantises activations on the fly in
the convolutions and fully connected layers.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import tensorflow as tf

from ..._io import atomic_write
from .preprocess import ExportError
from .saved_model import build_module, export_description, save_module
from .serving import SIGNATURE_NHWC

__all__ = ["QUANTIZATIONS", "tflite_file_name", "convert_to_tflite", "export_tflite"]

#: The TFLite variants :func:`export_tflite` writes.
QUANTIZATIONS = ("float32", "float16", "dynamic_range")


def tflite_file_name(quantization):
    """``detector_<quantization>.tflite``."""
    return f"detector_{quantization}.tflite"


def _check_quantization(quantization):
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"export: TFLite quantization: expected one of {QUANTIZATIONS}, got {quantization!r}")


def _unconvertible_ops(message):
    """The TensorFlow op names a converter error reports as lacking a TFLite kernel."""
    return sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)))


def convert_to_tflite(saved_model_dir, quantization="float32"):
    """A SavedModel's ``serving_nhwc`` signature as a TFLite flatbuffer (built-in ops only).

    Parameters
    ----------
    saved_model_dir : str or Path
        Written by :func:`save_module` of a module built for the ``tflite`` target.
    quantization : {'float32', 'float16', 'dynamic_range'}

    Returns
    -------
    bytes
        The ``.tflite`` flat buffer.

    Raises
    ------
    ExportError
        When the converter fails; ops without a TFLite built-in kernel are named.
    """
    _check_quantization(quantization)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE_NHWC])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as error:  # the converter raises its own ConverterError (and others) with MLIR dumps
        ops = _unconvertible_ops(str(error))
        if ops:
            raise ExportError(f"TFLite conversion failed: TensorFlow ops without a TFLite built-in kernel: "
                              f"{', '.join(ops)}") from error
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"TFLite conversion failed: {first_line}") from error


def export_tflite(model, folder, *, quantizations=("float32",), min_confidence=None, masks=True):
    """Write ``model`` as TFLite files ``folder/detector_<quantization>.tflite``.

    Parameters
    ----------
    model : MaskRCNN
        In inference mode, with its trained weights.
    folder : str or Path
        Created if needed; existing files of the same names are replaced.
    quantizations : sequence of {'float32', 'float16', 'dynamic_range'}
    min_confidence, masks
        As :func:`~.saved_model.export_saved_model`.

    Returns
    -------
    dict
        ``{quantization: Path}``. The input is ``images`` uint8 ``[N, H, W, C]``
        (signature ``serving_nhwc``); the outputs are the SavedModel's.

    Raises
    ------
    ExportError, ModelError
        As :func:`~.saved_model.export_saved_model`, and for a failed conversion.
    """
    for quantization in quantizations:
        _check_quantization(quantization)
    module = build_module(model, min_confidence, masks, target="tflite")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    with tempfile.TemporaryDirectory(prefix="rsna_detector_tflite_") as temporary:
        save_module(module, temporary, export_description(module, model.config), signature_names=(SIGNATURE_NHWC,))
        for quantization in quantizations:
            written[quantization] = atomic_write(folder / tflite_file_name(quantization),
                                                 convert_to_tflite(temporary, quantization))
    return written
