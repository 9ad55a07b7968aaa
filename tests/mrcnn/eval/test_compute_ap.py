"""compute_matches / compute_ap / compute_ap_boxes / compute_ap_range / compute_recall
on hand-made cases with hand-computed results."""
import numpy as np
import pytest

from rsna_detector.mrcnn import utils

SIZE = 40
G1 = [0, 0, 10, 10]
G2 = [16, 16, 26, 26]
FAR = [30, 30, 38, 38]          # overlaps nothing
WIDE = [0, 0, 10, 20]           # IoU with G1: 100 / 200 = 0.5
NEAR = [0, 0, 10, 12]           # IoU with G1: 100 / 120 = 0.833


def masks_of(boxes):
    masks = np.zeros((SIZE, SIZE, len(boxes)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return masks


def ap_by_masks(gt_boxes, pred_boxes, scores, gt_classes=None, pred_classes=None, iou=0.5):
    gt_classes = np.ones(len(gt_boxes), int) if gt_classes is None else np.asarray(gt_classes)
    pred_classes = np.ones(len(pred_boxes), int) if pred_classes is None else np.asarray(pred_classes)
    return utils.compute_ap(np.array(gt_boxes).reshape(-1, 4), gt_classes, masks_of(gt_boxes),
                            np.array(pred_boxes).reshape(-1, 4), pred_classes, np.array(scores, float),
                            masks_of(pred_boxes), iou_threshold=iou)


def ap_by_boxes(gt_boxes, pred_boxes, scores, gt_classes=None, pred_classes=None, iou=0.5):
    gt_classes = np.ones(len(gt_boxes), int) if gt_classes is None else np.asarray(gt_classes)
    pred_classes = np.ones(len(pred_boxes), int) if pred_classes is None else np.asarray(pred_classes)
    return utils.compute_ap_boxes(np.array(gt_boxes).reshape(-1, 4), gt_classes,
                                  np.array(pred_boxes).reshape(-1, 4), pred_classes,
                                  np.array(scores, float), iou_threshold=iou)


# (gt boxes, predicted boxes, scores, expected AP): worked out in the comments
CASES = {
    # p = [1, 1], r = [0.5, 1] -> 0.5 * 1 + 0.5 * 1
    "perfect": ([G1, G2], [G1, G2], [0.9, 0.8], 1.0),
    # p = [1], r = [0.5]; the final step to recall 1 has precision 0 -> 0.5
    "one miss": ([G1, G2], [G1], [0.9], 0.5),
    # true positive first: p = [1, 0.5], r = [1, 1] -> 1.0
    "false positive ranked last": ([G1], [G1, FAR], [0.9, 0.8], 1.0),
    # false positive first: p = [0, 0.5], r = [0, 1] -> 1 * 0.5
    "false positive ranked first": ([G1], [FAR, G1], [0.95, 0.9], 0.5),
    # p = [1, 1/2, 2/3], r = [0.5, 0.5, 1]; monotone p at the two recall steps: 1 and 2/3
    # -> 0.5 * 1 + 0.5 * 2/3
    "false positive in between": ([G1, G2], [G1, FAR, G2], [0.9, 0.8, 0.7], 0.5 + 0.5 * 2 / 3),
    # two identical predictions of the only ground truth (index 0): the second is a
    # false positive -> p = [1, 0.5], r = [1, 1] -> 1.0 (recall must not exceed 1)
    "duplicate of ground truth 0": ([G1], [G1, G1], [0.9, 0.8], 1.0),
    # predictions but no ground truth: recall is 0/0, so matterport's AP is NaN
    "no ground truth": ([], [G1, G2], [0.9, 0.8], np.nan),
    # ground truth but no prediction
    "no prediction": ([G1], [], [], 0.0),
    # nothing to find and nothing found: matterport's 0.0 (the RSNA layer scores it 1, see evaluate)
    "neither": ([], [], [], 0.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_compute_ap_hand_made_cases(name):
    gt, pred, scores, expected = CASES[name]
    ap, precisions, recalls, overlaps = ap_by_masks(gt, pred, scores)
    assert ap == pytest.approx(expected, nan_ok=True)
    assert overlaps.shape == (len(pred), len(gt))
    assert np.nanmax(recalls) <= 1.0
    assert len(precisions) == len(recalls)


@pytest.mark.parametrize("name", list(CASES))
def test_compute_ap_boxes_agrees_on_rectangles(name):
    gt, pred, scores, expected = CASES[name]
    ap, _, _, overlaps = ap_by_boxes(gt, pred, scores)
    assert ap == pytest.approx(expected, nan_ok=True)
    np.testing.assert_allclose(overlaps, ap_by_masks(gt, pred, scores)[3])


def test_curves_of_the_one_miss_case():
    _, precisions, recalls, _ = ap_by_masks([G1, G2], [G1], [0.9])
    np.testing.assert_allclose(precisions, [1, 1, 0])
    np.testing.assert_allclose(recalls, [0, 0.5, 1])


def test_curves_of_the_false_positive_in_between_case():
    _, precisions, recalls, _ = ap_by_masks([G1, G2], [G1, FAR, G2], [0.9, 0.8, 0.7])
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 0.5, 0.5, 1, 1])


def test_ground_truth_index_0_is_matched_only_once():
    # both predictions overlap ground truth 0 best; the second must take ground truth 1
    gt = np.array([G1, NEAR])
    pred = np.array([G1, G1])
    gt_match, pred_match, overlaps = utils.compute_matches(
        gt, np.array([1, 1]), masks_of(gt), pred, np.array([1, 1]), np.array([0.9, 0.8]),
        masks_of(pred))
    assert gt_match.tolist() == [0, 1]
    assert pred_match.tolist() == [0, 1]
    np.testing.assert_allclose(overlaps, [[1, 100 / 120], [1, 100 / 120]])


def test_predictions_are_matched_in_score_order():
    # given lowest score first: the sorted order is [G1 (0.9), FAR (0.2)]
    gt_match, pred_match, overlaps = utils.compute_matches(
        np.array([G1]), np.array([1]), masks_of([G1]), np.array([FAR, G1]), np.array([1, 1]),
        np.array([0.2, 0.9]), masks_of([FAR, G1]))
    assert pred_match.tolist() == [0, -1]
    assert gt_match.tolist() == [0]
    np.testing.assert_allclose(overlaps, [[1.0], [0.0]])


def test_wrong_class_is_not_a_match():
    ap, _, _, _ = ap_by_masks([G1], [G1], [0.9], gt_classes=[1], pred_classes=[2])
    assert ap == 0.0


def test_iou_threshold_is_inclusive():
    assert ap_by_masks([G1], [WIDE], [0.9], iou=0.5)[0] == 1.0
    assert ap_by_masks([G1], [WIDE], [0.9], iou=0.55)[0] == 0.0
    assert ap_by_boxes([G1], [WIDE], [0.9], iou=0.5)[0] == 1.0


def test_zero_padding_rows_are_ignored():
    gt = np.array([G1, [0, 0, 0, 0]])
    gt_masks = masks_of([G1, [0, 0, 0, 0]])
    pred = np.array([G1, [0, 0, 0, 0]])
    ap, _, _, overlaps = utils.compute_ap(gt, np.array([1, 0]), gt_masks, pred, np.array([1, 0]),
                                          np.array([0.9, 0.0]), masks_of([G1, [0, 0, 0, 0]]))
    assert ap == 1.0 and overlaps.shape == (1, 1)
    assert utils.compute_ap_boxes(gt, np.array([1, 0]), pred, np.array([1, 0]),
                                  np.array([0.9, 0.0]))[3].shape == (1, 1)


def test_compute_ap_range(capsys):
    gt, pred = np.array([G1]), np.array([WIDE])
    mean = utils.compute_ap_range(gt, np.array([1]), masks_of([G1]), pred, np.array([1]),
                                  np.array([0.9]), masks_of([WIDE]), iou_thresholds=[0.5, 0.55])
    assert mean == pytest.approx(0.5)  # 1.0 at 0.50, 0.0 at 0.55
    out = capsys.readouterr().out
    assert "AP @0.50:\t 1.000" in out and "AP @0.50-0.55:\t 0.500" in out
    # default thresholds 0.50..0.95: an exact match scores 1 everywhere, silently
    assert utils.compute_ap_range(gt, np.array([1]), masks_of([G1]), gt, np.array([1]),
                                  np.array([0.9]), masks_of([G1]), verbose=0) == pytest.approx(1.0)
    assert capsys.readouterr().out == ""


def test_compute_recall():
    recall, positive_ids = utils.compute_recall(np.array([G1, WIDE, FAR]), np.array([G1, G2]), 0.5)
    # G1 and WIDE both best-match G1 (IoU 1 and 0.5): one of two ground truths found
    assert recall == 0.5
    assert positive_ids.tolist() == [0, 1]
    recall, positive_ids = utils.compute_recall(np.array([G1, G2]), np.array([G1, G2]), 0.9)
    assert recall == 1.0 and positive_ids.tolist() == [0, 1]
    assert utils.compute_recall(np.zeros((0, 4)), np.array([G1]), 0.5)[0] == 0.0
