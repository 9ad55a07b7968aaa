"""The detector's commands: ``demo``, ``train``, ``evaluate``, ``predict`` and ``submit``.

Each command parses its arguments and calls one library function; the library
(imported when the command runs, so that ``--help`` does not load TensorFlow)
does the work.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.splits import DEFAULT_SPLIT_SEED
from .usage import CommandLineError

__all__ = ["register", "threshold_argument"]


def _inference_model(args):
    """The model of ``--model`` (a checkpoint or run folder) with the post-processing to apply.

    ``--threshold auto`` (default): the one stored beside the checkpoint (``postprocessing.json``),
    else the config's DETECTION_MIN_CONFIDENCE with a one-line notice; a number overrides.
    """
    from ..detector.config import load_config
    from ..detector.loading import load_detector

    config = load_config(args.config, args.preset)
    return load_detector(args.model, config, threshold=args.threshold, flip_tta=args.flip_tta)


def _describe(model, postprocessing):
    """One line: the checkpoint and the post-processing applied."""
    if postprocessing is None:
        return ""
    weights = getattr(model, "weights_path", None)
    return f"{Path(weights).name if weights else 'model'}: {postprocessing.describe()}"


def _cmd_demo(args):
    from ..detector.demo import run_demo

    run_demo(args.out, args.data, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
             seed=args.seed, progress=not args.quiet, steps_per_epoch=args.steps_per_epoch, weights=args.weights)
    return 0  # run_demo printed the results table and where the outputs are


def _cmd_train(args):
    from ..detector.config import config_for_preset
    from ..detector.loading import inference_config
    from ..detector.schedule import train
    from ..mrcnn.layers.training_graph import training_strategy

    config = config_for_preset(args.preset)
    training_strategy(config)  # with TF_CONFIG, the multi-worker strategy must exist before any TF operation
    if args.steps_per_epoch is not None:
        config = inference_config(config, STEPS_PER_EPOCH=args.steps_per_epoch)
    weights = None if args.weights == "none" else args.weights
    if args.folds:
        return _train_folds(args, config, weights)
    model, _ = train(args.data, config, weights=weights, model_dir=args.model_dir, epochs=args.epochs,
                     augmentation=args.augmentation, val_fraction=args.val_fraction, val_count=args.val_count,
                     seed=args.seed, resume=args.resume, validation=_validation_settings(args))
    print(f"training finished at epoch {model.epoch}; checkpoints in {model.log_dir}")
    return 0


def _train_folds(args, config, weights):
    from ..detector.cross_validation import train_folds

    result = train_folds(args.data, config, weights, folds=args.folds, model_dir=args.model_dir, seed=args.seed,
                         resume=args.resume, flip_tta=args.flip_tta, scales=args.scales, epochs=args.epochs,
                         augmentation=args.augmentation, validation=_validation_settings(args))
    print(f"{args.folds} fold models in {args.model_dir} (fold_1 ... fold_{args.folds}); out-of-fold predictions "
          f"in {result.oof_path}")
    if result.postprocessing is not None:
        print(f"the ensemble (predict/submit --model {args.model_dir}): {result.postprocessing.describe()}")
    return 0


def _validation_settings(args):
    """``train(validation=...)`` from --no-validation, --validation-images and --validation-every."""
    if args.no_validation:
        return False
    settings = {"every": args.validation_every}
    if args.validation_images is not None:
        settings["images"] = None if args.validation_images == "all" else args.validation_images
    return settings


def _cmd_evaluate(args):
    from .._io import check_output_folder, json_text
    from ..detector.dataset import DetectorDataset
    from ..detector.evaluate import evaluate_detector

    check_output_folder(args.out, "--out")  # before the model is built and the images read
    model = _inference_model(args)
    print(_describe(model, getattr(model, "postprocessing", None)))
    _, val_ds = DetectorDataset.split_from_data_dir(args.data, image_size=model.config.IMAGE_MAX_DIM,
                                                    val_fraction=args.val_fraction, val_count=args.val_count,
                                                    seed=args.seed)
    metrics = evaluate_detector(model, val_ds, val_ds.image_ids, config=model.config, out_dir=args.out)
    if metrics["skipped_images"]:
        first = metrics["skipped_images"][0]
        print(f"evaluate: {len(metrics['skipped_images'])} unreadable images skipped (listed in metrics.json; "
              f"first: {first['image']}: {first['error']})")
    print(json_text({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}))  # NaN: null
    return 0


def _check_predict_inputs(args, out, kept):
    """Every input and output location of predict/submit, checked before the model is built (issue 22, case 9)."""
    from .._io import check_output_file
    from ..detector.inference import list_dicoms
    from ..detector.submission import read_sample_submission_ids

    check_output_file(out, "--out")
    if kept != out:
        check_output_file(kept, "the predictions file kept beside --out")
    if args.sample_submission is not None:
        read_sample_submission_ids(args.sample_submission)
    list_dicoms(args.images)


def _kept_predictions_path(out):
    """``submission.csv`` -> ``submission.predictions.json``: submit's predictions, written before the CSV."""
    return Path(out).with_name(f"{Path(out).stem}.predictions.json")


def _cmd_predict(args):
    from ..detector.inference import predict
    from ..detector.submission import write_submission

    shard = getattr(args, "shard", None)
    out = args.out or (f"predictions-{shard[0]}-of-{shard[1]}.json" if shard else "predictions.json")
    kept = _kept_predictions_path(out) if args.command == "submit" else out
    _check_predict_inputs(args, out, kept)
    model = _inference_model(args)
    run = predict(model, args.images, progress=not args.quiet, shard=shard)  # the model's post-processing
    if run.postprocessing is not None and run.postprocessing.gate_threshold is not None:
        from ..baselines.gating import apply_stored_gate
        from ..detector.postprocess import postprocessing_path

        read = [f for f in run.files if str(f) not in run.failed]
        run.predictions = apply_stored_gate(run.predictions, read, run.postprocessing,
                                            postprocessing_path(args.model).parent)
    if run.postprocessing is not None:
        print(_describe(model, run.postprocessing))
    run.write(kept)  # a results file (detector.results.write_results_file), atomically, whatever follows
    if args.command == "submit":
        try:
            _write_submission_cli(write_submission, run.predictions, args, out)
        except BaseException:
            print(f"the predictions are kept in {kept}: `rsna-detector submit --results {kept} --out {out}` "
                  "writes the submission from them", file=sys.stderr)
            raise
        print(f"predictions kept in {kept}")
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
    p.add_argument("--model", required=required,
                   help="a checkpoint written by training, or its run folder (the best validated checkpoint)")
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
    p.add_argument("--validation-images", type=_count_or_all, default=None, metavar="N|all",
                   help="validation images detected after each epoch: mAP@0.5, the competition score at its best "
                        "threshold and COCO AP in the epoch line and training_log.csv; the best checkpoint and its "
                        "threshold are stored for predict/submit (default: 200, a fixed seeded subset; "
                        "validation.DEFAULT_VALIDATION_IMAGES)")
    p.add_argument("--validation-every", type=int, default=1, metavar="N", help="validate every N epochs (default 1)")
    p.add_argument("--no-validation", action="store_true", help="no validation while training")
    p.add_argument("--folds", type=_folds_argument, default=None, metavar="K",
                   help="k-fold cross-validation: K models, one per fold (folder fold_I of --model-dir), patients "
                        "stratified by box count; each fold's patients predicted by the model that did not train on "
                        "them (oof_predictions.json), and the ensemble of the K models fitted on those predictions "
                        "(postprocessing.json: predict/submit --model MODEL_DIR). --val-fraction/--val-count do not "
                        "apply; --seed seeds the folds")
    p.add_argument("--flip-tta", action="store_true", help="with --folds: the ensemble also detects on the mirror")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], metavar="S",
                   help="with --folds: the ensemble's view scales, e.g. 0.8 1.0 1.2 (default: 1.0)")
    p.set_defaults(func=_cmd_train)


def _whole_number(text, minimum, message):
    """``int(text)`` when it is at least ``minimum``, else argparse's error with ``message``."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(message) from error
    if value < minimum:
        raise argparse.ArgumentTypeError(message)
    return value


def _count_or_all(text):
    if text.strip().lower() == "all":
        return "all"
    return _whole_number(text, 1, f"expected a whole number >= 1 or 'all', got {text!r}")


def _folds_argument(text):
    return _whole_number(text, 2, f"--folds {text}: expected a whole number >= 2")


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
    _add_postprocessing_args(p)
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
    _add_postprocessing_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)


def threshold_argument(text):
    """argparse type of ``--threshold``: ``auto`` or a number in [0, 1] (``loading.parse_threshold``)."""
    from ..detector.loading import parse_threshold
    from ..detector.postprocess import PostProcessingError

    try:
        return parse_threshold(text)
    except PostProcessingError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _add_postprocessing_args(p):
    p.add_argument("--threshold", "--min-confidence", dest="threshold", type=threshold_argument, default="auto",
                   metavar="auto|T",
                   help="minimum confidence of a box: auto (default) = the threshold validated in training and "
                        "stored beside the checkpoint (postprocessing.json), or the config's "
                        "DETECTION_MIN_CONFIDENCE when none is stored; a number overrides it")
    p.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="horizontal-flip test-time augmentation (default: as stored, else off)")


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
    from .._io import check_output_file
    from ..detector.inference import list_dicoms
    from ..detector.results import expand_results_paths, write_submission_from_results

    check_output_file(args.out, "--out")
    results = expand_results_paths(args.results)  # 'preds_*.json' quoted: the shell did not expand it
    expected = None if args.images is None else [p.stem for p in list_dicoms(args.images)]
    path, merged = write_submission_from_results(
        results, args.out, sample_submission=args.sample_submission, expected_ids=expected,
        missing="empty" if args.allow_missing else "error")
    print(f"wrote {path} from {len(results)} results file(s): {len(merged.predictions)} patients predicted")
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
                   help="results files of `rsna-detector predict --shard I/N` to merge (instead of --model); "
                        "a quoted pattern such as 'preds_*.json' is expanded")
    p.set_defaults(func=_cmd_submit)


def register(subparsers):
    """Register ``demo``, ``train``, ``evaluate``, ``predict`` and ``submit`` on an argparse subparsers object."""
    for add in (_add_demo, _add_train, _add_evaluate, _add_predict, _add_submit):
        add(subparsers)
