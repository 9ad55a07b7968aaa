"""The inference model and the steps of ``MaskRCNN.detect`` (``detect``).
"""
