"""The training loop behind ``MaskRCNN.train`` (``loop``), run folders and checkpoints, weight files, the
progress line.
"""
