"""The main job end to end, shortened: synthetic data -> training -> evaluation -> submission -> pictures,
then prediction on the 16 real DICOMs with the model it trained."""
import csv
import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.detector.demo import run_demo

    config = CPUDemoConfig()
    config.STEPS_PER_EPOCH, config.VALIDATION_STEPS, config.IMAGES_PER_GPU = 3, 1, 2
    config.validate()
    before = config.to_dict()
    out = tmp_path_factory.mktemp("demo")
    summary = run_demo(out, n_train=24, n_test=5, epochs=2, config=config, seed=1, progress=False,
                       steps_per_epoch=3)
    assert config.to_dict() == before  # the demo (seed, steps_per_epoch) and train() changed copies only
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
    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.detector.inference import predict
    from rsna_detector.detector.submission import parse_submission, write_submission
    from rsna_detector.mrcnn import model as modellib

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
