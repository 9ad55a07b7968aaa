"""The engine's Keras layers and graphs: backbone, FPN, RPN, proposals, ROI align, heads, detection,
the ROI-head targets, the losses and the training graph; matterport's graph-level names (``compat``).
"""
