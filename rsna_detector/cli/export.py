"""The ``export`` command: a trained checkpoint as a SavedModel (TF Serving), TFLite and ONNX files.

The config comes from ``--config`` or ``--preset``, else from the checkpoint itself
(training writes its config into every checkpoint). ``--threshold auto`` reads the
validated threshold stored beside the checkpoint (``postprocessing.json``'s
``min_confidence``), else the config's ``DETECTION_MIN_CONFIDENCE``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .usage import CommandLineError

__all__ = ["register", "POSTPROCESSING_FILE"]

#: The run's stored post-processing, beside its checkpoints (its ``min_confidence`` is the export's default).
POSTPROCESSING_FILE = "postprocessing.json"


def _threshold_argument(text):
    import argparse

    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number in [0, 1], got {text!r}")
    return value


def stored_min_confidence(checkpoint):
    """``min_confidence`` of ``postprocessing.json`` beside ``checkpoint``; None when there is no such file.

    Raises
    ------
    CommandLineError
        When the file exists but holds no number ``min_confidence`` in [0, 1].
    """
    path = Path(checkpoint).parent / POSTPROCESSING_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get("min_confidence")
    except (json.JSONDecodeError, AttributeError) as error:
        raise CommandLineError(f"{path}: expected a JSON object with 'min_confidence' ({error})") from error
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise CommandLineError(f"{path}: min_confidence: expected a number in [0, 1], got {value!r}")
    return float(value)


def checkpoint_config(checkpoint):
    """The config stored in a checkpoint written by training (the HDF5 root attribute ``config``)."""
    import h5py

    from ..mrcnn.config import Config

    with h5py.File(checkpoint, "r") as handle:
        stored = handle.attrs.get("config")
    if stored is None:
        raise CommandLineError(f"{checkpoint}: the file holds no config (not written by this library's training): "
                               "give --config or --preset")
    return Config.from_dict(json.loads(stored.decode() if isinstance(stored, bytes) else stored))


def _cmd_export(args):
    from ..detector.export import export_detector
    from .detector import _inference_model

    config = None if (args.config or args.preset) else checkpoint_config(args.model)
    model = _inference_model(args.model, args.config, args.preset or "full", config=config)
    source, threshold = "--threshold", args.threshold
    if threshold == "auto":
        threshold = stored_min_confidence(args.model)
        source = POSTPROCESSING_FILE if threshold is not None else "config"
    summary = export_detector(model, args.out, formats=args.formats, version=args.version, min_confidence=threshold,
                              masks=not args.no_masks, replace=args.replace, verify=not args.no_verify,
                              threshold_source=source)
    print(f"exported with min_confidence {summary['min_confidence']} (from {summary['threshold_source']}) to "
          f"{args.out}:")
    for name, entry in summary["formats"].items():
        check = entry["check"]
        checked = "" if check is None else (f"; vs detect(): max score difference {check['max_score_difference']:.2g},"
                                            f" max box difference {check['max_box_difference']} px")
        print(f"  {name}: {entry['path']} ({entry['bytes'] / 1e6:.1f} MB{checked})")
    return 0


def _add_export(sub):
    from ..detector.export import DEFAULT_FORMATS, FORMATS

    p = sub.add_parser("export", help="write a trained detector as a SavedModel (TF Serving), TFLite and ONNX",
                       description="Export a checkpoint with everything detect() does inside: the models take uint8 "
                                   "images of any size and give boxes in their pixels, scores, class ids and masks. "
                                   "Each file is checked against detect() on probe images. See docs/DEPLOY.md.")
    p.add_argument("--model", required=True, help="weights file (a checkpoint written by training)")
    p.add_argument("--out", required=True, help="output folder: OUT/<version>/ (SavedModel), OUT/tflite/, OUT/onnx/")
    p.add_argument("--config", default=None, help="config JSON (default: the config stored in the checkpoint)")
    p.add_argument("--preset", choices=["full", "cpu"], default=None,
                   help="DetectorConfig (full) or the CPU demo preset, instead of the checkpoint's config")
    p.add_argument("--threshold", type=_threshold_argument, default="auto",
                   help=f"minimum confidence: 'auto' (default: {POSTPROCESSING_FILE}'s min_confidence beside the "
                        "checkpoint, else the config's DETECTION_MIN_CONFIDENCE) or a number in [0, 1]")
    p.add_argument("--formats", nargs="+", choices=list(FORMATS) + ["all"], default=list(DEFAULT_FORMATS),
                   help=f"what to write (default: {' '.join(DEFAULT_FORMATS)}; onnx needs the [export] extra)")
    p.add_argument("--version", type=int, default=1, help="the SavedModel's version folder (default: 1)")
    p.add_argument("--no-masks", action="store_true", help="no mask output (smaller responses)")
    p.add_argument("--replace", action="store_true", help="replace an existing version folder")
    p.add_argument("--no-verify", action="store_true", help="skip the check of each file against detect()")
    p.set_defaults(func=_cmd_export)


def register(subparsers):
    """Register ``export`` on an argparse subparsers object."""
    _add_export(subparsers)
