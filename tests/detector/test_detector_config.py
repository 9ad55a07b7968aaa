"""DetectorConfig: the brief's values, and what four anchor scales on five levels mean."""
import numpy as np
import pytest

from rsna_detector.detector.config import CPUDemoConfig, DetectorConfig
from rsna_detector.mrcnn import utils


def test_the_briefs_settings():
    c = DetectorConfig()
    assert (c.NAME, c.GPU_COUNT, c.IMAGES_PER_GPU, c.BACKBONE, c.NUM_CLASSES) == ("pneumonia", 1, 8, "resnet50", 2)
    assert (c.IMAGE_MIN_DIM, c.IMAGE_MAX_DIM, tuple(c.RPN_ANCHOR_SCALES)) == (256, 256, (16, 32, 64, 128))
    assert (c.TRAIN_ROIS_PER_IMAGE, c.MAX_GT_INSTANCES, c.DETECTION_MAX_INSTANCES) == (32, 4, 3)
    assert (c.DETECTION_MIN_CONFIDENCE, c.DETECTION_NMS_THRESHOLD, c.STEPS_PER_EPOCH) == (0.78, 0.01, 200)
    assert c.BATCH_SIZE == 8 and list(c.IMAGE_SHAPE) == [256, 256, 3]


def test_four_scales_use_p2_to_p5_only():
    c = DetectorConfig()
    assert c.RPN_PYRAMID_LEVELS == 4 and len(c.BACKBONE_STRIDES) == 5
    shapes = utils.compute_backbone_shapes(c, c.IMAGE_SHAPE)
    anchors = utils.generate_pyramid_anchors(c.RPN_ANCHOR_SCALES, c.RPN_ANCHOR_RATIOS, shapes,
                                             c.BACKBONE_STRIDES, c.RPN_ANCHOR_STRIDE)
    # 3 ratios x (64^2 + 32^2 + 16^2 + 8^2) positions: P2 (stride 4) .. P5 (stride 32), nothing on P6
    assert len(anchors) == 3 * (64 ** 2 + 32 ** 2 + 16 ** 2 + 8 ** 2) == 16320
    sides = np.sqrt((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1]))
    np.testing.assert_allclose(sorted(set(np.round(sides).astype(int))), [16, 32, 64, 128])


def test_cpu_preset_is_small_and_valid():
    c = CPUDemoConfig()
    assert c.BACKBONE == "tiny" and c.IMAGE_MAX_DIM == 128 and c.RPN_PYRAMID_LEVELS == 4
    assert c.to_dict()["NAME"] == "pneumonia_cpu"


def test_config_for_preset_gives_a_new_config_of_each_preset():
    from rsna_detector.detector.config import PRESETS, config_for_preset
    from rsna_detector.mrcnn.config import ConfigError

    assert PRESETS == ("full", "cpu")
    assert type(config_for_preset("full")) is DetectorConfig
    assert type(config_for_preset()) is DetectorConfig
    assert type(config_for_preset("cpu")) is CPUDemoConfig
    assert config_for_preset("cpu") is not config_for_preset("cpu")
    with pytest.raises(ConfigError, match=r"preset: expected one of \['full', 'cpu'\], got 'gpu'"):
        config_for_preset("gpu")


def test_load_config_reads_a_json_file_before_the_preset(tmp_path):
    from rsna_detector.detector.config import load_config

    stored = CPUDemoConfig()
    stored.DETECTION_MIN_CONFIDENCE = 0.77
    path = tmp_path / "config.json"
    stored.to_json(path)
    loaded = load_config(path, "full")
    assert loaded.DETECTION_MIN_CONFIDENCE == 0.77 and loaded.BACKBONE == "tiny"
    assert type(load_config(None, "cpu")) is CPUDemoConfig
