"""The main job end to end, shortened: synthetic data -> training -> evaluation -> submission -> pictures,
then prediction on the 16 real DICOMs with the model it trained."""
import csv
import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from rsna_detector.config import CPUDemoConfig
    from rsna_detector.demo import run_demo

    config = CPUDemoConfig()
    config.STEPS_PER_EPOCH, config.VALIDATION_STEPS, config.IMAGES_PER_GPU = 3, 1, 2
    config.validate()
    out = tmp_path_factory.mktemp("demo")
    summary = run_demo(out, n_train=24, n_test=5, epochs=2, config=config, seed=1, progress=False)
    return out, summary


def test_demo_writes_every_output(demo_run):
    out, summary = demo_run
    saved = json.loads((out / "summary.json").read_text())
    assert saved["train_patients"] + saved["val_patients"] <= 24 and saved["epochs"] == 2
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert {"map50", "map50_positive", "rsna_score", "best_threshold", "mean_iou"} <= set(metrics)
    assert 0.0 <= metrics["map50"] <= 1.0
    checkpoints = sorted((out / "logs").glob("*/mask_rcnn_*.h5"))
    assert [p.name[-7:] for p in checkpoints] == ["0001.h5", "0002.h5"]
    with open(out / "submission.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["patientId", "PredictionString"] and len(rows) == 6
    pictures = summary["pictures"]
    assert pictures and all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in pictures)


def test_prediction_on_the_real_dicoms_writes_a_valid_submission(demo_run, rsna_dir, tmp_path):
    from rsna_detector.config import CPUDemoConfig
    from rsna_detector.mrcnn import model as modellib
    from rsna_detector.predict import predict
    from rsna_detector.submission import parse_submission, write_submission

    out, _ = demo_run
    checkpoint = sorted((out / "logs").glob("*/mask_rcnn_*.h5"))[-1]
    config = CPUDemoConfig()
    config.DETECTION_MIN_CONFIDENCE = 0.0  # any box the untrained-ish model proposes, to exercise scaling
    config.validate()
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    model.load_weights(str(checkpoint), by_name=True)
    run = predict(model, rsna_dir / "images", flip_tta=True, progress=False)
    assert len(run.predictions) == 16 and not run.failed
    for prediction in run.predictions:
        assert prediction.boxes.dtype == np.float32
        if len(prediction.boxes):  # back in 1024-pixel coordinates
            assert prediction.boxes.min() >= 0 and prediction.boxes.max() <= 1024
    path = tmp_path / "submission.csv"
    write_submission(run.predictions, path)
    parsed = parse_submission(path)
    assert sorted(parsed) == sorted(p.patient_id for p in run.predictions)


def test_cli_demo_console_is_short_and_ends_with_the_results(tmp_path):
    """`rsna-detector demo` (shortened) as a user runs it: no TensorFlow noise, under 200 lines and 30 KB,
    the metrics table and the output folder last."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
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
    table = lines[table_start:table_start + 2 + 7]
    assert [row.split("  ")[0] for row in table[2:]] == [
        "mAP@0.5, all validation images", "mAP@0.5, images with opacities", "mean IoU of matched boxes",
        "competition score, model threshold", "best confidence threshold", "competition score, best threshold",
        "wall time, s"]
    map50 = json.loads((out / "evaluation" / "metrics.json").read_text())["map50"]
    assert table[2].split()[-1] == f"{map50:.3f}"
    assert lines[table_start + 9] == f"outputs in {out}/:" and len(lines) == table_start + 13
    assert "submission.csv" in lines[-2] and (out / "submission.csv").is_file()
    assert Path(lines[-1].split()[0].rstrip("/")).is_dir()
