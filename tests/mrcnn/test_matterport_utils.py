"""Differential tests: rsna_detector.mrcnn.utils against matterport's own mrcnn.utils (v2.1).

Every test runs the same seeded random and edge-case inputs through matterport's function
(``tests.matterport_oracle.utils()``, adapted only as its docstring says) and ours, and compares
the results exactly (ints, bools, uint8 images, float bit patterns where the arithmetic is the
same) or within float tolerance where TensorFlow computes them. Where ours accepts inputs on
which matterport fails, the test says so and checks only that matterport fails.
"""
import inspect
import random
import urllib.error
import urllib.request

import numpy as np
import pytest

from rsna_detector.mrcnn import utils
from tests import matterport_oracle as oracle


@pytest.fixture(scope="module")
def mp():
    return oracle.utils()


def same(ours, theirs, dtype=True):
    """Exact equality (NaN equal to NaN), of the shape and, with ``dtype``, of the dtype."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    if dtype:
        assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    np.testing.assert_array_equal(ours, theirs)


def random_boxes(rng, count, size=100, dtype=np.int32, min_side=0):
    top_left = rng.integers(0, size, (count, 2))
    sides = rng.integers(min_side, size // 2, (count, 2))
    return np.concatenate([top_left, top_left + sides], axis=1).astype(dtype)


def random_masks(rng, count, shape=(40, 50), density=0.5):
    masks = np.zeros(shape + (count,), bool)
    for i in range(count):
        y1, x1 = rng.integers(0, shape[0] - 5), rng.integers(0, shape[1] - 5)
        y2, x2 = y1 + rng.integers(1, shape[0] - y1), x1 + rng.integers(1, shape[1] - x1)
        masks[y1:y2, x1:x2, i] = rng.random((y2 - y1, x2 - x1)) < density
    return masks


# --------------------------------------------------------------------------- boxes
def test_extract_bboxes(mp):
    rng = np.random.default_rng(1)
    for density in (0.002, 0.05, 0.5):
        masks = rng.random((30, 40, 6)) < density
        masks[..., 0] = False  # an empty instance gives (0, 0, 0, 0)
        same(utils.extract_bboxes(masks), mp.extract_bboxes(masks))
        same(utils.extract_bboxes(masks.astype(np.uint8)), mp.extract_bboxes(masks.astype(np.uint8)))
    same(utils.extract_bboxes(np.zeros((5, 5, 0), bool)), mp.extract_bboxes(np.zeros((5, 5, 0), bool)))


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64])
def test_compute_iou_and_overlaps(mp, dtype):
    rng = np.random.default_rng(2)
    boxes1 = random_boxes(rng, 40, dtype=dtype)
    boxes2 = random_boxes(rng, 7, dtype=dtype)
    boxes1[:3] = [[5, 5, 5, 9], [0, 0, 0, 0], [3, 3, 3, 3]]  # zero-area boxes
    boxes2[0] = [0, 0, 0, 0]  # 0/0 with the zero-area ones: NaN in both
    areas1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    areas2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(boxes2)):
            same(utils.compute_iou(boxes2[i], boxes1, areas2[i], areas1),
                 mp.compute_iou(boxes2[i], boxes1, areas2[i], areas1))
        same(utils.compute_overlaps(boxes1, boxes2), mp.compute_overlaps(boxes1, boxes2))
        same(utils.compute_overlaps(boxes2, boxes1), mp.compute_overlaps(boxes2, boxes1))
    assert np.isnan(utils.compute_overlaps(boxes1, boxes2)[1, 0])


def test_compute_overlaps_of_mixed_precisions_and_empty_sets(mp):
    # float64 anchors against int32 ground truth (build_rpn_targets), float32 against float64
    rng = np.random.default_rng(3)
    anchors = random_boxes(rng, 200, dtype=np.float64) + rng.random((200, 4))
    for other in (random_boxes(rng, 5, dtype=np.int32), random_boxes(rng, 5, dtype=np.float32) + 0.3):
        same(utils.compute_overlaps(anchors, other), mp.compute_overlaps(anchors, other))
        same(utils.compute_overlaps(other, anchors.astype(np.float32)),
             mp.compute_overlaps(other, anchors.astype(np.float32)))
    for a, b in ((np.zeros((0, 4)), anchors[:3]), (anchors[:3], np.zeros((0, 4))), (np.zeros((0, 4)),) * 2):
        same(utils.compute_overlaps(a, b), mp.compute_overlaps(a, b))


def test_compute_overlaps_masks(mp):
    rng = np.random.default_rng(4)
    masks1, masks2 = random_masks(rng, 6), random_masks(rng, 4)
    masks2[..., 3] = False  # an empty mask: NaN against an empty mask, 0 otherwise
    masks1[..., 5] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        same(utils.compute_overlaps_masks(masks1, masks2), mp.compute_overlaps_masks(masks1, masks2))
        soft = rng.random((20, 20, 3))
        soft[0, 0] = 0.5  # the threshold is > 0.5
        same(utils.compute_overlaps_masks(soft, soft[..., :2]), mp.compute_overlaps_masks(soft, soft[..., :2]))
    for a, b in ((masks1, masks2[..., :0]), (masks1[..., :0], masks2)):
        same(utils.compute_overlaps_masks(a, b), mp.compute_overlaps_masks(a, b))


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64])
def test_non_max_suppression(mp, dtype):
    rng = np.random.default_rng(5)
    for _ in range(8):
        boxes = random_boxes(rng, 60, size=60, dtype=dtype, min_side=1)
        scores = np.round(rng.random(60), 1)  # many ties: matterport's argsort order decides them
        for threshold in (0.0, 0.3, 0.5, 0.7, 1.0):
            same(utils.non_max_suppression(boxes, scores, threshold),
                 mp.non_max_suppression(boxes, scores, threshold))


def test_non_max_suppression_of_no_box():
    # Extension: matterport asserted N > 0
    assert utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_box_refinement_and_apply_box_deltas(mp):
    rng = np.random.default_rng(6)
    boxes = random_boxes(rng, 50, dtype=np.float64, min_side=1) + rng.random((50, 4))
    gt = random_boxes(rng, 50, dtype=np.int32, min_side=1)
    same(utils.box_refinement(boxes, gt), mp.box_refinement(boxes, gt))
    same(utils.box_refinement(gt, boxes.astype(np.float32)), mp.box_refinement(gt, boxes.astype(np.float32)))
    for deltas in (rng.normal(0, 0.3, (50, 4)), rng.normal(0, 0.3, (50, 4)).astype(np.float32)):
        same(utils.apply_box_deltas(boxes, deltas), mp.apply_box_deltas(boxes, deltas))
        same(utils.apply_box_deltas(gt, deltas), mp.apply_box_deltas(gt, deltas))


def test_box_refinement_graph_and_batch_slice(mp):
    import tensorflow as tf

    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 20, dtype=np.float32, min_side=1)
    gt = random_boxes(rng, 20, dtype=np.float32, min_side=1)
    np.testing.assert_allclose(utils.box_refinement_graph(tf.constant(boxes), tf.constant(gt)).numpy(),
                               mp.box_refinement_graph(tf.constant(boxes), tf.constant(gt)).numpy(), rtol=1e-6)
    batch = tf.constant(rng.random((3, 5, 4)), tf.float32)

    def graph_fn(x):
        return [tf.reduce_sum(x, axis=1), x * 2]

    ours = utils.batch_slice([batch], graph_fn, 3, names=["sums", "doubles"])
    theirs = mp.batch_slice([batch], graph_fn, 3, names=["sums", "doubles"])
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        same(a.numpy(), b.numpy())
    same(utils.batch_slice(batch, lambda x: x[0], 3).numpy(), mp.batch_slice(batch, lambda x: x[0], 3).numpy())


def test_norm_denorm_and_trim_zeros(mp):
    rng = np.random.default_rng(8)
    boxes = random_boxes(rng, 30, size=200)
    for shape in ((256, 256), (200, 317)):
        normed = utils.norm_boxes(boxes, shape)
        same(normed, mp.norm_boxes(boxes, shape))
        noisy = normed + rng.normal(0, 0.002, normed.shape).astype(np.float32)
        same(utils.denorm_boxes(noisy, shape), mp.denorm_boxes(noisy, shape))
    padded = np.concatenate([boxes[:5], np.zeros((3, 4), np.int32), boxes[5:7], np.zeros((2, 4), np.int32)])
    same(utils.trim_zeros(padded), mp.trim_zeros(padded))


# --------------------------------------------------------------------------- Dataset
class _Recipe:
    """The same calls, made on matterport's Dataset and on ours."""

    @staticmethod
    def fill(dataset):
        dataset.add_class("shapes", 1, "square")
        dataset.add_class("shapes", 2, "circle, round")
        dataset.add_class("shapes", 1, "square again")  # already there: ignored
        dataset.add_class("coco", 1, "person")
        dataset.add_class("coco", 7, "train")
        dataset.add_image("shapes", image_id="a", path="a.png", height=6, width=4)
        dataset.add_image("coco", image_id=42, path="b.png", extra="kept")
        dataset.add_image("shapes", image_id="c", path="c.png")
        dataset.prepare(class_map={"ignored": 1})
        return dataset


def test_dataset_tables(mp):
    ours, theirs = _Recipe.fill(utils.Dataset()), _Recipe.fill(mp.Dataset())
    for name in ("class_info", "image_info", "num_classes", "class_names", "num_images",
                 "class_from_source_map", "image_from_source_map", "source_class_ids"):
        assert getattr(ours, name) == getattr(theirs, name), name
    same(ours.class_ids, theirs.class_ids)
    same(ours.image_ids, theirs.image_ids)
    assert ours.sources == sorted(theirs.sources)  # matterport's order is a set's
    for key in theirs.class_from_source_map:
        assert ours.map_source_class_id(key) == theirs.map_source_class_id(key)
    for class_id, info in enumerate(theirs.class_info):
        assert ours.get_source_class_id(class_id, info["source"]) == theirs.get_source_class_id(class_id, info["source"])
    for image_id in theirs.image_ids:
        assert ours.image_reference(image_id) == theirs.image_reference(image_id)
        assert ours.source_image_link(image_id) == theirs.source_image_link(image_id)


def test_dataset_errors_are_the_same_exceptions(mp):
    ours, theirs = _Recipe.fill(utils.Dataset()), _Recipe.fill(mp.Dataset())
    for dataset in (ours, theirs):
        with pytest.raises(KeyError):
            dataset.map_source_class_id("coco.9")
        with pytest.raises(AssertionError):
            dataset.get_source_class_id(1, "coco")
        with pytest.raises(AssertionError):
            dataset.add_class("a.b", 1, "x")
    # ours also names what is wrong
    with pytest.raises(utils.DatasetError, match="no class 'coco.9'"):
        ours.map_source_class_id("coco.9")
    with pytest.raises(utils.DatasetError, match="belongs to source 'shapes'"):
        ours.get_source_class_id(1, "coco")


def test_dataset_default_load_mask(mp, caplog):
    ours, theirs = _Recipe.fill(utils.Dataset()), _Recipe.fill(mp.Dataset())
    for a, b in zip(ours.load_mask(0), theirs.load_mask(0)):
        same(a, b)


def _write_images(folder):
    import skimage.io

    rng = np.random.default_rng(9)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 200, np.uint8)], axis=-1)
    deep = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    deep_rgb = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    gray_alpha = np.stack([gray, np.full((5, 7), 255, np.uint8)], axis=-1)
    floats = rng.random((5, 7)).astype(np.float32)
    paths = []
    for name, image in (("gray.png", gray), ("rgb.png", rgb), ("rgba.png", rgba), ("deep.png", deep),
                        ("deep_rgb.tif", deep_rgb), ("gray_alpha.png", gray_alpha), ("floats.tif", floats)):
        skimage.io.imsave(folder / name, image, check_contrast=False)
        paths.append(str(folder / name))
    return paths


def test_dataset_load_image_as_matterport(mp, tmp_path):
    paths = _write_images(tmp_path)
    ours, theirs = utils.Dataset(), mp.Dataset()
    for dataset in (ours, theirs):
        for k, path in enumerate(paths):
            dataset.add_image("files", k, path)
        dataset.prepare()
    for image_id in theirs.image_ids:
        same(ours.load_image(image_id), theirs.load_image(image_id))
    # grayscale -> 3 channels, alpha dropped, and 16-bit / float pixels kept as they are
    assert ours.load_image(0).shape == (5, 7, 3) and ours.load_image(2).shape == (5, 7, 3)
    assert ours.load_image(3).dtype == np.uint16 and ours.load_image(6).dtype == np.float32


def test_dataset_append_data_by_hand():
    # matterport master's legacy method (not in the v2.1 wheel): tables of '<ds><id>' keys
    dataset = utils.Dataset()
    dataset.add_class("shapes", 1, "square")
    dataset.class_info[1]["map"] = [("coco", 3), ("voc", 12)]
    dataset.add_image("shapes", image_id=5, path=None, ds="coco")
    dataset.add_image("shapes", image_id=6, path=None)
    dataset.append_data(None, None)
    assert dataset.external_to_class_id == {"coco3": 1, "voc12": 1}
    assert dataset.external_to_image_id == {"coco5": 0}


# --------------------------------------------------------------------------- resizing
def test_resize_wrapper(mp):
    rng = np.random.default_rng(10)
    image = rng.random((13, 17, 3))
    for kwargs in ({}, {"order": 0}, {"preserve_range": True}, {"anti_aliasing": True}, {"mode": "edge"}):
        same(utils.resize(image, (29, 11), **kwargs), mp.resize(image, (29, 11), **kwargs))
    mask = rng.random((13, 17)) > 0.5  # bool: both convert to float 0/1 (2018 scikit-image)
    same(utils.resize(mask, (7, 30)), mp.resize(mask, (7, 30)))
    assert list(inspect.signature(utils.resize).parameters) == list(inspect.signature(mp.resize).parameters)


RESIZE_CASES = [
    # mode, min_dim, max_dim, min_scale
    ("square", 64, 128, 0),
    ("square", 100, 256, 1.5),
    ("square", None, 96, None),
    ("pad64", 64, None, 0),
    ("pad64", 128, None, 2),
    ("crop", 64, None, 0),
    ("crop", 96, None, 1.3),
    ("none", 800, 1024, 0),
]


@pytest.mark.parametrize("mode, min_dim, max_dim, min_scale", RESIZE_CASES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_resize_image_and_resize_mask(mp, mode, min_dim, max_dim, min_scale, dtype):
    rng = np.random.default_rng(11)
    for trial in range(6):
        h, w = (int(v) for v in rng.integers(40, 300, 2))
        image = (rng.random((h, w, 3)) * 255).astype(dtype)
        random.seed(trial)  # the 'crop' position comes from Python's random, in both
        theirs = mp.resize_image(image, min_dim, max_dim, min_scale, mode)
        random.seed(trial)
        ours = utils.resize_image(image, min_dim, max_dim, min_scale, mode)
        same(ours[0], theirs[0])  # pixels truncated as matterport's astype, not rounded
        assert ours[1] == theirs[1] and ours[2] == theirs[2] and ours[4] == theirs[4]
        assert [tuple(p) for p in ours[3]] == [tuple(p) for p in theirs[3]]
        masks = rng.random((h, w, 3)) > 0.6
        same(utils.resize_mask(masks, ours[2], ours[3], ours[4]), mp.resize_mask(masks, theirs[2], theirs[3], theirs[4]))


def test_resize_image_truncates_a_real_downscale(mp):
    # the case: 1024 -> 256 of an 8-bit picture; rounding moved 30 % of the pixels by one
    rng = np.random.default_rng(12)
    image = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    same(utils.resize_image(image, 256, 256, 0, "square")[0], mp.resize_image(image, 256, 256, 0, "square")[0])


def test_resize_mask_of_a_box_moves_as_matterport(mp):
    # nearest-neighbour zoom with corners aligned: the box edges land where scipy puts them
    mask = np.zeros((1024, 1024, 2), bool)
    mask[300:517, 101:402, 0] = True
    mask[3:9, 1000:1024, 1] = True
    for scale in (0.25, 0.3, 1 / 3, 1.7):
        padding = [(0, 0), (0, 0), (0, 0)]
        ours, theirs = utils.resize_mask(mask, scale, padding), mp.resize_mask(mask, scale, padding)
        same(ours, theirs)
        same(utils.extract_bboxes(ours), mp.extract_bboxes(theirs))


def test_minimize_expand_and_unmold_mask(mp):
    rng = np.random.default_rng(13)
    masks = random_masks(rng, 8, shape=(80, 90), density=0.7)
    boxes = utils.extract_bboxes(masks)
    for mini_shape in ((56, 56), (14, 9), (3, 3)):
        mini = utils.minimize_mask(boxes, masks, mini_shape)
        same(mini, mp.minimize_mask(boxes, masks, mini_shape))
        same(utils.expand_mask(boxes, mini, (80, 90, 3)), mp.expand_mask(boxes, mini, (80, 90, 3)))
    uint8_masks = masks.astype(np.uint8)  # cast to bool first, in both
    same(utils.minimize_mask(boxes, uint8_masks, (20, 20)), mp.minimize_mask(boxes, uint8_masks, (20, 20)))
    for _ in range(10):
        small = rng.random((28, 28)).astype(np.float32)
        small[rng.random((28, 28)) < 0.1] = 0.5  # exactly on the threshold (>= 0.5 is in)
        y1, x1 = (int(v) for v in rng.integers(0, 40, 2))
        box = np.array([y1, x1, y1 + rng.integers(1, 40), x1 + rng.integers(1, 40)], np.int32)
        same(utils.unmold_mask(small, box, (80, 90, 3)), mp.unmold_mask(small, box, (80, 90, 3)))
    assert utils.mold_mask(masks, None) is mp.mold_mask(masks, None) is None


def test_minimize_mask_half_values_round_to_even(mp):
    # a 2-pixel-wide box resized to 3 columns interpolates 0.5 in the middle: np.around -> False
    mask = np.zeros((4, 4, 1), bool)
    mask[0:2, 0:1, 0] = True
    box = np.array([[0, 0, 2, 2]], np.int32)
    same(utils.minimize_mask(box, mask, (2, 3)), mp.minimize_mask(box, mask, (2, 3)))


# --------------------------------------------------------------------------- anchors
@pytest.mark.parametrize("anchor_stride", [1, 2])
def test_anchors(mp, anchor_stride):
    ratios = [0.5, 1, 2]
    for scales, shape, stride in (((32,), (16, 16), 4), ((8, 11), (5, 7), 8), ([64], [3, 9], 16)):
        same(utils.generate_anchors(scales, ratios, shape, stride, anchor_stride),
             mp.generate_anchors(scales, ratios, shape, stride, anchor_stride))
    shapes = np.array([[64, 48], [32, 24], [16, 12], [8, 6], [4, 3]])
    strides = [4, 8, 16, 32, 64]
    for scales in ((32, 64, 128, 256, 512), (16, 32, 64, 128)):  # 4 scales: P6 without anchors in both
        same(utils.generate_pyramid_anchors(scales, ratios, shapes, strides, anchor_stride),
             mp.generate_pyramid_anchors(scales, ratios, shapes, strides, anchor_stride))


# --------------------------------------------------------------------------- evaluation
def _scene(rng, n_gt, n_pred, size=48, classes=2, pad_gt=0, pad_pred=0):
    """Ground truth and predictions (masks, boxes from masks, classes, scores) of a random image."""
    gt_masks = random_masks(rng, n_gt, (size, size), density=0.9)
    pred_masks = np.concatenate([gt_masks[..., :min(n_gt, n_pred)],
                                 random_masks(rng, max(n_pred - n_gt, 0), (size, size), density=0.9)], axis=-1)
    noise = rng.random(pred_masks.shape) < 0.15
    pred_masks = pred_masks ^ noise & np.any(pred_masks, axis=(0, 1), keepdims=True)
    gt_boxes, pred_boxes = utils.extract_bboxes(gt_masks), utils.extract_bboxes(pred_masks)
    gt_classes = rng.integers(1, classes + 1, n_gt).astype(np.int32)
    pred_classes = rng.integers(1, classes + 1, n_pred).astype(np.int32)
    scores = np.round(rng.random(n_pred), 1).astype(np.float32)  # ties on purpose
    if pad_gt:  # zero padding rows at the end, as load_image_gt / detect give none but batches do
        gt_boxes = np.concatenate([gt_boxes, np.zeros((pad_gt, 4), np.int32)])
        gt_classes = np.concatenate([gt_classes, np.zeros(pad_gt, np.int32)])
        gt_masks = np.concatenate([gt_masks, np.zeros((size, size, pad_gt), bool)], axis=-1)
    if pad_pred:
        pred_boxes = np.concatenate([pred_boxes, np.zeros((pad_pred, 4), np.int32)])
        pred_classes = np.concatenate([pred_classes, np.zeros(pad_pred, np.int32)])
        scores = np.concatenate([scores, np.zeros(pad_pred, np.float32)])
        pred_masks = np.concatenate([pred_masks, np.zeros((size, size, pad_pred), bool)], axis=-1)
    return gt_boxes, gt_classes, gt_masks, pred_boxes, pred_classes, scores, pred_masks


SCENES = [(3, 3, 0, 0), (4, 6, 0, 0), (5, 2, 2, 0), (2, 5, 0, 3), (1, 1, 0, 0), (6, 6, 1, 1), (3, 8, 0, 0)]
EDGE_SCENES = {"no ground truth, no prediction": (0, 0), "predictions without ground truth": (0, 3),
               "ground truth without prediction": (3, 0)}


def _compare_ap(mp, scene, **kwargs):
    with np.errstate(divide="ignore", invalid="ignore"):
        theirs_matches = mp.compute_matches(*scene, **kwargs)
        theirs_ap = mp.compute_ap(*scene, **({"iou_threshold": kwargs["iou_threshold"]} if kwargs else {}))
    ours_matches = utils.compute_matches(*scene, **kwargs)
    ours_ap = utils.compute_ap(*scene, **({"iou_threshold": kwargs["iou_threshold"]} if kwargs else {}))
    for a, b in zip(ours_matches, theirs_matches):
        same(a, b)
    for a, b in zip(ours_ap, theirs_ap):
        same(a, b)
    return ours_ap[0]


@pytest.mark.parametrize("n_gt, n_pred, pad_gt, pad_pred", SCENES)
def test_compute_matches_and_compute_ap(mp, n_gt, n_pred, pad_gt, pad_pred):
    rng = np.random.default_rng(n_gt * 10 + n_pred)
    for _ in range(4):
        scene = _scene(rng, n_gt, n_pred, pad_gt=pad_gt, pad_pred=pad_pred)
        _compare_ap(mp, scene)
        for iou_threshold in (0.3, 0.75):
            for score_threshold in (0.0, 0.4):
                _compare_ap(mp, scene, iou_threshold=iou_threshold, score_threshold=score_threshold)


@pytest.mark.parametrize("name", list(EDGE_SCENES))
def test_compute_ap_edge_cases_are_matterports(mp, name):
    scene = _scene(np.random.default_rng(0), *EDGE_SCENES[name])
    ap = _compare_ap(mp, scene)
    expected = {"no ground truth, no prediction": 0.0, "predictions without ground truth": np.nan,
                "ground truth without prediction": 0.0}[name]
    np.testing.assert_equal(ap, expected)


@pytest.mark.parametrize("n_gt, n_pred, pad_gt, pad_pred", SCENES + [(0, 0, 0, 0), (0, 3, 0, 0), (2, 0, 0, 0)])
def test_compute_ap_boxes_equals_compute_ap_on_rectangles(n_gt, n_pred, pad_gt, pad_pred):
    rng = np.random.default_rng(n_gt + 7 * n_pred)
    gt_boxes, gt_classes, _, pred_boxes, pred_classes, scores, _ = _scene(rng, n_gt, n_pred, pad_gt=pad_gt,
                                                                         pad_pred=pad_pred)

    def filled(boxes):
        masks = np.zeros((48, 48, len(boxes)), bool)
        for k, (y1, x1, y2, x2) in enumerate(boxes):
            masks[y1:y2, x1:x2, k] = True
        return masks

    by_masks = utils.compute_ap(gt_boxes, gt_classes, filled(gt_boxes), pred_boxes, pred_classes, scores,
                                filled(pred_boxes))
    by_boxes = utils.compute_ap_boxes(gt_boxes, gt_classes, pred_boxes, pred_classes, scores)
    np.testing.assert_equal(by_boxes[0], by_masks[0])
    for a, b in zip(by_boxes[1:3], by_masks[1:3]):
        same(a, b)
    np.testing.assert_allclose(by_boxes[3], by_masks[3], rtol=1e-6)


def test_compute_ap_range(mp, capsys):
    rng = np.random.default_rng(14)
    for n_gt, n_pred in ((3, 4), (0, 2), (2, 0)):
        scene = _scene(rng, n_gt, n_pred)
        for thresholds in (None, [0.5, 0.55, 0.8]):
            with np.errstate(divide="ignore", invalid="ignore"):
                theirs = mp.compute_ap_range(*scene, iou_thresholds=thresholds, verbose=1)
            printed = capsys.readouterr().out
            ours = utils.compute_ap_range(*scene, iou_thresholds=thresholds, verbose=1)
            assert capsys.readouterr().out == printed
            same(ours, theirs)
    # Extension: an array of thresholds (matterport's `iou_thresholds or ...` refused it)
    scene = _scene(rng, 2, 2)
    assert utils.compute_ap_range(*scene, iou_thresholds=np.array([0.5, 0.6]), verbose=0) == \
        utils.compute_ap_range(*scene, iou_thresholds=[0.5, 0.6], verbose=0)


def test_compute_recall(mp):
    rng = np.random.default_rng(15)
    for _ in range(10):
        gt = random_boxes(rng, int(rng.integers(1, 6)), min_side=1)
        pred = np.concatenate([gt + rng.integers(-3, 4, gt.shape), random_boxes(rng, 4, min_side=1)])
        for iou in (0.3, 0.5, 0.7):
            ours, theirs = utils.compute_recall(pred, gt, iou), mp.compute_recall(pred, gt, iou)
            assert ours[0] == theirs[0]
            same(ours[1], theirs[1])
    same(utils.compute_recall(np.zeros((0, 4)), gt, 0.5)[1], mp.compute_recall(np.zeros((0, 4)), gt, 0.5)[1])
    assert utils.compute_recall(np.zeros((0, 4)), gt, 0.5)[0] == mp.compute_recall(np.zeros((0, 4)), gt, 0.5)[0] == 0


@pytest.mark.parametrize("pred_count", [0, 3])
def test_compute_recall_without_ground_truth_raises_as_matterport(mp, pred_count):
    pred = random_boxes(np.random.default_rng(16), pred_count, min_side=1)
    with pytest.raises((ValueError, ZeroDivisionError)):
        mp.compute_recall(pred, np.zeros((0, 4)), 0.5)
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        utils.compute_recall(pred, np.zeros((0, 4)), 0.5)
    with pytest.raises(ZeroDivisionError):  # whichever matterport raised, the same except clause catches ours
        utils.compute_recall(pred, np.zeros((0, 4)), 0.5)


# --------------------------------------------------------------------------- weights
def test_download_trained_weights_signature_and_offline(mp, tmp_path, monkeypatch):
    from rsna_detector.weights import WeightsOfflineError

    assert inspect.signature(utils.download_trained_weights) == inspect.signature(mp.download_trained_weights)
    assert utils.COCO_MODEL_URL == mp.COCO_MODEL_URL

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)  # matterport's download path
    with pytest.raises(urllib.error.URLError):
        mp.download_trained_weights(str(tmp_path / "theirs.h5"), verbose=0)
    monkeypatch.setenv("RSNA_DETECTOR_OFFLINE", "1")
    monkeypatch.setenv("RSNA_DETECTOR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsOfflineError, match="mask_rcnn_coco.h5"):
        utils.download_trained_weights(str(tmp_path / "ours.h5"), verbose=0)
    assert not (tmp_path / "theirs.h5").exists() and not (tmp_path / "ours.h5").exists()
