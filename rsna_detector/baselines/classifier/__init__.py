"""Pneumonia classifier baselines: VGG19, ResNet50, DenseNet121 and CheXNet (the report's section 4).

A classifier says whether an image holds any opacity (RSNA ``Target``); the
detectors' boxes can then be gated by its score (:mod:`rsna_detector.baselines.gating`).

Models (the report's settings)
------------------------------
A ``keras.applications`` backbone without its top, global average pooling and
one sigmoid unit; input 224x224x3 (the report's "244" is a typo); Adam 1e-3,
binary cross-entropy, metrics accuracy, precision, recall and F1 (all at the
score threshold 0.5). 'chexnet' is DenseNet121 initialised from the published
14-class CheXNet Keras weights (``brucechou1983_CheXNet_Keras_0.3.0_weights.h5``:
a Keras-2 ``save_weights`` HDF5 file of ``DenseNet121(include_top=False,
pooling='avg')`` + ``Dense(14, sigmoid)``), whose 14-unit top is replaced by one
sigmoid unit.

Data
----
Images are read from the DICOMs through ``read_dicom``'s fast path at the model's
input size, grey repeated to three channels, then ``preprocess_input`` of the
backbone (``preprocessing='backbone'``, the right input scale for ImageNet and
CheXNet weights) or the report's ``rescale 1/255`` (``preprocessing='rescale'``).
Training images get the report's augmentation (rotation +-40 deg, shear 0.2,
zoom 0.2, horizontal flip, brightness 0.5-1.5: Keras ``ImageDataGenerator``'s
meaning of each, through imgaug). The split is 70:30 at patient level
(``split_patients``); the loss weights the classes by inverse frequency.

Metrics
-------
ROC-AUC, PR-AUC, confusion matrices and the F1-best threshold, in numpy
(:mod:`.metrics`).

Modules
-------
:mod:`.settings` (backbone names, the package's error; no Keras), :mod:`.models`
(build and compile), :mod:`.chexnet` (weights files), :mod:`.preprocessing`
(input scale, augmentation), :mod:`.sequence` (Keras input), :mod:`.discovery`
(labelled patients with an image), :mod:`.training`, :mod:`.evaluation`,
:mod:`.metrics`. Importing the package is cheap: each name is imported from its
module (Keras with it) when first used.
"""
from ..._lazy import lazy_exports as _lazy_exports

# module -> the public names it defines (each imported from its module when first used)
_EXPORTS = {
    "settings": ["CLASSIFIER_NAMES", "CHEXNET_CLASS_COUNT", "DEFAULT_INPUT_SHAPE", "ClassifierError"],
    "models": ["build_classifier", "compile_classifier", "BinaryF1Score"],
    "chexnet": ["load_keras2_weights", "load_chexnet_weights"],
    "preprocessing": ["preprocess_images", "classifier_augmentation"],
    "sequence": ["ClassifierSequence"],
    "discovery": ["patient_images", "labelled_images", "class_weights"],
    "training": ["train_classifier"],
    "evaluation": ["predict_scores", "evaluate_classifier"],
    "metrics": ["roc_curve", "roc_auc", "pr_curve", "average_precision", "confusion_matrix", "best_f1_threshold",
                "classification_metrics"],
}

__all__ = [name for names in _EXPORTS.values() for name in names]
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
