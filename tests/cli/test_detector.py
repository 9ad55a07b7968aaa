"""The detector's commands as a user runs them: the demo's short console, errors in one line naming the file
or the flag."""
import errno
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rsna_detector import cli
from rsna_detector.cli import detector as detector_cli
from rsna_detector.detector.submission import ImagePrediction
from rsna_detector.mrcnn.train import loop
from tests.detector.test_reliability_submission import _sample


def test_cli_demo_console_is_short_and_ends_with_the_results(tmp_path):
    """`rsna-detector demo` (shortened) as a user runs it: no TensorFlow noise, under 200 lines and 30 KB,
    the metrics table and the output folder last."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TQDM_MININTERVAL")}
    env.update(PYTHONPATH=str(root), MPLBACKEND="Agg")
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "rsna_detector.cli", "demo", "--out", str(out), "--n-train", "24",
               "--n-test", "4", "--epochs", "2", "--steps-per-epoch", "3", "--seed", "1"]
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=900,
                               cwd=str(tmp_path))
    text = completed.stdout.decode("utf-8", "replace")
    assert completed.returncode == 0, text[-3000:]
    lines = text.rstrip("\n").split("\n")  # progress bars redraw with carriage returns: not new lines
    assert len(lines) < 200 and len(completed.stdout) < 30_000
    for noise in ("op_level_cost_estimator", "absl::InitializeLog", "oneDNN", "cuda"):
        assert noise not in text, noise
    assert sum(bool(re.search(r"epoch [12]/2  loss \d", line)) for line in lines) == 2  # one line per epoch
    table_start = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    table = lines[table_start:table_start + 2 + 9]
    assert [row.split("  ")[0] for row in table[2:]] == [
        "mAP@0.5, all validation images", "mAP@0.5, images with opacities", "mean IoU of matched boxes",
        "COCO AP@[.5:.95]", "submission threshold", "competition score, submission threshold",
        "best confidence threshold", "competition score, best threshold", "wall time, s"]
    map50 = json.loads((out / "evaluation" / "metrics.json").read_text())["map50"]
    assert table[2].split()[-1] == f"{map50:.3f}"
    value = {row.split("  ")[0]: row.split()[-1] for row in table[2:]}
    # the submission is written at the threshold validated in training: its score is the split's best
    assert value["competition score, submission threshold"] == value["competition score, best threshold"]
    assert value["submission threshold"] == value["best confidence threshold"]
    assert lines[table_start + 11] == f"outputs in {out}/:" and len(lines) == table_start + 15
    assert "submission.csv" in lines[-2] and (out / "submission.csv").is_file()
    assert Path(lines[-1].split()[0].rstrip("/")).is_dir()


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    def full_disk(*args, **kwargs):
        raise loop.CheckpointWriteError(errno.ENOSPC, "No space left on device", str(tmp_path / "ckpt.h5"),
                                           detail="12.0 MB free on /x")

    monkeypatch.setattr(importlib.import_module("rsna_detector.detector.schedule"), "train", full_disk)
    code = cli.main(["train", "--data", str(tmp_path), "--model-dir", str(tmp_path), "--weights", "none"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1
    assert str(tmp_path / "ckpt.h5") in err and "No space left on device" in err and "12.0 MB free" in err


def test_the_submit_command_names_its_flag(tmp_path, capsys, monkeypatch):
    from rsna_detector.detector.inference import PredictionRun

    sample = _sample(tmp_path, ["a", "b"])
    run = PredictionRun(predictions=[ImagePrediction("a", [], [])], failed={})
    monkeypatch.setattr(detector_cli, "_inference_model", lambda *args, **kwargs: object())
    monkeypatch.setattr(importlib.import_module("rsna_detector.detector.inference"), "predict", lambda *args, **kwargs: run)
    (tmp_path / "images").mkdir()  # the folder is checked before the (replaced) prediction runs
    (tmp_path / "images" / "a.dcm").write_bytes(b"")
    code = cli.main(["submit", "--model", "m.h5", "--images", str(tmp_path / "images"), "--out",
                     str(tmp_path / "s.csv"), "--sample-submission", str(sample), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert "1 of 2 sample-submission ids have no prediction" in err and "pass --allow-missing" in err
    assert "missing='empty'" not in err
    assert not (tmp_path / "s.csv").exists()
