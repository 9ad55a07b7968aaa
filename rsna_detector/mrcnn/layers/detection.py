"""DetectionLayer: classified, refined ROIs -> the final detections of each image."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ...errors import InvalidArgumentError
from ..ops.image_meta import parse_image_meta_graph
from .box_ops import apply_box_deltas_graph, clip_boxes_graph, norm_boxes_graph

__all__ = ["DetectionLayer", "refine_detections_graph", "detection_settings"]

# keyword of refine_detections_graph -> the Config setting it defaults to
_SETTING_NAMES = {
    "max_instances": "DETECTION_MAX_INSTANCES",
    "min_confidence": "DETECTION_MIN_CONFIDENCE",
    "nms_threshold": "DETECTION_NMS_THRESHOLD",
    "bbox_std_dev": "BBOX_STD_DEV",
}


def detection_settings(config=None, **given):
    """The detection settings: each keyword given, else the config's setting.

    Parameters
    ----------
    config : Config, optional
        Read for every keyword not given (``DETECTION_MAX_INSTANCES``,
        ``DETECTION_MIN_CONFIDENCE``, ``DETECTION_NMS_THRESHOLD``, ``BBOX_STD_DEV``).
    **given
        ``max_instances``, ``min_confidence``, ``nms_threshold``, ``bbox_std_dev``;
        None means "from the config".

    Returns
    -------
    dict
        ``max_instances`` int, ``min_confidence`` float, ``nms_threshold`` float,
        ``bbox_std_dev`` list of 4 float.

    Raises
    ------
    ValueError
        For an unknown keyword, or a setting neither given nor in a config.
    """
    unknown = sorted(set(given) - set(_SETTING_NAMES))
    if unknown:
        raise InvalidArgumentError(f"detection settings: unknown keyword(s) {unknown}; expected "
                                   f"{sorted(_SETTING_NAMES)}")
    values = {}
    for key, name in _SETTING_NAMES.items():
        value = given.get(key)
        if value is None:
            if config is None:
                raise InvalidArgumentError(f"detection settings: give config= or {key}=")
            value = getattr(config, name)
        values[key] = value
    return {
        "max_instances": int(values["max_instances"]),
        "min_confidence": float(values["min_confidence"]),
        "nms_threshold": float(values["nms_threshold"]),
        "bbox_std_dev": [float(v) for v in np.reshape(values["bbox_std_dev"], [-1])],
    }


def refine_detections_graph(rois, probs, deltas, window, config=None, **settings):
    """Final detections of one image (matterport's ``refine_detections_graph``).

    Each ROI takes its best class; its class-specific deltas (times
    ``bbox_std_dev``) refine it; the box is clipped to the window. ROIs of the
    background class or scored below ``min_confidence`` are dropped; a greedy NMS
    at ``nms_threshold`` runs per class; the ``max_instances`` best-scored
    survivors are kept (equal scores: the lower ROI index first). All-zero
    (padding) ROIs are treated like the others, as in matterport: the inference
    graph's classifier gives them uniform probabilities (``heads``'
    ``skip_padding``), so they fall to the background class.

    Parameters
    ----------
    rois : Tensor, float32, [N, 4]
        Normalized ``(y1, x1, y2, x2)``.
    probs : Tensor, float32, [N, num_classes]
        ``num_classes`` must be static.
    deltas : Tensor, float32, [N, num_classes, 4]
    window : Tensor, float32, [4]
        Normalized window of the real image inside the molded one.
    config : Config, optional
        Supplies the settings not given as keywords (matterport's signature is
        ``(rois, probs, deltas, window, config)``).
    **settings
        ``max_instances``, ``min_confidence`` (scores ``>=`` it are kept),
        ``nms_threshold``, ``bbox_std_dev`` (see :func:`detection_settings`).

    Returns
    -------
    Tensor, float32, [max_instances, 6]
        ``(y1, x1, y2, x2, class_id, score)`` by decreasing score, zero-padded.
    """
    settings = detection_settings(config, **settings)
    max_instances = settings["max_instances"]
    class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
    scores = tf.gather(probs, class_ids, batch_dims=1)
    class_deltas = tf.gather(deltas, class_ids, batch_dims=1)
    std_dev = tf.constant(np.asarray(settings["bbox_std_dev"], np.float32))
    boxes = clip_boxes_graph(apply_box_deltas_graph(rois, class_deltas * std_dev), window)

    wanted = (class_ids > 0) & (scores >= settings["min_confidence"])
    keep = tf.reshape(tf.where(wanted), [-1])  # ascending ROI order
    kept_classes = tf.gather(class_ids, keep)
    kept_scores = tf.gather(scores, keep)
    kept_boxes = tf.gather(boxes, keep)

    survivors = []  # positions in `keep`
    for class_id in range(1, probs.shape[-1]):
        members = tf.reshape(tf.where(tf.equal(kept_classes, class_id)), [-1])
        # Padded NMS and an explicit slice: the TFLite converter turns tf.image.non_max_suppression into
        # its padded kernel without the slice (duplicate indices); this form converts as it runs in TF.
        chosen, count = tf.raw_ops.NonMaxSuppressionV4(
            boxes=tf.gather(kept_boxes, members), scores=tf.gather(kept_scores, members),
            max_output_size=max_instances, iou_threshold=settings["nms_threshold"],
            score_threshold=float("-inf"), pad_to_max_output_size=True)
        survivors.append(tf.gather(members, chosen[:count]))
    survivors = tf.sort(tf.concat(survivors, axis=0)) if survivors else tf.zeros([0], tf.int64)
    # top_k keeps the lower position first among equal scores, as matterport's does.
    count = tf.minimum(tf.shape(survivors)[0], max_instances)
    best = tf.gather(survivors, tf.math.top_k(tf.gather(kept_scores, survivors), k=count, sorted=True).indices)

    detections = tf.concat([
        tf.gather(kept_boxes, best),
        tf.cast(tf.gather(kept_classes, best), tf.float32)[:, tf.newaxis],
        tf.gather(kept_scores, best)[:, tf.newaxis],
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
    class_id, score)]`` with normalized boxes, zero-padded. The window is
    normalized with the first image's shape (a batch shares one molded shape).
    """

    def __init__(self, config=None, max_instances=None, min_confidence=None, nms_threshold=None,
                 bbox_std_dev=None, **kwargs):
        super().__init__(**kwargs)
        settings = detection_settings(config, max_instances=max_instances, min_confidence=min_confidence,
                                      nms_threshold=nms_threshold, bbox_std_dev=bbox_std_dev)
        self.max_instances = settings["max_instances"]
        self.min_confidence = settings["min_confidence"]
        self.nms_threshold = settings["nms_threshold"]
        self.bbox_std_dev = settings["bbox_std_dev"]

    def _settings(self):
        return dict(max_instances=self.max_instances, min_confidence=self.min_confidence,
                    nms_threshold=self.nms_threshold, bbox_std_dev=self.bbox_std_dev)

    def call(self, inputs):
        rois, probs, deltas, image_meta = inputs
        meta = parse_image_meta_graph(image_meta)
        windows = norm_boxes_graph(meta["window"], meta["image_shape"][0, :2])
        settings = self._settings()

        def one_image(args):
            return refine_detections_graph(*args, **settings)

        return tf.map_fn(one_image, (rois, probs, deltas, windows),
                         fn_output_signature=tf.TensorSpec([self.max_instances, 6], tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def get_config(self):
        config = super().get_config()
        config.update(self._settings())
        return config
