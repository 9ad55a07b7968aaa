"""The five losses and smooth-L1 against matterport's own (run eagerly by the oracle).

Seeded random and edge-case inputs go through matterport's loss graph and ours;
values agree within float32 tolerance (the two reduce in a different order).
The training graph is checked too: the ``mrcnn_class_loss`` it reports equals
matterport's loss of the same ROIs with the default switches, and the old rule
with ``CLASS_LOSS_SKIPS_PADDING`` / ``ACTIVE_CLASS_PER_IMAGE``.

Documented difference: where matterport's class loss divides by zero (no ROI
counted: every predicted class inactive) it gives NaN, ours 0.
"""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn.input import pipeline
from rsna_detector.mrcnn.layers import losses, training_graph
from tests import matterport_oracle as oracle
from tests.helpers import BlobDataset, tiny_config

RTOL = 2e-6


@pytest.fixture(scope="module")
def mp():
    return oracle.model()


def value(tensor):
    return float(np.asarray(tensor).reshape(()))


def test_smooth_l1(mp):
    rng = np.random.default_rng(0)
    y_true = rng.normal(0.0, 2.0, (50, 4)).astype(np.float32)
    y_pred = rng.normal(0.0, 2.0, (50, 4)).astype(np.float32)
    y_pred[0] = y_true[0] + [1.0, -1.0, 0.0, 0.999999]  # the branch boundary |d| = 1
    theirs = mp.smooth_l1_loss(tf.constant(y_true), tf.constant(y_pred)).numpy()
    ours = losses.smooth_l1(tf.constant(y_true), tf.constant(y_pred)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)  # 0.5 * d**2 vs 0.5 * square(d): an ulp


def _rpn_match(rng, batch, anchors, positives):
    match = rng.choice([-1, 0, 0], (batch, anchors)).astype(np.int32)
    for image, count in enumerate(positives):
        match[image, rng.choice(anchors, count, replace=False)] = 1
    return match[..., np.newaxis]


@pytest.mark.parametrize("positives", [[5, 0, 12], [0, 0, 0], [1, 1, 1]])
def test_rpn_class_loss(mp, positives):
    rng = np.random.default_rng(sum(positives))
    match = _rpn_match(rng, 3, 200, positives)
    logits = rng.normal(0.0, 3.0, (3, 200, 2)).astype(np.float32)
    theirs = mp.rpn_class_loss_graph(tf.constant(match), tf.constant(logits))
    ours = losses.rpn_class_loss_graph(tf.constant(match), tf.constant(logits))
    assert value(ours) == pytest.approx(value(theirs), rel=RTOL)
    neutral = np.zeros_like(match)
    assert value(losses.rpn_class_loss_graph(tf.constant(neutral), tf.constant(logits))) == value(
        mp.rpn_class_loss_graph(tf.constant(neutral), tf.constant(logits))) == 0.0


@pytest.mark.parametrize("positives", [[5, 0, 12], [0, 0, 0], [16, 16, 3]])
def test_rpn_bbox_loss(mp, positives):
    rng = np.random.default_rng(10 + sum(positives))
    batch, anchors, packed = 3, 200, 16
    match = _rpn_match(rng, batch, anchors, positives)
    target = np.zeros((batch, packed, 4), np.float32)
    for image, count in enumerate(positives):
        target[image, :count] = rng.normal(0.0, 1.0, (count, 4))
    predicted = rng.normal(0.0, 2.0, (batch, anchors, 4)).astype(np.float32)
    args = [tf.constant(a) for a in (target, match, predicted)]
    theirs = mp.rpn_bbox_loss_graph(oracle.make_config(IMAGES_PER_GPU=batch), *args)
    ours = losses.rpn_bbox_loss_graph(tiny_config(IMAGES_PER_GPU=batch), *args)
    assert value(ours) == pytest.approx(value(theirs), rel=RTOL)
    assert (value(ours) == 0.0) == (sum(positives) == 0)


def _class_loss_inputs(rng, batch=3, rois=20, classes=4, padding=6):
    target = rng.integers(0, classes, (batch, rois)).astype(np.int32)
    target[:, rois - padding:] = 0  # zero-padding rows: background targets
    logits = rng.normal(0.0, 2.0, (batch, rois, classes)).astype(np.float32)
    active = np.ones((batch, classes), np.float32)
    active[0, 2] = 0.0  # image 0 has an inactive class (matterport uses image 0's flags for all)
    active[1, 3] = 0.0
    return target, logits, active


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mrcnn_class_loss_default_is_matterports(mp, seed):
    rng = np.random.default_rng(seed)
    target, logits, active = _class_loss_inputs(rng)
    logits[0, 0, 2] = 50.0  # a ROI predicted as image 0's inactive class: its loss is dropped
    args = [tf.constant(a) for a in (target, logits, active)]
    theirs = value(mp.mrcnn_class_loss_graph(*args))
    assert value(losses.mrcnn_class_loss_graph(*args)) == pytest.approx(theirs, rel=RTOL)
    # the switches change the value (these inputs exercise both rules)
    valid = np.arange(20)[np.newaxis, :].repeat(3, 0) < 14
    assert value(losses.mrcnn_class_loss_graph(*args, roi_valid=tf.constant(valid))) != pytest.approx(theirs)
    assert value(losses.mrcnn_class_loss_graph(*args, active_class_per_image=True)) != pytest.approx(theirs)


def test_mrcnn_class_loss_switches_by_hand():
    # ACTIVE_CLASS_PER_IMAGE: each image's inactive classes leave its softmax;
    # CLASS_LOSS_SKIPS_PADDING: rows that are padding do not count.
    target = tf.constant([[1, 0, 0], [2, 0, 0]])
    logits = tf.constant([[[0.0, math.log(3.0), 100.0], [0.0, 0.0, 0.0], [9.0, 0.0, 0.0]],
                          [[0.0, 100.0, 0.0], [0.0, 0.0, 0.0], [9.0, 0.0, 0.0]]])
    active = tf.constant([[1, 1, 0], [1, 0, 1]])
    valid = tf.constant([[True, True, False], [True, True, False]])
    got = value(losses.mrcnn_class_loss_graph(target, logits, active, roi_valid=valid, active_class_per_image=True))
    # image 0: softmax over (0, log 3) -> -log(3/4) and log 2; image 1: over (0, 0) classes 0, 2 -> log 2, log 2
    assert got == pytest.approx((-math.log(0.75) + 3 * math.log(2.0)) / 4, rel=1e-5)


def test_mrcnn_class_loss_nothing_counted_is_zero_not_nan(mp):
    # Documented difference: every ROI predicted as image 0's inactive class 2.
    target = tf.constant([[0, 1]])
    logits = tf.constant([[[0.0, 0.0, 5.0], [0.0, 0.0, 5.0]]])
    active = tf.constant([[1.0, 1.0, 0.0]])
    assert math.isnan(value(mp.mrcnn_class_loss_graph(target, logits, active)))
    assert value(losses.mrcnn_class_loss_graph(target, logits, active)) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_mrcnn_bbox_loss(mp, seed):
    rng = np.random.default_rng(seed)
    batch, rois, classes = 2, 16, 3
    class_ids = rng.integers(0, classes, (batch, rois)).astype(np.int32)
    target = np.where(class_ids[..., np.newaxis] > 0, rng.normal(0.0, 1.0, (batch, rois, 4)), 0).astype(np.float32)
    predicted = rng.normal(0.0, 2.0, (batch, rois, classes, 4)).astype(np.float32)
    for ids in (class_ids, np.zeros_like(class_ids)):
        args = [tf.constant(a) for a in (target, ids, predicted)]
        theirs = value(mp.mrcnn_bbox_loss_graph(*args))
        assert value(losses.mrcnn_bbox_loss_graph(*args)) == pytest.approx(theirs, rel=RTOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_mrcnn_mask_loss(mp, seed):
    rng = np.random.default_rng(seed)
    batch, rois, size, classes = 2, 6, 8, 3
    class_ids = rng.integers(0, classes, (batch, rois)).astype(np.int32)
    target = (rng.random((batch, rois, size, size)) < 0.5).astype(np.float32)
    predicted = rng.random((batch, rois, size, size, classes)).astype(np.float32)
    predicted[0, 0, :2] = 0.0  # clipped at 1e-7 on both sides
    predicted[0, 0, 2:4] = 1.0
    for ids in (class_ids, np.zeros_like(class_ids)):
        args = [tf.constant(a) for a in (target, ids, predicted)]
        theirs = value(mp.mrcnn_mask_loss_graph(*args))
        assert value(losses.mrcnn_mask_loss_graph(*args)) == pytest.approx(theirs, rel=1e-5)


# ----------------------------------------------------------------------------
# the class loss inside the training graph
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("switches", [False, True])
def test_training_graph_class_loss_wiring(mp, switches):
    """The graph's mrcnn_class_loss equals matterport's on the graph's own targets and logits
    (default), or the padding-skipping per-image rule (switches on)."""
    config = tiny_config(TRAIN_ROIS_PER_IMAGE=32, ROI_POSITIVE_RATIO=0.33, CLASS_LOSS_SKIPS_PADDING=switches,
                         ACTIVE_CLASS_PER_IMAGE=switches, ROI_FILL_NEGATIVES=switches,
                         TRAIN_ON_EMPTY_IMAGES=True)  # the batch must hold an image without objects
    model = training_graph.build_training_model(config)
    loss_layer = model.get_layer("mrcnn_class_loss")
    loss_inputs = loss_layer.input
    assert len(loss_inputs) == (4 if switches else 3)
    probe = keras.Model(model.inputs, list(loss_inputs) + [loss_layer.output, model.get_layer("output_rois").output])
    batch = pipeline.TrainingBatches(BlobDataset(1, 1), config, shuffle=False, batch_size=2).batch(0)
    outputs = probe(list(batch), training=False)
    target, logits, active = (np.asarray(t) for t in outputs[:3])
    got, rois = value(outputs[-2]), np.asarray(outputs[-1])
    padding = ~np.any(rois != 0, axis=-1)
    empty = ~np.any(np.asarray(batch[4]) > 0, axis=1)  # images without ground truth
    assert empty.any()
    if switches:
        expected = losses.mrcnn_class_loss_graph(target, logits, active, roi_valid=~padding,
                                                 active_class_per_image=True)
        assert not padding.all(axis=1).any()  # negatives fill both images, the empty one too
    else:
        expected = mp.mrcnn_class_loss_graph(tf.constant(target), tf.constant(logits), tf.constant(active))
        assert padding[empty].all()  # an image without objects has only zero padding
    assert got == pytest.approx(value(expected), rel=RTOL)
