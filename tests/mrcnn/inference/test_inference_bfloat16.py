"""Opt-in bfloat16 inference: Keras' mixed_bfloat16 policy, with boxes kept in float32."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.errors import RsnaDetectorWarning
from rsna_detector.mrcnn import model as modellib
from rsna_detector.mrcnn.inference import detect
from tests.helpers import tiny_config

FLOAT32_LAYERS = ("ROI", "roi_align_classifier", "mrcnn_detection", "roi_align_mask")


def _build(policy, tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(3)
        return modellib.MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=2, DETECTION_MIN_CONFIDENCE=0.0), tmp_path)
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    f32 = _build("float32", logs)
    b16 = _build("mixed_bfloat16", logs)
    b16.keras_model.set_weights(f32.keras_model.get_weights())
    return f32, b16


def test_float32_layers_are_pinned_and_the_trunk_computes_in_bfloat16(models):
    f32, b16 = models
    for name in FLOAT32_LAYERS:
        assert b16.keras_model.get_layer(name).compute_dtype == "float32", name
        assert f32.keras_model.get_layer(name).compute_dtype == "float32", name
    assert b16.keras_model.get_layer("mrcnn_class_conv1").compute_dtype == "bfloat16"
    assert f32.keras_model.get_layer("mrcnn_class_conv1").compute_dtype == "float32"


def test_bfloat16_detect_gives_float32_boxes_and_masks_in_the_image(models):
    _, b16 = models
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (50, 70), dtype=np.uint8)]
    molded, metas, _ = b16.mold_inputs([images[0]])
    detections, masks = b16._detect_function(molded.shape[1:])(molded.astype(np.float32), metas.astype(np.float32))
    assert detections.dtype == tf.float32 and masks.dtype == tf.float32
    probs = masks.numpy()
    assert np.all((probs >= 0) & (probs <= 1))
    for image, result in zip(images, b16.detect(images), strict=True):
        height, width = image.shape[:2]
        rois = result["rois"]
        assert rois.dtype == np.int32 and result["masks"].shape[:2] == (height, width)
        assert np.all(rois >= 0) and np.all(rois[:, [0, 2]] <= height) and np.all(rois[:, [1, 3]] <= width)
        assert result["scores"].dtype == np.float32 and np.all(result["scores"] > 0)


def test_native_bfloat16_reads_the_cpu_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    with_flag, without = tmp_path / "with", tmp_path / "without"
    with_flag.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 fma\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f fma\n")
    assert detect.native_bfloat16(with_flag) is True
    assert detect.native_bfloat16(without) is False
    assert detect.native_bfloat16(tmp_path / "missing") is False


def test_emulated_bfloat16_warns_and_float32_does_not(monkeypatch):
    monkeypatch.setattr(detect, "native_bfloat16", lambda: False)
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        with pytest.warns(RsnaDetectorWarning, match="emulated"):
            detect._check_bfloat16()
        keras.config.set_dtype_policy("float32")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            detect._check_bfloat16()
    finally:
        keras.config.set_dtype_policy(previous)
