"""The detector's commands: ``demo``, ``train``, ``evaluate``, ``predict`` and ``submit``.

Each command parses its arguments and calls one library function; the library
(imported when the command runs, so that ``--help`` does not load TensorFlow)
does the work.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data.splits import DEFAULT_SPLIT_SEED
from .usage import CommandLineError

__all__ = ["register"]


def _load_config(args, default_preset="full"):
    from ..detector.config import CPUDemoConfig, DetectorConfig

    preset = getattr(args, "preset", None) or default_preset
    return CPUDemoConfig() if preset == "cpu" else DetectorConfig()


def _inference_model(model_path, config_json=None, preset="full"):
    from ..detector.config import CPUDemoConfig, DetectorConfig
    from ..mrcnn import model as modellib
    from ..mrcnn.config import Config

    if config_json:
        config = Config.from_json(config_json)
    else:
        config = CPUDemoConfig() if preset == "cpu" else DetectorConfig()
    model = modellib.MaskRCNN(mode="inference", config=config, model_dir=str(Path(model_path).parent))
    model.load_weights(str(model_path), by_name=True)
    return model


def _cmd_demo(args):
    from ..detector.demo import run_demo

    run_demo(args.out, args.data, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
             seed=args.seed, progress=not args.quiet, steps_per_epoch=args.steps_per_epoch, weights=args.weights)
    return 0  # run_demo printed the results table and where the outputs are


def _cmd_train(args):
    from ..detector.schedule import train
    from ..mrcnn.training import training_strategy

    config = _load_config(args)
    training_strategy(config)  # with TF_CONFIG, the multi-worker strategy must exist before any TF operation
    if args.steps_per_epoch is not None:
        config.STEPS_PER_EPOCH = args.steps_per_epoch
    result = train(args.data, config, weights=None if args.weights == "none" else args.weights,
                   model_dir=args.model_dir, epochs=args.epochs, augmentation=args.augmentation,
                   val_fraction=args.val_fraction, val_count=args.val_count, seed=args.seed,
                   resume=args.resume, folds=args.folds)
    if args.folds:
        print(f"{args.folds} fold models in {args.model_dir} (fold_1 ... fold_{args.folds}); out-of-fold "
              f"predictions in {result.oof_path}")
        return 0
    model, _ = result
    print(f"training finished at epoch {model.epoch}; checkpoints in {model.log_dir}")
    return 0


def _cmd_evaluate(args):
    from ..detector.dataset import DetectorDataset
    from ..detector.evaluate import evaluate_detector

    model = _inference_model(args.model, args.config, args.preset)
    _, val_ds = DetectorDataset.split_from_data_dir(args.data, image_size=model.config.IMAGE_MAX_DIM,
                                                    val_fraction=args.val_fraction, val_count=args.val_count,
                                                    seed=args.seed)
    metrics = evaluate_detector(model, val_ds, val_ds.image_ids, config=model.config, out_dir=args.out)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}, indent=2, default=str))
    return 0


def _cmd_predict(args):
    from ..detector.inference import predict
    from ..detector.submission import write_submission

    shard = getattr(args, "shard", None)
    out = args.out or (f"predictions-{shard[0]}-of-{shard[1]}.json" if shard else "predictions.json")
    model = _inference_model(args.model, args.config, args.preset)
    run = predict(model, args.images, flip_tta=args.flip_tta, min_confidence=args.min_confidence,
                  progress=not args.quiet, shard=shard)
    if args.command == "submit":
        _write_submission_cli(write_submission, run.predictions, args, out)
    else:
        run.write(out)  # a results file (detector.results.write_results_file), atomically
    print(f"wrote {len(run.predictions)} predictions to {out}"
          + (f" (shard {shard[0]}/{shard[1]}: {len(run.files)} of {run.total_files} files)" if shard else ""))
    if run.failed:
        print(f"{len(run.failed)} files could not be read:", *run.failed, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def _write_submission_cli(write_submission, predictions, args, out):
    """``write_submission`` to ``out`` whose missing-ids hint names the CLI flag, not the Python argument."""
    from ..detector.submission import MissingPredictionsError

    try:
        write_submission(predictions, out, sample_submission=args.sample_submission,
                         missing="empty" if args.allow_missing else "error")
    except MissingPredictionsError as error:
        raise MissingPredictionsError(error.absent, error.total,
                                      hint="pass --allow-missing to write them without boxes") from error


def _add_demo(sub):
    p = sub.add_parser("demo", help="the main job end to end: data, training, evaluation, submission, pictures",
                       description="Without --data, generate a synthetic RSNA-format data set and train the small "
                                   "CPU preset; with --data, run the same job on a Kaggle download with the full "
                                   "DetectorConfig and COCO weights. Outputs go to --out.")
    p.add_argument("--data", default=None, help="Kaggle-layout data directory (default: synthetic data)")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--n-train", type=int, default=400, help="synthetic training patients (default: 400)")
    p.add_argument("--n-test", type=int, default=40, help="synthetic test patients (default: 40)")
    p.add_argument("--epochs", type=int, default=None, help="total epochs (default: 10 synthetic, 16 real)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="override STEPS_PER_EPOCH (a shorter demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--weights", default=None,
                   help="initial weights: coco (downloaded if needed), none, or a file (default: random on "
                        "synthetic data; with --data, a COCO file already on this machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


def _add_model_args(p, required=True):
    p.add_argument("--model", required=required, help="weights file (a checkpoint written by training)")
    p.add_argument("--config", default=None, help="config JSON (default: the --preset)")
    p.add_argument("--preset", choices=["full", "cpu"], default="full",
                   help="DetectorConfig (full, default) or the CPU demo preset")


def _add_train(sub):
    p = sub.add_parser("train", help="train the detector with the staged schedule",
                       description="Staged fine-tuning (heads at 2x LR, then all layers at LR, then LR/5). "
                                   "Checkpoints go to a timestamped folder of --model-dir; --resume continues "
                                   "from the latest one. With TF_CONFIG naming several tasks, every machine "
                                   "runs this same command and they train together (MultiWorkerMirroredStrategy; "
                                   "the chief writes the files): see docs/DISTRIBUTED.md.")
    p.add_argument("--data", required=True, help="Kaggle-layout data directory")
    p.add_argument("--model-dir", default="logs", help="checkpoint and log folder (default: logs)")
    p.add_argument("--weights", default="coco", help="coco (default), imagenet, none, or a weights file")
    p.add_argument("--preset", choices=["full", "cpu"], default="full", help="DetectorConfig (default) or CPU preset")
    p.add_argument("--epochs", type=int, default=16, help="total epochs (default: 16)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="override STEPS_PER_EPOCH")
    p.add_argument("--augmentation", default="notebook", help="notebook (default), report or none")
    p.add_argument("--val-fraction", type=float, default=None, help="validation share of patients (default 0.1)")
    p.add_argument("--val-count", type=int, default=None, help="validation patients (e.g. 1500)")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --model-dir")
    p.add_argument("--folds", type=_folds_argument, default=None, metavar="K",
                   help="k-fold cross-validation: K models, one per fold (folder fold_I of --model-dir), patients "
                        "stratified by box count; each fold's patients predicted by the model that did not train on "
                        "them (oof_predictions.json). --val-fraction/--val-count do not apply; --seed seeds the folds")
    p.set_defaults(func=_cmd_train)


def _folds_argument(text):
    try:
        folds = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--folds {text!r}: expected a whole number >= 2") from error
    if folds < 2:
        raise argparse.ArgumentTypeError(f"--folds {folds}: expected a whole number >= 2")
    return folds


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="mAP@0.5, mean IoU, the competition score and its best threshold",
                       description="Evaluate a trained model on the validation split of --data; writes "
                                   "metrics.json and figures to --out.")
    _add_model_args(p)
    p.add_argument("--data", required=True, help="Kaggle-layout data directory")
    p.add_argument("--out", default="evaluation", help="output folder (default: evaluation)")
    p.add_argument("--val-fraction", type=float, default=None, help="validation share (default 0.1)")
    p.add_argument("--val-count", type=int, default=None, help="validation patients")
    p.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED,
                   help=f"split seed used in training (default: {DEFAULT_SPLIT_SEED})")
    p.set_defaults(func=_cmd_evaluate)


def _add_predict(sub, name="predict"):
    if name == "submit":
        p = sub.add_parser(name, help="detect opacities in DICOMs and write a Kaggle submission CSV",
                           description="Run the detector on a folder of DICOMs (e.g. stage_2_test_images) and "
                                       "write patientId,PredictionString rows, one per image.")
    else:
        p = sub.add_parser(name, help="detect opacities in DICOMs and write their boxes as JSON",
                           description="Run the detector on a folder of DICOMs and write a results file: per "
                                       "patientId, the boxes (y1, x1, y2, x2 in the file's pixels) with their "
                                       "scores, and the files that could not be read. With --shard I/N only "
                                       "shard I of N of the sorted file list is predicted (one job of a job "
                                       "array); `rsna-detector submit --results` merges the shards' files.")
        p.add_argument("--shard", type=_shard_argument, default=None, metavar="I/N",
                       help="predict only shard I of N (numbered from 1: a 0-based array index k is k+1/N) of "
                            "the sorted file list; the default --out becomes predictions-I-of-N.json")
    # submit takes --model and --images, or --results instead (_cmd_submit checks the combination)
    _add_model_args(p, required=name != "submit")
    p.add_argument("--images", required=name != "submit", help="folder of .dcm files")
    p.add_argument("--out", default="submission.csv" if name == "submit" else None,
                   help="output file (default: submission.csv or predictions.json)")
    p.add_argument("--sample-submission", default=None, help="check the ids against this sample submission")
    p.add_argument("--allow-missing", action="store_true", help="write empty rows for sample ids not predicted")
    p.add_argument("--flip-tta", action="store_true", help="horizontal-flip test-time augmentation")
    p.add_argument("--min-confidence", type=float, default=None, help="drop boxes below this score")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)


def _shard_argument(text):
    from ..detector.inference import ShardError, parse_shard

    try:
        return parse_shard(text)
    except ShardError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _cmd_submit(args):
    if not args.results:
        if not (args.model and args.images):
            raise CommandLineError("submit: give --results FILE... (results files of `rsna-detector predict`), "
                                   "or --model and --images to run the detector now")
        return _cmd_predict(args)
    if args.model:
        raise CommandLineError("submit: give either --results (merge results files) or --model (predict now), "
                               "not both")
    from ..detector.inference import list_dicoms
    from ..detector.results import write_submission_from_results

    expected = None if args.images is None else [p.stem for p in list_dicoms(args.images)]
    path, merged = write_submission_from_results(
        args.results, args.out, sample_submission=args.sample_submission, expected_ids=expected,
        missing="empty" if args.allow_missing else "error")
    print(f"wrote {path} from {len(args.results)} results file(s): {len(merged.predictions)} patients predicted")
    if merged.gaps or merged.missing_shards:
        print(f"written without boxes (--allow-missing): {merged.describe_gaps()}", file=sys.stderr)
    return 0


def _add_submit(sub):
    _add_predict(sub, name="submit")
    p = sub.choices["submit"]
    p.description += (" Or merge the results files of `rsna-detector predict` (one per shard) with --results: "
                      "a patient in two files is refused; patients no file covers (a missing shard, an unreadable "
                      "file, a sample id) are named, or written without boxes with --allow-missing.")
    p.add_argument("--results", nargs="+", metavar="FILE", default=None,
                   help="results files of `rsna-detector predict --shard I/N` to merge (instead of --model)")
    p.set_defaults(func=_cmd_submit)


def register(subparsers):
    """Register ``demo``, ``train``, ``evaluate``, ``predict`` and ``submit`` on an argparse subparsers object."""
    for add in (_add_demo, _add_train, _add_evaluate, _add_predict, _add_submit):
        add(subparsers)
