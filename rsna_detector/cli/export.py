"""The ``export`` command: a trained checkpoint as a SavedModel (TF Serving), TFLite and ONNX files.

``--model`` is a checkpoint or a run folder (its validated best checkpoint, as for ``predict``).
The config comes from ``--config`` or ``--preset``, else from the checkpoint itself
(training writes its config into every checkpoint). ``--threshold auto`` takes the threshold
validated in training (the run's ``postprocessing.json``), else the config's
``DETECTION_MIN_CONFIDENCE``; a number overrides. The exported graph runs one model at one scale:
stored steps it cannot run (flip or scale TTA, box scaling, a classifier gate) are named on the
console and in ``export.json``; an ensemble folder is refused (export each member).
"""
from __future__ import annotations

import json
from pathlib import Path

from .detector import threshold_argument
from .usage import CommandLineError

__all__ = ["register", "checkpoint_config"]


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
    from ..detector.config import load_config
    from ..detector.export import export_detector, steps_not_exported
    from ..detector.loading import resolve_checkpoint, resolve_postprocessing
    from ..detector.postprocess import load_postprocessing, postprocessing_path
    from ..mrcnn import model as modellib

    stored = load_postprocessing(args.model) if Path(args.model).is_dir() else None
    if stored is not None and stored.members:
        raise CommandLineError(f"{args.model}: an ensemble of {len(stored.members)} models; the export holds one "
                               "model: export each member's run folder")
    checkpoint = resolve_checkpoint(args.model)
    config = load_config(args.config, args.preset or "full") if (args.config or args.preset) \
        else checkpoint_config(checkpoint)
    postprocessing = resolve_postprocessing(checkpoint, config, threshold=args.threshold)
    model = modellib.MaskRCNN(mode="inference", config=config, model_dir=str(checkpoint.parent))
    model.load_weights(str(checkpoint), by_name=True, require_complete=True)
    if args.threshold != "auto":
        source = "--threshold"
    else:
        source = postprocessing_path(checkpoint).name if postprocessing.min_confidence is not None else "config"
    omitted = steps_not_exported(postprocessing)
    if omitted:
        print(f"export: the stored post-processing's {', '.join(omitted)} are not in the exported graph "
              "(its threshold is); apply them around it or predict with this library")
    summary = export_detector(model, args.out, formats=args.formats, version=args.version,
                              min_confidence=postprocessing.min_confidence, masks=not args.no_masks,
                              replace=args.replace, verify=not args.no_verify, threshold_source=source,
                              steps_not_exported=omitted)
    print(f"exported {checkpoint.name} with min_confidence {summary['min_confidence']} "
          f"(from {summary['threshold_source']}) to {args.out}:")
    for name, entry in summary["formats"].items():
        check = entry["check"]
        if check is None:
            checked = ""
        elif check["detections"] == 0:
            checked = (f"; ran, but detect() found nothing above {summary['min_confidence']} on the probe images: "
                       "nothing compared, check it on your own images")
        else:
            checked = (f"; vs detect() on {check['detections']} detections: max score difference "
                       f"{check['max_score_difference']:.2g}, max box difference {check['max_box_difference']} px")
        print(f"  {name}: {entry['path']} ({entry['bytes'] / 1e6:.1f} MB{checked})")
    return 0


def _add_export(sub):
    from ..detector.export import DEFAULT_FORMATS, FORMATS

    p = sub.add_parser("export", help="write a trained detector as a SavedModel (TF Serving), TFLite and ONNX",
                       description="Export a checkpoint with everything detect() does inside: the models take uint8 "
                                   "images of any size and give boxes in their pixels, scores, class ids and masks. "
                                   "Each file is checked against detect() on probe images. See docs/DEPLOY.md.")
    p.add_argument("--model", required=True,
                   help="a checkpoint written by training, or its run folder (the validated best checkpoint)")
    p.add_argument("--out", required=True, help="output folder: OUT/<version>/ (SavedModel), OUT/tflite/, OUT/onnx/")
    p.add_argument("--config", default=None, help="config JSON (default: the config stored in the checkpoint)")
    p.add_argument("--preset", choices=["full", "cpu"], default=None,
                   help="DetectorConfig (full) or the CPU demo preset, instead of the checkpoint's config")
    p.add_argument("--threshold", type=threshold_argument, default="auto",
                   help="minimum confidence: 'auto' (default: the threshold validated in training, stored in the "
                        "run's postprocessing.json, else the config's DETECTION_MIN_CONFIDENCE) or a number in [0, 1]")
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
