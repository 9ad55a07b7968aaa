"""The RSNA application of the engine: the pneumonia-opacity detector, from DICOMs to a submission.

One module per job, in the order a run uses them:

* :mod:`.config`: ``DetectorConfig`` (the report's settings) and ``CPUDemoConfig``;
* :mod:`.dataset`: ``DetectorDataset``, RSNA patients as an engine ``Dataset`` (boxes as masks);
* :mod:`.augment` / :mod:`.piecewise_affine`: the training augmentation (imgaug), and a fast
  ``PiecewiseAffine`` equal to imgaug's;
* :mod:`.schedule`: ``train``, the staged fine-tuning schedule from COCO weights;
* :mod:`.validation`: ``ValidationCallback``, metrics while training; the best checkpoint and
  its threshold recorded;
* :mod:`.postprocess`: ``PostProcessing``, the stored description of what is done to the
  detections (flip TTA, fusion, the validated threshold) and the one pipeline applying it;
* :mod:`.loading`: ``load_detector``, an inference model from a checkpoint or run folder with
  its stored post-processing;
* :mod:`.inference`: ``predict``, DICOM folders to detections (post-processing, shards);
* :mod:`.competition`: the competition's metric (mean over IoU thresholds 0.4-0.75);
* :mod:`.evaluate`: evaluation of a trained detector (mAP, the competition score, the
  confidence sweep, COCO AP through :mod:`.coco`); :mod:`.report`: the metrics report;
* :mod:`.submission`: the Kaggle submission file, written and parsed;
* :mod:`.results`: the results files of sharded prediction runs, merged into a submission;
* :mod:`.figures`: ground truth beside prediction;
* :mod:`.demo`: the end-to-end demo on synthetic data.

This layer imports the engine (:mod:`rsna_detector.mrcnn`), the data layer and the weights
registry, never the baselines, EDA or CLI. Importing the package imports no TensorFlow; each
name below imports its module when first used. ``rsna_detector.detector.schedule`` and
``rsna_detector.detector.inference`` are the modules of ``train`` and ``predict``.
"""
from .._lazy import lazy_exports as _lazy_exports

__all__ = ["DetectorConfig", "CPUDemoConfig", "DetectorDataset", "train", "default_schedule", "Stage",
           "predict", "evaluate_detector", "write_submission", "run_demo", "PostProcessing", "load_postprocessing",
           "load_detector", "ValidationCallback", "coco_ap"]

__getattr__, __dir__ = _lazy_exports(__name__, {
    "config": ["DetectorConfig", "CPUDemoConfig"],
    "dataset": ["DetectorDataset"],
    "schedule": ["train", "default_schedule", "Stage"],
    "inference": ["predict"],
    "evaluate": ["evaluate_detector"],
    "submission": ["write_submission"],
    "demo": ["run_demo"],
    "postprocess": ["PostProcessing", "load_postprocessing"],
    "loading": ["load_detector"],
    "validation": ["ValidationCallback"],
    "coco": ["coco_ap"],
})
