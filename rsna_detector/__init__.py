"""rsna_detector: Mask R-CNN pneumonia-opacity detection on the RSNA challenge data.

Importing the package is cheap: TensorFlow is imported only when a name that
needs it (the detector, training, evaluation) is first used.

Box conventions used everywhere in the library:

* engine boxes: ``(y1, x1, y2, x2)`` in pixels, ``y2``/``x2`` exclusive
  (matterport's convention);
* RSNA boxes: ``(x, y, width, height)`` in pixels of the 1024x1024 image,
  ``(x, y)`` the top-left corner. They are converted once when labels are read
  and once when a submission is written.
"""
import importlib

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily, PEP 562)
_LAZY_EXPORTS = {
    # data layer
    "read_labels": "rsna_detector.data.labels",
    "load_patient_records": "rsna_detector.data.labels",
    "PatientRecord": "rsna_detector.data.labels",
    "LabelError": "rsna_detector.data.labels",
    "read_dicom": "rsna_detector.data.dicom",
    "read_dicom_image": "rsna_detector.data.dicom",
    "read_dicom_metadata": "rsna_detector.data.dicom",
    "DicomMetadata": "rsna_detector.data.dicom",
    "DicomReadError": "rsna_detector.data.dicom",
    "convert_dicoms": "rsna_detector.data.convert",
    "ConversionReport": "rsna_detector.data.convert",
    "SyntheticSummary": "rsna_detector.data.synthetic",
    "synthetic_chest_image": "rsna_detector.data.synthetic",
    "build_patient_table": "rsna_detector.data.table",
    "make_synthetic_dataset": "rsna_detector.data.synthetic",
    "split_patients": "rsna_detector.data.splits",
    "KaggleLayout": "rsna_detector.data.layout",
    "LayoutError": "rsna_detector.data.layout",
    "xywh_to_yxyx": "rsna_detector.data.labels",
    "yxyx_to_xywh": "rsna_detector.data.labels",
    "scale_boxes": "rsna_detector.data.labels",
    "records_from_frame": "rsna_detector.data.labels",
    "LabelWarning": "rsna_detector.data.labels",
    "PatientTable": "rsna_detector.data.table",
    "SplitError": "rsna_detector.data.splits",
    "DetectorDataset": "rsna_detector.data.dataset",
    # detector
    "DetectorConfig": "rsna_detector.config",
    "CPUDemoConfig": "rsna_detector.config",
    "train": "rsna_detector.train",
    "default_schedule": "rsna_detector.train",
    "Stage": "rsna_detector.train",
    "predict": "rsna_detector.predict",
    "run_demo": "rsna_detector.demo",
    "get_augmentation": "rsna_detector.augment",
    "show_augmented_samples": "rsna_detector.augment",
    "plot_gt_vs_prediction": "rsna_detector.figures",
    # exploratory data analysis
    "run_eda": "rsna_detector.eda",
    "compute_label_statistics": "rsna_detector.eda",
    "describe_distribution": "rsna_detector.eda",
    # baselines
    "build_classifier": "rsna_detector.baselines.classifier",
    "train_classifier": "rsna_detector.baselines.classifier",
    "evaluate_classifier": "rsna_detector.baselines.classifier",
    "gate_predictions": "rsna_detector.baselines.gating",
    "gating_effect": "rsna_detector.baselines.gating",
    "build_retinanet": "rsna_detector.baselines.retinanet",
    "train_retinanet": "rsna_detector.baselines.retinanet",
    "predict_retinanet": "rsna_detector.baselines.retinanet",
    "evaluate_retinanet": "rsna_detector.baselines.retinanet",
    # evaluation, submission, weights
    "ImagePrediction": "rsna_detector.submission",
    "write_submission": "rsna_detector.submission",
    "parse_submission": "rsna_detector.submission",
    "SubmissionError": "rsna_detector.submission",
    "fetch_weights": "rsna_detector.weights",
    "list_weights": "rsna_detector.weights",
    "WeightsError": "rsna_detector.weights",
    "evaluate_detector": "rsna_detector.evaluate",
    "compute_batch_ap": "rsna_detector.evaluate",
    "rsna_score": "rsna_detector.evaluate",
    "rsna_image_score": "rsna_detector.evaluate",
    "sweep_confidence_threshold": "rsna_detector.evaluate",
    "EvaluationError": "rsna_detector.evaluate",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


# ``train`` and ``predict`` are both functions and submodules of the package: importing
# the submodule would rebind the package attribute to the module, so bind the functions
# now (both modules are light: TensorFlow is imported inside the functions).
from .predict import predict  # noqa: E402
from .train import train  # noqa: E402


def __getattr__(name):
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rsna_detector' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
