"""Classifier gating: vetoed images lose their boxes; the competition score changes as computed by hand."""
import numpy as np
import pytest

from rsna_detector.baselines.gating import GatingError, gate_predictions, gating_effect
from rsna_detector.detector.evaluate import rsna_score
from rsna_detector.detector.submission import ImagePrediction

BOX = [0, 0, 10, 10]
HALF = [0, 0, 10, 5]  # IoU 0.5 with BOX: a hit only at the IoU thresholds 0.40 and 0.45

GROUND_TRUTH = {
    "a": np.array([BOX], np.float32),   # found exactly: image score 1
    "b": np.zeros((0, 4), np.float32),  # negative with a false box: 0, counted
    "c": np.array([BOX], np.float32),   # found at 2 of the 8 IoU thresholds: 2/8
    "d": np.zeros((0, 4), np.float32),  # negative without box: left out of the mean
}
PREDICTIONS = {
    "a": ImagePrediction("a", [BOX], [0.9]),
    "b": ImagePrediction("b", [BOX], [0.7]),
    "c": ImagePrediction("c", [HALF], [0.6]),
    "d": ImagePrediction("d", np.zeros((0, 4)), np.zeros(0)),
}
SCORES = {"a": 0.8, "b": 0.2, "c": 0.4, "d": 0.1}


def test_vetoed_image_loses_its_boxes_others_are_untouched():
    gated = gate_predictions(PREDICTIONS, SCORES, 0.3)
    assert list(gated) == list(PREDICTIONS)
    assert gated["b"].boxes.shape == (0, 4) and gated["b"].scores.shape == (0,)
    assert gated["b"].patient_id == "b"
    assert gated["a"] is PREDICTIONS["a"] and gated["c"] is PREDICTIONS["c"]
    assert len(PREDICTIONS["b"].boxes) == 1  # the input is not modified


def test_threshold_is_inclusive_for_keeping():
    gated = gate_predictions(PREDICTIONS, SCORES, 0.8)
    assert len(gated["a"].boxes) == 1  # 0.8 is not below 0.8
    assert len(gated["c"].boxes) == 0


def test_score_changes_exactly_as_computed_by_hand():
    # before: (1 + 0 + 2/8) / 3 images (d left out)
    assert rsna_score(GROUND_TRUTH, PREDICTIONS) == pytest.approx(1.25 / 3)
    # threshold 0.3 vetoes b: b is left out as well -> (1 + 0.25) / 2
    assert rsna_score(GROUND_TRUTH, gate_predictions(PREDICTIONS, SCORES, 0.3)) == pytest.approx(0.625)
    # threshold 0.5 vetoes b and c: c's opacity is now missed -> (1 + 0) / 2
    assert rsna_score(GROUND_TRUTH, gate_predictions(PREDICTIONS, SCORES, 0.5)) == pytest.approx(0.5)


def test_gating_effect_table_by_hand():
    table = gating_effect(GROUND_TRUTH, PREDICTIONS, SCORES, [0.0, 0.3, 0.5, 0.9])
    assert list(table.columns) == ["threshold", "rsna_score_before", "rsna_score_after", "change", "images_vetoed",
                                   "boxes_removed", "true_boxes_lost", "negatives_cleared"]
    np.testing.assert_allclose(table["rsna_score_before"], 1.25 / 3)
    np.testing.assert_allclose(table["rsna_score_after"], [1.25 / 3, 0.625, 0.5, 0.0])
    np.testing.assert_allclose(table["change"], [0, 0.625 - 1.25 / 3, 0.5 - 1.25 / 3, -1.25 / 3])
    assert table["images_vetoed"].tolist() == [0, 1, 2, 3]  # d has no box to lose
    assert table["boxes_removed"].tolist() == [0, 1, 2, 3]
    assert table["true_boxes_lost"].tolist() == [0, 0, 1, 2]
    assert table["negatives_cleared"].tolist() == [0, 1, 1, 1]


def test_missing_classifier_scores():
    scores = {"a": 0.8, "b": 0.2}
    with pytest.raises(GatingError, match="2 predicted image"):
        gate_predictions(PREDICTIONS, scores, 0.5)
    kept = gate_predictions(PREDICTIONS, scores, 0.5, missing="keep")
    assert len(kept["c"].boxes) == 1 and len(kept["b"].boxes) == 0
    vetoed = gate_predictions(PREDICTIONS, scores, 0.5, missing="veto")
    assert len(vetoed["c"].boxes) == 0 and len(vetoed["a"].boxes) == 1
    with pytest.raises(GatingError, match="missing="):
        gate_predictions(PREDICTIONS, scores, 0.5, missing="drop")
    with pytest.raises(GatingError, match="finite"):
        gate_predictions(PREDICTIONS, SCORES, float("nan"))
