"""Running an exported detector from Python: the SavedModel, a TFLite file, an ONNX file.

Each runner checks the batch first (:func:`serving.check_input_batch`: uint8,
``[N, H, W]`` / ``[N, H, W, C]``, not empty), since the TFLite and ONNX converters
drop the SavedModel's in-graph assertions, and returns the model's outputs as
numpy arrays (``boxes``, ``class_ids``, ``scores``, ``num_detections``, ``masks``);
:func:`results_from_outputs` turns them into ``MaskRCNN.detect``'s list of dicts.

None of these is needed to run an export: the SavedModel needs TensorFlow alone,
the ONNX file onnxruntime alone (docs/DEPLOY.md has both scripts).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .preprocess import ExportError
from .serving import SIGNATURE_ANY_RANK, SIGNATURE_NHWC, check_input_batch

__all__ = ["results_from_outputs", "SavedModelDetector", "TFLiteDetector", "OnnxDetector"]


def results_from_outputs(outputs):
    """``MaskRCNN.detect``'s results from an exported model's outputs.

    Parameters
    ----------
    outputs : mapping
        ``boxes`` [N, D, 4], ``class_ids`` [N, D], ``scores`` [N, D],
        ``num_detections`` [N] and optionally ``masks`` [N, D, H, W] (arrays or lists).

    Returns
    -------
    list of dict, one per image
        ``rois`` int32 ``[n, (y1, x1, y2, x2)]``, ``class_ids`` int32 ``[n]``,
        ``scores`` float32 ``[n]`` and, when the export has masks, ``masks`` bool
        ``[H, W, n]``.
    """
    counts = np.asarray(outputs["num_detections"]).reshape(-1).astype(int)
    boxes, class_ids = np.asarray(outputs["boxes"], np.int32), np.asarray(outputs["class_ids"], np.int32)
    scores = np.asarray(outputs["scores"], np.float32)
    masks = np.asarray(outputs["masks"], bool) if "masks" in outputs else None
    results = []
    for i, count in enumerate(counts):
        result = {"rois": boxes[i, :count].reshape(-1, 4), "class_ids": class_ids[i, :count],
                  "scores": scores[i, :count]}
        if masks is not None:
            result["masks"] = np.moveaxis(masks[i, :count], 0, -1)
        results.append(result)
    return results


def _nhwc(images):
    images = check_input_batch(images)
    return images[..., np.newaxis] if images.ndim == 3 else images


class SavedModelDetector:
    """An exported SavedModel (a version folder) loaded with ``tf.saved_model.load``.

    Parameters
    ----------
    folder : str or Path
        ``DIR/<version>``.
    """

    def __init__(self, folder):
        import tensorflow as tf

        self._tf = tf
        self.loaded = tf.saved_model.load(str(folder))
        self.signature = self.loaded.signatures[SIGNATURE_ANY_RANK]

    def __call__(self, images):
        """The outputs (numpy) for a batch of uint8 images of one size."""
        outputs = self.signature(images=self._tf.constant(check_input_batch(images)))
        return {name: value.numpy() for name, value in outputs.items()}

    def detect(self, images):
        """``MaskRCNN.detect``'s results for a batch (see :func:`results_from_outputs`)."""
        return results_from_outputs(self(images))


def _tflite_interpreter_class():
    """LiteRT's interpreter when ``ai-edge-litert`` is installed, else TensorFlow's (deprecated there)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter
    return Interpreter


class TFLiteDetector:
    """An exported ``.tflite`` file run by the TFLite interpreter (built-in ops only).

    Parameters
    ----------
    path : str or Path
    num_threads : int, optional
        The interpreter's threads (default: the CPU count).
    """

    def __init__(self, path, num_threads=None):
        interpreter_class = _tflite_interpreter_class()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # TensorFlow's "tf.lite.Interpreter is deprecated"
            self.interpreter = interpreter_class(model_path=str(path), num_threads=num_threads or os.cpu_count())
        self.runner = self.interpreter.get_signature_runner(SIGNATURE_NHWC)

    def __call__(self, images):
        """The outputs (numpy) for a batch of uint8 images of one size."""
        return {name: np.asarray(value) for name, value in self.runner(images=_nhwc(images)).items()}

    def detect(self, images):
        """``MaskRCNN.detect``'s results for a batch."""
        return results_from_outputs(self(images))


def import_onnxruntime():
    """``onnxruntime``, or :class:`ExportError` naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ExportError("ONNX needs the optional dependencies of the [export] extra: "
                          "pip install 'rsna_detector[export]' (tf2onnx, onnxruntime)") from error
    return onnxruntime


class OnnxDetector:
    """An exported ``.onnx`` file run by ONNX Runtime (CPU).

    Parameters
    ----------
    path : str or Path
    num_threads : int, optional
        Intra-op threads (default: ONNX Runtime's, one per core).
    """

    def __init__(self, path, num_threads=None):
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.session = onnxruntime.InferenceSession(str(Path(path)), options, providers=["CPUExecutionProvider"])
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, images):
        """The outputs (numpy) for a batch of uint8 images of one size."""
        values = self.session.run(self.output_names, {"images": _nhwc(images)})
        return dict(zip(self.output_names, values, strict=True))

    def detect(self, images):
        """``MaskRCNN.detect``'s results for a batch."""
        return results_from_outputs(self(images))
