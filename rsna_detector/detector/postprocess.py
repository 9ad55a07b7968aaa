"""Post-processing that travels with a model: one stored, versioned description and one pipeline.

What happens to a detector's output between ``MaskRCNN.detect`` and a score or a submission
(test-time augmentation, fusion of its views, the confidence threshold) is described by one
:class:`PostProcessing`. Training's validation callback (``detector.validation``) writes the
description of the best checkpoint as ``postprocessing.json`` in the run folder, beside the
checkpoints and ``run.json``; :func:`load_postprocessing` finds it again from a checkpoint file
or the run folder, and ``predict``, ``evaluate_detector``, the demo and the command line
(``--threshold auto``, the default) apply it. So what is submitted is what was validated.

The pipeline
------------
:func:`detect` runs it on a list of images; every caller (``predict``, ``collect_detections``,
the demo's pictures) goes through it:

1. **views** (:func:`views_of`, :func:`detect_views`): the detector runs on each view of an image,
   the image itself and, with ``flip_tta``, its mirror, at each of ``scales`` (1.0: as the model
   molds it; 0.8, 1.2: ``ensemble.detect_scaled``); each view's boxes (and masks) are mapped back
   into the image's frame; an ensemble (``ensemble.Ensemble``, its ``members`` named in the
   description) runs every view on every member;
2. **fusion** (:func:`fuse_views`): one view is kept as it is; one model's image and mirror are
   fused class by class (``fusion.fuse_flip_detections``); any other set of views (scales,
   members) by weighted boxes fusion (``ensemble.fuse_views_wbf``, IoU ``fusion_iou``); masks are
   dropped, boxes and scores kept;
3. **detection steps** (:data:`DETECTION_STEPS`, in order, each ``(Detections, PostProcessing) ->
   Detections``): the threshold (:func:`apply_threshold`: detections scoring below
   ``min_confidence`` are dropped), then the box scale (``ensemble.apply_box_scale``: every box
   scaled about its centre by ``box_scale``).

:func:`apply_postprocessing` is steps 2-3 on the views' detections of one image. Classifier gating
(``gate_threshold``) needs a classifier's score per image: ``baselines.gating.apply_stored_gate``
applies it after the pipeline (the command line does).

The in-graph threshold rule
---------------------------
The engine's ``DetectionLayer`` drops detections scoring below the config's
``DETECTION_MIN_CONFIDENCE`` inside the graph, so a threshold below it cannot be applied
afterwards. Therefore:

* validation and every threshold sweep run the detector with ``DETECTION_MIN_CONFIDENCE``
  lowered to the sweep's lowest threshold (``min(config's, lowest)``: 0.5 with the default sweep
  ``competition.DEFAULT_SWEEP``), and the threshold they choose is applied after detection;
  the description records that in-graph value as ``detection_min_confidence``;
* a model that applies a stored description runs with ``DETECTION_MIN_CONFIDENCE`` equal to
  :meth:`PostProcessing.detection_threshold` (the recorded ``detection_min_confidence``;
  ``detector.loading.load_detector`` builds it so), and :func:`check_model` refuses a model whose
  in-graph threshold is above ``min_confidence``.

Why the recorded value and not simply "anything <= ``min_confidence``": without flip TTA both
give the same detections at or above ``min_confidence`` (the per-class greedy NMS and the top
``DETECTION_MAX_INSTANCES`` never let a lower score displace a higher one; tested), but with flip
TTA a box seen in one view only keeps half its score, so what the other view let through the
graph changes the fused scores: only the validated in-graph value reproduces them.

Boxes are engine boxes ``(y1, x1, y2, x2)`` in pixels of the image given to :func:`detect`
(``y2``/``x2`` exclusive), float32.
"""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RsnaDetectorError, RsnaDetectorWarning
from .ensemble import apply_box_scale
from .fusion import fuse_flip_detections, mirror_boxes

__all__ = [
    "POSTPROCESSING_FILE",
    "POSTPROCESSING_VERSION",
    "PostProcessingError",
    "PostProcessingWarning",
    "PostProcessing",
    "Detections",
    "postprocessing_path",
    "load_postprocessing",
    "check_model",
    "detect",
    "detect_views",
    "views_of",
    "apply_postprocessing",
    "fuse_views",
    "fuse_class_by_class",
    "apply_threshold",
    "apply_box_scale",  # ensemble's, a step of the pipeline
    "DETECTION_STEPS",
]

#: The description's file name, in the run folder beside the checkpoints.
POSTPROCESSING_FILE = "postprocessing.json"
#: The newest version of the description this library reads and writes.
POSTPROCESSING_VERSION = 1


class PostProcessingError(RsnaDetectorError, ValueError):
    """A post-processing description that cannot be read or applied; the message names the file and field."""


class PostProcessingWarning(RsnaDetectorWarning):
    """A description applied where it was not validated (another checkpoint, another in-graph threshold)."""


# --------------------------------------------------------------------------- the description
@dataclass(frozen=True)
class PostProcessing:
    """What is done to a detector's output before it is scored or submitted (version 1).

    Attributes
    ----------
    version : int
        The description's format; :data:`POSTPROCESSING_VERSION` (1).
    min_confidence : float or None
        Detections scoring below it are dropped after fusion; None keeps every detection the
        model returns (its in-graph ``DETECTION_MIN_CONFIDENCE`` decides).
    flip_tta : bool
        Also detect on the horizontally mirrored image and fuse both views.
    flip_iou : float
        IoU at or above which a box and a mirrored box are fused (:func:`fuse_flip_detections`).
    detection_min_confidence : float or None
        The in-graph ``DETECTION_MIN_CONFIDENCE`` the detector ran with when this was validated;
        a model applying it runs with the same (module docstring). None: not recorded.
    validation : dict or None
        Where it comes from, for people and checks: ``checkpoint`` (file name), ``epoch``,
        ``metric`` and its ``value``, ``images`` validated, ``best_rsna_score``, ...
    scales, fusion_iou, box_scale, members, gate_threshold, gate_classifier
        Ensembles and more TTA (``ensemble.check_ensemble_fields`` checks them; their defaults do
        nothing): the view scales ((1.0,): the image as molded); the IoU above which weighted boxes
        fusion joins boxes of several views or members (0.55); every kept box scaled about its
        centre by ``box_scale`` (1.0); an ensemble's checkpoints, relative to the description's
        folder (none: the model beside it); classifier gating: an image whose classifier
        (``gate_classifier``, a ``.keras`` file relative to the folder) scores below
        ``gate_threshold`` keeps no box (None: no gate).

    Notes
    -----
    Extending it (classifier gating, scale TTA, an ensemble's members and fusion, box scaling):
    a new field with a default that means "not done" keeps every older file readable and its
    meaning unchanged; older libraries refuse the newer files by the unknown field's name.
    Bump :data:`POSTPROCESSING_VERSION` (and read the older versions in :meth:`from_dict`)
    only when an existing field changes meaning.
    """

    version: int = POSTPROCESSING_VERSION
    min_confidence: float | None = None
    flip_tta: bool = False
    flip_iou: float = 0.5
    detection_min_confidence: float | None = None
    validation: dict | None = field(default=None, compare=False)
    scales: tuple = (1.0,)
    fusion_iou: float = 0.55
    box_scale: float = 1.0
    members: tuple = ()
    gate_threshold: float | None = None
    gate_classifier: str | None = None

    def __post_init__(self):
        from .ensemble import check_ensemble_fields

        _check_fields(self)
        for name, value in check_ensemble_fields(self, PostProcessingError).items():
            object.__setattr__(self, name, value)
        for name in ("min_confidence", "flip_iou", "detection_min_confidence"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    def replace(self, **changes):
        """A copy with ``changes`` (field name -> value), checked."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The description as JSON-ready values (every field, ``version`` first)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values, source="post-processing"):
        """A description from :meth:`to_dict`'s values.

        Parameters
        ----------
        values : dict
        source : str
            Named in error messages (the file read).

        Raises
        ------
        PostProcessingError
            Not a JSON object; no ``version`` or one this library does not know (a newer
            library's file says so); a field this version does not have (named, with the known
            ones); a value of the wrong type or range (named).
        """
        if not isinstance(values, dict):
            raise PostProcessingError(f"{source}: expected a JSON object of post-processing settings, "
                                      f"got {type(values).__name__}")
        version = values.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise PostProcessingError(f"{source}: version: expected a whole number (this library writes "
                                      f"{POSTPROCESSING_VERSION}), got {version!r}")
        if version > POSTPROCESSING_VERSION:
            raise PostProcessingError(
                f"{source}: version {version} was written by a newer rsna_detector; this one reads versions up "
                f"to {POSTPROCESSING_VERSION}: upgrade rsna_detector to apply it")
        if version < 1:
            raise PostProcessingError(f"{source}: version: expected 1 to {POSTPROCESSING_VERSION}, got {version}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [str(key) for key in values if key not in known]
        if unknown:
            raise PostProcessingError(
                f"{source}: field(s) {', '.join(map(repr, unknown))} unknown to version {version} descriptions "
                f"(fields: {', '.join(known)}); a file written by a newer rsna_detector needs that version")
        try:
            return cls(**values)
        except PostProcessingError as error:
            raise PostProcessingError(f"{source}: {error}") from error

    def save(self, path):
        """Write the description as JSON, atomically (``_io.write_json``); returns the path."""
        from .._io import write_json

        path = Path(path)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path):
        """Read a description written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
        PostProcessingError
            Not JSON, or not a description this library can apply (the file and field are named).
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8", errors="replace")  # FileNotFoundError names the path
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise PostProcessingError(f"{path}: not a post-processing description (invalid JSON: {error})") from error
        return cls.from_dict(values, source=str(path))

    def detection_threshold(self, config):
        """The in-graph ``DETECTION_MIN_CONFIDENCE`` a model applying this description must run with.

        The recorded ``detection_min_confidence`` when there is one, else the config's
        ``DETECTION_MIN_CONFIDENCE``; lowered to ``min_confidence`` when that is below it (so the
        threshold can be applied).
        """
        recorded = self.detection_min_confidence
        in_graph = float(config.DETECTION_MIN_CONFIDENCE if recorded is None else recorded)
        return in_graph if self.min_confidence is None else min(in_graph, float(self.min_confidence))

    def describe(self):
        """One line for people: the threshold, TTA, ensemble settings and in-graph threshold."""
        from .ensemble import describe_ensemble_fields

        threshold = "every detection" if self.min_confidence is None else f"threshold {self.min_confidence:g}"
        parts = [threshold, "flip TTA" if self.flip_tta else "no TTA"] + describe_ensemble_fields(self)
        if self.detection_min_confidence is not None:
            parts.append(f"in-graph DETECTION_MIN_CONFIDENCE {self.detection_min_confidence:g}")
        return ", ".join(parts)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _probability(value, name, *, allow_none=True, low_open=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise PostProcessingError(f"{name}: expected a number in {interval}{' or null' if allow_none else ''}, "
                                  f"got {value!r}")


def _check_fields(description):
    """Check every field's type and range (the message names the field)."""
    if isinstance(description.version, bool) or description.version != POSTPROCESSING_VERSION:
        raise PostProcessingError(f"version: this library writes version {POSTPROCESSING_VERSION}, "
                                  f"got {description.version!r}")
    _probability(description.min_confidence, "min_confidence")
    _probability(description.detection_min_confidence, "detection_min_confidence")
    _probability(description.flip_iou, "flip_iou", allow_none=False, low_open=True)
    if not isinstance(description.flip_tta, bool):
        raise PostProcessingError(f"flip_tta: expected true or false, got {description.flip_tta!r}")
    if description.validation is not None and not isinstance(description.validation, dict):
        raise PostProcessingError(f"validation: expected an object or null, got {description.validation!r}")


def postprocessing_path(model_path):
    """Where the description of a checkpoint file, a run folder or the file itself is.

    Returns
    -------
    Path
        ``<run folder>/postprocessing.json`` (the checkpoint's folder for a file).
    """
    path = Path(model_path)
    if path.name == POSTPROCESSING_FILE:
        return path
    return (path if path.is_dir() else path.parent) / POSTPROCESSING_FILE


def load_postprocessing(model_path):
    """The stored description of a checkpoint or run folder, or None when none is stored.

    Parameters
    ----------
    model_path : str or Path
        A checkpoint (``<run folder>/mask_rcnn_<name>_<epoch>.h5``), its run folder, or a
        ``postprocessing.json``.

    Returns
    -------
    PostProcessing or None

    Warns
    -----
    PostProcessingWarning
        When ``model_path`` is a checkpoint other than the one the description was validated on
        (both named): it is applied all the same, the run's validated settings being the best
        guess for its other epochs.

    Raises
    ------
    PostProcessingError
        A description that is there but cannot be read (never silently ignored).
    """
    path = postprocessing_path(model_path)
    if not path.is_file():
        return None
    description = PostProcessing.load(path)
    validated = (description.validation or {}).get("checkpoint")
    model_path = Path(model_path)
    if validated and model_path.suffix == ".h5" and model_path.name != validated:
        warnings.warn(f"{path}: validated on {validated}; applied to {model_path.name} "
                      f"({description.describe()})", PostProcessingWarning, stacklevel=2)
    return description


def check_model(model_or_config, postprocessing):
    """Refuse a model that cannot apply ``postprocessing``; warn where it would not reproduce it.

    Raises
    ------
    PostProcessingError
        The model's in-graph ``DETECTION_MIN_CONFIDENCE`` is above ``min_confidence``: the
        detections between the two are gone before the threshold could keep them.

    Warns
    -----
    PostProcessingWarning
        With flip TTA, an in-graph threshold other than the recorded one (fused scores differ).
    """
    config = getattr(model_or_config, "config", model_or_config)
    if getattr(config, "DETECTION_MIN_CONFIDENCE", None) is None:
        return  # a detector without a config (a stand-in): nothing to check
    in_graph = float(config.DETECTION_MIN_CONFIDENCE)
    wanted = postprocessing.min_confidence
    if wanted is not None and in_graph > wanted + 1e-12:
        raise PostProcessingError(
            f"threshold {wanted:g} cannot be applied: the model drops detections below its "
            f"DETECTION_MIN_CONFIDENCE {in_graph:g} inside the graph; build it with DETECTION_MIN_CONFIDENCE = "
            f"{postprocessing.detection_threshold(config):g} (detector.loading.load_detector does)")
    recorded = postprocessing.detection_min_confidence
    if postprocessing.flip_tta and recorded is not None and abs(in_graph - recorded) > 1e-12:
        warnings.warn(f"flip TTA validated with DETECTION_MIN_CONFIDENCE {recorded:g}, applied with {in_graph:g}: "
                      "the fused scores of boxes seen in one view differ", PostProcessingWarning, stacklevel=2)


# --------------------------------------------------------------------------- detections
@dataclass
class Detections:
    """The detections of one image.

    Attributes
    ----------
    boxes : float32 [N, (y1, x1, y2, x2)]
        Pixels of the image detected on.
    scores : float32 [N]
    class_ids : int32 [N]
    masks : bool [H, W, N] or None
        None once views are fused (fusion keeps boxes and scores only).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: np.ndarray | None = None

    @classmethod
    def from_result(cls, result):
        """From one of ``MaskRCNN.detect``'s dicts (``rois``, ``scores``, ``class_ids``, ``masks``)."""
        return cls(np.asarray(result["rois"], np.float32).reshape(-1, 4),
                   np.asarray(result["scores"], np.float32).reshape(-1),
                   np.asarray(result["class_ids"], np.int32).reshape(-1),
                   None if result.get("masks") is None else np.asarray(result["masks"], bool))

    def select(self, keep):
        """The detections at ``keep`` (a boolean mask or indices), in that order."""
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep],
                          None if self.masks is None else self.masks[..., keep])


class _View:
    """One view of an image: how the image is made from the original, how the detector runs, how boxes go back."""

    def __init__(self, name, image, back, run=None):
        self.name, self.image, self._back = name, image, back
        self.run = run  # None: model.detect (_run_detector)

    def back(self, detections, shape):
        """``detections`` of the view in the original image's frame (``shape`` [H, W, ...])."""
        return self._back(detections, shape)


def _identity_back(detections, shape):
    return detections


def _mirror_back(detections, shape):
    masks = None if detections.masks is None else detections.masks[:, ::-1, :]
    return Detections(mirror_boxes(detections.boxes, shape[1]), detections.scores, detections.class_ids, masks)


_IMAGE_VIEW = _View("image", lambda image: image, _identity_back)
_MIRROR_VIEW = _View("mirror", lambda image: np.ascontiguousarray(np.asarray(image)[:, ::-1]), _mirror_back)


def views_of(postprocessing):
    """The views the detector runs on: per scale, the image, and its mirror with ``flip_tta``."""
    from .ensemble import scaled_views

    views = []
    for scale in postprocessing.scales:
        plain, mirror = (_IMAGE_VIEW, _MIRROR_VIEW) if scale == 1.0 else scaled_views(scale, _View, _mirror_back)
        views += [plain, mirror] if postprocessing.flip_tta else [plain]
    return tuple(views)


def _run_detector(model, images):
    """``model.detect`` on ``images``, the last batch padded with repeats to the model's BATCH_SIZE."""
    batch_size = int(getattr(getattr(model, "config", None), "BATCH_SIZE", 1))
    padded = list(images) + [images[-1]] * (-len(images) % batch_size)
    return model.detect(padded, verbose=0)[:len(images)]


def detect(model, images, postprocessing=None):
    """Detect on ``images`` through the whole pipeline (module docstring).

    Parameters
    ----------
    model : MaskRCNN in inference mode
        Its in-graph threshold is checked against ``postprocessing`` (:func:`check_model`).
    images : list of uint8 [H, W, 3]
    postprocessing : PostProcessing, optional
        Default ``PostProcessing()``: one view, every detection the model returns.

    Returns
    -------
    list of Detections
        One per image, boxes in that image's pixels, by descending score after fusion.
    """
    postprocessing = postprocessing or PostProcessing()
    images = list(images)
    if not images:
        return []
    check_model(model, postprocessing)
    return [apply_postprocessing(views, postprocessing) for views in detect_views(model, images, postprocessing)]


def detect_views(model, images, postprocessing):
    """Step 1 alone: ``[image][view]`` Detections in each image's frame, every view of :func:`views_of` for
    every member of an ``ensemble.Ensemble`` (member by member), or of ``model`` itself."""
    per_view = []
    for member in getattr(model, "members", None) or [model]:
        for view in views_of(postprocessing):
            results = (view.run or _run_detector)(member, [view.image(image) for image in images])
            per_view.append([view.back(Detections.from_result(r), np.shape(image))
                             for r, image in zip(results, images, strict=True)])
    return [list(views) for views in zip(*per_view, strict=True)]


def apply_postprocessing(views, postprocessing):
    """Steps 2-3 of the pipeline: fuse the views' detections of one image, then each detection step.

    Parameters
    ----------
    views : list of Detections
        One per view of :func:`views_of`, in that order, in the image's frame.
    postprocessing : PostProcessing

    Returns
    -------
    Detections
    """
    detections = fuse_views(views, postprocessing)
    for step in DETECTION_STEPS:
        detections = step(detections, postprocessing)
    return detections


def fuse_views(views, postprocessing):
    """One view: itself. One model's image and mirror: :func:`fuse_flip_detections`, class by class. Any
    other set (scales, ensemble members): weighted boxes fusion (``ensemble.fuse_views_wbf``)."""
    if len(views) == 1:
        return views[0]
    if len(views) != 2 or postprocessing.scales != (1.0,) or not postprocessing.flip_tta:
        from .ensemble import fuse_views_wbf

        return fuse_views_wbf(views, postprocessing.fusion_iou)
    return fuse_class_by_class(views, lambda sets: fuse_flip_detections(
        *sets[0], *sets[1], iou_threshold=postprocessing.flip_iou))


def fuse_class_by_class(views, fuse):
    """The views' detections fused class by class, by descending score, without masks.

    ``fuse`` takes one ``(boxes [N, 4], scores [N])`` per view (one class's detections) and returns
    the fused ``(boxes, scores)``.
    """
    boxes, scores, class_ids = [], [], []
    for class_id in np.unique(np.concatenate([view.class_ids for view in views])):
        fused_boxes, fused_scores = fuse([(view.boxes[view.class_ids == class_id],
                                           view.scores[view.class_ids == class_id]) for view in views])
        boxes.append(fused_boxes)
        scores.append(fused_scores)
        class_ids.append(np.full(len(fused_scores), class_id, np.int32))
    if not boxes:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
    fused = Detections(np.concatenate(boxes), np.concatenate(scores), np.concatenate(class_ids))
    return fused.select(np.argsort(-fused.scores, kind="stable"))


def apply_threshold(detections, postprocessing):
    """Keep the detections scoring at least ``min_confidence`` (all when it is None)."""
    if postprocessing.min_confidence is None:
        return detections
    return detections.select(detections.scores >= postprocessing.min_confidence)


#: The steps after fusion, in order; each ``(Detections, PostProcessing) -> Detections``.
DETECTION_STEPS = (apply_threshold, apply_box_scale)
