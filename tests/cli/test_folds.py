"""`rsna-detector train --folds K`, then predict and submit over the K fold models, as a user runs them."""
import csv
import json

import pytest

from rsna_detector import cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, n_train=20, n_test=3, seed=8, image_size=128, workers=1, progress=False)
    return root


def _train_predict_submit(data, tmp_path, capsys, folds, extra=()):
    model_dir = tmp_path / "folds"
    assert cli.main(["train", "--data", str(data), "--model-dir", str(model_dir), "--preset", "cpu", "--weights",
                     "none", "--epochs", "1", "--steps-per-epoch", "1", "--folds", str(folds), "--seed", "3",
                     "--no-validation", *extra]) == 0
    out = capsys.readouterr().out
    assert f"{folds} fold models in {model_dir}" in out and f"predict/submit --model {model_dir}" in out
    description = json.loads((model_dir / "postprocessing.json").read_text())
    assert description["version"] == 1 and len(description["members"]) == folds
    assert all((model_dir / member).is_file() for member in description["members"])
    assert len(json.loads((model_dir / "oof_predictions.json").read_text())["predictions"]) == 20
    images = data / "stage_2_test_images"
    assert cli.main(["predict", "--model", str(model_dir), "--preset", "cpu", "--images", str(images),
                     "--out", str(tmp_path / "predictions.json"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{folds} members fused by WBF" in out  # the stored description was applied
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert len(predictions["predictions"]) == 3
    assert cli.main(["submit", "--model", str(model_dir), "--preset", "cpu", "--images", str(images),
                     "--out", str(tmp_path / "submission.csv"), "--sample-submission",
                     str(data / "stage_2_sample_submission.csv"), "--quiet"]) == 0
    with open(tmp_path / "submission.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["patientId", "PredictionString"] and len(rows) == 4


def test_train_two_folds_then_predict_and_submit_over_them(data, tmp_path, capsys):
    _train_predict_submit(data, tmp_path, capsys, 2, extra=["--flip-tta", "--scales", "1.0", "0.75"])


@pytest.mark.slow
def test_train_five_folds_on_the_cpu_preset_then_predict_and_submit(data, tmp_path, capsys):
    _train_predict_submit(data, tmp_path, capsys, 5)


def test_folds_must_be_two_or_more(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--data", "d", "--folds", "1"])
    assert "--folds 1: expected a whole number >= 2" in capsys.readouterr().err
