"""Detector settings: the brief's RSNA values and a small CPU preset.

``DetectorConfig`` reproduces the configuration of the report and of the
well-known RSNA Mask R-CNN notebook (docs/DATA_AND_SETTINGS.md, Settings). ``CPUDemoConfig`` is
a much smaller model for demos and tests on a laptop CPU: it is *not* the
configuration to use for results on the real data.

Four anchor scales on five pyramid levels
-----------------------------------------
The RSNA settings give four anchor scales (16, 32, 64, 128) while the FPN has
five levels (P2-P6, strides 4-64). matterport pairs one scale with one level;
with four scales the original code still ran the RPN on P6 and gathered anchors
beyond the end of the anchor list (zero boxes on a GPU, an error on a CPU), so
P6 contributed nothing useful. This library makes that explicit: the anchors
and the RPN use the first ``len(RPN_ANCHOR_SCALES)`` levels only, here P2-P5
with scale 16 on stride 4 up to scale 128 on stride 32, and P6 is not used
(``config.RPN_PYRAMID_LEVELS == 4``). The RPN's weights are shared across
levels, so COCO weights load unchanged.
"""
from __future__ import annotations

from ..mrcnn.config import Config

__all__ = ["DetectorConfig", "CPUDemoConfig", "PRESETS", "config_for_preset", "load_config"]

#: The presets by name: ``full`` (:class:`DetectorConfig`) and ``cpu`` (:class:`CPUDemoConfig`).
PRESETS = ("full", "cpu")


class DetectorConfig(Config):
    """The RSNA detector's settings (the brief's values).

    NAME 'pneumonia'; 1 GPU x 8 images; ResNet-50 backbone; 2 classes
    (background + pneumonia); 256 x 256 inputs (the 1024 DICOMs are read at 256
    through the fast DCT-domain decode); anchor scales 16-128 on P2-P5; 32 ROIs
    per image for the heads (few objects per image); at most 4 ground-truth
    boxes (the real maximum); at most 3 detections, kept above confidence 0.78
    ("match target distribution") with an NMS IoU of 0.01, i.e. detections
    hardly overlap; 200 steps per epoch. LEARNING_RATE 0.006 is the notebook's;
    the first (heads) stage of ``train()`` runs at twice that, the report's
    0.012.
    """

    NAME = "pneumonia"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 8
    BACKBONE = "resnet50"
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 3
    DETECTION_MIN_CONFIDENCE = 0.78
    DETECTION_NMS_THRESHOLD = 0.01
    STEPS_PER_EPOCH = 200
    LEARNING_RATE = 0.006
    # RSNA's negatives (77% of the images) train the heads as pure background: see
    # docs/MATTERPORT.md for these switches and matterport's behaviour.
    TRAIN_ON_EMPTY_IMAGES = True
    ROI_FILL_NEGATIVES = True
    CLASS_LOSS_SKIPS_PADDING = True
    ACTIVE_CLASS_PER_IMAGE = True


class CPUDemoConfig(DetectorConfig):
    """A small, fast configuration for demos and tests on a CPU (not for results).

    The engine's 'tiny' backbone instead of ResNet-50, 128 x 128 inputs
    (anchors halved accordingly), narrower FPN and box head, far fewer
    proposals, and a lower detection threshold because a briefly trained small
    model is less confident.
    """

    NAME = "pneumonia_cpu"
    BACKBONE = "tiny"
    IMAGES_PER_GPU = 4
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64)
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 100
    DETECTION_MIN_CONFIDENCE = 0.5
    DETECTION_NMS_THRESHOLD = 0.1
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 5
    LEARNING_RATE = 0.02


def config_for_preset(name="full"):
    """A new config of the preset ``name`` (one of :data:`PRESETS`): ``full`` gives
    :class:`DetectorConfig`, ``cpu`` :class:`CPUDemoConfig`.

    Raises
    ------
    ConfigError
        An unknown name (a ``ValueError``), naming the presets.
    """
    from ..mrcnn.config import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"preset: expected one of {list(PRESETS)}, got {name!r}")
    return CPUDemoConfig() if name == "cpu" else DetectorConfig()


def load_config(path=None, preset="full"):
    """The config of a JSON file (``Config.to_json``'s) when ``path`` is given, else of ``preset``
    (:func:`config_for_preset`); always a new object the caller owns."""
    return Config.from_json(path) if path else config_for_preset(preset)
