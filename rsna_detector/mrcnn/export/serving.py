"""The exported detector: one ``tf.Module`` whose functions do all that ``MaskRCNN.detect`` does.

``images`` (uint8, a batch of one size) -> :func:`preprocess.check_images` ->
:func:`preprocess.mold_batch` -> the inference network -> :func:`postprocess.unmold_batch`
-> ``boxes``, ``class_ids``, ``scores``, ``num_detections`` (and ``masks``).

Two signatures share that function (one graph, one set of weights):

* ``serving_default`` -- ``images`` of any rank: grey ``[N, H, W]``, ``[N, H, W, 1]``
  or RGB ``[N, H, W, 3]`` (checked inside the graph);
* ``serving_nhwc`` -- ``images`` ``[N, H, W, C]`` (C 1 or 3): a known rank, which the
  TFLite and ONNX converters need.

The threshold: ``DETECTION_MIN_CONFIDENCE`` is applied inside the detection layer,
before its NMS and its top-``DETECTION_MAX_INSTANCES``, so a detection scored below
it never exists. :func:`serving_network` therefore builds the network with the
export's ``min_confidence`` as that setting: the exported model gives what
``detect`` gives with ``DETECTION_MIN_CONFIDENCE = min_confidence``, whether that is
below or above the training config's value (NMS only lets a box suppress lower-
scored ones, so raising the threshold in the layer equals filtering afterwards).
"""
from __future__ import annotations

import copy

import numpy as np
import tensorflow as tf

from ..inference.detect import build_inference_model
from ..layers.roi_align import PyramidROIAlign
from .postprocess import unmold_batch
from .preprocess import ExportError, check_exportable, check_images, mold_batch
from .roi_align_gather import pyramid_roi_align_gather

__all__ = ["SIGNATURE_ANY_RANK", "SIGNATURE_NHWC", "OUTPUT_NAMES", "DetectorModule", "serving_network",
           "resolve_min_confidence", "check_input_batch"]

SIGNATURE_ANY_RANK = "serving_default"
SIGNATURE_NHWC = "serving_nhwc"
#: The outputs of both signatures, in this order (``masks`` only when exported with masks).
OUTPUT_NAMES = ("boxes", "class_ids", "scores", "num_detections", "masks")


def resolve_min_confidence(config, min_confidence=None):
    """The export's threshold: ``min_confidence``, or the config's ``DETECTION_MIN_CONFIDENCE`` when None.

    Raises
    ------
    ExportError
        When it is not a number in [0, 1].
    """
    value = config.DETECTION_MIN_CONFIDENCE if min_confidence is None else min_confidence
    try:
        value = float(value)
    except (TypeError, ValueError) as error:
        raise ExportError(f"export: min_confidence: expected a number in [0, 1], got {min_confidence!r}") from error
    if not 0.0 <= value <= 1.0:
        raise ExportError(f"export: min_confidence: expected a number in [0, 1], got {value}")
    return value


def _layers(keras_model):
    """Every layer of a Keras model, nested models' layers included."""
    for layer in keras_model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def serving_network(model, min_confidence, gather_roi_align=False):
    """The inference network and config to export: ``model``'s, with ``DETECTION_MIN_CONFIDENCE = min_confidence``.

    Parameters
    ----------
    model : MaskRCNN
        In inference mode.
    min_confidence : float
    gather_roi_align : bool
        The ROI align layers crop with :func:`pyramid_roi_align_gather` (the same crops
        from gathers) instead of ``tf.image.crop_and_resize``: TFLite has no built-in
        ``CropAndResize``, and tf2onnx converts it to a loop that copies the whole feature
        map for every box (19 GB and seconds per batch of 8 at the RSNA settings).

    Returns
    -------
    keras_model : keras.Model
        ``model.keras_model`` itself when nothing changes, else a new inference
        model holding the same weights (``model`` is never modified).
    config : Config
        A copy of ``model.config`` with the threshold.
    """
    config = copy.copy(model.config)
    config.DETECTION_MIN_CONFIDENCE = min_confidence
    if min_confidence == model.config.DETECTION_MIN_CONFIDENCE and not gather_roi_align:
        return model.keras_model, config
    keras_model = build_inference_model(config)
    keras_model.set_weights(model.keras_model.get_weights())
    if gather_roi_align:
        for layer in _layers(keras_model):
            if isinstance(layer, PyramidROIAlign):
                layer.align_graph = pyramid_roi_align_gather
    return keras_model, config


def check_input_batch(images, channels=3, where="images"):
    """The Python-side check of a batch for an exported model; the array as uint8 ``[N, H, W(, C)]``.

    Raises
    ------
    ExportError
        Naming what is wrong: not uint8 (no silent conversion: a float image in
        0..1 would become black), not ``[N, H, W]`` / ``[N, H, W, 1 or channels]``,
        an empty batch or an image without pixels.
    """
    images = np.asarray(images)
    expected = f"uint8 [N, H, W], [N, H, W, 1] or [N, H, W, {channels}]"
    if images.dtype != np.uint8:
        raise ExportError(f"{where}: expected {expected}, got dtype {images.dtype} (convert to uint8 0..255 first)")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, channels)):
        raise ExportError(f"{where}: expected {expected}, got shape {images.shape}")
    if min(images.shape[:3]) == 0:
        raise ExportError(f"{where}: the batch is empty or an image has no pixels: shape {images.shape}")
    return images


class DetectorModule(tf.Module):
    """The exported detector (what ``tf.saved_model.save`` writes).

    Parameters
    ----------
    keras_model : keras.Model
        The inference network (:func:`serving_network`).
    config : Config
        Its config (molding settings and the threshold).
    with_masks : bool
        Also output ``masks`` bool ``[N, D, H, W]``.
    arithmetic : tf.DType
        Of the pre- and post-processing: float64 is ``detect``'s own; float32 for
        TFLite, whose built-in ops have no float64.
    track_variables : bool
        Also track the TensorFlow variables under Keras' own (``network_variables``):
        the TFLite converter freezes only variables it reaches that way (through Keras
        variables alone it keeps unfilled resource variables: NaN outputs). Off for the
        other formats, where the SavedModel would hold every weight twice.

    Attributes
    ----------
    detect, detect_nhwc : tf.function
        ``images`` -> dict of :data:`OUTPUT_NAMES` (see the module docstring).
    config, with_masks
        As given.
    arithmetic : tf.DType
        As given.
    """

    def __init__(self, keras_model, config, with_masks=True, arithmetic=tf.float64, track_variables=False):
        super().__init__(name="rsna_detector")
        check_exportable(config)
        self.network = keras_model
        if track_variables:
            self.network_variables = [weight.value for weight in keras_model.weights]
        self.config = config
        self.with_masks = bool(with_masks)
        self.arithmetic = arithmetic
        self.detect = tf.function(self._detect, input_signature=[tf.TensorSpec(None, tf.uint8, name="images")],
                                  autograph=False)
        self.detect_nhwc = tf.function(
            self._detect, input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")],
            autograph=False)

    def signatures(self):
        """``{signature name: concrete function}`` for ``tf.saved_model.save``."""
        return {SIGNATURE_ANY_RANK: self.detect.get_concrete_function(),
                SIGNATURE_NHWC: self.detect_nhwc.get_concrete_function()}

    def _detect(self, images):
        config = self.config
        molded = mold_batch(check_images(images, int(config.IMAGE_CHANNEL_COUNT)), config, self.arithmetic)
        outputs = self.network([molded["images"], molded["metas"], molded["anchors"]], training=False)
        detections, mrcnn_mask = outputs[0], outputs[3]
        class_ids = tf.cast(detections[..., 4], tf.int32)
        class_masks = tf.gather(tf.transpose(mrcnn_mask, [0, 1, 4, 2, 3]), class_ids, batch_dims=2)
        return unmold_batch(detections, class_masks, molded, with_masks=self.with_masks, dtype=self.arithmetic)
