"""Differential tests at the edges: input families on which ours once differed from matterport's own code.

Each test runs matterport v2.1 (``tests/matterport_oracle.py``) and ours on the same input and
compares everything, dtypes included (fixtures ``mpm``, ``mpu``: ``tests/mrcnn/conftest.py``): Config settings that turn a limit off (0 / None),
``[H, W, 1]`` and 2-D images in every resize mode, images without detections, images of mixed
sizes in one generator batch, run folders not named ``<name><stamp>``, anchors asked for with
2- and 3-element shapes, Config subclasses with lower-case, private and callable attributes,
and the layer methods Keras calls. Where ours goes on where matterport fails, the test shows
matterport failing and what ours gives instead (docs/MATTERPORT.md lists each case).
Signatures of every public function and method: ``test_matterport_api.py``.
"""
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import rsna_detector.mrcnn.model as modellib
from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.input import ground_truth
from tests import matterport_oracle as oracle
from tests.helpers import tiny_config
from tests.mrcnn.test_matterport_data import _Shapes, configs, same

DOCS = Path(__file__).resolve().parents[2] / "docs" / "MATTERPORT.md"


def shape_datasets(mpu, scenes):
    """(ours, matterport's) ``Dataset`` of the same scenes (see ``_Shapes``)."""
    ours = type("OurShapes", (_Shapes, utils.Dataset), {})().fill(scenes)
    theirs = type("TheirShapes", (_Shapes, mpu.Dataset), {})().fill(scenes)
    return ours, theirs


def mold_both(mpm, config, mp_config, images, seed=0):
    """``MaskRCNN.mold_inputs`` of ours and of matterport's (the same 'crop' draws)."""
    random.seed(seed)
    ours = modellib.MaskRCNN.mold_inputs(SimpleNamespace(config=config), images)
    random.seed(seed)
    theirs = mpm.MaskRCNN.mold_inputs(SimpleNamespace(config=mp_config), images)
    return ours, theirs


# --------------------------------------------------------------------------- Config: limits turned off
EDGE_IMAGE_SETTINGS = {
    "min_dim 0": dict(IMAGE_MIN_DIM=0),
    "min_dim None": dict(IMAGE_MIN_DIM=None),
    "min_scale None": dict(IMAGE_MIN_SCALE=None),
    "min_dim and min_scale None": dict(IMAGE_MIN_DIM=None, IMAGE_MIN_SCALE=None),
    "crop, max_dim None": dict(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=None),
    "crop, max_dim 0, min_scale None": dict(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=0,
                                            IMAGE_MIN_SCALE=None),
    "pad64, min_dim 0": dict(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=0),
    "none, min_dim None": dict(IMAGE_RESIZE_MODE="none", IMAGE_MIN_DIM=None, IMAGE_MIN_SCALE=None),
}
EDGE_SCENES = [((100, 150), [(10, 20, 60, 70, 1)]), ((40, 50), [(5, 5, 30, 40, 2)]), ((128, 64), [(0, 0, 64, 64, 1)])]


@pytest.mark.parametrize("case", list(EDGE_IMAGE_SETTINGS))
def test_settings_that_turn_a_limit_off_work_as_in_matterport(mpm, mpu, case):
    config, mp_config = configs(**EDGE_IMAGE_SETTINGS[case])  # ConfigError before
    assert config.IMAGE_SHAPE.tolist() == mp_config.IMAGE_SHAPE.tolist()
    ours_ds, theirs_ds = shape_datasets(mpu, EDGE_SCENES)
    for image_id in range(len(EDGE_SCENES)):
        image = ours_ds.load_image(image_id)
        for a, b in zip(*mold_both(mpm, config, mp_config, [image], seed=image_id)):
            same(a, b)
        random.seed(image_id)
        ours = ground_truth.load_image_gt(ours_ds, config, image_id)
        random.seed(image_id)
        theirs = mpm.load_image_gt(theirs_ds, mp_config, image_id)
        for a, b in zip(ours, theirs):
            same(a, b)


def test_pad64_without_min_dim_pads_where_matterport_fails(mpm):
    config, mp_config = configs(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=None)
    image = np.random.default_rng(2).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    with pytest.raises(TypeError):  # matterport asserts None % 64 == 0
        mpm.MaskRCNN.mold_inputs(SimpleNamespace(config=mp_config), [image])
    _, no_upscaling = configs(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=0)
    for a, b in zip(*mold_both(mpm, config, no_upscaling, [image])):
        same(a, b)  # ours: no upscaling, as matterport's IMAGE_MIN_DIM = 0


@pytest.mark.parametrize("settings", [dict(IMAGE_MIN_DIM=None, IMAGE_MIN_SCALE=None, DETECTION_MIN_CONFIDENCE=0.0),
                                      dict(IMAGE_RESIZE_MODE="crop", IMAGE_MAX_DIM=None, IMAGE_MIN_DIM=64,
                                           DETECTION_MIN_CONFIDENCE=1.0)])
def test_a_model_builds_and_detects_with_limits_turned_off(tmp_path, settings):
    config = tiny_config(**settings)
    modellib.MaskRCNN("training", config, tmp_path)
    model = modellib.MaskRCNN("inference", config, tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    random.seed(0)
    for result in model.detect([image, image[:, :, :1], image[:, :, 0]]):
        count = len(result["class_ids"])
        assert result["rois"].shape == (count, 4) and result["masks"].shape == (40, 50, count)
        if settings["DETECTION_MIN_CONFIDENCE"] == 1.0:  # no detection: matterport's np.empty
            assert count == 0 and result["masks"].dtype == np.float64


# --------------------------------------------------------------------------- data_generator: mixed sizes
def test_data_generator_skips_an_image_that_does_not_fit_the_batch(mpm, mpu):
    # pad64 keeps 192 x 128 as it is: it cannot go into a batch begun with a 128 x 128 image
    scenes = [((128, 128), [(10, 20, 60, 70, 1)]), ((192, 128), [(40, 10, 150, 90, 2)]),
              ((128, 128), [(5, 5, 30, 40, 2), (50, 60, 120, 120, 1)]), ((128, 128), [(64, 0, 128, 64, 1)])]
    config, mp_config = configs(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128)
    runs = []
    for function, dataset, cfg in zip((modellib.data_generator, mpm.data_generator), shape_datasets(mpu, scenes),
                                      (config, mp_config)):
        np.random.seed(4)
        random.seed(4)
        generator = function(dataset, cfg, shuffle=False, batch_size=2, random_rois=10)
        batches = []
        with pytest.raises(ValueError, match="could not broadcast"):  # the 6th failure is raised
            while len(batches) < 20:
                batches.append(next(generator))
        runs.append(batches)
    ours, theirs = runs
    # a 192 x 128 image that begins a batch makes the 128 x 128 ones fail until it is full
    assert len(ours) == len(theirs) == 6
    assert {batch[0][0].shape for batch in ours} == {(2, 128, 128, 3), (2, 192, 128, 3)}
    for (our_inputs, our_outputs), (their_inputs, their_outputs) in zip(ours, theirs):
        for a, b in zip(our_inputs + our_outputs, their_inputs + their_outputs, strict=True):
            same(a, b)


# --------------------------------------------------------------------------- one-channel and 2-D images
@pytest.mark.parametrize("mode", ["square", "pad64", "crop", "none"])
def test_mold_inputs_of_one_channel_and_2d_images(mpm, mode):
    config, mp_config = configs(IMAGE_RESIZE_MODE=mode)
    rng = np.random.default_rng(5)
    for seed, shape in enumerate([(100, 150), (64, 64), (90, 200)]):
        grey = rng.integers(0, 256, shape + (1,), dtype=np.uint8)
        ours, theirs = mold_both(mpm, config, mp_config, [grey], seed)
        for a, b in zip(ours, theirs):
            same(a, b)  # the meta holds 1 channel, as matterport's
        random.seed(seed)
        flat = modellib.MaskRCNN.mold_inputs(SimpleNamespace(config=config), [grey[:, :, 0]])
        for a, b in zip(flat, theirs, strict=True):
            same(a, b)  # a 2-D image molds as its [H, W, 1] (matterport fails on it)


RESIZE_CASES = [("square", 64, 128, 0), ("square", None, 96, None), ("pad64", 64, None, 0), ("pad64", 128, None, 2),
                ("crop", 64, None, 0), ("crop", 96, None, 1.3), ("none", 800, 1024, 0)]


@pytest.mark.parametrize("mode, min_dim, max_dim, min_scale", RESIZE_CASES)
def test_resize_image_of_one_channel_and_2d_images(mpu, mode, min_dim, max_dim, min_scale):
    rng = np.random.default_rng(12)
    for trial in range(3):
        h, w = (int(v) for v in rng.integers(40, 200, 2))
        grey = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
        results = {}
        for key, function, image in (("theirs", mpu.resize_image, grey), ("ours", utils.resize_image, grey),
                                     ("ours 2-D", utils.resize_image, grey[:, :, 0])):
            random.seed(trial)
            results[key] = function(image, min_dim, max_dim, min_scale, mode)
        theirs = results["theirs"]
        for key in ("ours", "ours 2-D"):
            ours = results[key]
            same(ours[0], theirs[0] if key == "ours" else theirs[0][:, :, 0])
            assert ours[1:] == theirs[1:]  # window, scale, padding (3 pairs), crop
        random.seed(trial)
        if mode in ("none", "crop"):  # matterport's runs on a 2-D image in these modes: the same result
            flat = mpu.resize_image(grey[:, :, 0], min_dim, max_dim, min_scale, mode)
            same(results["ours 2-D"][0], flat[0])
            assert results["ours 2-D"][1:] == flat[1:]
        else:
            with pytest.raises(ValueError):  # matterport pads a 2-D image with three pairs
                mpu.resize_image(grey[:, :, 0], min_dim, max_dim, min_scale, mode)
        masks = rng.random((h, w, 2)) > 0.5
        same(utils.resize_mask(masks, *results["ours 2-D"][2:]), mpu.resize_mask(masks, *theirs[2:]))


# --------------------------------------------------------------------------- images without detections
def test_unmold_detections_without_detections(mpm):
    config, mp_config = configs()
    rng = np.random.default_rng(8)
    inverted = [0.5, 0.3, 0.4, 0.5, 1, 0.9]  # dropped: its box is empty
    for detections in (np.zeros((6, 6), np.float32), np.array([inverted, inverted] + [[0] * 6] * 4, np.float32)):
        masks = rng.random((6, 28, 28, 3)).astype(np.float32)
        for original, window in (((100, 150, 3), (21, 0, 107, 128)), ((128, 128, 3), (0, 0, 128, 128))):
            args = (detections, masks, original, (128, 128, 3), window)
            ours = modellib.MaskRCNN.unmold_detections(SimpleNamespace(config=config), *args)
            theirs = mpm.MaskRCNN.unmold_detections(SimpleNamespace(config=mp_config), *args)
            for a, b in zip(ours, theirs, strict=True):
                same(a, b)  # masks: float64 [H, W, 0]
            assert ours[3].shape == original[:2] + (0,)


# --------------------------------------------------------------------------- find_last: run folders
RUN_LAYOUTS = {
    "renamed after stamped": {"balloon20180101T0000": [2], "balloon_finetune": [3]},
    "renamed only": {"balloon-v2": [7, 1]},
    "stamps of minutes and seconds, suffixes": {"balloon20180101T0000": [1], "balloon20180101T000000": [2],
                                                "balloon20180101T000000_2": [3], "balloon20180101T000001": [4, 5]},
    "other names and files": {"balloon20190101T0000": [1, 10], "coco20990101T0000": [9], "balloonish": [4, 6],
                              "Balloon20990101T0000": [8]},
    "epochs across folders": {"balloon20180101T0000": [9, 10], "balloon20180102T0000": [1]},
}


@pytest.fixture(scope="module")
def balloon_model(tmp_path_factory):
    """A tiny inference model named 'balloon' and one checkpoint file of it."""
    folder = tmp_path_factory.mktemp("balloon")
    model = modellib.MaskRCNN("inference", tiny_config(NAME="balloon"), folder)
    return model, model.save_weights(str(folder / "weights.h5"))


def _write_runs(root, layout, checkpoint):
    for run, epochs in layout.items():
        (root / run).mkdir()
        for epoch in epochs:
            shutil.copy(checkpoint, root / run / f"mask_rcnn_balloon_{epoch:04d}.h5")
        (root / run / "events.out.tfevents").write_text("not a checkpoint")


@pytest.mark.parametrize("layout", list(RUN_LAYOUTS))
def test_find_last_picks_matterports_folder_and_checkpoint(mpm, balloon_model, tmp_path, layout):
    model, checkpoint = balloon_model
    _write_runs(tmp_path, RUN_LAYOUTS[layout], checkpoint)
    model.model_dir = str(tmp_path)
    _, mp_config = configs(NAME="balloon")
    assert model.find_last() == mpm.MaskRCNN.find_last(SimpleNamespace(model_dir=str(tmp_path), config=mp_config))


def test_find_last_goes_on_where_matterport_fails_or_picks_a_broken_file(mpm, balloon_model, tmp_path):
    model, checkpoint = balloon_model
    model.model_dir = str(tmp_path)
    theirs = SimpleNamespace(model_dir=str(tmp_path), config=configs(NAME="balloon")[1])
    _write_runs(tmp_path, {"balloon20180101T0000": [1, 2]}, checkpoint)
    good = str(tmp_path / "balloon20180101T0000" / "mask_rcnn_balloon_0002.h5")
    (tmp_path / "balloon20180102T0000").mkdir()  # a run that stopped before its first checkpoint
    with pytest.raises(FileNotFoundError, match="Could not find weight files"):
        mpm.MaskRCNN.find_last(theirs)
    with pytest.warns(modellib.UnreadableCheckpointWarning, match="balloon20180102T0000 holds no mask_rcnn"):
        assert model.find_last() == good
    broken = tmp_path / "balloon20180102T0000" / "mask_rcnn_balloon_0003.h5"
    broken.write_bytes(b"truncated")
    assert mpm.MaskRCNN.find_last(theirs) == str(broken)
    with pytest.warns(modellib.UnreadableCheckpointWarning, match="mask_rcnn_balloon_0003.h5"):
        assert model.find_last() == good


# --------------------------------------------------------------------------- get_anchors: mixed shapes
def test_get_anchors_caches_by_the_whole_shape(mpm):
    config, mp_config = configs(IMAGE_RESIZE_MODE="pad64")
    ours, theirs = SimpleNamespace(config=config, _anchor_cache={}), SimpleNamespace(config=mp_config)
    for shape in [(128, 128, 3), (192, 192, 3), (128, 128), (192, 192, 3), (128, 128, 3), (64, 128),
                  np.array([192, 192, 3]), (128, 128)]:
        same(modellib.MaskRCNN.get_anchors(ours, shape), mpm.MaskRCNN.get_anchors(theirs, shape))
        same(ours.anchors, theirs.anchors)  # the pixel anchors the inspect notebooks read
    assert sorted(ours._anchor_cache) == sorted(theirs._anchor_cache)


# --------------------------------------------------------------------------- Config.display
def documented_additions():
    """Setting names listed under "Settings matterport does not have" in docs/MATTERPORT.md."""
    section = DOCS.read_text(encoding="utf-8").split("## Settings matterport does not have", 1)[1].split("\n## ")[0]
    return set(re.findall(r"^- `([A-Z_]+)`", section, flags=re.MULTILINE))


def _backbone(input_image, config):
    raise NotImplementedError  # never built here: display only reads it


def _backbone_shapes(image_shape):
    return np.array([[image_shape[0] // s, image_shape[1] // s] for s in (4, 8, 16, 32, 64)])


DISPLAY_CASES = {
    "shapes sample": dict(NAME="shapes", NUM_CLASSES=4, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128,
                          RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), TRAIN_ROIS_PER_IMAGE=32),
    "lower-case, private and callable attributes": dict(
        NAME="own", lower_case="kept", _private=[1, 2], helper=staticmethod(lambda: 1), method=lambda self: 2,
        MEAN_PIXEL=np.array([43.53, 39.56, 48.22]), USE_MINI_MASK=False, IMAGE_MIN_DIM=None),
    "callable backbone": dict(NAME="custom", BACKBONE=_backbone, COMPUTE_BACKBONE_SHAPE=_backbone_shapes),
    "rsna kernel": dict(NAME="pneumonia", IMAGES_PER_GPU=8, BACKBONE="resnet50", NUM_CLASSES=2, IMAGE_MIN_DIM=256,
                        IMAGE_MAX_DIM=256, RPN_ANCHOR_SCALES=(16, 32, 64, 128), DETECTION_MIN_CONFIDENCE=0.78),
}


@pytest.mark.parametrize("case", list(DISPLAY_CASES))
def test_display_prints_matterports_lines_and_the_documented_additions(capsys, case):
    settings = DISPLAY_CASES[case]
    type("Theirs", (oracle.config_module().Config,), settings)().display()
    theirs = capsys.readouterr().out
    type("Ours", (Config,), settings)().display()
    ours = capsys.readouterr().out
    additions = documented_additions()
    assert {"SEED", "DATA_LOADER_WORKERS", "EXTRA_SETTINGS", "MIXED_PRECISION", "RPN_PYRAMID_LEVELS"} <= additions
    added = [line for line in ours.split("\n") if line.split(" ")[0] in additions]
    assert [line for line in ours.split("\n") if line not in added] == theirs.split("\n")
    assert {line.split(" ")[0] for line in added} == additions  # the docs name exactly what is added


# --------------------------------------------------------------------------- Keras-internal layer methods
def test_layer_methods_keras_calls_are_matterports(mpm):
    config, mp_config = configs()
    ours, theirs = modellib.DetectionTargetLayer(config), mpm.DetectionTargetLayer(mp_config)
    shapes = [(None, 2000, 4), (None, 100), (None, 100, 4), (None, 56, 56, 100)]
    assert ours.compute_output_shape(shapes) == theirs.compute_output_shape(shapes)
    for kwargs in ({}, {"mask": None}, {"mask": [None] * 4}):
        assert ours.compute_mask(shapes, **kwargs) == theirs.compute_mask(shapes, **kwargs) == [None] * 4
    pairs = [(modellib.ProposalLayer(100, 0.7, config), mpm.ProposalLayer(100, 0.7, mp_config),
              [(None, 300, 2), (None, 300, 4), (None, 300, 4)]),
             (modellib.PyramidROIAlign((7, 7)), mpm.PyramidROIAlign((7, 7)),
              [(None, 50, 4), (None, 16), (None, 32, 32, 256)]),
             (modellib.DetectionLayer(config), mpm.DetectionLayer(mp_config), [(None, 50, 4)])]
    for our_layer, their_layer, input_shape in pairs:
        assert tuple(our_layer.compute_output_shape(input_shape)) == tuple(their_layer.compute_output_shape(input_shape))
