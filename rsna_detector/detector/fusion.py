"""Fusion of detection sets of one image: today the image and its mirror (flip test-time augmentation).

``postprocess.fuse_views`` calls :func:`fuse_flip_detections` class by class; :func:`mirror_boxes`
maps a mirrored view's boxes back. Boxes are engine boxes ``(y1, x1, y2, x2)`` in pixels
(``y2``/``x2`` exclusive).
"""
from __future__ import annotations

import numpy as np

__all__ = ["fuse_flip_detections", "mirror_boxes"]


def fuse_flip_detections(boxes_a, scores_a, boxes_b, scores_b, iou_threshold=0.5):
    """Fuse the detections of an image and of its mirror (already un-mirrored).

    Boxes of the two sets that overlap with IoU >= ``iou_threshold`` are merged
    into their score-weighted mean box with the mean of both scores; a box seen
    in one view only keeps its coordinates with half its score (one vote of two).

    Parameters
    ----------
    boxes_a, boxes_b : float array [N, (y1, x1, y2, x2)]
    scores_a, scores_b : float array [N]

    Returns
    -------
    boxes : float32 [M, 4], scores : float32 [M], sorted by descending score.
    """
    from ..mrcnn.eval.matching import greedy_match
    from .competition import box_overlaps

    boxes_a, boxes_b = np.asarray(boxes_a, np.float32).reshape(-1, 4), np.asarray(boxes_b, np.float32).reshape(-1, 4)
    scores_a, scores_b = np.asarray(scores_a, np.float32), np.asarray(scores_b, np.float32)
    order_a = np.argsort(-scores_a)
    boxes_a, scores_a = boxes_a[order_a], scores_a[order_a]
    # Two zero-area boxes (IoU NaN) are no match here (box_overlaps gives 0), unlike greedy_match's default.
    b_of_a = greedy_match(box_overlaps(boxes_a, boxes_b), iou_threshold)[1].astype(int)
    unmatched_b = np.ones(len(boxes_b), bool)
    unmatched_b[b_of_a[b_of_a >= 0]] = False
    fused_boxes, fused_scores = [], []
    for i, j in enumerate(b_of_a):
        if j >= 0:
            weights = np.array([scores_a[i], scores_b[j]])
            fused_boxes.append((weights[:, None] * np.stack([boxes_a[i], boxes_b[j]])).sum(0) / weights.sum())
            fused_scores.append(weights.mean())
        else:
            fused_boxes.append(boxes_a[i])
            fused_scores.append(scores_a[i] / 2)
    for j in np.flatnonzero(unmatched_b):
        fused_boxes.append(boxes_b[j])
        fused_scores.append(scores_b[j] / 2)
    if not fused_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    boxes, scores = np.asarray(fused_boxes, np.float32), np.asarray(fused_scores, np.float32)
    order = np.argsort(-scores)
    return boxes[order], scores[order]


def mirror_boxes(boxes, width):
    """Mirror ``(y1, x1, y2, x2)`` boxes (x2 exclusive) across the vertical axis of an image ``width`` wide."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, [1, 3]] = width - boxes[:, [3, 1]]
    return boxes
