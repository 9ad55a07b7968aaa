"""The export's graph ops against the numpy code they reproduce (issue 21): molding, anchors, unmolding, ROI align.

Every function runs inside a ``tf.function``, where Grappler rewrites the graph (it
once regrouped the resize's sums and turned ``1 - (c - floor c)`` into
``(floor c + 1) - c``), and is compared bit for bit with ``molding.resize``,
``masks.unmold_mask``, ``resize_image``, ``mold_one``, ``pyramid_anchors``,
``unmold_detections`` and ``tf.image.crop_and_resize``.
"""
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn.export.postprocess import unmold_batch
from rsna_detector.mrcnn.export.preprocess import ExportError, check_exportable, mold_batch, molding_plan
from rsna_detector.mrcnn.export.resample import paste_masks, resize_bilinear
from rsna_detector.mrcnn.export.roi_align_gather import pyramid_roi_align_gather
from rsna_detector.mrcnn.inference.detect import mold_one, unmold_detections
from rsna_detector.mrcnn.layers.roi_align import pyramid_roi_align_graph
from rsna_detector.mrcnn.ops.anchors import pyramid_anchors
from rsna_detector.mrcnn.ops.boxes import norm_boxes
from rsna_detector.mrcnn.ops.masks import unmold_mask
from rsna_detector.mrcnn.ops.molding import resize, resize_image
from tests.helpers import tiny_config


def _resize_function(dtype):
    spec = [tf.TensorSpec([None, None, None, None], tf.uint8), tf.TensorSpec([2], tf.int32)]
    return tf.function(lambda images, size: resize_bilinear(images, size[0], size[1], dtype), input_signature=spec)


def _sizes(rng, count):
    """(input height, width, output height, width): down- and up-scaling, odd factors, 1 and exact powers of 2."""
    fixed = [(1024, 1024, 256, 256), (1024, 1024, 64, 64), (64, 64, 128, 128), (90, 300, 38, 128), (7, 5, 64, 46),
             (128, 128, 128, 128)]
    return fixed + [tuple(int(v) for v in rng.integers(5, 300, 4)) for _ in range(count)]


def test_resize_equals_scikit_image_bit_for_bit():
    rng = np.random.default_rng(0)
    resize_graph = _resize_function(tf.float64)
    for k, (h, w, out_h, out_w) in enumerate(_sizes(rng, 12)):
        images = rng.integers(0, 256, (2, h, w, 3)).astype(np.uint8)
        images[1] = 100 + 50 * (k % 2)  # flat: the value must come back exactly (the clip, the sum's order)
        images[1, : h // 3] = 30 if k % 3 else 100
        out = resize_graph(images, [out_h, out_w]).numpy()
        for i in range(2):
            np.testing.assert_array_equal(out[i], resize(images[i], (out_h, out_w), preserve_range=True))


def test_float32_resize_is_within_one_grey_level():
    rng = np.random.default_rng(1)
    resize_graph = _resize_function(tf.float32)
    differing = total = 0
    for h, w, out_h, out_w in _sizes(rng, 8):
        images = rng.integers(0, 256, (1, h, w, 3)).astype(np.uint8)
        out = resize_graph(images, [out_h, out_w]).numpy().astype(np.uint8)[0].astype(int)
        expected = resize(images[0], (out_h, out_w), preserve_range=True).astype(np.uint8).astype(int)
        assert np.abs(out - expected).max() <= 1
        differing += int((out != expected).sum())
        total += out.size
    assert differing < total * 1e-3


def test_paste_masks_equals_unmold_mask():
    rng = np.random.default_rng(2)
    paste = tf.function(lambda m, b, h, w: paste_masks(m, b, h, w), input_signature=[
        tf.TensorSpec([None, None, 28, 28], tf.float32), tf.TensorSpec([None, None, 4], tf.int32),
        tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(20, 260, 2))
        masks = rng.random((2, 3, 28, 28)).astype(np.float32)
        y1, x1 = rng.integers(0, h - 2, (2, 3)), rng.integers(0, w - 2, (2, 3))
        boxes = np.stack([y1, x1, rng.integers(y1 + 1, h + 1), rng.integers(x1 + 1, w + 1)], -1).astype(np.int32)
        boxes[1, 2] = (5, 5, 5, 9)  # empty box: empty mask
        boxes[0, 1] = (0, 0, 28, 28)  # the mask's own size
        out = paste(masks, boxes, h, w).numpy()
        for i in range(2):
            for d in range(3):
                np.testing.assert_array_equal(out[i, d], unmold_mask(masks[i, d], boxes[i, d], (h, w, 3)))


def test_gather_roi_align_equals_crop_and_resize():
    rng = np.random.default_rng(3)
    for side in (64, 256):
        maps = [tf.constant(rng.normal(size=(2, side // s, side // s, 8)).astype(np.float32)) for s in (4, 8, 16, 32)]
        corner = rng.uniform(-0.1, 0.9, (2, 40, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(0, 0.7, (2, 40, 2))], -1)[..., [0, 1, 2, 3]]
        boxes = boxes.astype(np.float32)
        boxes[0, :3] = 0  # padding rows
        for pool in [(7, 7), (14, 14)]:
            args = (tf.constant(boxes), tf.constant([side, side, 3]), maps, pool)
            expected = pyramid_roi_align_graph(*args).numpy()
            np.testing.assert_array_equal(pyramid_roi_align_gather(*args).numpy(), expected)  # eager: the same sums
            # in a graph, Grappler may regroup the arithmetic: equal up to rounding (TFLite rounds its own way anyway)
            np.testing.assert_allclose(tf.function(pyramid_roi_align_gather)(*args).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("mode", ["square", "pad64", "none"])
def test_molding_plan_equals_resize_image(mode):
    config = tiny_config(IMAGE_RESIZE_MODE=mode, IMAGE_MIN_DIM=64 if mode != "square" else 100,
                         IMAGE_MAX_DIM=128, IMAGE_MIN_SCALE=1.5 if mode == "pad64" else 0)
    plan_graph = tf.function(lambda h, w: molding_plan(config, h, w),
                             input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    rng = np.random.default_rng(4)
    for h, w in [(64, 64), (128, 128), (90, 300), (300, 90), (1024, 1024), (127, 129)] + \
            [tuple(int(v) for v in rng.integers(8, 400, 2)) for _ in range(20)]:
        if mode == "none" and (h % 64 or w % 64):
            continue
        molded, window, scale, _, _ = resize_image(np.zeros((h, w), np.uint8), min_dim=config.IMAGE_MIN_DIM,
                                                   max_dim=config.IMAGE_MAX_DIM, min_scale=config.IMAGE_MIN_SCALE,
                                                   mode=mode)
        plan = {key: value.numpy() for key, value in plan_graph(h, w).items()}
        assert tuple(plan["molded"]) == molded.shape[:2]
        assert tuple(plan["window"]) == tuple(window)
        assert plan["scale"] == scale


@pytest.mark.parametrize("mode, sizes", [("square", [(64, 64), (100, 80), (40, 50), (300, 200)]),
                                         ("none", [(64, 128), (192, 64)]),
                                         ("pad64", [(70, 100), (64, 64)])])
def test_mold_batch_equals_mold_one(mode, sizes):
    config = tiny_config(IMAGE_RESIZE_MODE=mode, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64)
    molded_graph = tf.function(lambda images: mold_batch(images, config),
                               input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8)])
    rng = np.random.default_rng(5)
    for h, w in sizes:
        for channels in (1, 3):
            images = rng.integers(0, 256, (2, h, w, channels)).astype(np.uint8)
            out = molded_graph(images)
            for i in range(2):
                molded, meta, window, _ = mold_one(config, images[i], i)
                np.testing.assert_array_equal(out["images"][i].numpy(), molded.astype(np.float32))
                np.testing.assert_array_equal(out["metas"][i].numpy(), meta.astype(np.float32))
                assert tuple(out["window"].numpy()) == tuple(window)
                expected_anchors = norm_boxes(pyramid_anchors(config, molded.shape), molded.shape[:2])
                np.testing.assert_array_equal(out["anchors"][i].numpy(), expected_anchors)


def test_crop_mode_is_refused():
    with pytest.raises(ExportError, match="'crop' cannot be exported"):
        check_exportable(tiny_config(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64))


def _detections(rng, depth, count):
    """Detection-layer rows: ``count`` normalized boxes (some past the window, one empty), class 1, then padding."""
    rows = np.zeros((depth, 6), np.float32)
    y1, x1 = rng.uniform(0.1, 0.8, 2 * count).reshape(2, count)
    rows[:count, :4] = np.stack([y1, x1, y1 + rng.uniform(0, 0.3, count), x1 + rng.uniform(0, 0.3, count)], -1)
    rows[0, 2] = rows[0, 0]  # an empty box: dropped
    rows[:count, 4] = 1
    rows[:count, 5] = np.sort(rng.uniform(0.5, 1, count))[::-1]
    return rows


def test_unmold_batch_equals_unmold_detections():
    rng = np.random.default_rng(6)
    config = tiny_config()
    unmold = tf.function(lambda d, m, window, molded, h, w: unmold_batch(
        d, m, {"window": window, "molded": molded, "height": h, "width": w}))
    for h, w in [(90, 300), (64, 64), (1024, 1024), (41, 50)]:
        window = np.array(resize_image(np.zeros((h, w), np.uint8), config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM)[1])
        detections = np.stack([_detections(rng, 4, count) for count in (3, 0, 4)])
        masks = rng.random((3, 4, 28, 28)).astype(np.float32)
        out = unmold(detections, masks, window.astype(np.int32), np.array([64, 64], np.int32), h, w)
        for i in range(3):
            boxes, class_ids, scores, full = unmold_detections(detections[i], masks[i], (h, w, 3), (64, 64, 3), window)
            count = int(out["num_detections"][i])
            assert count == len(boxes)
            np.testing.assert_array_equal(out["boxes"][i, :count].numpy(), boxes)
            np.testing.assert_array_equal(out["class_ids"][i, :count].numpy(), class_ids)
            np.testing.assert_array_equal(out["scores"][i, :count].numpy(), scores)
            np.testing.assert_array_equal(np.moveaxis(out["masks"][i, :count].numpy(), 0, -1), full)
            assert not out["boxes"][i, count:].numpy().any() and not out["masks"][i, count:].numpy().any()


def test_none_mode_export_equals_detect_and_refuses_sizes_the_fpn_cannot_take(tmp_path):
    """'none' mode: the molded shape follows the input, so the anchors are made in the graph (``_grid_anchors``)."""
    import keras

    from rsna_detector.mrcnn.export.saved_model import build_module
    from rsna_detector.mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(4)
    config = tiny_config(IMAGE_RESIZE_MODE="none", IMAGES_PER_GPU=2, DETECTION_MIN_CONFIDENCE=0.0)
    model = MaskRCNN("inference", config, str(tmp_path))
    module = build_module(model)
    rng = np.random.default_rng(7)
    for shape in [(64, 128), (128, 64)]:
        images = rng.integers(0, 256, (2,) + shape).astype(np.uint8)
        got = module.detect(tf.constant(images))
        for i, expected in enumerate(model.detect(list(images))):
            count = int(got["num_detections"][i])
            assert count == len(expected["rois"]) > 0
            np.testing.assert_array_equal(got["boxes"][i, :count].numpy(), expected["rois"])
            np.testing.assert_array_equal(got["scores"][i, :count].numpy(), expected["scores"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be multiples of 64.*got height, width.*100 64"):
        module.detect(tf.constant(np.zeros((1, 100, 64), np.uint8)))
