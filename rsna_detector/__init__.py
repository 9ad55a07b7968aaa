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
from ._lazy import lazy_exports as _lazy_exports

__version__ = "0.2.0"

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
    "DicomMetadataWarning": "rsna_detector.data.dicom",
    "convert_dicoms": "rsna_detector.data.convert",
    "ConversionReport": "rsna_detector.data.convert",
    "SyntheticSummary": "rsna_detector.data.synthetic",
    "synthetic_chest_image": "rsna_detector.data.synthetic_image",
    "build_patient_table": "rsna_detector.data.table",
    "make_synthetic_dataset": "rsna_detector.data.synthetic",
    "split_patients": "rsna_detector.data.splits",
    "k_fold_patients": "rsna_detector.data.splits",
    "assign_folds": "rsna_detector.data.splits",
    "KaggleLayout": "rsna_detector.data.layout",
    "LayoutError": "rsna_detector.data.layout",
    "xywh_to_yxyx": "rsna_detector.data.labels",
    "yxyx_to_xywh": "rsna_detector.data.labels",
    "scale_boxes": "rsna_detector.data.labels",
    "records_from_frame": "rsna_detector.data.labels",
    "LabelWarning": "rsna_detector.data.labels",
    "PatientTable": "rsna_detector.data.table",
    "SplitError": "rsna_detector.data.splits",
    # detector
    "DetectorDataset": "rsna_detector.detector.dataset",
    "DetectorConfig": "rsna_detector.detector.config",
    "CPUDemoConfig": "rsna_detector.detector.config",
    "train": "rsna_detector.detector.schedule",
    "default_schedule": "rsna_detector.detector.schedule",
    "Stage": "rsna_detector.detector.schedule",
    "predict": "rsna_detector.detector.inference",
    "run_demo": "rsna_detector.detector.demo",
    "get_augmentation": "rsna_detector.detector.augment",
    "show_augmented_samples": "rsna_detector.detector.augment",
    "plot_gt_vs_prediction": "rsna_detector.detector.figures",
    "load_detector": "rsna_detector.detector.loading",
    "PostProcessing": "rsna_detector.detector.postprocess",
    "load_postprocessing": "rsna_detector.detector.postprocess",
    "ValidationCallback": "rsna_detector.detector.validation",
    "weighted_boxes_fusion": "rsna_detector.detector.ensemble",
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
    "ImagePrediction": "rsna_detector.detector.submission",
    "write_submission": "rsna_detector.detector.submission",
    "parse_submission": "rsna_detector.detector.submission",
    "SubmissionError": "rsna_detector.detector.submission",
    "fetch_weights": "rsna_detector.weights",
    "list_weights": "rsna_detector.weights",
    "WeightsError": "rsna_detector.weights",
    "evaluate_detector": "rsna_detector.detector.evaluate",
    "compute_batch_ap": "rsna_detector.detector.evaluate",
    "rsna_score": "rsna_detector.detector.evaluate",
    "rsna_image_score": "rsna_detector.detector.evaluate",
    "sweep_confidence_threshold": "rsna_detector.detector.evaluate",
    "coco_ap": "rsna_detector.detector.coco",
    "EvaluationError": "rsna_detector.detector.evaluate",
}

__all__ = ["__version__", *_LAZY_EXPORTS]

_NAMES_BY_SUBMODULE = {}
for _name, _module in _LAZY_EXPORTS.items():
    _NAMES_BY_SUBMODULE.setdefault(_module.removeprefix(__name__ + "."), []).append(_name)
del _name, _module

__getattr__, __dir__ = _lazy_exports(__name__, _NAMES_BY_SUBMODULE)
