"""A trained detector as files that run without this library: SavedModel, TFLite, ONNX (docs/DEPLOY.md).

Each export holds everything ``MaskRCNN.detect`` does: it takes a batch of uint8
images of one size and returns boxes in the input's pixels, scores, class ids,
a count per image and optionally masks at the input's size.

* :mod:`.resample` -- scikit-image's bilinear resize and ``unmold_mask`` as graph ops;
* :mod:`.preprocess` -- molding (resize, pad, mean pixel, meta, anchors) in the graph;
* :mod:`.postprocess` -- unmolding (boxes and masks in the input's pixels);
* :mod:`.roi_align_gather` -- ROI Align from TFLite's built-in ops;
* :mod:`.serving` -- the exported ``tf.Module`` and its signatures;
* :mod:`.saved_model` -- TF Serving's layout (``MaskRCNN.export``);
* :mod:`.tflite`, :mod:`.onnx_model` -- the other formats;
* :mod:`.runners` -- running the exported files from Python.
"""
from .onnx_model import export_onnx
from .preprocess import ExportError
from .runners import OnnxDetector, SavedModelDetector, TFLiteDetector, results_from_outputs
from .saved_model import export_saved_model, read_export_description
from .tflite import QUANTIZATIONS, export_tflite

__all__ = ["ExportError", "export_saved_model", "export_tflite", "export_onnx", "read_export_description",
           "QUANTIZATIONS", "SavedModelDetector", "TFLiteDetector", "OnnxDetector", "results_from_outputs"]
