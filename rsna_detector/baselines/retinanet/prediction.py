"""RetinaNet detections of image files, in the pixels of each file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.labels import scale_boxes
from ...detector.submission import ImagePrediction
from .models import image_size_of
from .preprocessing import preprocess_images, read_grey_image

__all__ = ["predict_retinanet"]


def _to_original(boxes, image_size, original):
    boxes = scale_boxes(boxes, image_size, original).astype(np.float32)
    height, width = original
    boxes = np.clip(boxes, 0, [height, width, height, width]).astype(np.float32)
    return boxes


def _predict_batch(model, images, batch_size):
    """``model.predict`` on exactly ``batch_size`` images (the last ones repeated), outputs cut back.

    keras-hub 0.32's NonMaxSuppression needs a static batch size: once a predict
    function has seen two batch sizes, TensorFlow retraces it with an unknown
    batch dimension and the NMS fails. So every call gets ``batch_size`` images,
    and the predict function is rebuilt when ``batch_size`` changes.
    """
    if getattr(model, "_rsna_predict_batch", None) != batch_size:
        model.make_predict_function(force=True)
        model._rsna_predict_batch = batch_size
    count = len(images)
    if count < batch_size:
        images = np.concatenate([images, np.repeat(images[-1:], batch_size - count, axis=0)])
    output = model.predict(images, batch_size=batch_size, verbose=0)
    return {key: np.asarray(value)[:count] for key, value in output.items()}


def predict_retinanet(model, paths, *, batch_size=8, min_confidence=None):
    """Detections of each image, in the pixels of the original image.

    Parameters
    ----------
    model : RetinaNetObjectDetector
        From :func:`build_retinanet` / :func:`train_retinanet`.
    paths : sequence of path
        DICOM or PNG/JPEG files; the patient id is the file name without extension.
    batch_size : int
    min_confidence : float, optional
        Keep detections scoring at least this (the model's decoder already
        dropped those below its ``min_confidence``).

    Returns
    -------
    list of ImagePrediction
        In ``paths`` order; boxes float32 ``(y1, x1, y2, x2)`` scaled from the
        input size to the file's size and clipped to it, scores descending.
    """
    paths = [Path(p) for p in paths]
    size = image_size_of(model)
    predictions = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images, originals = zip(*(read_grey_image(p, size) for p in chunk), strict=True)
        output = _predict_batch(model, preprocess_images(np.stack(images)), batch_size)
        for row, (path, original) in enumerate(zip(chunk, originals, strict=True)):
            count = int(output["num_detections"][row])
            boxes = output["boxes"][row, :count].astype(np.float32)
            scores = output["confidence"][row, :count].astype(np.float32)
            keep = np.ones(count, bool) if min_confidence is None else scores >= min_confidence
            boxes = _to_original(boxes[keep], size, original)
            scores = scores[keep]
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            order = np.argsort(-scores[valid], kind="stable")
            predictions.append(ImagePrediction(path.stem, boxes[valid][order], scores[valid][order]))
    return predictions
