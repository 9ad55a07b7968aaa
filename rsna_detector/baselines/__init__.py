"""The report's baselines beside the Mask R-CNN: image-level classifiers, RetinaNet, classifier gating.

* :mod:`.classifier`: VGG19 / ResNet50 / DenseNet121 / CheXNet pneumonia classifiers;
* :mod:`.retinanet`: a one-class RetinaNet on keras-hub, evaluated as the Mask R-CNN;
* :mod:`.gating`: a classifier's veto of a detector's boxes, and its effect on the
  competition score;
* :mod:`.batching`: the seeded, reshuffled batch order of both input sequences;
* :mod:`.saved_models`: a trained baseline saved as one ``.keras`` file, and loaded back.

Importing this package (and its two subpackages) does not import Keras; each
subpackage imports a name's module when the name is first used.
"""
from . import classifier, retinanet
from .batching import ShuffledBatches
from .gating import GatingError, gate_predictions, gating_effect
from .saved_models import load_model_for_prediction, save_trained_model

__all__ = [
    "classifier",
    "retinanet",
    "gate_predictions",
    "gating_effect",
    "GatingError",
    "ShuffledBatches",
    "save_trained_model",
    "load_model_for_prediction",
]
