"""The stored post-processing's ensemble fields: scale views, WBF of views and members, box scaling, by hand."""
import json

import numpy as np
import pytest

from rsna_detector.detector.postprocess import (
    Detections,
    PostProcessing,
    PostProcessingError,
    apply_postprocessing,
    views_of,
)


def _detections(boxes, scores):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(boxes, np.asarray(scores, np.float32), np.ones(len(boxes), np.int32))


def test_a_file_without_the_ensemble_fields_reads_with_their_defaults(tmp_path):
    path = tmp_path / "postprocessing.json"
    path.write_text(json.dumps({"version": 1, "min_confidence": 0.6, "flip_tta": True}))
    description = PostProcessing.load(path)
    assert description.version == 1 and description.min_confidence == 0.6 and description.flip_tta
    assert (description.scales, description.fusion_iou, description.box_scale, description.members,
            description.gate_threshold) == ((1.0,), 0.55, 1.0, (), None)


def test_ensemble_fields_round_trip_and_describe(tmp_path):
    description = PostProcessing(min_confidence=0.7, scales=[0.8, 1.0, 1.2], box_scale=0.875,
                                 members=["fold_1/run/a.h5", "fold_2/run/b.h5"], fusion_iou=0.5)
    assert description.scales == (0.8, 1.0, 1.2) and description.members == ("fold_1/run/a.h5", "fold_2/run/b.h5")
    assert PostProcessing.load(description.save(tmp_path / "p.json")) == description
    assert description.describe() == ("threshold 0.7, no TTA, scales 0.8, 1, 1.2, 2 members fused by WBF (IoU 0.5), "
                                      "box scale 0.875")
    assert [view.name for view in views_of(description.replace(flip_tta=True))] == [
        "scale 0.8", "scale 0.8, mirror", "image", "mirror", "scale 1.2", "scale 1.2, mirror"]


@pytest.mark.parametrize("field, value, message", [
    ("scales", [], r"scales: expected a list of view scales"),
    ("scales", [0.0], r"scales: expected a number in \(0, 8\], got 0.0"),
    ("fusion_iou", 1.0, r"fusion_iou: expected a number in \(0, 1\), got 1.0"),
    ("box_scale", -1, r"box_scale: expected a number in \(0, 8\], got -1"),
    ("members", "fold_1/a.h5", "members: expected a list of checkpoint paths"),
    ("gate_threshold", 1.5, r"gate_threshold: expected a number in \[0, 1\], got 1.5"),
])
def test_bad_ensemble_fields_are_named(tmp_path, field, value, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 1, field: value}))
    with pytest.raises(PostProcessingError, match=f"{path}: {message}"):
        PostProcessing.load(path)


def test_views_of_two_scales_are_fused_by_wbf_then_thresholded_then_box_scaled():
    # WBF of (0,0,10,10) 0.9 and (0,2,10,12) 0.3 (IoU 0.667): (0, 0.5, 10, 10.5), score 0.6; a box in one view of
    # two: (50,50,70,70) 0.5 -> 0.25, dropped by the threshold 0.3. Box scale 0.5 about the centre (5, 5.5), half
    # size (5, 5) -> (2.5, 3, 7.5, 8).
    description = PostProcessing(min_confidence=0.3, scales=[1.0, 0.8], box_scale=0.5)
    fused = apply_postprocessing([_detections([[0, 0, 10, 10], [50, 50, 70, 70]], [0.9, 0.5]),
                                  _detections([[0, 2, 10, 12]], [0.3])], description)
    np.testing.assert_allclose(fused.boxes, [[2.5, 3, 7.5, 8]], atol=1e-4)
    np.testing.assert_allclose(fused.scores, [0.6], atol=1e-6)
    assert fused.class_ids.tolist() == [1] and fused.masks is None


def test_the_image_and_its_mirror_of_one_model_keep_the_flip_fusion():
    # flip fusion matches at IoU >= flip_iou (0.5) where WBF needs > fusion_iou (0.55): IoU 80/120 = 0.667 both;
    # the difference shows on a lone box: flip fusion halves it (0.45), as WBF of two views does
    flip_only = PostProcessing(flip_tta=True)
    fused = apply_postprocessing([_detections([[0, 0, 10, 10]], [0.9]), _detections([], [])], flip_only)
    np.testing.assert_allclose(fused.scores, [0.45])
    two_members = apply_postprocessing([_detections([[0, 0, 10, 10]], [0.9]), _detections([], []),
                                        _detections([[0, 0, 10, 10]], [0.9]), _detections([], [])],
                                       flip_only.replace(members=["a.h5", "b.h5"]))
    np.testing.assert_allclose(two_members.scores, [0.45])  # 2 of 4 views: 0.9 * 2 / 4
