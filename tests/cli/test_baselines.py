"""The baselines' commands: classifier-train/-evaluate and retinanet-train/-evaluate (defaults, errors, round trips)."""
import argparse
import json

import pytest

from rsna_detector.baselines import retinanet as rn
from rsna_detector.cli import baselines as baselines_cli
from tests.baselines.test_classifier import write_classifier_data
from tests.baselines.test_retinanet import _blob_set


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    return write_classifier_data(tmp_path_factory.mktemp("classifier_data"))


@pytest.fixture(scope="module")
def blob_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blobs")
    return _blob_set(folder, 12, seed=3), folder


def test_classifier_subcommands_are_registered_with_defaults():
    parser = argparse.ArgumentParser()
    baselines_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["classifier-train", "--data", "d"])
    assert (args.name, args.weights, args.epochs, args.val_fraction, args.image_size) == (
        "densenet121", "imagenet", 3, 0.3, 224)
    assert callable(args.func)
    args = parser.parse_args(["classifier-evaluate", "--model", "m.keras", "--data", "d"])
    assert args.split == "validation" and args.out == "classifier_evaluation"
    with pytest.raises(SystemExit):
        parser.parse_args(["classifier-train", "--data", "d", "--name", "vgg16"])


def test_classifier_train_command_fails_cleanly_on_a_missing_dir(tmp_path):
    parser = argparse.ArgumentParser()
    baselines_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["classifier-train", "--data", str(tmp_path / "nope"), "--weights", "none"])
    with pytest.raises(FileNotFoundError, match="not a directory"):
        args.func(args)


def test_classifier_train_and_evaluate_commands_round_trip(synthetic_dir, tmp_path):
    """classifier-train writes a .keras model that classifier-evaluate loads and scores."""
    parser = argparse.ArgumentParser()
    baselines_cli.register(parser.add_subparsers(dest="command"))
    model_path = tmp_path / "vgg.keras"
    args = parser.parse_args(["classifier-train", "--data", str(synthetic_dir), "--name", "vgg19", "--weights", "none",
                              "--image-size", "32", "--epochs", "1", "--batch-size", "4", "--out", str(model_path),
                              "--quiet"])
    assert args.func(args) == 0 and model_path.is_file()
    args = parser.parse_args(["classifier-evaluate", "--model", str(model_path), "--data", str(synthetic_dir),
                              "--out", str(tmp_path / "eval"), "--batch-size", "4"])
    assert args.func(args) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 4 and sum(map(sum, metrics["confusion_matrix"])) == 4


def test_retinanet_subcommands_are_registered_with_defaults():
    parser = argparse.ArgumentParser()
    baselines_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["retinanet-train", "--data", "d"])
    assert (args.learning_rate, args.epochs, args.batch_size, args.image_size, args.weights) == (
        1e-4, 50, 32, 256, "imagenet")
    args = parser.parse_args(["retinanet-evaluate", "--model", "m.keras", "--data", "d", "--submission", "s.csv"])
    assert args.split == "validation" and args.submission == "s.csv" and callable(args.func)


@pytest.mark.slow
def test_retinanet_train_and_evaluate_commands_round_trip(blob_dir, tmp_path):
    """retinanet-train (ResNet-50, 64 px, one step) saves a model that retinanet-evaluate loads and scores."""
    from rsna_detector.detector.submission import parse_submission

    records, folder = blob_dir
    annotations, _ = rn.write_retinanet_csv(records, folder, tmp_path / "annotations.csv")
    parser = argparse.ArgumentParser()
    baselines_cli.register(parser.add_subparsers(dest="command"))
    model_path = tmp_path / "retinanet.keras"
    args = parser.parse_args(["retinanet-train", "--data", str(annotations), "--weights", "none", "--image-size", "64",
                              "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--val-fraction", "0.25",
                              "--out", str(model_path), "--quiet"])
    assert args.func(args) == 0 and model_path.is_file()
    args = parser.parse_args(["retinanet-evaluate", "--model", str(model_path), "--data", str(annotations),
                              "--val-fraction", "0.25", "--out", str(tmp_path / "eval"),
                              "--submission", str(tmp_path / "sub.csv")])
    assert args.func(args) == 0
    assert len(parse_submission(tmp_path / "sub.csv")) == 3  # round(0.25 * 12) validation images
    assert (tmp_path / "eval" / "metrics.json").is_file()
