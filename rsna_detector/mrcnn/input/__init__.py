"""The training input: the ``Dataset`` base class, ground truth of an image, RPN and ROI-head targets,
matterport's ``data_generator``, the seeded batch pipeline and its worker processes.

No TensorFlow or Keras at import: the input worker processes import only this and ``ops``
(``tests/mrcnn/input/test_worker_imports.py``); ``pipeline.make_input_dataset`` and ``workers`` import
``tf.data`` in the training process, when they run.
"""
