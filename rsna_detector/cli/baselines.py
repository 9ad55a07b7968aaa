"""The baselines' commands: ``classifier-train``, ``classifier-evaluate``, ``retinanet-train``, ``retinanet-evaluate``.

The parsers need only the baselines' Keras-free settings; the models (Keras,
keras-hub) are imported when a command runs.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..baselines.classifier.settings import CLASSIFIER_NAMES
from ..baselines.retinanet.settings import DEFAULT_IMAGE_SIZE
from ..data.splits import DEFAULT_SPLIT_SEED

__all__ = ["register"]


def _cmd_classifier_train(args):
    from ..baselines.classifier import train_classifier
    from ..baselines.saved_models import save_trained_model

    model, history = train_classifier(
        args.data, args.name, weights=None if args.weights == "none" else args.weights, epochs=args.epochs,
        batch_size=args.batch_size, image_size=args.image_size, val_fraction=args.val_fraction or None,
        seed=args.seed, augment=not args.no_augment, class_weighting=not args.no_class_weights,
        preprocessing=args.preprocessing, learning_rate=args.learning_rate, steps_per_epoch=args.steps_per_epoch,
        verbose=0 if args.quiet else 1)
    print(save_trained_model(model, history, args.out))
    return 0


def _cmd_classifier_evaluate(args):
    from ..baselines.classifier import evaluate_classifier
    from ..baselines.saved_models import load_model_for_prediction

    model = load_model_for_prediction(args.model)
    metrics = evaluate_classifier(model, args.data, split=args.split, val_fraction=args.val_fraction,
                                  seed=args.seed, batch_size=args.batch_size, preprocessing=args.preprocessing,
                                  threshold=args.threshold, out_dir=args.out)
    _print_metrics(metrics, hidden=("patient_ids", "scores", "figures"))
    return 0


def _add_classifier(subparsers):
    train = subparsers.add_parser(
        "classifier-train", help="train a VGG19 / ResNet50 / DenseNet121 / CheXNet pneumonia classifier",
        description="Train a pneumonia (Target) classifier with the report's settings: 224x224 input, Adam 1e-3, "
                    "binary cross-entropy, 3 epochs, 70:30 patient split, class weights, augmentation. Saves a "
                    ".keras model.")
    train.add_argument("--data", required=True, help="Kaggle-layout data directory")
    train.add_argument("--name", choices=CLASSIFIER_NAMES, default="densenet121",
                       help="backbone (default: %(default)s)")
    train.add_argument("--weights", default="imagenet",
                       help="imagenet (default; chexnet: the registry's CheXNet file), none, or a weights file")
    train.add_argument("--out", default="classifier.keras", help="model file to write (default: %(default)s)")
    train.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    train.add_argument("--batch-size", type=int, default=16, help="batch size (default: 16)")
    train.add_argument("--image-size", type=int, default=224, help="input side (default: 224)")
    train.add_argument("--val-fraction", type=float, default=0.3, help="validation share, 0 for none (default: 0.3)")
    train.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default: all)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    train.add_argument("--preprocessing", choices=["backbone", "rescale"], default="backbone",
                       help="backbone preprocess_input (default) or the report's 1/255 rescale")
    train.add_argument("--no-augment", action="store_true", help="no augmentation")
    train.add_argument("--no-class-weights", action="store_true", help="no class weighting")
    train.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED,
                       help=f"split and shuffling seed (default: {DEFAULT_SPLIT_SEED})")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(func=_cmd_classifier_train)

    evaluate = subparsers.add_parser(
        "classifier-evaluate", help="ROC-AUC, PR-AUC, confusion matrix and best-F1 threshold of a classifier",
        description="Score a saved classifier on the validation split of --data (same --val-fraction and --seed "
                    "as in training) and write roc_curve.png, pr_curve.png and metrics.json to --out.")
    _add_evaluation_arguments(evaluate, trained_by="classifier-train", data_help="Kaggle-layout data directory",
                              out="classifier_evaluation", images="score", val_fraction=0.3, batch_size=16)
    evaluate.add_argument("--threshold", type=float, default=0.5, help="threshold of the fixed-threshold metrics")
    evaluate.add_argument("--preprocessing", choices=["backbone", "rescale"], default="backbone",
                          help="the preprocessing used in training")
    evaluate.set_defaults(func=_cmd_classifier_evaluate)


def _cmd_retinanet_train(args):
    from ..baselines.retinanet import train_retinanet, write_retinanet_csv
    from ..baselines.retinanet.training import records_and_paths
    from ..baselines.saved_models import save_trained_model

    model, history = train_retinanet(
        args.data, image_size=args.image_size, weights=None if args.weights == "none" else args.weights,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        augment=not args.no_augment, val_fraction=args.val_fraction or None, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, verbose=0 if args.quiet else 1)
    summary = save_trained_model(model, history, args.out)
    if args.export_csv:
        records, paths = records_and_paths(args.data)
        write_retinanet_csv(records, Path(next(iter(paths.values()))).parent, args.export_csv)
    print(summary)
    return 0


def _cmd_retinanet_evaluate(args):
    import keras_hub  # noqa: F401  (registers the RetinaNet classes for loading)

    from ..baselines.retinanet import evaluate_retinanet
    from ..baselines.saved_models import load_model_for_prediction

    model = load_model_for_prediction(args.model)
    metrics = evaluate_retinanet(model, args.data, split=args.split, val_fraction=args.val_fraction,
                                 seed=args.seed, batch_size=args.batch_size, out_dir=args.out,
                                 submission=args.submission)
    _print_metrics(metrics, hidden=("per_image_ap", "sweep", "predictions"))
    return 0


def _add_retinanet(subparsers):
    train = subparsers.add_parser(
        "retinanet-train", help="train the RetinaNet baseline (keras-hub, ResNet-50 FPN)",
        description="Train a one-class RetinaNet with the report's settings (focal loss, smooth L1 sigma 3, "
                    "Adam 1e-4, batch 32, random transform) on a Kaggle-layout data directory or a "
                    "keras-retinanet annotation CSV. Saves a .keras model.")
    train.add_argument("--data", required=True, help="Kaggle-layout data directory or annotation CSV")
    train.add_argument("--out", default="retinanet.keras", help="model file to write (default: %(default)s)")
    train.add_argument("--weights", default="imagenet", help="imagenet (default), none, or a weights file")
    train.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                       help="input side (default: %(default)s)")
    train.add_argument("--epochs", type=int, default=50, help="epochs (default: 50)")
    train.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    train.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default: all)")
    train.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    train.add_argument("--val-fraction", type=float, default=0.1, help="validation share, 0 for none (default: 0.1)")
    train.add_argument("--no-augment", action="store_true", help="no random transform")
    train.add_argument("--export-csv", default=None, help="also write the data as keras-retinanet CSV files here")
    train.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED,
                       help=f"split and initialisation seed (default: {DEFAULT_SPLIT_SEED})")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(func=_cmd_retinanet_train)

    evaluate = subparsers.add_parser(
        "retinanet-evaluate", help="mAP@0.5, mean IoU and the competition score of a RetinaNet",
        description="Evaluate a saved RetinaNet on the validation split of --data (same --val-fraction and --seed "
                    "as in training) with the Mask R-CNN's metrics; writes metrics.json to --out and optionally "
                    "the predictions as a Kaggle CSV.")
    _add_evaluation_arguments(evaluate, trained_by="retinanet-train",
                              data_help="Kaggle-layout data directory or annotation CSV",
                              out="retinanet_evaluation", images="evaluate", val_fraction=0.1, batch_size=8)
    evaluate.add_argument("--submission", default=None, help="write the predictions as a Kaggle CSV here")
    evaluate.set_defaults(func=_cmd_retinanet_evaluate)


def _add_evaluation_arguments(parser, *, trained_by, data_help, out, images, val_fraction, batch_size):
    """What both evaluate commands take: the saved model, the data, and the split it was trained with."""
    parser.add_argument("--model", required=True, help=f"a .keras model written by {trained_by}")
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    parser.add_argument("--split", choices=["validation", "all"], default="validation",
                        help=f"images to {images} (default: validation)")
    parser.add_argument("--val-fraction", type=float, default=val_fraction, help="validation share used in training")
    parser.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED,
                        help=f"split seed used in training (default: {DEFAULT_SPLIT_SEED})")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"batch size (default: {batch_size})")


def _print_metrics(metrics, hidden):
    """The metrics as indented JSON on stdout, without the long per-image entries named in ``hidden``."""
    print(json.dumps({k: v for k, v in metrics.items() if k not in hidden}, indent=2, default=str))


def register(subparsers):
    """Register the classifier's and RetinaNet's train and evaluate commands on an argparse subparsers object.

    Each parser sets ``func`` to a function of the parsed arguments returning the
    exit code (0 on success); errors are raised (``RsnaDetectorError`` or ``OSError``
    subclasses) for :func:`rsna_detector.cli.main` to print in one line.
    """
    _add_classifier(subparsers)
    _add_retinanet(subparsers)
