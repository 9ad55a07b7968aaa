"""DetectionLayer: classified, refined ROIs -> the final detections of each image."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .box_ops import apply_box_deltas_graph, clip_boxes_graph, norm_boxes_graph, parse_image_meta_graph

__all__ = ["DetectionLayer", "refine_detections_graph"]

# Per-class NMS runs as one NMS over boxes shifted by class_id * _CLASS_OFFSET: normalized
# boxes lie in [0, 1], so boxes of different classes never overlap after the shift.
_CLASS_OFFSET = 2.0


def refine_detections_graph(rois, probs, deltas, window, max_instances, min_confidence, nms_threshold,
                            bbox_std_dev):
    """Final detections of one image.

    Each ROI takes its best class; its class-specific deltas (times
    ``bbox_std_dev``) refine it; the box is clipped to the window. ROIs that are
    padding (all-zero), background (class 0) or below ``min_confidence`` are dropped;
    a per-class greedy NMS at ``nms_threshold`` follows; the ``max_instances``
    best-scored survivors are kept.

    Parameters
    ----------
    rois : Tensor, float32, [N, 4]
        Normalized ``(y1, x1, y2, x2)``.
    probs : Tensor, float32, [N, num_classes]
    deltas : Tensor, float32, [N, num_classes, 4]
    window : Tensor, float32, [4]
        Normalized window of the real image inside the molded one.
    max_instances : int
    min_confidence : float
        Scores ``>= min_confidence`` are kept.
    nms_threshold : float
    bbox_std_dev : sequence of 4 float

    Returns
    -------
    Tensor, float32, [max_instances, 6]
        ``(y1, x1, y2, x2, class_id, score)`` by decreasing score, zero-padded.
    """
    class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
    scores = tf.gather(probs, class_ids, batch_dims=1)
    class_deltas = tf.gather(deltas, class_ids, batch_dims=1)
    boxes = apply_box_deltas_graph(rois, class_deltas * tf.constant(np.asarray(bbox_std_dev, np.float32)))
    boxes = clip_boxes_graph(boxes, window)

    is_real = tf.reduce_any(tf.not_equal(rois, 0.0), axis=1)
    keep = tf.reshape(tf.where(is_real & (class_ids > 0) & (scores >= min_confidence)), [-1])
    kept_boxes = tf.gather(boxes, keep)
    kept_scores = tf.gather(scores, keep)
    kept_classes = tf.gather(class_ids, keep)

    shifted = kept_boxes + _CLASS_OFFSET * tf.cast(kept_classes, tf.float32)[:, tf.newaxis]
    chosen = tf.image.non_max_suppression(shifted, kept_scores, max_instances, iou_threshold=nms_threshold)
    detections = tf.concat([
        tf.gather(kept_boxes, chosen),
        tf.cast(tf.gather(kept_classes, chosen), tf.float32)[:, tf.newaxis],
        tf.gather(kept_scores, chosen)[:, tf.newaxis],
    ], axis=1)
    padding = max_instances - tf.shape(detections)[0]
    return tf.pad(detections, [[0, padding], [0, 0]])


@keras.saving.register_keras_serializable(package="rsna_detector")
class DetectionLayer(keras.layers.Layer):
    """Keras layer around :func:`refine_detections_graph` (matterport's ``DetectionLayer``).

    Parameters
    ----------
    config : Config, optional
        ``DETECTION_MAX_INSTANCES``, ``DETECTION_MIN_CONFIDENCE``,
        ``DETECTION_NMS_THRESHOLD``, ``BBOX_STD_DEV`` (or pass them as the keyword
        arguments ``max_instances``, ``min_confidence``, ``nms_threshold``,
        ``bbox_std_dev``).

    Call inputs ``[rois [B, N, 4], mrcnn_class [B, N, C], mrcnn_bbox [B, N, C, 4],
    image_meta [B, META]]``; output ``[B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2,
    class_id, score)]`` with normalized boxes, zero-padded.
    """

    def __init__(self, config=None, max_instances=None, min_confidence=None, nms_threshold=None,
                 bbox_std_dev=None, **kwargs):
        super().__init__(**kwargs)

        def setting(value, name):
            if value is not None:
                return value
            if config is None:
                raise ValueError(f"DetectionLayer: give config= or {name.lower()}")
            return getattr(config, name)

        self.max_instances = int(setting(max_instances, "DETECTION_MAX_INSTANCES"))
        self.min_confidence = float(setting(min_confidence, "DETECTION_MIN_CONFIDENCE"))
        self.nms_threshold = float(setting(nms_threshold, "DETECTION_NMS_THRESHOLD"))
        self.bbox_std_dev = [float(v) for v in np.reshape(setting(bbox_std_dev, "BBOX_STD_DEV"), [-1])]

    def call(self, inputs):
        rois, probs, deltas, image_meta = inputs
        meta = parse_image_meta_graph(image_meta)
        windows = norm_boxes_graph(meta["window"], meta["image_shape"][0, :2])

        def one_image(args):
            return refine_detections_graph(*args, self.max_instances, self.min_confidence,
                                           self.nms_threshold, self.bbox_std_dev)

        return tf.map_fn(one_image, (rois, probs, deltas, windows),
                         fn_output_signature=tf.TensorSpec([self.max_instances, 6], tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def get_config(self):
        config = super().get_config()
        config.update(max_instances=self.max_instances, min_confidence=self.min_confidence,
                      nms_threshold=self.nms_threshold, bbox_std_dev=self.bbox_std_dev)
        return config
