"""The engine's numpy building blocks: boxes, masks, anchors, the image meta, molding.

No TensorFlow or Keras at import (``tests/test_layers.py``); ``image_meta.parse_image_meta_graph`` imports
TensorFlow when it runs, in the graph.
"""
