"""MaskRCNN in inference mode: detect() contract, batching, tracing, molding and unmolding."""
import time

import keras
import numpy as np
import pytest

from rsna_detector.mrcnn import model as modellib
from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config


class TinyConfig(Config):
    NAME = "tinytest"
    BACKBONE = "tiny"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64)
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_INFERENCE = 32
    DETECTION_MAX_INSTANCES = 5
    DETECTION_MIN_CONFIDENCE = 0.0  # random weights: keep every non-background detection


def _images():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (100, 80, 3), dtype=np.uint8),   # RGB, portrait
        rng.integers(0, 256, (128, 128), dtype=np.uint8),     # grayscale [H, W]
        rng.integers(0, 256, (300, 200, 1), dtype=np.uint8),  # grayscale [H, W, 1], scaled down
    ]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    keras.utils.set_random_seed(3)
    return modellib.MaskRCNN("inference", TinyConfig(), tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def results(model):
    return model.detect(_images())


def _check_result(result, image_shape, max_instances):
    rois, class_ids, scores, masks = result["rois"], result["class_ids"], result["scores"], result["masks"]
    count = len(scores)
    assert count <= max_instances
    assert rois.dtype == np.int32 and rois.shape == (count, 4)
    assert class_ids.dtype == np.int32 and class_ids.shape == (count,)
    assert scores.dtype == np.float32 and scores.shape == (count,)
    assert masks.dtype == bool and masks.shape == (image_shape[0], image_shape[1], count)
    height, width = image_shape[:2]
    assert np.all(rois[:, 0] >= 0) and np.all(rois[:, 1] >= 0)
    assert np.all(rois[:, 2] <= height) and np.all(rois[:, 3] <= width)
    assert np.all(rois[:, 2] > rois[:, 0]) and np.all(rois[:, 3] > rois[:, 1])
    assert np.all((class_ids >= 1) & (class_ids < TinyConfig.NUM_CLASSES))
    assert np.all((scores >= 0) & (scores <= 1)) and np.all(np.diff(scores) <= 0)
    for k in range(count):  # a mask lives inside its box
        y1, x1, y2, x2 = rois[k]
        outside = masks[:, :, k].copy()
        outside[y1:y2, x1:x2] = False
        assert not outside.any()


class TestDetect:
    def test_one_result_per_image_with_the_contract(self, results):
        images = _images()
        assert len(results) == 3
        for result, image in zip(results, images):
            assert set(result) == {"rois", "class_ids", "scores", "masks"}
            _check_result(result, image.shape, TinyConfig.DETECTION_MAX_INSTANCES)
        assert sum(len(r["scores"]) for r in results) > 0  # the checks above saw real detections

    def test_no_retracing_across_calls_and_batch_sizes(self, model, results):
        assert model.trace_count == 1  # 3 images: one batch of 2 and one of 1, one trace
        model.detect(_images())
        model.detect(_images()[:1])
        assert model.trace_count == 1

    def test_batched_equals_one_by_one(self, model, results):
        for image, batched in zip(_images(), results):
            alone = model.detect([image])[0]
            np.testing.assert_allclose(alone["scores"], batched["scores"], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(alone["rois"], batched["rois"], atol=1)
            np.testing.assert_array_equal(alone["class_ids"], batched["class_ids"])

    def test_grayscale_equals_repeated_rgb(self, model):
        gray = _images()[1]
        from_gray, from_rgb = model.detect([gray, np.repeat(gray[:, :, np.newaxis], 3, axis=2)])
        for key in ("rois", "class_ids", "scores", "masks"):
            np.testing.assert_array_equal(from_gray[key], from_rgb[key])

    def test_accepts_a_4d_array(self, model):
        batch = np.stack([_images()[1]] * 2)[..., np.newaxis]
        assert len(model.detect(batch)) == 2

    @pytest.mark.parametrize("bad, message", [
        (np.zeros((64, 64, 2), np.uint8), "image 0: expected 1 or 3 channels"),
        (np.zeros((64,), np.uint8), r"image 0: expected \[H, W\]"),
        (np.zeros((64, 64), bool), "image 0: expected a numeric array"),
    ])
    def test_bad_images_are_named(self, model, bad, message):
        with pytest.raises(modellib.ModelError, match=message):
            model.detect([bad])

    def test_not_a_list(self, model):
        with pytest.raises(modellib.ModelError, match="list of images"):
            model.detect("image.png")

    def test_no_detection_gives_empty_arrays(self, tmp_path):
        class Strict(TinyConfig):
            DETECTION_MIN_CONFIDENCE = 1.0
        strict = modellib.MaskRCNN("inference", Strict(), tmp_path)
        (result,) = strict.detect([_images()[0]])
        assert result["rois"].shape == (0, 4) and result["rois"].dtype == np.int32
        assert result["scores"].shape == (0,) and result["class_ids"].shape == (0,)
        assert result["masks"].shape == (100, 80, 0) and result["masks"].dtype == np.float64  # matterport's np.empty

    def test_unpadded_mode_needs_multiples_of_64(self, tmp_path):
        class Unpadded(TinyConfig):
            IMAGE_RESIZE_MODE = "none"
        loose = modellib.MaskRCNN("inference", Unpadded(), tmp_path)
        with pytest.raises(modellib.ModelError, match="multiples of 64"):
            loose.detect([_images()[0]])
        result = loose.detect([np.zeros((64, 192, 3), np.uint8), np.zeros((128, 64, 3), np.uint8)])
        assert [r["masks"].shape[:2] for r in result] == [(64, 192), (128, 64)]
        assert loose.trace_count == 2  # one graph per molded shape


class TestMoldingAndUnmolding:
    def test_mold_inputs(self, model):
        image = np.full((100, 200, 3), 200, np.uint8)
        molded, metas, windows = model.mold_inputs([image])
        # scale 128 / 200 = 0.64 -> 64 x 128, centred: rows 32..95
        assert molded.shape == (1, 128, 128, 3) and molded.dtype == np.float64  # matterport's mold_image
        np.testing.assert_array_equal(windows, [[32, 0, 96, 128]])
        np.testing.assert_allclose(molded[0, 64, 64], 200 - TinyConfig.MEAN_PIXEL, rtol=1e-6)
        meta = utils.parse_image_meta(metas)
        np.testing.assert_array_equal(meta["original_image_shape"][0], [100, 200, 3])
        np.testing.assert_array_equal(meta["image_shape"][0], [128, 128, 3])
        np.testing.assert_allclose(meta["scale"][0], 0.64)
        assert metas.shape == (1, TinyConfig().IMAGE_META_SIZE)

    def test_unmold_detections_maps_the_window_to_the_original_image(self, model):
        # The window (32, 0, 96, 128) of the molded 128 image is the whole 100 x 200 original.
        window_box = utils.norm_boxes(np.array([[32, 0, 96, 128]]), (128, 128))[0]
        half = utils.norm_boxes(np.array([[32, 64, 64, 128]]), (128, 128))[0]  # top right quarter
        detections = np.array([
            list(window_box) + [1, 0.9],
            list(half) + [1, 0.8],
            [0, 0, 0, 0, 0, 0],
        ], np.float32)
        masks = np.zeros((3, 28, 28, 2), np.float32)
        masks[:, :, :, 1] = 1.0  # full masks of class 1
        masks[:, :, :, 0] = 0.0
        boxes, class_ids, scores, full = model.unmold_detections(detections, masks, (100, 200, 3), (128, 128, 3),
                                                                 (32, 0, 96, 128))
        # (32, 64, 64, 128) in the molded image -> rows 0..50, columns 100..200 of the original
        np.testing.assert_array_equal(boxes, [[0, 0, 100, 200], [0, 100, 50, 200]])
        np.testing.assert_array_equal(class_ids, [1, 1])
        np.testing.assert_allclose(scores, [0.9, 0.8])
        assert full.shape == (100, 200, 2)
        assert full[:, :, 0].all() and full[:50, 100:, 1].all() and full[:, :, 1].sum() == 50 * 100

    def test_unmold_detections_takes_class_masks_and_drops_empty_boxes(self, model):
        quarter = utils.norm_boxes(np.array([[0, 0, 64, 64]]), (128, 128))[0]
        detections = np.array([[0.5, 0.5, 0.5, 0.5, 1, 0.9], list(quarter) + [1, 0.7]], np.float32)
        masks = np.ones((2, 28, 28), np.float32)  # already the detection's class
        boxes, class_ids, scores, full = model.unmold_detections(detections, masks, (128, 128, 3), (128, 128, 3),
                                                                 (0, 0, 128, 128))
        np.testing.assert_array_equal(boxes, [[0, 0, 64, 64]])
        np.testing.assert_allclose(scores, [0.7])
        assert full.shape == (128, 128, 1)

    def test_anchors_cover_the_rpn_levels_once_per_shape(self, model):
        anchors = model.get_anchors((128, 128, 3))
        # 3 ratios x (32^2 + 16^2 + 8^2 + 4^2) positions on P2..P5
        assert anchors.shape == (3 * (32 ** 2 + 16 ** 2 + 8 ** 2 + 4 ** 2), 4) and anchors.dtype == np.float32
        assert model.get_anchors((128, 128, 3)) is anchors
        np.testing.assert_array_equal(model.get_anchors((128, 128)), anchors)  # its own entry, as matterport's
        pixels = utils.generate_pyramid_anchors((8, 16, 32, 64), [0.5, 1, 2], [[32, 32], [16, 16], [8, 8], [4, 4]],
                                                [4, 8, 16, 32], 1)
        np.testing.assert_allclose(anchors, utils.norm_boxes(pixels, (128, 128)), rtol=1e-6)

    def test_graph_outputs(self, model):
        names = [t.name for t in model.keras_model.outputs]
        assert len(names) == 7
        shapes = [tuple(t.shape) for t in model.keras_model.outputs]
        assert shapes[0] == (None, 5, 6)
        assert shapes[3] == (None, 5, 28, 28, 2)
        assert shapes[4] == (None, 32, 4)


def test_log_prints_shape_range_and_dtype(capsys):
    array = np.array([[1.5, -2.0], [3.0, 0.0]], np.float32)
    assert modellib.log("boxes", array) is None  # as matterport's: a notebook cell shows it once
    line = modellib.format_log("boxes", array)
    assert "shape: (2, 2)" in line and "min:   -2.00000" in line and "max:    3.00000" in line
    assert line.endswith("float32")
    assert capsys.readouterr().out.strip() == line.strip()
    assert modellib.format_log("plain") == "plain"


def test_unknown_mode_is_rejected(tmp_path):
    with pytest.raises(modellib.ModelError, match="mode"):
        modellib.MaskRCNN("predict", TinyConfig(), tmp_path)


def test_reexports_for_notebooks():
    assert modellib.mold_image is utils.mold_image
    assert modellib.compose_image_meta is utils.compose_image_meta
    assert modellib.parse_image_meta is utils.parse_image_meta
    from rsna_detector.mrcnn.input import ground_truth

    assert modellib.load_image_gt is ground_truth.load_image_gt


class RsnaConfig(Config):
    """The RSNA inference settings (DetectorConfig's) with one image per batch."""
    NAME = "rsna"
    BACKBONE = "resnet50"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (16, 32, 64, 128)
    POST_NMS_ROIS_INFERENCE = 1000
    DETECTION_MAX_INSTANCES = 3
    DETECTION_MIN_CONFIDENCE = 0.78
    DETECTION_NMS_THRESHOLD = 0.01


def test_full_rsna_settings_build_and_detect(tmp_path):
    """ResNet-50, 256 px, 1000 proposals: about 3 s on 2 idle cores, 15 s on busy ones."""
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    rsna = modellib.MaskRCNN("inference", RsnaConfig(), tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (1024, 1024), dtype=np.uint8)
    (result,) = rsna.detect([image])
    _check_result(result, (1024, 1024), 3)
    assert rsna.keras_model.get_layer("ROI").proposal_count == 1000
    first = time.perf_counter() - start
    start = time.perf_counter()
    rsna.detect([image])
    assert rsna.trace_count == 1
    print(f"build + first detect {first:.1f} s, second detect {time.perf_counter() - start:.2f} s")


# ----------------------------------------------------------------------------
# backbones and frozen batch normalisation
# ----------------------------------------------------------------------------

def _small_backbone(input_image, stage5=True, train_bn=False):
    """A user backbone in matterport's calling convention: [C1, C2, C3, C4, C5]."""
    x, features = input_image, []
    for level, channels in zip(range(1, 6), (8, 8, 16, 16, 16)):
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", name=f"user_c{level}")(x)
        features.append(x)
    return features


def _small_backbone_shapes(image_shape):
    return np.array([[int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))] for s in (4, 8, 16, 32, 64)])


def test_callable_backbone(tmp_path):
    # C1 has stride 2 here; C2..C5 have the strides 4..32 the engine expects.
    class UserBackbone(TinyConfig):
        BACKBONE = staticmethod(_small_backbone)
        COMPUTE_BACKBONE_SHAPE = staticmethod(_small_backbone_shapes)
    user = modellib.MaskRCNN("inference", UserBackbone(), tmp_path)
    assert user.keras_model.get_layer("user_c5").output.shape[-1] == 16
    with pytest.raises(ValueError):
        user.keras_model.get_layer("tiny_c2")
    (result,) = user.detect([_images()[0]])
    _check_result(result, (100, 80, 3), TinyConfig.DETECTION_MAX_INSTANCES)


def test_callable_backbone_must_return_five_maps(tmp_path):
    from rsna_detector.mrcnn.layers.backbone import BackboneError

    class Broken(TinyConfig):
        BACKBONE = staticmethod(lambda image, stage5=True, train_bn=False: [image])
        COMPUTE_BACKBONE_SHAPE = staticmethod(_small_backbone_shapes)
    with pytest.raises(BackboneError, match=r"\[C1, C2, C3, C4, C5\]"):
        modellib.MaskRCNN("inference", Broken(), tmp_path)


@pytest.mark.parametrize("train_bn, training, uses_batch_statistics", [
    (False, True, False),   # frozen: moving statistics even while training
    (True, False, True),    # always batch statistics
    (None, True, True),     # follows the call
    (None, False, False),
])
def test_batchnorm_training_mode_is_fixed_by_train_bn(train_bn, training, uses_batch_statistics):
    from rsna_detector.mrcnn.layers.backbone import BatchNorm

    layer = BatchNorm(train_bn=train_bn)
    x = np.array([[1.0], [3.0]], np.float32)  # batch mean 2, variance 1
    layer.build(x.shape)
    out = keras.ops.convert_to_numpy(layer(x, training=training))
    # moving statistics at creation: mean 0, variance 1 -> identity (up to epsilon)
    expected = (x - 2.0) / np.sqrt(1.0 + layer.epsilon) if uses_batch_statistics else x / np.sqrt(1 + layer.epsilon)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert BatchNorm.from_config(layer.get_config()).train_bn == train_bn


def test_resnet_stage4_depth(tmp_path):
    from rsna_detector.mrcnn.layers.backbone import resnet_graph

    image = keras.Input((64, 64, 3))
    c1, c2, c3, c4, c5 = resnet_graph(image, "resnet101", stage5=False)
    assert c5 is None and tuple(c4.shape) == (None, 4, 4, 1024) and tuple(c2.shape) == (None, 16, 16, 256)
    names = {layer.name for layer in keras.Model(image, c4).layers}
    assert "res4w_branch2c" in names and "res4x_branch2c" not in names and "res5a_branch2a" not in names


def test_training_mode_builds_the_training_graph_and_delegates_train(tmp_path, monkeypatch):
    from rsna_detector.mrcnn.train import loop

    trainer_model = modellib.MaskRCNN("training", TinyConfig(), tmp_path)
    trainer_model.keras_model.get_layer("input_gt_boxes")  # the training graph's input
    with pytest.raises(modellib.ModelError, match="mode='inference'"):
        trainer_model.detect([_images()[0]])
    calls = []
    monkeypatch.setattr(loop, "train", lambda *args, **kwargs: calls.append((args, kwargs)) or "history")
    assert trainer_model.train("train_ds", "val_ds", 0.01, 3, "heads", verbose=0) == "history"
    (args, kwargs), = calls
    assert args == (trainer_model, "train_ds", "val_ds", 0.01, 3, "heads")
    assert kwargs == {"augmentation": None, "custom_callbacks": None, "no_augmentation_sources": None, "verbose": 0}
    inference_model = modellib.MaskRCNN("inference", TinyConfig(), tmp_path)
    with pytest.raises(modellib.ModelError, match="mode='training'"):
        inference_model.train("train_ds", "val_ds", 0.01, 3, "heads")
