"""The engine's TF graph functions against matterport's own (run eagerly by the oracle).

The same seeded random and edge-case inputs go through matterport's function
(``tests/matterport_oracle.py``: matterport v2.1's ``model.py`` on today's stack,
``tf.compat.v1`` names, graph functions called eagerly) and through ours; the
outputs are compared exactly, or within float32 tolerance where the two compute
the same formula in a different order. matterport's layers (``PyramidROIAlign``,
``ProposalLayer``, ``DetectionLayer``) are instantiated and their ``call`` run
eagerly on the inputs.

Where the outputs differ on purpose the test says so and checks both values:
``overlaps_graph`` of two empty boxes (matterport 0/0 = NaN, ours 0).
"""
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.layers import box_ops, detection_targets
from rsna_detector.mrcnn.layers.detection import DetectionLayer, refine_detections_graph
from rsna_detector.mrcnn.layers.proposals import ProposalLayer
from rsna_detector.mrcnn.layers.roi_align import PyramidROIAlign, roi_pyramid_levels
from tests import matterport_oracle as oracle


@pytest.fixture(scope="module")
def mp():
    """matterport's ``model.py`` namespace."""
    return oracle.model()


def ours_config(**settings):
    """One of our Configs with matterport's defaults except ``settings``."""
    return type("OursConfig", (Config,), {"NAME": "ours", **settings})()


def random_boxes(rng, count, low=0.0, high=1.0, min_side=0.02, max_side=0.5):
    """float32 [count, 4] boxes (y1, x1, y2, x2) with sides in [min_side, max_side] * (high - low)."""
    span = high - low
    sides = rng.uniform(min_side, max_side, (count, 2)) * span
    corners = low + rng.uniform(0.0, 1.0, (count, 2)) * (span - sides)
    return np.concatenate([corners, corners + sides], axis=1).astype(np.float32)


def jittered(rng, box, count, scale):
    """``count`` float32 copies of ``box`` with corners moved by ``scale`` x its size (normal noise)."""
    size = np.tile(box[2:] - box[:2], 2)
    moved = box + rng.normal(0.0, scale, (count, 4)) * size
    y1, y2 = np.minimum(moved[:, 0], moved[:, 2]), np.maximum(moved[:, 0], moved[:, 2])
    x1, x2 = np.minimum(moved[:, 1], moved[:, 3]), np.maximum(moved[:, 1], moved[:, 3])
    return np.clip(np.stack([y1, x1, y2 + 1e-3, x2 + 1e-3], axis=1), 0, 1).astype(np.float32)


def numpy(value):
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


# ----------------------------------------------------------------------------
# box arithmetic
# ----------------------------------------------------------------------------

EDGE_BOXES = np.array([
    [0.0, 0.0, 0.0, 0.0],        # empty (padding)
    [0.5, 0.5, 0.5, 0.5],        # a point
    [0.2, 0.3, 0.2, 0.9],        # zero height
    [0.9, 0.9, 0.1, 0.1],        # inverted
    [-0.5, -0.2, 1.5, 1.2],      # larger than the image
    [0.0, 0.0, 1.0, 1.0],        # the image
], np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_apply_box_deltas_graph(mp, seed):
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([random_boxes(rng, 50), EDGE_BOXES, 1000 * random_boxes(rng, 10)])
    deltas = rng.normal(0.0, 1.0, (len(boxes), 4)).astype(np.float32)
    deltas[:5] = [[0, 0, 0, 0], [3, -3, 2, -2], [0, 0, 8, 8], [-1e-3, 1e-3, -8, 8], [0.5, 0.5, 0, 0]]
    theirs = numpy(mp.apply_box_deltas_graph(tf.constant(boxes), tf.constant(deltas)))
    ours = numpy(box_ops.apply_box_deltas_graph(tf.constant(boxes), tf.constant(deltas)))
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1])
def test_clip_boxes_graph(mp, seed):
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([random_boxes(rng, 40, low=-0.5, high=1.5, max_side=0.8), EDGE_BOXES])
    windows = [np.array([0, 0, 1, 1], np.float32), random_boxes(rng, 1, max_side=0.9)[0],
               np.array([0.25, 0.0, 0.75, 1.0], np.float32),
               np.array([0.7, 0.6, 0.3, 0.2], np.float32)]  # inverted window: the clip order decides
    for window in windows:
        theirs = numpy(mp.clip_boxes_graph(tf.constant(boxes), tf.constant(window)))
        ours = numpy(box_ops.clip_boxes_graph(tf.constant(boxes), tf.constant(window)))
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1])
def test_overlaps_graph(mp, seed):
    rng = np.random.default_rng(seed)
    boxes1 = np.concatenate([random_boxes(rng, 30), EDGE_BOXES[2:]])
    boxes2 = np.concatenate([random_boxes(rng, 12), boxes1[:3], jittered(rng, boxes1[3], 4, 0.1)])
    theirs = numpy(mp.overlaps_graph(tf.constant(boxes1), tf.constant(boxes2)))
    ours = numpy(box_ops.overlaps_graph(tf.constant(boxes1), tf.constant(boxes2)))
    assert np.all(np.isfinite(theirs)) and theirs.max() > 0.5
    np.testing.assert_array_equal(ours, theirs)


def test_overlaps_graph_of_empty_boxes_is_zero_not_nan(mp):
    # Documented difference: matterport divides 0 by 0 for two empty boxes (NaN); ours gives 0.
    # Non-empty boxes never meet it (their union is positive), which the test above covers.
    empty = tf.constant(EDGE_BOXES[:2])
    assert np.all(np.isnan(numpy(mp.overlaps_graph(empty, empty))))
    np.testing.assert_array_equal(numpy(box_ops.overlaps_graph(empty, empty)), np.zeros((2, 2)))


def test_trim_zeros_graph(mp):
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 12)
    boxes[[0, 4, 5, 11]] = 0.0
    boxes[7] = [0.0, 0.0, 0.0, 0.3]  # one non-zero coordinate: kept
    boxes[8] = [0.0, -0.2, 0.0, 0.2]  # coordinates that sum to 0 but are not zero: kept
    for given in (boxes, np.zeros((3, 4), np.float32), boxes[1:4]):
        their_boxes, their_mask = mp.trim_zeros_graph(tf.constant(given))
        our_boxes, our_mask = box_ops.trim_zeros_graph(tf.constant(given))
        np.testing.assert_array_equal(numpy(our_boxes), numpy(their_boxes))
        np.testing.assert_array_equal(numpy(our_mask), numpy(their_mask))


def test_batch_pack_graph(mp):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 6, 4)).astype(np.float32)
    for counts in ([2, 0, 6], [0, 0, 0], [6, 6, 1]):
        theirs = numpy(mp.batch_pack_graph(tf.constant(x), tf.constant(counts), 3))
        ours = numpy(box_ops.batch_pack_graph(tf.constant(x), tf.constant(counts), 3))
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(numpy(box_ops.batch_pack_graph(tf.constant(x), [1, 2, 3], 2)),
                                  numpy(mp.batch_pack_graph(tf.constant(x), [1, 2, 3], 2)))


@pytest.mark.parametrize("shape", [(128, 128), (256, 320), (1024, 1024)])
def test_norm_and_denorm_boxes_graph(mp, shape):
    rng = np.random.default_rng(5)
    height, width = shape
    pixels = np.round(random_boxes(rng, 40) * np.array([height, width, height, width])).astype(np.float32)
    pixels = np.concatenate([pixels, [[0, 0, height, width], [0, 0, 1, 1], [0, 0, 0, 0]]]).astype(np.float32)
    size = tf.constant(shape, tf.float32)
    theirs = numpy(mp.norm_boxes_graph(tf.constant(pixels), size))
    ours = numpy(box_ops.norm_boxes_graph(tf.constant(pixels), size))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-7)
    normalized = np.concatenate([theirs, random_boxes(rng, 20)]).astype(np.float32)
    np.testing.assert_array_equal(numpy(box_ops.denorm_boxes_graph(tf.constant(normalized), size)),
                                  numpy(mp.denorm_boxes_graph(tf.constant(normalized), size)))


def test_parse_image_meta_graph(mp):
    rng = np.random.default_rng(6)
    metas = np.stack([oracle.model().compose_image_meta(
        i, (int(rng.integers(100, 900)), int(rng.integers(100, 900)), 3), (256, 256, 3),
        tuple(int(v) for v in rng.integers(0, 256, 4)), float(rng.uniform(0.2, 2.0)),
        rng.integers(0, 2, 5)) for i in range(3)]).astype(np.float32)
    theirs = mp.parse_image_meta_graph(tf.constant(metas))
    ours = box_ops.parse_image_meta_graph(tf.constant(metas))
    assert set(ours) == set(theirs)
    for key in theirs:
        np.testing.assert_array_equal(numpy(ours[key]), numpy(theirs[key]), err_msg=key)


# ----------------------------------------------------------------------------
# ROI align
# ----------------------------------------------------------------------------

ROI_IMAGE = 1024  # the image size the level rule sees (image_meta); the feature maps below are small


def _roi_meta(batch):
    meta = oracle.model().compose_image_meta(0, (ROI_IMAGE, ROI_IMAGE, 3), (ROI_IMAGE, ROI_IMAGE, 3),
                                             (0, 0, ROI_IMAGE, ROI_IMAGE), 1.0, np.ones(2))
    return np.tile(meta[np.newaxis], (batch, 1)).astype(np.float32)


def _roi_boxes(rng, batch, count):
    """Boxes of every size (all four levels), a few padding rows, per image."""
    boxes = np.stack([np.concatenate([random_boxes(rng, count - 2, min_side=0.01, max_side=0.9),
                                      np.zeros((2, 4))]) for _ in range(batch)])
    return rng.permuted(boxes, axis=1).astype(np.float32)


def test_pyramid_level_rule(mp):
    # matterport's level is observable through its layer: on constant feature maps (level k
    # holds the value k) each crop returns the level its box was sent to.
    rng = np.random.default_rng(7)
    boxes = _roi_boxes(rng, 2, 60)
    maps = [np.full((2, 8, 8, 1), level, np.float32) for level in (2, 3, 4, 5)]
    layer = mp.PyramidROIAlign((2, 2))
    theirs = numpy(layer.call([tf.constant(boxes), tf.constant(_roi_meta(2))] + [tf.constant(m) for m in maps]))
    their_levels = theirs[..., 0, 0, 0]
    assert set(np.unique(their_levels)) == {2, 3, 4, 5}
    ours = numpy(roi_pyramid_levels(tf.constant(boxes), tf.constant([ROI_IMAGE, ROI_IMAGE, 3], tf.float32)))
    np.testing.assert_array_equal(ours, their_levels)


@pytest.mark.parametrize("seed", [0, 1])
def test_pyramid_roi_align_layer(mp, seed):
    rng = np.random.default_rng(seed)
    batch = 2
    boxes = _roi_boxes(rng, batch, 40)
    maps = [rng.normal(size=(batch, side, side, 3)).astype(np.float32) for side in (32, 16, 8, 4)]
    inputs = [tf.constant(boxes), tf.constant(_roi_meta(batch))] + [tf.constant(m) for m in maps]
    theirs = numpy(mp.PyramidROIAlign((7, 7)).call(inputs))
    ours = numpy(PyramidROIAlign((7, 7))(inputs))
    assert ours.shape == theirs.shape == (batch, 40, 7, 7, 3)
    np.testing.assert_array_equal(ours, theirs)


# ----------------------------------------------------------------------------
# proposals and detections
# ----------------------------------------------------------------------------

def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("seed, proposal_count, pre_nms_limit", [(0, 50, 300), (1, 400, 200), (2, 30, 1000)])
def test_proposal_layer(mp, seed, proposal_count, pre_nms_limit):
    rng = np.random.default_rng(seed)
    batch, count = 2, 500
    anchors = random_boxes(rng, count, low=-0.1, high=1.1, max_side=0.4)
    probs = _softmax(rng.normal(0.0, 2.0, (batch, count, 2)).astype(np.float32))
    deltas = rng.normal(0.0, 1.0, (batch, count, 4)).astype(np.float32)
    settings = dict(IMAGES_PER_GPU=batch, PRE_NMS_LIMIT=pre_nms_limit)
    batch_anchors = tf.constant(np.tile(anchors[np.newaxis], (batch, 1, 1)))
    inputs = [tf.constant(probs), tf.constant(deltas), batch_anchors]
    theirs = numpy(mp.ProposalLayer(proposal_count, 0.7, config=oracle.make_config(**settings)).call(inputs))
    ours = numpy(ProposalLayer(proposal_count, 0.7, config=ours_config(**settings))(inputs))
    assert ours.shape == theirs.shape == (batch, proposal_count, 4)
    np.testing.assert_array_equal(ours, theirs)
    if proposal_count == 400:
        assert np.all(theirs[:, -1] == 0)  # NMS left fewer: zero padding


def _detection_inputs(rng, count, num_classes):
    rois = random_boxes(rng, count, max_side=0.4)
    # copies of a few ROIs so that NMS has work to do
    rois[count // 2:] = np.concatenate([jittered(rng, rois[i], 5, 0.05) for i in range(count - count // 2)])[
        : count - count // 2]
    rois[-3:] = 0.0  # padding
    logits = rng.normal(0.0, 3.0, (count, num_classes)).astype(np.float32)
    deltas = rng.normal(0.0, 1.0, (count, num_classes, 4)).astype(np.float32)
    return rois, _softmax(logits), deltas


@pytest.mark.parametrize("seed, min_confidence, nms_threshold, max_instances", [
    (0, 0.7, 0.3, 100), (1, 0.5, 0.5, 10), (2, 0.0, 0.3, 20), (3, 0.9, 0.01, 3), (4, 0.999999, 0.3, 5)])
def test_refine_detections_graph(mp, seed, min_confidence, nms_threshold, max_instances):
    rng = np.random.default_rng(seed)
    rois, probs, deltas = _detection_inputs(rng, 120, 4)
    window = np.array([0.1, 0.0, 0.9, 1.0], np.float32)
    settings = dict(NUM_CLASSES=4, DETECTION_MIN_CONFIDENCE=min_confidence,
                    DETECTION_NMS_THRESHOLD=nms_threshold, DETECTION_MAX_INSTANCES=max_instances)
    args = [tf.constant(a) for a in (rois, probs, deltas, window)]
    theirs = numpy(mp.refine_detections_graph(*args, oracle.make_config(**settings)))
    ours = numpy(refine_detections_graph(*args, ours_config(**settings)))
    assert ours.shape == theirs.shape == (max_instances, 6)
    np.testing.assert_array_equal(ours, theirs)
    # matterport's signature and the keyword form agree
    keywords = numpy(refine_detections_graph(*args, max_instances=max_instances, min_confidence=min_confidence,
                                             nms_threshold=nms_threshold, bbox_std_dev=[0.1, 0.1, 0.2, 0.2]))
    np.testing.assert_array_equal(keywords, ours)


def test_refine_detections_graph_keeps_confident_padding_rois_as_matterport(mp):
    # A padding ROI (all zeros) scored confidently is refined like any ROI: a zero-size box at
    # the window's corner. (The inference graph gives padding rows uniform probabilities.)
    rois = np.array([[0, 0, 0, 0], [0.2, 0.2, 0.5, 0.5]], np.float32)
    probs = np.array([[0.01, 0.99], [0.2, 0.8]], np.float32)
    deltas = np.zeros((2, 2, 4), np.float32)
    window = np.array([0.25, 0.0, 0.75, 1.0], np.float32)
    args = [tf.constant(a) for a in (rois, probs, deltas, window)]
    settings = dict(NUM_CLASSES=2, DETECTION_MAX_INSTANCES=3)
    theirs = numpy(mp.refine_detections_graph(*args, oracle.make_config(**settings)))
    ours = numpy(refine_detections_graph(*args, ours_config(**settings)))
    np.testing.assert_allclose(theirs, [[0.25, 0, 0.25, 0, 1, 0.99], [0.25, 0.2, 0.5, 0.5, 1, 0.8], [0] * 6])
    np.testing.assert_array_equal(ours, theirs)


def test_detection_layer(mp):
    rng = np.random.default_rng(8)
    batch, count = 2, 60
    inputs = [_detection_inputs(rng, count, 3) for _ in range(batch)]
    rois, probs, deltas = (np.stack(parts) for parts in zip(*inputs))
    meta = oracle.model().compose_image_meta(0, (300, 400, 3), (256, 256, 3), (32, 0, 224, 256), 0.64, np.ones(3))
    metas = np.tile(meta[np.newaxis], (batch, 1)).astype(np.float32)
    settings = dict(NUM_CLASSES=3, IMAGES_PER_GPU=batch, DETECTION_MIN_CONFIDENCE=0.5, DETECTION_MAX_INSTANCES=12)
    args = [tf.constant(a) for a in (rois, probs, deltas, metas)]
    theirs = numpy(mp.DetectionLayer(config=oracle.make_config(**settings)).call(args))
    ours = numpy(DetectionLayer(ours_config(**settings))(args))
    assert ours.shape == theirs.shape == (batch, 12, 6)
    assert np.sum(theirs[..., 4] > 0) >= 6
    np.testing.assert_array_equal(ours, theirs)


# ----------------------------------------------------------------------------
# detection targets
# ----------------------------------------------------------------------------

IMAGE = 64  # image side of the full-size masks
MAX_GT = 5
NUM_PROPOSALS = 48


def _image_ground_truth(rng, objects, crowd):
    """Pixel-aligned normalized gt boxes, class ids (crowd < 0, padding 0) and full/mini masks."""
    pixel_boxes = np.round(random_boxes(rng, MAX_GT, min_side=0.15, max_side=0.5) * IMAGE).astype(int)
    class_ids = np.zeros(MAX_GT, np.int32)
    class_ids[:objects] = rng.integers(1, 4, objects)
    if crowd:
        class_ids[objects] = -1
    pixel_boxes[class_ids == 0] = 0
    full = np.zeros((IMAGE, IMAGE, MAX_GT), np.float32)
    mini = np.zeros((14, 14, MAX_GT), np.float32)
    for k, (y1, x1, y2, x2) in enumerate(pixel_boxes):
        if class_ids[k] == 0:
            continue
        blob = (rng.random((y2 - y1, x2 - x1)) < 0.7).astype(np.float32)
        full[y1:y2, x1:x2, k] = blob
        mini[..., k] = (rng.random((14, 14)) < 0.6)
    normalized = np.where(class_ids[:, np.newaxis] != 0,
                          oracle.utils().norm_boxes(pixel_boxes, (IMAGE, IMAGE)), 0.0).astype(np.float32)
    return normalized, class_ids, full, mini


def _image_proposals(rng, gt_boxes, class_ids):
    """Proposals near each box (some positive, some not) and random ones, a few padding rows."""
    near = [jittered(rng, box, 4, scale) for box, cid in zip(gt_boxes, class_ids) if cid != 0
            for scale in (0.05, 0.3)]
    proposals = np.concatenate(near + [random_boxes(rng, NUM_PROPOSALS)])[: NUM_PROPOSALS - 4]
    proposals = np.concatenate([proposals, np.zeros((NUM_PROPOSALS - len(proposals), 4))])
    return rng.permutation(proposals).astype(np.float32)


def _target_images(seed):
    """Four images: objects and a crowd box, objects only, a crowd box only, nothing."""
    rng = np.random.default_rng(seed)
    images = []
    for objects, crowd in ((3, True), (2, False), (0, True), (0, False)):
        boxes, class_ids, full, mini = _image_ground_truth(rng, objects, crowd)
        images.append((_image_proposals(rng, boxes, class_ids), class_ids, boxes, full, mini))
    return images


def _target_settings(mini, **settings):
    base = dict(MASK_POOL_SIZE=4, MASK_SHAPE=[8, 8], USE_MINI_MASK=mini, MINI_MASK_SHAPE=(14, 14),
                IMAGE_MIN_DIM=IMAGE, IMAGE_MAX_DIM=IMAGE, MAX_GT_INSTANCES=MAX_GT)
    base.update(settings)
    return base


def _theirs_targets(mp, image, mini, settings):
    proposals, class_ids, boxes, full, mini_masks = image
    masks = mini_masks if mini else full
    outputs = mp.detection_targets_graph(tf.constant(proposals), tf.constant(class_ids), tf.constant(boxes),
                                         tf.constant(masks), oracle.make_config(**_target_settings(mini, **settings)))
    return [numpy(t) for t in outputs]


def _ours_targets(images, mini, settings, keys_seed=0):
    proposals, class_ids, boxes, full, mini_masks = (np.stack(parts) for parts in zip(*images))
    keys = np.random.default_rng(keys_seed).random(proposals.shape[:2]).astype(np.float32)
    outputs = detection_targets.detection_targets_graph(
        tf.constant(proposals), tf.constant(class_ids), tf.constant(boxes),
        tf.constant(mini_masks if mini else full), ours_config(**_target_settings(mini, **settings)),
        random_keys=tf.constant(keys))
    return [numpy(t) for t in outputs]


def _rows(outputs, which):
    """The rows of one image's (rois, class_ids, deltas, masks) selected by ``which``, sorted by roi."""
    rois, class_ids, deltas, masks = outputs
    index = np.flatnonzero(which(rois, class_ids))
    order = index[np.lexsort(rois[index].T[::-1])]
    return rois[order], class_ids[order], deltas[order], masks[order]


def _positive(rois, class_ids):
    return class_ids > 0


def _negative(rois, class_ids):
    return (class_ids == 0) & np.any(rois != 0, axis=1)


def _assert_same_rows(ours, theirs, what):
    assert len(ours[0]) == len(theirs[0]), what
    np.testing.assert_array_equal(ours[0], theirs[0], err_msg=f"{what}: rois")
    np.testing.assert_array_equal(ours[1], theirs[1], err_msg=f"{what}: class ids")
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-5, atol=1e-5, err_msg=f"{what}: deltas")
    np.testing.assert_array_equal(ours[3], theirs[3], err_msg=f"{what}: masks")


# Every candidate fits: 1000 rows, at most int(1000 * 0.02) = 20 positives and 49 negatives
# per positive, so both sides return all positive and all negative candidates (in another
# order: the sampling is random). Images without a positive get no ROI at all.
ALL_CANDIDATES = dict(TRAIN_ROIS_PER_IMAGE=1000, ROI_POSITIVE_RATIO=0.02)


@pytest.mark.parametrize("mini", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_detection_targets_candidate_sets_and_targets(mp, seed, mini):
    images = _target_images(seed)
    ours = _ours_targets(images, mini, ALL_CANDIDATES)
    for index, image in enumerate(images):
        theirs = _theirs_targets(mp, image, mini, ALL_CANDIDATES)
        mine = [o[index] for o in ours]
        for rows in (_positive, _negative):
            _assert_same_rows(_rows(mine, rows), _rows(theirs, rows), f"image {index} {rows.__name__}")
        kept = np.sum(np.any(theirs[0] != 0, axis=1))
        for our_output in mine:  # then zero padding, in every output
            assert not np.any(our_output[kept:])
    # the cases are real: positives, negatives and crowd-touching proposals
    theirs = _theirs_targets(mp, images[0], mini, ALL_CANDIDATES)
    assert np.sum(theirs[1] > 0) >= 3 and np.sum(_negative(*theirs[:2])) >= 10
    crowd_touching = NUM_PROPOSALS - np.sum(np.all(images[0][0] == 0, axis=1)) - np.sum(np.any(theirs[0] != 0, axis=1))
    assert crowd_touching > 0


def _sample_counts(outputs):
    rois, class_ids = outputs[0], outputs[1]
    positives = int(np.sum(class_ids > 0))
    negatives = int(np.sum((class_ids == 0) & np.any(rois != 0, axis=1)))
    return positives, negatives


@pytest.mark.parametrize("total, ratio", [(10, 0.33), (12, 0.33), (30, 0.5), (8, 0.25), (200, 0.33)])
@pytest.mark.parametrize("mini", [False, True])
def test_detection_targets_sampling_as_matterport(mp, total, ratio, mini):
    """Counts, membership, order, padding and the positives' targets under matterport's rule."""
    settings = dict(TRAIN_ROIS_PER_IMAGE=total, ROI_POSITIVE_RATIO=ratio)
    images = _target_images(2)
    ours = _ours_targets(images, mini, settings, keys_seed=total)
    for index, image in enumerate(images):
        mine = [o[index] for o in ours]
        theirs = _theirs_targets(mp, image, mini, settings)
        candidates = _theirs_targets(mp, image, mini, ALL_CANDIDATES)
        positives, negatives = _sample_counts(mine)
        assert (positives, negatives) == _sample_counts(theirs), f"image {index}"
        cap = int(total * ratio)
        assert positives == min(int(np.sum(candidates[1] > 0)), cap)
        # positives first, then negatives, then zero rows in every output
        assert np.all(mine[1][:positives] > 0) and not np.any(mine[1][positives:])
        assert np.all(np.any(mine[0][: positives + negatives] != 0, axis=1))
        for our_output in mine:
            assert not np.any(our_output[positives + negatives:])
        assert not np.any(mine[2][positives:]) and not np.any(mine[3][positives:])
        # each chosen ROI is a candidate of its kind, with the candidate's targets
        for rows in (_positive, _negative):
            chosen = _rows(mine, rows)
            pool = _rows(candidates, rows)
            keys = {tuple(r) for r in pool[0]}
            assert all(tuple(r) in keys for r in chosen[0]), f"image {index} {rows.__name__}"
        # the positives' targets equal matterport's for the same ROIs
        chosen = _rows(mine, _positive)
        if len(chosen[0]):
            again = _theirs_targets(mp, (chosen[0],) + tuple(image[1:]), mini, ALL_CANDIDATES)
            _assert_same_rows(chosen, _rows(again, _positive), f"image {index} positive targets")


def _negative_candidates(image):
    """Proposals of one image that are negative candidates (matterport's numpy IoU)."""
    proposals, class_ids, boxes = image[:3]
    compute_overlaps = oracle.utils().compute_overlaps
    valid = proposals[np.any(proposals != 0, axis=1)]
    objects, crowds = boxes[class_ids > 0], boxes[class_ids < 0]
    best = compute_overlaps(valid, objects).max(axis=1) if len(objects) else np.full(len(valid), -1.0)
    crowd = compute_overlaps(valid, crowds).max(axis=1) if len(crowds) else np.zeros(len(valid))
    return {tuple(r) for r in valid[(best < 0.5) & (crowd < 0.001)]}


@pytest.mark.parametrize("total, ratio", [(10, 0.33), (30, 0.5)])
def test_detection_targets_fill_negatives_switch(mp, total, ratio):
    """ROI_FILL_NEGATIVES: the same positives, then negatives up to TRAIN_ROIS_PER_IMAGE."""
    settings = dict(TRAIN_ROIS_PER_IMAGE=total, ROI_POSITIVE_RATIO=ratio)
    images = _target_images(3)
    filled = _ours_targets(images, False, dict(settings, ROI_FILL_NEGATIVES=True), keys_seed=1)
    default = _ours_targets(images, False, settings, keys_seed=1)
    for index, image in enumerate(images):
        candidates = _negative_candidates(image)
        mine = [o[index] for o in filled]
        positives, negatives = _sample_counts(mine)
        assert positives == _sample_counts([o[index] for o in default])[0]
        assert negatives == min(len(candidates), total - positives) > 0
        assert all(tuple(r) in candidates for r in _rows(mine, _negative)[0])
        for our_output in mine:
            assert not np.any(our_output[positives + negatives:])
    # the matterport candidate sets agree with the numpy ones where matterport returns them
    their_negatives = _rows(_theirs_targets(mp, images[0], False, ALL_CANDIDATES), _negative)[0]
    assert {tuple(r) for r in their_negatives} == _negative_candidates(images[0])
    # images without a positive: matterport (and the default) give no ROI; the switch fills
    # every row with negatives
    for index in (2, 3):
        assert not np.any(default[0][index]) and not np.any(_theirs_targets(mp, images[index], False, settings)[0])
        assert _sample_counts([o[index] for o in filled]) == (0, min(len(_negative_candidates(images[index])), total))
