"""The prediction commands under bad input (issue 22: cases 1, 6 and 9, the inference-weights bullet and
``evaluate``'s stdout): one bad DICOM never stops a run, inputs and output locations are checked before
the first image, predictions are kept before a later step can fail, quoted patterns are expanded, a
weights file that leaves layers random is refused, and stdout is JSON."""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rsna_detector.detector.results import read_results_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A random tiny detector (every box kept) saved with its config, 4 synthetic test DICOMs and their data set."""
    from tests.helpers import random_detector_files

    root = tmp_path_factory.mktemp("reliability_predict")
    random_detector_files(root, n_train=8, n_test=4, image_size=128)
    return root


@pytest.fixture
def predictions_made(monkeypatch):
    """Calls of the library's predict() (the images read), recorded; the real function runs."""
    import rsna_detector.detector.inference as inference

    calls = []
    original = inference.predict

    def recording(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "predict", recording)
    return calls


def _model_args(root):
    return ["--model", str(root / "weights.h5"), "--config", str(root / "config.json"), "--quiet"]


def _images(root):
    return root / "data" / "stage_2_test_images"


def _image_copy(root, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(_images(root), folder)
    return folder


# --------------------------------------------------------------------------- case 1
def test_one_file_with_a_bad_header_value_and_one_broken_file_do_not_stop_predict(files, cli, tmp_path):
    images = _image_copy(files, tmp_path)
    comma, broken = sorted(images.glob("*.dcm"))[:2]
    dataset = pydicom.dcmread(comma)
    dataset.PixelSpacing = [0.1, 0.1]
    dataset["PixelSpacing"]._value = ["0,139", "0,139"]  # comma decimals, as a vendor wrote them
    with pydicom.config.disable_value_validation():
        dataset.save_as(comma)
    dataset = pydicom.dcmread(broken)
    dataset.PhotometricInterpretation = "PALETTE COLOR"  # without its colour LUT: a bare ValueError in pydicom
    dataset.save_as(broken)
    out = tmp_path / "predictions.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli(["predict", *_model_args(files), "--images", str(images), "--out", str(out)])
    assert code == 1  # some files could not be read: reported
    result = read_results_file(out)
    assert sorted(result.predictions) == sorted(p.stem for p in images.glob("*.dcm") if p != broken)
    assert comma.stem in result.predictions and list(result.failed) == [broken.stem]
    assert "cannot be read" in result.failed[broken.stem]


# --------------------------------------------------------------------------- case 9
@pytest.mark.parametrize("problem", ["sample_typo", "out_under_a_file", "out_is_a_folder", "images_typo"])
def test_inputs_and_outputs_are_checked_before_the_first_image(files, cli, tmp_path, predictions_made, capsys,
                                                               problem):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    command = {"sample_typo": ["submit", "--sample-submission", str(tmp_path / "stage_2_sample_submision.csv")],
               "out_under_a_file": ["predict", "--out", str(tmp_path / "a_file" / "predictions.json")],
               "out_is_a_folder": ["predict", "--out", str(tmp_path / "a_folder")],
               "images_typo": ["predict", "--out", str(tmp_path / "p.json")]}[problem]
    images = tmp_path / "test_imgaes" if problem == "images_typo" else _images(files)
    code = cli([*command, *_model_args(files), "--images", str(images)])
    assert code != 0 and predictions_made == []
    named = {"sample_typo": "stage_2_sample_submision.csv", "out_under_a_file": "a_file is a file",
             "out_is_a_folder": "is an existing folder", "images_typo": "test_imgaes"}[problem]
    assert named in capsys.readouterr().err


def test_submit_keeps_its_predictions_when_writing_the_csv_fails(files, cli, tmp_path, capsys):
    sample = tmp_path / "sample.csv"  # one id that no image has: the CSV is refused without --allow-missing
    sample.write_text("patientId,PredictionString\n" + "".join(f"{p.stem},\n" for p in _images(files).glob("*.dcm"))
                      + "not-in-the-folder,\n")
    out = tmp_path / "submission.csv"
    code = cli(["submit", *_model_args(files), "--images", str(_images(files)), "--sample-submission", str(sample),
                "--out", str(out)])
    assert code != 0 and not out.exists()
    kept = tmp_path / "submission.predictions.json"
    assert len(read_results_file(kept).predictions) == 4
    assert f"the predictions are kept in {kept}" in capsys.readouterr().err
    code = cli(["submit", "--results", str(kept), "--sample-submission", str(sample), "--out", str(out),
                "--allow-missing"])
    assert code == 0 and len(out.read_text().splitlines()) == 6


# --------------------------------------------------------------------------- case 6
def test_submit_expands_a_quoted_results_pattern(files, cli, tmp_path, capsys):
    for index in (1, 2):
        assert cli(["predict", *_model_args(files), "--images", str(_images(files)), "--shard", f"{index}/2",
                    "--out", str(tmp_path / f"preds_{index}.json")]) == 0
    out = tmp_path / "submission.csv"
    assert cli(["submit", "--results", str(tmp_path / "preds_*.json"), "--out", str(out)]) == 0
    assert "from 2 results file(s): 4 patients predicted" in capsys.readouterr().out
    assert cli(["submit", "--results", str(tmp_path / "pred_*.json"), "--out", str(out)]) != 0
    assert "pred_*.json: no results file matches this pattern" in capsys.readouterr().err


# --------------------------------------------------------------------------- weights for inference
def test_predict_refuses_weights_that_leave_layers_random(files, cli, tmp_path, capsys):
    from rsna_detector.weights.keras2_hdf5 import write_hdf5_weights

    unrelated = write_hdf5_weights(tmp_path / "unrelated.h5",
                                   {"dense_7": [("dense_7/kernel:0", np.zeros((4, 2), np.float32))]})
    out = tmp_path / "p.json"
    code = cli(["predict", "--model", str(unrelated), "--config", str(files / "config.json"), "--quiet",
                "--images", str(_images(files)), "--out", str(out)])
    assert code != 0 and not out.exists()
    assert "unrelated.h5" in capsys.readouterr().err


# --------------------------------------------------------------------------- evaluate's stdout
def test_evaluate_prints_json_with_null_for_undefined_metrics(files, cli, tmp_path, capsys):
    config = json.loads((files / "config.json").read_text())
    config["DETECTION_MIN_CONFIDENCE"] = 0.9999  # no detection: the thresholds have no best value
    (tmp_path / "config.json").write_text(json.dumps(config))
    code = cli(["evaluate", "--model", str(files / "weights.h5"), "--config", str(tmp_path / "config.json"),
                "--data", str(files / "data"), "--val-count", "3", "--out", str(tmp_path / "evaluation")])
    assert code == 0
    text = capsys.readouterr().out
    printed = json.loads(text[text.index("{"):], parse_constant=_refuse)
    written = json.loads((tmp_path / "evaluation" / "metrics.json").read_text(), parse_constant=_refuse)
    assert None in printed.values()
    assert {k: v for k, v in written.items() if k in printed} == printed


def _refuse(token):
    raise AssertionError(f"{token} is not JSON")


def test_evaluate_reports_and_skips_an_unreadable_validation_file(files, cli, tmp_path, capsys):
    """Issue 22's remaining case: a broken DICOM among the validation images is named, left out, not fatal."""
    from rsna_detector.detector.dataset import DetectorDataset

    data = tmp_path / "data"
    shutil.copytree(files / "data", data)
    _, validation = DetectorDataset.split_from_data_dir(data, image_size=128, val_count=3)
    broken = validation.image_info[validation.image_ids[0]]
    path = Path(broken["path"])
    path.write_bytes(path.read_bytes()[:300])  # cut inside the header
    code = cli(["evaluate", "--model", str(files / "weights.h5"), "--config", str(files / "config.json"),
                "--data", str(data), "--val-count", "3",
                "--out", str(tmp_path / "evaluation")])
    out = capsys.readouterr().out
    assert code == 0, out
    written = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert [entry["image"] for entry in written["skipped_images"]] == [broken["id"]]
    assert path.name in written["skipped_images"][0]["error"] and written["counts"]["images"] == 2
    assert "1 unreadable images skipped" in out
