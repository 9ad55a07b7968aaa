"""Flip test-time augmentation: mirroring and fusion, hand-computed."""
import numpy as np

from rsna_detector.detector.fusion import mirror_boxes as _mirror_boxes
from rsna_detector.detector.inference import fuse_flip_detections, list_dicoms


def test_mirror_boxes_uses_exclusive_right_edge():
    # x in [10, 30) in a 100-wide image mirrors to [70, 90)
    mirrored = _mirror_boxes([[5, 10, 20, 30]], width=100)
    np.testing.assert_array_equal(mirrored, [[5, 70, 20, 90]])
    np.testing.assert_array_equal(_mirror_boxes(mirrored, 100), [[5, 10, 20, 30]])


def test_fusion_merges_overlapping_boxes_by_score_weighted_mean():
    boxes, scores = fuse_flip_detections([[0, 0, 10, 10]], [0.9], [[0, 2, 10, 12]], [0.3])
    # IoU = 80 / 120 = 0.667 >= 0.5: weights 0.9 and 0.3 -> x1 = (0.9*0 + 0.3*2) / 1.2 = 0.5
    np.testing.assert_allclose(boxes, [[0, 0.5, 10, 10.5]], atol=1e-6)
    np.testing.assert_allclose(scores, [0.6], atol=1e-6)


def test_fusion_halves_boxes_seen_in_one_view_only_and_sorts():
    boxes, scores = fuse_flip_detections(
        [[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.9],
        [[0, 0, 10, 10]], [0.8],
    )
    # the matched pair keeps 0.8; the lone box 0.9 -> 0.45; sorted by score
    np.testing.assert_allclose(scores, [0.8, 0.45], atol=1e-6)
    np.testing.assert_allclose(boxes, [[0, 0, 10, 10], [50, 50, 60, 60]])


def test_fusion_of_nothing_is_empty():
    boxes, scores = fuse_flip_detections(np.zeros((0, 4)), [], np.zeros((0, 4)), [])
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_list_dicoms_of_an_empty_folder_names_it(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        list_dicoms(tmp_path)
