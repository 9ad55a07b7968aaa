"""``detector.export`` (issue 21): several formats at once, each checked against detect(); the threshold."""
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.detector.export import compare_results, export_detector, probe_batch
from rsna_detector.mrcnn.export import ExportError, read_export_description
from rsna_detector.mrcnn.export.saved_model import build_module
from rsna_detector.mrcnn.export.serving import resolve_min_confidence
from tests.helpers import BlobDataset, tiny_config


def _result(boxes, scores, masks=None):
    boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
    result = {"rois": boxes, "class_ids": np.ones(len(boxes), np.int32), "scores": np.asarray(scores, np.float32)}
    if masks is not None:
        result["masks"] = np.asarray(masks, bool)
    return result


def test_compare_results_by_hand():
    mask_a = np.zeros((4, 4, 1), bool)
    mask_a[:2, :2] = True  # 4 pixels
    mask_b = np.zeros((4, 4, 1), bool)
    mask_b[:2, :1] = True  # 2 of them: IoU 0.5
    expected = [_result([[0, 0, 10, 10]], [0.9], mask_a), _result([], []), _result([[1, 1, 2, 2]], [0.5], mask_a)]
    got = [_result([[0, 1, 10, 12]], [0.85], mask_a), _result([], []), _result([[1, 1, 2, 2]], [0.5], mask_b)]
    worst = compare_results(expected, got)
    assert worst == {"count_mismatches": 0, "max_box_difference": 2, "max_score_difference": pytest.approx(0.05),
                     "min_mask_iou": 0.5, "detections": 2}
    assert compare_results(expected, [got[0], _result([[0, 0, 1, 1]], [0.7]), got[2]])["count_mismatches"] == 1


def test_the_probe_is_the_model_size_with_opacities():
    probe = probe_batch(tiny_config(), count=3)
    assert probe.shape == (3, 64, 64) and probe.dtype == np.uint8 and probe.std() > 10


def test_the_summary_names_every_file_and_its_check(exported_detector):
    summary = exported_detector.summary
    assert summary["min_confidence"] == 0.5 and summary["threshold_source"] == "config" and summary["masks"]
    assert set(summary["formats"]) == {"saved_model", "tflite", "onnx"}
    for entry in summary["formats"].values():
        assert entry["bytes"] > 100_000
        assert entry["check"]["count_mismatches"] == 0 and entry["check"]["max_score_difference"] <= 1e-4
    description = read_export_description(exported_detector.version)
    assert description["min_confidence"] == 0.5 and description["arithmetic"] == "float64"
    assert description["config"]["IMAGE_MAX_DIM"] == 64 and "masks" in description["output_names"]


@pytest.mark.parametrize("formats, message", [(["saved_model", "pdf"], "formats"), ([], "formats")])
def test_bad_formats_are_refused_before_anything_is_written(exported_detector, tmp_path, formats, message):
    with pytest.raises(ExportError, match=message):
        export_detector(exported_detector.model, tmp_path / "out", formats=formats)
    assert not (tmp_path / "out" / "1").exists()


@pytest.mark.parametrize("value", [-0.1, 1.5, "high", float("nan")])
def test_bad_thresholds_are_refused(value):
    with pytest.raises(ExportError, match="min_confidence"):
        resolve_min_confidence(tiny_config(), value)


def test_an_existing_version_is_not_overwritten(exported_detector):
    with pytest.raises(ExportError, match="already exists"):
        exported_detector.model.export(exported_detector.version.parent, version=1)


def test_a_threshold_below_the_configs_gives_detect_at_that_threshold(exported_detector):
    """Detections under the config's threshold never leave the detection layer, so it is rebuilt with the lower one.

    (With two classes a detection scores at least 0.5: the background wins below that.)
    """
    from rsna_detector.mrcnn.model import MaskRCNN

    at_half = exported_detector.model  # DETECTION_MIN_CONFIDENCE 0.5
    strict = MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=8, DETECTION_MIN_CONFIDENCE=0.6),
                      str(exported_detector.folder))
    strict.keras_model.set_weights(at_half.keras_model.get_weights())
    blobs = BlobDataset(4, 0, seed=5)
    images = np.stack([blobs.load_image(i) for i in blobs.image_ids])
    got = build_module(strict, min_confidence=0.5, masks=False).detect(tf.constant(images))
    expected = at_half.detect(list(images))
    assert sum(len(r["rois"]) for r in expected) > sum(len(r["rois"]) for r in strict.detect(list(images)))
    for i, result in enumerate(expected):
        count = int(got["num_detections"][i])
        assert count == len(result["rois"])
        np.testing.assert_array_equal(got["boxes"][i, :count].numpy(), result["rois"])
        np.testing.assert_array_equal(got["scores"][i, :count].numpy(), result["scores"])
    assert strict.keras_model.get_layer("mrcnn_detection").min_confidence == 0.6  # the model is left as it was
