"""RetinaNet's fixed settings (class name, anchor aspect ratios and pyramid levels, input size) and its error.

No Keras here: ``rsna-detector retinanet-train --help`` shows these defaults without loading TensorFlow.
"""
from __future__ import annotations

from ...errors import RsnaDetectorError

__all__ = ["RETINANET_CLASS_NAME", "RSNA_ASPECT_RATIOS", "DEFAULT_IMAGE_SIZE", "SMOOTH_L1_SIGMA", "MIN_LEVEL",
           "MAX_LEVEL", "RetinaNetError"]

RETINANET_CLASS_NAME = "Pneumonia"
RSNA_ASPECT_RATIOS = (1.0, 1.5, 2.25)  # height / width, keras-hub's convention
DEFAULT_IMAGE_SIZE = 256
SMOOTH_L1_SIGMA = 3.0
MIN_LEVEL, MAX_LEVEL = 3, 7


class RetinaNetError(RsnaDetectorError, ValueError):
    """Invalid RetinaNet input: a malformed annotation CSV (file and line named), bad weights or data."""
