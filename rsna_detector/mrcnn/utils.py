"""matterport's ``mrcnn.utils`` API: the engine's numpy utilities under one name.

Notebooks written for matterport use ``from rsna_detector.mrcnn import utils``;
every public name of matterport's ``utils`` is here. The implementations live in
modules of their own role, which the library imports directly:

* ``base_dataset`` -- :class:`Dataset` and its errors;
* ``boxes`` -- boxes from masks, IoU, NMS, box deltas, ``norm_boxes``, ``trim_zeros``;
* ``molding`` -- ``resize``, ``resize_image``, ``mold_image``, ``unmold_image``;
* ``masks`` -- ``resize_mask``, mini masks, ``unmold_mask``;
* ``anchors`` -- ``generate_anchors``, ``generate_pyramid_anchors``, ``compute_backbone_shapes``;
* ``image_meta`` -- ``compose_image_meta``, ``parse_image_meta``;
* ``metrics`` -- ``compute_matches``, ``compute_ap`` (and ``compute_ap_boxes``),
  ``compute_ap_range``, ``compute_recall``.

Defined here: :data:`COCO_MODEL_URL`, :func:`download_trained_weights`, and
:func:`box_refinement_graph` / :func:`batch_slice`, matterport's two TF helpers in
``utils``, which call ``box_ops`` (TensorFlow is imported only when they run, so
this module stays numpy-only).

Box convention: pixel boxes are ``(y1, x1, y2, x2)`` with ``y2``/``x2`` *exclusive*;
inside the graph boxes are normalized by ``norm_boxes``. Every function returns what
matterport v2.1's function of the same name returns (values, dtypes, thresholds,
edge cases), which the differential tests against matterport's own code hold.
"""
from __future__ import annotations

from .eval.metrics import (
    NoGroundTruthError,
    compute_ap,
    compute_ap_boxes,
    compute_ap_range,
    compute_matches,
    compute_recall,
)
from .input.base_dataset import Dataset, DatasetAssertionError, DatasetError, DatasetKeyError
from .ops.anchors import compute_backbone_shapes, generate_anchors, generate_pyramid_anchors
from .ops.boxes import (
    apply_box_deltas,
    box_refinement,
    compute_iou,
    compute_overlaps,
    compute_overlaps_masks,
    denorm_boxes,
    extract_bboxes,
    non_max_suppression,
    norm_boxes,
    trim_zeros,
)
from .ops.image_meta import compose_image_meta, parse_image_meta
from .ops.masks import expand_mask, minimize_mask, mold_mask, resize_mask, unmold_mask
from .ops.molding import mold_image, resize, resize_image, unmold_image

__all__ = [
    # dataset
    "Dataset", "DatasetError", "DatasetKeyError", "DatasetAssertionError",
    # boxes (box_refinement_graph and batch_slice: below, over box_ops)
    "extract_bboxes", "compute_iou", "compute_overlaps", "compute_overlaps_masks", "non_max_suppression",
    "box_refinement", "box_refinement_graph", "apply_box_deltas", "norm_boxes", "denorm_boxes", "trim_zeros",
    "batch_slice",
    # images and masks
    "resize", "resize_image", "mold_image", "unmold_image",
    "resize_mask", "minimize_mask", "expand_mask", "mold_mask", "unmold_mask",
    # anchors
    "generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes",
    # image meta
    "compose_image_meta", "parse_image_meta",
    # evaluation
    "NoGroundTruthError", "compute_matches", "compute_ap", "compute_ap_boxes", "compute_ap_range", "compute_recall",
    # weights (below)
    "COCO_MODEL_URL", "download_trained_weights",
]

#: Where matterport's COCO weights are published (the registry entry 'coco' holds its checksum).
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"


def box_refinement_graph(box, gt_box):
    """TF version of :func:`box_refinement` (``box_ops.box_refinement_graph``).

    Parameters
    ----------
    box, gt_box : Tensor, [N, (y1, x1, y2, x2)]

    Returns
    -------
    Tensor, float32, [N, (dy, dx, log(dh), log(dw))]
    """
    from .layers.box_ops import box_refinement_graph as graph_function

    return graph_function(box, gt_box)


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Run a per-item graph function over the batch axis and stack the results.

    matterport's helper, here ``box_ops.batch_slice`` (see there for the shapes).
    """
    from .layers.box_ops import batch_slice as slice_function

    return slice_function(inputs, graph_fn, batch_size, names=names)


def download_trained_weights(coco_model_path, verbose=1):
    """Fetch matterport's COCO weights (``mask_rcnn_coco.h5``) to ``coco_model_path``.

    Delegates to ``rsna_detector.weights.fetch_weights('coco', destination=...)``,
    which checks the file's checksum and, offline or when the download fails,
    raises ``WeightsOfflineError`` naming :data:`COCO_MODEL_URL` and where to put
    the file; nothing is written then.

    Returns
    -------
    The path of the weights file (matterport returned None).
    """
    from rsna_detector.weights import fetch_weights

    if verbose > 0:
        print(f"Downloading pretrained model to {coco_model_path} ...")
    path = fetch_weights("coco", destination=coco_model_path, progress=verbose > 0)
    if verbose > 0:
        print("... done downloading pretrained model!")
    return path
