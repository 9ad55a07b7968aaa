"""ProposalLayer and DetectionLayer on hand-made inputs with known outcomes."""
import math

import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.layers.detection import DetectionLayer
from rsna_detector.mrcnn.layers.proposals import ProposalLayer

STD = [0.1, 0.1, 0.2, 0.2]


def _probs(scores):
    scores = np.asarray(scores, np.float32)
    return np.stack([1.0 - scores, scores], axis=-1)


class TestProposalLayer:
    # A1 overlaps A0 with IoU 0.9 (suppressed at 0.7); A3 is clipped to (0.6, 0.6, 1, 1)
    # and then overlaps A2 with IoU 0.16 / 0.25 = 0.64 (kept); A4 has the lowest score.
    ANCHORS = np.array([
        [0.0, 0.0, 0.5, 0.5],    # A0 0.90
        [0.0, 0.0, 0.5, 0.45],   # A1 0.80
        [0.5, 0.5, 1.0, 1.0],    # A2 0.70
        [0.6, 0.6, 1.2, 1.2],    # A3 0.95
        [0.1, 0.6, 0.3, 0.9],    # A4 0.10
    ], np.float32)
    SCORES = [0.9, 0.8, 0.7, 0.95, 0.1]

    def _run(self, proposal_count, pre_nms_limit, scores=None, deltas=None, anchors=None):
        anchors = self.ANCHORS if anchors is None else anchors
        scores = [self.SCORES] if scores is None else scores
        deltas = np.zeros((len(scores), len(anchors), 4), np.float32) if deltas is None else deltas
        layer = ProposalLayer(proposal_count, 0.7, pre_nms_limit=pre_nms_limit, rpn_bbox_std_dev=STD)
        batch_anchors = np.broadcast_to(anchors, (len(scores),) + anchors.shape)
        return layer([tf.constant(_probs(scores)), tf.constant(deltas), tf.constant(batch_anchors)]).numpy()

    def test_top_k_nms_clip_and_padding(self):
        got = self._run(proposal_count=5, pre_nms_limit=4)
        expected = [[0.6, 0.6, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0, 0, 0, 0], [0, 0, 0, 0]]
        np.testing.assert_allclose(got[0], expected, atol=1e-6)

    def test_pre_nms_limit_lets_the_low_score_in(self):
        got = self._run(proposal_count=5, pre_nms_limit=6000)
        np.testing.assert_allclose(got[0, 3], [0.1, 0.6, 0.3, 0.9], atol=1e-6)
        np.testing.assert_allclose(got[0, 4], [0, 0, 0, 0])

    def test_proposal_count_truncates_by_score(self):
        got = self._run(proposal_count=2, pre_nms_limit=4)
        np.testing.assert_allclose(got[0], [[0.6, 0.6, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]], atol=1e-6)

    def test_deltas_are_scaled_by_the_std_dev(self):
        anchors = np.array([[0.2, 0.2, 0.4, 0.4]], np.float32)
        # dy = 1 * 0.1 -> center y 0.3 + 0.1 * 0.2; dw = (log 2 / 0.2) * 0.2 -> width 0.4
        deltas = np.array([[[1.0, 0.0, 0.0, math.log(2.0) / 0.2]]], np.float32)
        got = self._run(proposal_count=1, pre_nms_limit=10, scores=[[0.9]], deltas=deltas, anchors=anchors)
        np.testing.assert_allclose(got[0], [[0.22, 0.1, 0.42, 0.5]], atol=1e-6)

    def test_images_of_a_batch_are_independent(self):
        scores = [self.SCORES, [0.1, 0.2, 0.3, 0.4, 0.99]]
        got = self._run(proposal_count=3, pre_nms_limit=5, scores=scores)
        np.testing.assert_allclose(got[0], [[0.6, 0.6, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]],
                                   atol=1e-6)
        # image 2 ranks A4, A3 (clipped), A2 (IoU 0.64 with A3: kept), A1, A0; 3 are kept
        np.testing.assert_allclose(got[1], [[0.1, 0.6, 0.3, 0.9], [0.6, 0.6, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]],
                                   atol=1e-6)

    def test_settings_from_config(self):
        class C(Config):
            NAME = "p"
            PRE_NMS_LIMIT = 3
        layer = ProposalLayer(4, 0.7, C())
        assert layer.pre_nms_limit == 3 and layer.rpn_bbox_std_dev == STD
        assert ProposalLayer.from_config(layer.get_config()).pre_nms_limit == 3
        with pytest.raises(ValueError, match="config"):
            ProposalLayer(4, 0.7)


# ----------------------------------------------------------------------------
# DetectionLayer
# ----------------------------------------------------------------------------

NUM_CLASSES = 3
WINDOW_PIXELS = (32, 0, 96, 128)  # real image rows 32..95 of a 128 x 128 molded image
WINDOW = np.array([32 / 127, 0.0, 95 / 127, 1.0])


def _detection_inputs():
    rois = np.array([
        [0.3, 0.1, 0.6, 0.4],      # r0 class 1, 0.90
        [0.32, 0.12, 0.62, 0.42],  # r1 class 1, 0.85, overlaps r0 -> suppressed
        [0.3, 0.1, 0.6, 0.4],      # r2 class 2, 0.80, overlaps r0 but another class -> kept
        [0.5, 0.5, 0.7, 0.7],      # r3 background
        [0.5, 0.5, 0.7, 0.7],      # r4 class 1, 0.65 -> below 0.7
        [0.0, 0.0, 0.0, 0.0],      # r5 padding: uniform probabilities (the inference head's) -> background
        [0.1, 0.6, 0.3, 0.8],      # r6 class 1, 0.75, moved down then clipped at the window top
    ], np.float32)
    probs = np.array([
        [0.05, 0.9, 0.05], [0.1, 0.85, 0.05], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05],
        [0.3, 0.65, 0.05], [1 / 3, 1 / 3, 1 / 3], [0.1, 0.75, 0.15],
    ], np.float32)
    deltas = np.zeros((7, NUM_CLASSES, 4), np.float32)
    deltas[6, 1] = [1.0, 0.0, 0.0, 0.0]  # dy 1 * 0.1 * height 0.2 -> +0.02
    deltas[6, 2] = [5.0, 5.0, 1.0, 1.0]  # another class's deltas: ignored
    meta = utils.compose_image_meta(0, (64, 128, 3), (128, 128, 3), WINDOW_PIXELS, 1.0, [1, 1, 1])
    return rois, probs, deltas, meta


def _detect(max_instances=5, min_confidence=0.7, nms_threshold=0.3, batch=1):
    rois, probs, deltas, meta = _detection_inputs()
    layer = DetectionLayer(max_instances=max_instances, min_confidence=min_confidence,
                           nms_threshold=nms_threshold, bbox_std_dev=STD)
    stack = lambda a: tf.constant(np.stack([a] * batch), tf.float32)  # noqa: E731
    return layer([stack(rois), stack(probs), stack(deltas), stack(meta)]).numpy()


class TestDetectionLayer:
    def test_class_choice_confidence_nms_and_padding(self):
        got = _detect()
        expected = [
            [0.3, 0.1, 0.6, 0.4, 1, 0.9],
            [0.3, 0.1, 0.6, 0.4, 2, 0.8],
            [WINDOW[0], 0.6, 0.32, 0.8, 1, 0.75],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ]
        assert got.shape == (1, 5, 6)
        np.testing.assert_allclose(got[0], expected, atol=1e-6)

    def test_max_instances_keeps_the_best(self):
        got = _detect(max_instances=2)
        np.testing.assert_allclose(got[0, :, 4:], [[1, 0.9], [2, 0.8]], atol=1e-6)

    def test_confidence_threshold_is_inclusive(self):
        got = _detect(min_confidence=0.65)
        np.testing.assert_allclose(got[0, 3], [0.5, 0.5, 0.7, 0.7, 1, 0.65], atol=1e-6)

    def test_looser_nms_keeps_the_overlapping_box(self):
        # IoU(r0, r1) = 0.28 * 0.28 / (0.09 + 0.09 - 0.0784) = 0.77
        got = _detect(nms_threshold=0.8)
        np.testing.assert_allclose(got[0, 1], [0.32, 0.12, 0.62, 0.42, 1, 0.85], atol=1e-6)

    def test_batch_items_are_processed_alike(self):
        got = _detect(batch=3)
        np.testing.assert_allclose(got[1], got[0])
        np.testing.assert_allclose(got[2], got[0])

    def test_nothing_above_threshold_gives_all_padding(self):
        got = _detect(min_confidence=0.99)
        np.testing.assert_array_equal(got, np.zeros((1, 5, 6)))

    def test_confident_padding_roi_is_refined_like_any_roi(self):
        # matterport's rule: a padding ROI that the classifier scores confidently becomes a
        # zero-size detection at the window's top-left corner (no filtering of padding).
        rois, probs, deltas, meta = _detection_inputs()
        probs[5] = [0.0, 1.0, 0.0]
        layer = DetectionLayer(max_instances=5, min_confidence=0.7, nms_threshold=0.3, bbox_std_dev=STD)
        got = layer([tf.constant(a[np.newaxis], tf.float32) for a in (rois, probs, deltas, meta)]).numpy()
        np.testing.assert_allclose(got[0, 0], [WINDOW[0], 0.0, WINDOW[0], 0.0, 1, 1.0], atol=1e-6)
        np.testing.assert_allclose(got[0, 1:4, 5], [0.9, 0.8, 0.75], atol=1e-6)

    def test_settings_from_config(self):
        class C(Config):
            NAME = "d"
            NUM_CLASSES = 3
            DETECTION_MAX_INSTANCES = 5
        layer = DetectionLayer(C())
        assert (layer.max_instances, layer.min_confidence, layer.nms_threshold) == (5, 0.7, 0.3)
        rois, probs, deltas, meta = _detection_inputs()
        got = layer([tf.constant(a[np.newaxis], tf.float32) for a in (rois, probs, deltas, meta)]).numpy()
        np.testing.assert_allclose(got, _detect())
