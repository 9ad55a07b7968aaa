"""The engine's outputs on fixed weights and inputs stay those pinned before the speed work (issue 12).

``pinned/scenario.py`` fixes two small configs (DetectorConfig's 4-scale paths and matterport's
5-scale defaults, tiny backbone), weights seeded by variable name, images (one without objects)
and the ROI sampling of the detection targets; ``pinned/pinned_outputs.json`` holds what the
engine gave on them (``pinned/make_pinned.py``, never to be rerun to make this test pass).

Tolerances (float32 computation; oneDNN's blocking may change with thread counts or shapes):

* detections: same count, class ids and order; boxes within 1e-3 pixel (``detect``'s integer
  boxes exactly), scores within 1e-5; mask probability sums within 1e-3 (of about 300-450
  over 784 cells); ``detect``'s full-size mask pixel counts within 2 pixels (a probability
  at 0.5 may flip); proposal counts exactly, the sum of their coordinates within 1e-3;
* training losses (each of the five and the total objective) within a relative 1e-5 of the
  pinned values on the fixed weights, and what the compiled training step reports within 1e-5
  of them; the losses after one SGD step (which pin the gradients) within a relative 1e-4.
"""
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.mrcnn.pinned import scenario

PINNED = json.loads((Path(__file__).parent / "pinned" / "pinned_outputs.json").read_text())
SCENARIOS = list(scenario.CONFIGS)
LOSS_KEYS = ["rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss", "total"]


@pytest.fixture(scope="module", params=SCENARIOS)
def outputs(request, tmp_path_factory):
    name = request.param
    keras.backend.clear_session()
    inference = scenario.inference_outputs(name, tmp_path_factory.mktemp(name))
    training = scenario.training_outputs(name)
    return name, inference, training


def test_detect_results_are_the_pinned_ones(outputs):
    name, inference, _ = outputs
    for image, (got, want) in enumerate(zip(inference["detect"], PINNED[name]["inference"]["detect"], strict=True)):
        where = f"{name} image {image}"
        assert got["class_ids"] == want["class_ids"], where
        assert got["rois"] == want["rois"], where
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=0, atol=1e-5, err_msg=where)
        np.testing.assert_allclose(got["mask_pixels"], want["mask_pixels"], rtol=0, atol=2, err_msg=where)


def test_graph_detections_and_proposals_are_the_pinned_ones(outputs):
    name, inference, _ = outputs
    for image, (got, want) in enumerate(zip(inference["graph"], PINNED[name]["inference"]["graph"], strict=True)):
        where = f"{name} image {image}"
        assert got["class_ids"] == want["class_ids"], where
        assert got["proposals"] == want["proposals"], where
        np.testing.assert_allclose(np.reshape(got["boxes"], (-1, 4)), np.reshape(want["boxes"], (-1, 4)),
                                   rtol=0, atol=1e-3, err_msg=where)
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=0, atol=1e-5, err_msg=where)
        np.testing.assert_allclose(got["mask_sums"], want["mask_sums"], rtol=0, atol=1e-3, err_msg=where)
        np.testing.assert_allclose(got["proposal_sum"], want["proposal_sum"], rtol=0, atol=1e-3, err_msg=where)


def test_training_losses_are_the_pinned_ones(outputs):
    name, _, training = outputs
    want = PINNED[name]["training"]
    for key in LOSS_KEYS:
        np.testing.assert_allclose(training["before"][key], want["before"][key], rtol=1e-5, atol=1e-7,
                                   err_msg=f"{name} {key} on the fixed weights")
        np.testing.assert_allclose(training["after"][key], want["after"][key], rtol=1e-4, atol=1e-6,
                                   err_msg=f"{name} {key} after one SGD step")


def test_the_compiled_step_reports_the_forward_losses(outputs):
    name, _, training = outputs
    for key in LOSS_KEYS:
        logged = training["step_logs"]["loss" if key == "total" else key]
        np.testing.assert_allclose(logged, training["before"][key], rtol=1e-5, atol=1e-7, err_msg=f"{name} {key}")


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_scenario_covers_what_it_claims(name):
    """The pinned data hold what the scenario is for: batches, empty results, padding, positive ROIs."""
    inference, training = PINNED[name]["inference"], PINNED[name]["training"]
    config = scenario.config(name)
    counts = [len(r["class_ids"]) for r in inference["detect"]]
    assert len(counts) == config.BATCH_SIZE >= 2
    assert all(training["before"][key] > 0 for key in LOSS_KEYS)  # positive ROIs: box and mask losses
    if name == "four_scales":
        assert config.RPN_PYRAMID_LEVELS == 4
        assert 0 in counts and config.DETECTION_MAX_INSTANCES in counts  # no detection; every row a detection
    else:
        assert config.RPN_PYRAMID_LEVELS == 5
        assert all(r["proposals"] < config.POST_NMS_ROIS_INFERENCE for r in inference["graph"])  # padding
        assert {c for r in inference["detect"] for c in r["class_ids"]} == {1, 2}
