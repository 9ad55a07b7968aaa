"""greedy_match, the library's one matcher, on hand-made IoU matrices (rows: predictions in score order)."""
import numpy as np
import pytest

from rsna_detector.mrcnn.eval.matching import greedy_match


def test_a_prediction_takes_the_unmatched_ground_truth_with_the_highest_iou():
    overlaps = np.array([[0.6, 0.9],    # takes column 1 (0.9)
                         [0.7, 0.8]])   # column 1 is taken: takes column 0 (0.7)
    gt_match, pred_match = greedy_match(overlaps, 0.5)
    assert pred_match.tolist() == [1, 0] and gt_match.tolist() == [1, 0]
    assert pred_match.dtype == gt_match.dtype == np.float64  # matterport's types


def test_row_order_decides_who_gets_a_shared_ground_truth():
    overlaps = np.array([[0.6], [0.95]])
    assert greedy_match(overlaps, 0.5)[1].tolist() == [0, -1]
    assert greedy_match(overlaps[::-1], 0.5)[1].tolist() == [0, -1]  # now the 0.95 row comes first


@pytest.mark.parametrize("strict, hit", [(False, True), (True, False)])
def test_an_iou_equal_to_the_threshold_hits_only_when_not_strict(strict, hit):
    gt_match, pred_match = greedy_match(np.array([[0.5]]), 0.5, strict=strict)
    assert pred_match.tolist() == ([0] if hit else [-1]) and gt_match.tolist() == ([0] if hit else [-1])
    # just above the threshold is a hit either way, just below is a miss either way
    assert greedy_match(np.array([[0.5001]]), 0.5, strict=strict)[1].tolist() == [0]
    assert greedy_match(np.array([[0.4999]]), 0.5, strict=strict)[1].tolist() == [-1]


def test_the_best_candidate_below_the_threshold_ends_the_search():
    # the untaken candidates in descending IoU: 0.45 misses 0.5, so nothing lower is tried
    overlaps = np.array([[0.9, 0.45, 0.2],
                         [0.95, 0.45, 0.3]])
    assert greedy_match(overlaps, 0.5)[1].tolist() == [0, -1]
    assert greedy_match(overlaps, 0.4)[1].tolist() == [0, 1]


def test_classes_must_agree_when_given():
    overlaps = np.array([[0.9, 0.6]])
    # the 0.9 ground truth is of another class: the prediction goes on to 0.6, of its class
    gt_match, pred_match = greedy_match(overlaps, 0.5, gt_class_ids=np.array([2, 1]), pred_class_ids=np.array([1]))
    assert pred_match.tolist() == [1] and gt_match.tolist() == [-1, 0]
    # no ground truth of its class reaches the threshold: no match
    assert greedy_match(overlaps, 0.5, gt_class_ids=np.array([2, 2]), pred_class_ids=np.array([1]))[1].tolist() == [-1]
    # without class ids the classes are ignored
    assert greedy_match(overlaps, 0.5)[1].tolist() == [0]


def test_the_iou_floor_removes_candidates():
    overlaps = np.array([[0.9, 0.6], [0.8, 0.3]])
    # iou_threshold 0.2 alone: row 1 takes the 0.3 column; the floor 0.4 removes it
    assert greedy_match(overlaps, 0.2)[1].tolist() == [0, 1]
    assert greedy_match(overlaps, 0.2, iou_floor=0.4)[1].tolist() == [0, -1]


def test_empty_inputs():
    gt_match, pred_match = greedy_match(np.zeros((0, 3)), 0.5)
    assert gt_match.tolist() == [-1, -1, -1] and pred_match.shape == (0,)
    gt_match, pred_match = greedy_match(np.zeros((2, 0)), 0.5)
    assert gt_match.shape == (0,) and pred_match.tolist() == [-1, -1]


def test_nan_counts_as_a_hit_as_in_matterport():
    # NaN (two empty masks) sorts last in argsort, so first in matterport's reversed order, and
    # no comparison with NaN is true: the pair matches. evaluate replaces NaN by 0 before matching.
    assert greedy_match(np.array([[np.nan, 0.9]]), 0.5)[1].tolist() == [0]
    assert greedy_match(np.array([[np.nan, 0.9]]), 0.5, strict=True)[1].tolist() == [0]
