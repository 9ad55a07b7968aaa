"""A matterport-compatible Mask R-CNN engine on TensorFlow 2 / Keras 3.

Import it as matterport's package was imported::

    from rsna_detector.mrcnn.config import Config
    from rsna_detector.mrcnn import utils, visualize
    import rsna_detector.mrcnn.model as modellib
"""
