"""The exported detector as an ONNX file (the optional ``[export]`` extra: tf2onnx, onnxruntime).

The ONNX model is converted by tf2onnx from its own SavedModel (the ``onnx`` target of
``saved_model.build_module``, written to a temporary folder): the SavedModel's graph
with ROI Align from gathers (:mod:`.roi_align_gather`, the same crops) instead of
``CropAndResize``, which tf2onnx turns into a loop copying the whole feature map for
every box (19 GB of memory and seconds per batch of 8 at the RSNA settings), and the
float64 pre- and post-processing of ``detect`` (ONNX Runtime computes them as written,
so the results are ``detect``'s). tf2onnx logs an op it cannot convert and goes on,
leaving a model ONNX Runtime cannot load; :func:`convert_function_to_onnx` collects
those log records and checks the model (``onnx.checker``), so a conversion either
gives a valid model or raises :class:`ExportError` naming the ops.
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import tensorflow as tf

from ..._io import atomic_write
from .preprocess import ExportError
from .saved_model import build_module, export_description, save_module
from .serving import SIGNATURE_NHWC

__all__ = ["DEFAULT_OPSET", "ONNX_FILE_NAME", "convert_function_to_onnx", "convert_saved_model_to_onnx",
           "export_onnx"]

#: The ONNX opset of the export (ONNX Runtime 1.20+ runs it).
DEFAULT_OPSET = 17
ONNX_FILE_NAME = "detector.onnx"


def _import_tf2onnx():
    try:
        import onnx
        import tf2onnx
    except ImportError as error:
        raise ExportError("ONNX export needs the optional dependencies of the [export] extra: "
                          "pip install 'rsna_detector[export]' (tf2onnx, onnxruntime)") from error
    return tf2onnx, onnx


def _snapshot_as_identity(ctx, node, name, args):
    """tf2onnx handler: TensorFlow's ``Snapshot`` (:mod:`.resample`'s barrier to Grappler) is ONNX's ``Identity``."""
    del ctx, name, args
    node.type = "Identity"


class _Collect(logging.Handler):
    """Keeps the messages of the error records logged while it is attached."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def convert_function_to_onnx(function, input_signature, opset=DEFAULT_OPSET):
    """A ``tf.function`` as a serialized ONNX model, or an error naming what could not be converted.

    Parameters
    ----------
    function : tf.function
    input_signature : list of tf.TensorSpec
    opset : int

    Returns
    -------
    bytes

    Raises
    ------
    ExportError
        The [export] extra is missing; or TensorFlow ops without a tf2onnx
        conversion (named); or a conversion error; or a model ``onnx.checker`` rejects.
    """
    tf2onnx, onnx = _import_tf2onnx()
    collect = _Collect()
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(collect)
    try:
        model_proto, _ = tf2onnx.convert.from_function(function, input_signature=input_signature, opset=opset,
                                                       custom_op_handlers={"Snapshot": (_snapshot_as_identity, [])})
    except Exception as error:
        raise ExportError(f"ONNX conversion failed (tf2onnx {tf2onnx.__version__}, opset {opset}): "
                          f"{type(error).__name__}: {error}") from error
    finally:
        logger.removeHandler(collect)
    unsupported = sorted({op for message in collect.messages
                          for op in re.findall(r"Tensorflow op \[[^:\]]+: (\w+)\] is not supported", message)})
    if unsupported:
        raise ExportError(f"ONNX conversion failed (tf2onnx {tf2onnx.__version__}, opset {opset}): TensorFlow ops "
                          f"without an ONNX conversion: {', '.join(unsupported)}")
    try:
        onnx.checker.check_model(model_proto)
    except Exception as error:
        raise ExportError(f"ONNX conversion gave an invalid model (tf2onnx {tf2onnx.__version__}, opset {opset}): "
                          f"{error}") from error
    return model_proto.SerializeToString()


def convert_saved_model_to_onnx(saved_model_dir, opset=DEFAULT_OPSET):
    """A SavedModel's ``serving_nhwc`` signature as a serialized ONNX model (input ``images``).

    Written by :func:`~.saved_model.save_module` of a module built for the ``onnx`` target.
    """
    _import_tf2onnx()
    loaded = tf.saved_model.load(str(saved_model_dir))  # kept alive: the signature reads its variables
    spec = [tf.TensorSpec([None, None, None, None], tf.uint8, name="images")]
    function = tf.function(lambda images: loaded.signatures[SIGNATURE_NHWC](images=images), input_signature=spec,
                           autograph=False)
    return convert_function_to_onnx(function, spec, opset)


def export_onnx(model, path, *, min_confidence=None, masks=True, opset=DEFAULT_OPSET):
    """Write ``model`` as an ONNX file.

    Parameters
    ----------
    model : MaskRCNN
        In inference mode, with its trained weights.
    path : str or Path
        The ``.onnx`` file (its folder is created if needed).
    min_confidence, masks
        As :func:`~.saved_model.export_saved_model`.
    opset : int

    Returns
    -------
    Path
        The input is ``images`` uint8 ``[N, H, W, C]``; the outputs are the SavedModel's.

    Raises
    ------
    ExportError, ModelError
    """
    _import_tf2onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = build_module(model, min_confidence, masks, target="onnx")
    with tempfile.TemporaryDirectory(prefix="rsna_detector_onnx_") as temporary:
        save_module(module, temporary, export_description(module, model.config), signature_names=(SIGNATURE_NHWC,))
        return atomic_write(path, convert_saved_model_to_onnx(temporary, opset))
