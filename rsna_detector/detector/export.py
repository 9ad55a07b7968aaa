"""A trained detector exported in several formats at once, each file checked against ``detect()``.

:func:`export_detector` is what ``rsna-detector export`` runs. Into ``out_dir`` it writes::

    <version>/          SavedModel for TensorFlow Serving (signatures serving_default, serving_nhwc)
    tflite/detector_float32.tflite, detector_float16.tflite, detector_dynamic_range.tflite
    onnx/detector.onnx  (the [export] extra)
    export.json         what was written: formats, files and sizes, the threshold and where it came
                        from, and the check of each file

The check ("verify"): a probe batch of two synthetic chest images at the model's
input size (no resize, so every format's arithmetic is exact there) goes through
``detect()`` and through each exported file; the SavedModel, the float32 TFLite
file and the ONNX file must give the same detection count, boxes within 1 pixel,
scores within 1e-4 and masks with IoU above 0.99, else :class:`ExportError` names the
format and the difference. The quantised TFLite files are run and their
differences reported, not required (quantisation changes the scores by design;
docs/PERFORMANCE.md gives their accuracy).

Importing this module imports no TensorFlow (the CLI reads :data:`FORMATS` to build its parser).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from .._io import write_json

__all__ = ["FORMATS", "DEFAULT_FORMATS", "SUMMARY_FILE", "export_detector", "probe_batch", "compare_results",
           "steps_not_exported"]

#: Format name -> the TFLite quantisation it writes (None: not a TFLite format).
_TFLITE = {"tflite": "float32", "tflite-float16": "float16", "tflite-dynamic-range": "dynamic_range"}
FORMATS = ("saved_model", "tflite", "tflite-float16", "tflite-dynamic-range", "onnx")
DEFAULT_FORMATS = ("saved_model", "tflite")
SUMMARY_FILE = "export.json"
#: Formats that must equal detect() on the probe (the quantised ones are only reported).
_EXACT_FORMATS = ("saved_model", "tflite", "onnx")


def steps_not_exported(postprocessing):
    """The stored post-processing steps an exported graph does not run, as short phrases (list of str).

    The export carries the threshold only: flip TTA, scale TTA, box scaling and a classifier
    gate are done by ``detect()``'s pipeline (``postprocess.detect``), not in the graph.
    """
    steps = []
    if postprocessing.flip_tta:
        steps.append("flip TTA")
    if tuple(postprocessing.scales) != (1.0,):
        steps.append("scale TTA " + "/".join(f"{scale:g}" for scale in postprocessing.scales))
    if postprocessing.box_scale != 1.0:
        steps.append(f"box scale {postprocessing.box_scale:g}")
    if postprocessing.gate_threshold is not None:
        steps.append(f"classifier gate {postprocessing.gate_threshold:g}")
    return steps


def probe_batch(config, count=2, seed=0):
    """``count`` synthetic chest images (uint8 ``[count, S, S]``, S = ``IMAGE_MAX_DIM``) with opacities."""
    from ..data.synthetic_image import sample_chest_geometry, sample_opacity_boxes, synthetic_chest_image

    rng = np.random.default_rng(seed)
    size = int(config.IMAGE_MAX_DIM)
    images = []
    for _ in range(count):
        geometry = sample_chest_geometry(rng, size)
        images.append(synthetic_chest_image(rng, sample_opacity_boxes(rng, geometry, 2), size, geometry=geometry))
    return np.stack(images).astype(np.uint8)


def _mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare_results(expected, got):
    """The worst differences between two lists of ``detect()`` results.

    Returns
    -------
    dict
        ``count_mismatches`` (images whose detection counts or class ids differ),
        ``max_box_difference`` (pixels), ``max_score_difference``, ``min_mask_iou``
        (1.0 without masks), ``detections`` (``detect()``'s total).
    """
    worst = {"count_mismatches": 0, "max_box_difference": 0, "max_score_difference": 0.0, "min_mask_iou": 1.0,
             "detections": 0}
    for reference, result in zip(expected, got, strict=True):
        worst["detections"] += len(reference["rois"])
        if len(result["rois"]) != len(reference["rois"]) or \
                not np.array_equal(result["class_ids"], reference["class_ids"]):
            worst["count_mismatches"] += 1
            continue
        if not len(reference["rois"]):
            continue
        worst["max_box_difference"] = max(worst["max_box_difference"],
                                          int(np.abs(result["rois"].astype(int) - reference["rois"]).max()))
        worst["max_score_difference"] = max(worst["max_score_difference"],
                                            float(np.abs(result["scores"] - reference["scores"]).max()))
        if "masks" in result:
            for k in range(len(reference["rois"])):
                worst["min_mask_iou"] = min(worst["min_mask_iou"],
                                            _mask_iou(result["masks"][..., k], reference["masks"][..., k]))
    return worst


def _within_bar(worst):
    return (worst["count_mismatches"] == 0 and worst["max_box_difference"] <= 1
            and worst["max_score_difference"] <= 1e-4 and worst["min_mask_iou"] > 0.99)


def _reference_model(model, min_confidence):
    """``model``, or an inference model with the same weights and ``DETECTION_MIN_CONFIDENCE = min_confidence``."""
    if min_confidence == model.config.DETECTION_MIN_CONFIDENCE:
        return model
    from ..mrcnn.model import MaskRCNN

    config = copy.copy(model.config)
    config.DETECTION_MIN_CONFIDENCE = min_confidence
    reference = MaskRCNN(mode="inference", config=config, model_dir=model.model_dir)
    reference.keras_model.set_weights(model.keras_model.get_weights())
    return reference


def _folder_bytes(path):
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _check_formats(formats):
    from ..mrcnn.export import ExportError

    formats = list(dict.fromkeys(FORMATS if "all" in formats else formats))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"export: formats: expected some of {FORMATS} (or 'all'), got {list(formats)}")
    return formats


def _write_formats(model, out_dir, formats, version, min_confidence, masks, replace):
    """``{format: path}`` of the files written."""
    from ..mrcnn.export import export_onnx, export_saved_model, export_tflite
    from ..mrcnn.export.onnx_model import ONNX_FILE_NAME

    written = {}
    if "saved_model" in formats:
        written["saved_model"] = export_saved_model(model, out_dir, version=version, min_confidence=min_confidence,
                                                    masks=masks, replace=replace)
    quantizations = [_TFLITE[name] for name in formats if name in _TFLITE]
    if quantizations:
        files = export_tflite(model, out_dir / "tflite", quantizations=quantizations, min_confidence=min_confidence,
                              masks=masks)
        written.update({name: files[_TFLITE[name]] for name in formats if name in _TFLITE})
    if "onnx" in formats:
        written["onnx"] = export_onnx(model, out_dir / "onnx" / ONNX_FILE_NAME, min_confidence=min_confidence,
                                      masks=masks)
    return written


def _runner(name, path):
    from ..mrcnn.export import OnnxDetector, SavedModelDetector, TFLiteDetector

    if name == "saved_model":
        return SavedModelDetector(path)
    return OnnxDetector(path) if name == "onnx" else TFLiteDetector(path)


def _verify(model, written, min_confidence):
    """Each written file against ``detect()`` on :func:`probe_batch`; raises for an exact format off the bar."""
    from ..mrcnn.export import ExportError

    probe = probe_batch(model.config)
    expected = _reference_model(model, min_confidence).detect(list(probe))
    checks = {name: compare_results(expected, _runner(name, path).detect(probe)) for name, path in written.items()}
    failed = {name: worst for name, worst in checks.items() if name in _EXACT_FORMATS and not _within_bar(worst)}
    if failed:
        raise ExportError(f"export: the exported model differs from detect() on the probe images: {failed} (the bar: "
                          "same counts, boxes within 1 px, scores within 1e-4, mask IoU above 0.99)")
    return checks


def export_detector(model, out_dir, *, formats=DEFAULT_FORMATS, version=1, min_confidence=None, masks=True,
                    replace=False, verify=True, threshold_source=None, steps_not_exported=()):
    """Export ``model`` into ``out_dir`` in the given formats, check each file, write ``export.json``.

    Parameters
    ----------
    model : MaskRCNN
        In inference mode, with its trained weights.
    out_dir : str or Path
    formats : sequence of str
        Some of :data:`FORMATS`, or ``['all']``.
    version, min_confidence, masks, replace
        As ``mrcnn.export.export_saved_model``.
    verify : bool
        Check each file against ``detect()`` on :func:`probe_batch` (module docstring).
    threshold_source : str, optional
        Where ``min_confidence`` came from, recorded in ``export.json``.
    steps_not_exported : sequence of str
        Stored post-processing steps the graph does not run (:func:`steps_not_exported`),
        recorded in ``export.json`` so that whoever serves the files knows.

    Returns
    -------
    dict
        The summary written to ``out_dir/export.json``.

    Raises
    ------
    ExportError
        Bad formats or settings, a failed conversion (the ops named), a failed check.
    """
    from ..mrcnn.export.serving import resolve_min_confidence

    formats = _check_formats(formats)
    threshold = resolve_min_confidence(model.config, min_confidence)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = _write_formats(model, out_dir, formats, version, threshold, masks, replace)
    checks = _verify(model, written, threshold) if verify else {}
    summary = {
        "min_confidence": threshold,
        "threshold_source": threshold_source or ("argument" if min_confidence is not None else "config"),
        "training_min_confidence": float(model.config.DETECTION_MIN_CONFIDENCE),
        "masks": bool(masks),
        "steps_not_exported": list(steps_not_exported),
        "formats": {name: {"path": str(path), "bytes": _folder_bytes(path), "check": checks.get(name)}
                    for name, path in written.items()},
    }
    write_json(out_dir / SUMMARY_FILE, summary)
    return summary
