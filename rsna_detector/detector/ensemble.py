"""Ensembles of detections: weighted boxes fusion, scale and flip test-time augmentation, box scaling.

What the top RSNA solutions added to a single detector (docs/DATA_AND_SETTINGS.md):

* :func:`weighted_boxes_fusion` -- the detections of several models (folds,
  checkpoints, configurations) and of several views of an image (TTA variants)
  fused into one set by Weighted Boxes Fusion (Solovyev, Wang, Gabruseva,
  arXiv:1910.13302), computed by the ``ensemble-boxes`` package;
* scale TTA -- :func:`detect_scaled` runs the model on the image resized by a
  factor (0.8, 1.2, ...) and maps the boxes back (:func:`scaled_view_geometry`,
  :func:`boxes_from_scaled_view`); :func:`scaled_views` makes them views of the
  post-processing pipeline (``postprocess.views_of``: every scale, mirrored or
  not with flip TTA, the mirror being ``postprocess``'s);
* the pipeline's other parts: :func:`fuse_views_wbf` (views and members fused by
  WBF), :func:`apply_box_scale`, :class:`Ensemble` / :func:`load_ensemble`, and
  the checks of the description's ensemble fields;
* :func:`scale_boxes_about_centre` -- every box shrunk (or grown) around its centre, the 1st
  place solution's 87.5 %, and :func:`fit_box_scale`, the factor that
  maximises the competition's score on held-out (out-of-fold) predictions.

Boxes are engine boxes ``(y1, x1, y2, x2)`` in pixels, ``y2``/``x2`` exclusive,
in the frame of the image given (the ensemble-boxes package works on normalised
``[x1, y1, x2, y2]`` in 0..1; the conversion happens here and only here).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputFileNotFoundError, RsnaDetectorError

__all__ = [
    "EnsembleError",
    "WBF_CONF_TYPES",
    "weighted_boxes_fusion",
    "scaled_view_geometry",
    "boxes_from_scaled_view",
    "detect_scaled",
    "scale_boxes_about_centre",
    "scale_prediction_boxes",
    "fit_box_scale",
    "DEFAULT_BOX_SCALES",
    "Ensemble",
    "load_ensemble",
    "fuse_views_wbf",
    "scaled_views",
    "check_ensemble_fields",
    "describe_ensemble_fields",
    "apply_box_scale",
]

#: How a fused box's score is computed (ensemble-boxes' ``conf_type``): 'avg' is the paper's.
WBF_CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
#: Candidate box-scale factors of :func:`fit_box_scale`: 0.70, 0.725, ..., 1.10.
DEFAULT_BOX_SCALES = tuple(np.round(np.arange(0.70, 1.1001, 0.025), 4).tolist())

_MOLD_MULTIPLE = 64  # the FPN halves the input six times


class EnsembleError(RsnaDetectorError, ValueError):
    """Inconsistent ensemble input: boxes and scores of different lengths, a bad factor or setting."""


# --------------------------------------------------------------------------- weighted boxes fusion
def _member(detection, index):
    """(boxes float64 [N, 4], scores float64 [N]) of one member; raises EnsembleError naming it."""
    if not isinstance(detection, (tuple, list)) or len(detection) != 2:
        raise EnsembleError(f"member {index}: expected (boxes [N, 4], scores [N]), got {type(detection).__name__}")
    boxes = np.asarray(detection[0], np.float64)
    boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
    scores = np.asarray(detection[1], np.float64).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) != len(scores):
        raise EnsembleError(f"member {index}: expected boxes [N, (y1, x1, y2, x2)] and N scores, "
                            f"got boxes {boxes.shape} and {len(scores)} scores")
    return boxes, scores


def weighted_boxes_fusion(detections, image_shape, *, iou_threshold=0.55, skip_box_threshold=0.0, weights=None,
                          conf_type="avg"):
    """Fuse the detections of several members (models or TTA views) of one image.

    Weighted Boxes Fusion (arXiv:1910.13302): all boxes, in descending score,
    join the cluster whose fused box they overlap with IoU greater than
    ``iou_threshold`` (or start one); a cluster's box is the score-weighted mean
    of its boxes, its score (``conf_type='avg'``) the mean of its boxes' scores
    times ``min(boxes in the cluster, members) / members``: a box that only one of
    two members found keeps half its score.

    Parameters
    ----------
    detections : sequence of (boxes, scores)
        One entry per member: boxes float ``[N, (y1, x1, y2, x2)]`` in pixels of
        ``image_shape``, scores ``[N]`` in [0, 1]. Boxes are clipped to the image;
        empty ones are dropped.
    image_shape : (H, W, ...)
        The pixel frame of the boxes.
    iou_threshold : float
        Cluster IoU, in (0, 1) (0.55 is the paper's and ensemble-boxes' default).
    skip_box_threshold : float
        Boxes scoring below it are left out before fusion.
    weights : sequence of float, optional
        One weight per member (default 1 each): scores are multiplied by it and
        the fused score divided by the total weight.
    conf_type : str
        One of :data:`WBF_CONF_TYPES`.

    Returns
    -------
    boxes : float32 [M, (y1, x1, y2, x2)]
        Pixels of ``image_shape``.
    scores : float32 [M]
        Descending.

    Raises
    ------
    EnsembleError
        A member that is not ``(boxes [N, 4], scores [N])``, weights of another
        length, a threshold outside (0, 1) or an unknown ``conf_type``.
    """
    from ensemble_boxes import weighted_boxes_fusion as wbf

    members = [_member(d, i) for i, d in enumerate(detections)]
    if weights is not None and len(weights) != len(members):
        raise EnsembleError(f"weights: {len(weights)} values for {len(members)} members; expected one per member")
    if not 0 < iou_threshold < 1:
        raise EnsembleError(f"iou_threshold: {iou_threshold!r} is not in (0, 1)")
    if conf_type not in WBF_CONF_TYPES:
        raise EnsembleError(f"conf_type: {conf_type!r}; expected one of {', '.join(WBF_CONF_TYPES)}")
    height, width = float(image_shape[0]), float(image_shape[1])
    frame = np.array([width, height, width, height])
    boxes_list, scores_list, labels_list = [], [], []
    for boxes, scores in members:
        normalised = np.clip(boxes[:, [1, 0, 3, 2]] / frame, 0.0, 1.0)  # (y1, x1, y2, x2) px -> [x1, y1, x2, y2]
        keep = (normalised[:, 2] > normalised[:, 0]) & (normalised[:, 3] > normalised[:, 1])
        boxes_list.append(normalised[keep])
        scores_list.append(scores[keep])
        labels_list.append(np.zeros(int(keep.sum())))
    if not members or not any(len(s) for s in scores_list):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    fused, fused_scores, _ = wbf(boxes_list, scores_list, labels_list, weights=weights, iou_thr=float(iou_threshold),
                                 skip_box_thr=float(skip_box_threshold), conf_type=conf_type)
    fused = np.asarray(fused, np.float64).reshape(-1, 4) * frame
    return fused[:, [1, 0, 3, 2]].astype(np.float32), np.asarray(fused_scores, np.float32).reshape(-1)


# --------------------------------------------------------------------------- scale TTA
def scaled_view_geometry(image_shape, factor, model_side):
    """Where an image lies in its scale-TTA view.

    The view shows the image resized so that its longer side is
    ``factor * model_side`` pixels (``model_side``: the side the model molds
    images to, ``IMAGE_MAX_DIM``), at the top-left corner of a canvas whose sides
    are the next multiples of 64 (zero padding at the bottom and right). So at
    factor 0.8 a 256-pixel model sees objects at 0.8 of their trained size on a
    256 canvas, at 1.2 at 1.2 of it on a 320 canvas, and the whole image in both.

    Parameters
    ----------
    image_shape : (H, W, ...)
    factor : float
        > 0.
    model_side : int

    Returns
    -------
    scaled : (int, int)
        ``(round(H * z), round(W * z))`` with ``z = factor * model_side / max(H, W)``, each >= 1.
    canvas : (int, int)
        ``scaled`` rounded up to multiples of 64.

    Raises
    ------
    EnsembleError
        A factor that is not a positive finite number.
    """
    if not np.isfinite(factor) or factor <= 0:
        raise EnsembleError(f"scale factor {factor!r}: expected a positive number (e.g. 0.8, 1.0, 1.2)")
    height, width = int(image_shape[0]), int(image_shape[1])
    zoom = float(factor) * float(model_side) / max(height, width)
    scaled = (max(1, int(round(height * zoom))), max(1, int(round(width * zoom))))
    canvas = tuple(-(-side // _MOLD_MULTIPLE) * _MOLD_MULTIPLE for side in scaled)
    return scaled, canvas


def boxes_from_scaled_view(boxes, image_shape, scaled_shape):
    """Boxes found in a scale-TTA view, in the original image's pixels.

    The image sits at the view's top-left corner at ``scaled_shape``, so a view
    pixel edge ``v`` is the image edge ``v * H / scaled_H`` (rows; columns with
    ``W / scaled_W``): resampling maps pixel edges onto pixel edges.

    Parameters
    ----------
    boxes : float [N, (y1, x1, y2, x2)]
        Pixels of the view.
    image_shape : (H, W, ...)
    scaled_shape : (h, w)
        :func:`scaled_view_geometry`'s ``scaled``.

    Returns
    -------
    float32 [N, (y1, x1, y2, x2)]
        Pixels of the image, clipped to ``[0, H]`` x ``[0, W]``.
    """
    from ..data.labels import scale_boxes

    height, width = int(image_shape[0]), int(image_shape[1])
    boxes = scale_boxes(np.asarray(boxes, np.float64).reshape(-1, 4), tuple(scaled_shape[:2]), (height, width))
    return np.clip(boxes, 0, [height, width, height, width]).astype(np.float32)


def _scaled_view(image, scaled, canvas):
    """uint8 canvas [h', w', C] with ``image`` resized to ``scaled`` at its top-left corner."""
    from ..mrcnn.ops.molding import resize

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    view = np.zeros(tuple(canvas) + image.shape[2:], image.dtype)
    if tuple(scaled) == image.shape[:2]:
        view[:scaled[0], :scaled[1]] = image
    else:
        view[:scaled[0], :scaled[1]] = resize(image, scaled, preserve_range=True).astype(image.dtype)
    return view


def detect_scaled(model, images, factor):
    """Detections of each image seen at ``factor`` times the model's size, in the image's pixels.

    Each image is resized (bilinear, as ``resize_image``) and placed on a canvas
    (:func:`scaled_view_geometry`), molded (``mold_image``) with the image's
    window in its meta, so that the detection layer keeps boxes inside the image,
    run through ``model.detect_molded`` and mapped back (:func:`boxes_from_scaled_view`).

    Parameters
    ----------
    model : MaskRCNN
        In inference mode.
    images : list of uint8 [H, W, C] (or [H, W]) arrays
    factor : float

    Returns
    -------
    list of dict
        One per image, as ``MaskRCNN.detect``'s without masks: ``rois`` float32
        ``[N, (y1, x1, y2, x2)]`` in the image's own pixels, ``scores`` float32 ``[N]``,
        ``class_ids`` int32 ``[N]``.
    """
    from ..mrcnn.ops.image_meta import compose_image_meta
    from ..mrcnn.ops.molding import mold_image

    config = model.config
    out = [None] * len(images)
    groups = {}  # canvas shape -> [(index, scaled, molded, meta)]
    for index, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim == 2 or image.shape[-1] == 1:
            image = np.repeat(image.reshape(image.shape[:2] + (1,)), config.IMAGE_CHANNEL_COUNT, axis=2)
        scaled, canvas = scaled_view_geometry(image.shape, factor, config.IMAGE_MAX_DIM)
        view = _scaled_view(image, scaled, canvas)
        meta = compose_image_meta(0, view.shape, view.shape, (0, 0) + scaled, 1.0,
                                  np.zeros([config.NUM_CLASSES], np.int32))
        groups.setdefault(view.shape, []).append((index, image.shape, scaled, mold_image(view, config), meta))
    batch = int(config.BATCH_SIZE)
    for members in groups.values():
        for start in range(0, len(members), batch):
            chunk = members[start:start + batch]
            padded = chunk + [chunk[-1]] * (batch - len(chunk))  # detect_molded takes exactly BATCH_SIZE
            results = model.detect_molded(np.stack([m[3] for m in padded]), np.stack([m[4] for m in padded]))
            for (index, shape, scaled, _, _), result in zip(chunk, results[:len(chunk)], strict=True):
                out[index] = {"rois": boxes_from_scaled_view(result["rois"], shape, scaled),
                              "scores": np.asarray(result["scores"], np.float32).reshape(-1),
                              "class_ids": np.asarray(result["class_ids"], np.int32).reshape(-1)}
    return out


# --------------------------------------------------------------------------- box scaling
def scale_boxes_about_centre(boxes, factor, image_shape=None):
    """Boxes scaled by ``factor`` around their centres (height and width both).

    Parameters
    ----------
    boxes : float [N, (y1, x1, y2, x2)]
    factor : float
        > 0; 0.875 shrinks every side to 87.5 % (the 1st place RSNA solution).
    image_shape : (H, W, ...), optional
        Clip the result to the image.

    Returns
    -------
    float32 [N, (y1, x1, y2, x2)]
        ``centre -/+ factor * half-size``.
    """
    if not np.isfinite(factor) or factor <= 0:
        raise EnsembleError(f"box scale factor {factor!r}: expected a positive number (e.g. 0.875)")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * float(factor)
    scaled = np.concatenate([centre - half, centre + half], axis=1)
    if image_shape is not None:
        height, width = float(image_shape[0]), float(image_shape[1])
        scaled = np.clip(scaled, 0, [height, width, height, width])
    return scaled.astype(np.float32)


def apply_box_scale(detections, postprocessing):
    """The ``postprocess`` step: every box scaled about its centre by ``box_scale`` (1.0: unchanged)."""
    from .postprocess import Detections

    if postprocessing.box_scale == 1.0:
        return detections
    return Detections(scale_boxes_about_centre(detections.boxes, postprocessing.box_scale), detections.scores,
                      detections.class_ids, None)


def scale_prediction_boxes(predictions, factor):
    """``{id: ImagePrediction}`` with every box scaled by ``factor`` (:func:`scale_boxes_about_centre`); scores kept."""
    from .submission import ImagePrediction

    return {key: ImagePrediction(p.patient_id, scale_boxes_about_centre(p.boxes, factor), p.scores)
            for key, p in predictions.items()}


def fit_box_scale(ground_truth, predictions, factors=DEFAULT_BOX_SCALES):
    """The box-scale factor that maximises the competition's score on held-out predictions.

    Parameters
    ----------
    ground_truth : dict id -> float [G, (y1, x1, y2, x2)]
        Every evaluated image (empty for a negative one), in the predictions' frame.
    predictions : dict id -> ImagePrediction
        Out-of-fold (or validation) predictions, already at their confidence threshold.
    factors : sequence of float
        Candidates (default 0.70, 0.725, ..., 1.10).

    Returns
    -------
    best_factor : float
        Among the candidates reaching the best score, the one closest to 1
        (the smallest change); NaN when no image counts.
    best_score : float
    table : list of dict
        ``{"factor", "rsna_score"}`` per candidate.
    """
    from .competition import rsna_score

    table = [{"factor": round(float(f), 6),
              "rsna_score": rsna_score(ground_truth, scale_prediction_boxes(predictions, f))} for f in factors]
    defined = [row for row in table if np.isfinite(row["rsna_score"])]
    if not defined:
        return float("nan"), float("nan"), table
    top = max(row["rsna_score"] for row in defined)
    best = min((row for row in defined if row["rsna_score"] == top), key=lambda row: abs(row["factor"] - 1.0))
    return best["factor"], best["rsna_score"], table


# --------------------------------------------------------------------------- the post-processing's ensemble parts
def check_ensemble_fields(description, error):
    """The ensemble fields of a ``postprocess.PostProcessing`` (scales ... gate_classifier), checked and normalised.

    Returns
    -------
    dict
        Field name -> value: ``scales`` a tuple of floats > 0 (at least one), ``fusion_iou`` in
        (0, 1), ``box_scale`` > 0, ``members`` a tuple of str, ``gate_threshold`` None or in
        [0, 1], ``gate_classifier`` None or str.

    Raises
    ------
    error
        Naming the field and what was expected.
    """
    def number(value, name, low, high, open_low=True, open_high=False):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
                or not ((low < value) if open_low else (low <= value)) \
                or not ((value < high) if open_high else (value <= high)):
            raise error(f"{name}: expected a number in {'(' if open_low else '['}{low:g}, {high:g}"
                        f"{')' if open_high else ']'}, got {value!r}")
        return float(value)

    scales = description.scales
    if not isinstance(scales, (list, tuple)) or not scales:
        raise error(f"scales: expected a list of view scales such as [0.8, 1.0, 1.2], got {scales!r}")
    values = {"scales": tuple(number(s, "scales", 0, 8) for s in scales),
              "fusion_iou": number(description.fusion_iou, "fusion_iou", 0, 1, open_high=True),
              "box_scale": number(description.box_scale, "box_scale", 0, 8)}
    members = description.members
    if isinstance(members, str) or not isinstance(members, (list, tuple)) \
            or not all(isinstance(m, str) and m for m in members):
        raise error(f"members: expected a list of checkpoint paths (relative to the description), got {members!r}")
    values["members"] = tuple(members)
    if description.gate_threshold is not None:
        values["gate_threshold"] = number(description.gate_threshold, "gate_threshold", 0, 1, open_low=False)
    if description.gate_classifier is not None and not isinstance(description.gate_classifier, str):
        raise error(f"gate_classifier: expected a file name or null, got {description.gate_classifier!r}")
    return values


def describe_ensemble_fields(description):
    """The ensemble settings that differ from their defaults, as short phrases."""
    parts = []
    if description.scales != (1.0,):
        parts.append(f"scales {', '.join(f'{s:g}' for s in description.scales)}")
    if description.members:
        parts.append(f"{len(description.members)} members fused by WBF (IoU {description.fusion_iou:g})")
    if description.box_scale != 1.0:
        parts.append(f"box scale {description.box_scale:g}")
    if description.gate_threshold is not None:
        parts.append(f"classifier gate {description.gate_threshold:g}")
    return parts


def scaled_views(scale, view_class, mirror_back):
    """The plain and mirrored ``postprocess`` views of the image at ``scale`` (:func:`detect_scaled`)."""
    def run(model, images):
        return detect_scaled(model, images, scale)

    return (view_class(f"scale {scale:g}", lambda image: image, lambda detections, shape: detections, run),
            view_class(f"scale {scale:g}, mirror", lambda image: np.ascontiguousarray(np.asarray(image)[:, ::-1]),
                       mirror_back, run))


def fuse_views_wbf(views, iou_threshold):
    """``postprocess.Detections`` of several views (and members) fused by WBF, class by class; no masks.

    The boxes are normalised by one common frame, the largest coordinate found: weighted boxes fusion
    (score-weighted means, IoU) does not change under a common scale, so no image size is needed.
    """
    from .postprocess import fuse_class_by_class

    frame = max([1.0] + [float(np.max(v.boxes)) for v in views if len(v.boxes)])
    return fuse_class_by_class(views, lambda sets: weighted_boxes_fusion(sets, (frame, frame),
                                                                         iou_threshold=iou_threshold))


class Ensemble:
    """Several inference models detecting as one (``postprocess.detect`` runs every view on each member).

    Attributes
    ----------
    members : list of MaskRCNN
        Inference mode, one config (the first member's is ``config``).
    postprocessing : PostProcessing
        What ``predict``/``evaluate`` apply (its ``members`` name the checkpoints).
    weights_paths : list of str
        The checkpoints read, member order.
    """

    def __init__(self, members, postprocessing, weights_paths=()):
        if not members:
            raise EnsembleError("an ensemble needs at least one member model")
        self.members, self.postprocessing, self.weights_paths = list(members), postprocessing, list(weights_paths)

    @property
    def config(self):
        return self.members[0].config

    @property
    def weights_path(self):
        return ", ".join(self.weights_paths)


def load_ensemble(folder, description, config, *, images_per_gpu=None):
    """The :class:`Ensemble` a description names: its ``members`` read relative to ``folder``.

    Every member is an inference model of ``config`` whose in-graph ``DETECTION_MIN_CONFIDENCE``
    is the description's (``loading.load_detector``'s rule).

    Raises
    ------
    FileNotFoundError
        A member checkpoint that is not there (named, with the description).
    """
    from pathlib import Path

    from ..mrcnn import model as modellib
    from .loading import in_graph_settings, inference_config

    folder = Path(folder)
    paths = [folder / member for member in description.members]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputFileNotFoundError(f"{folder / 'postprocessing.json'}: ensemble member checkpoint(s) not found: "
                                     f"{', '.join(missing)}")
    member_config = inference_config(config, **in_graph_settings(config, description, images_per_gpu))
    members = []
    for path in paths:
        model = modellib.MaskRCNN(mode="inference", config=member_config, model_dir=str(path.parent.parent))
        model.load_weights(str(path), by_name=True, require_complete=True)  # as load_detector: every layer
        model.postprocessing, model.weights_path = description, str(path)
        members.append(model)
    return Ensemble(members, description, [str(p) for p in paths])
