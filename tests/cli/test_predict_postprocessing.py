"""predict and submit apply the post-processing stored beside the checkpoint: reproduced in a new process,
``--threshold auto`` against a number, and the config's threshold with a notice when nothing is stored."""
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsna_detector.detector.postprocess import POSTPROCESSING_FILE, PostProcessing
from rsna_detector.detector.results import read_results_file

RUN = "pneumonia_cpu20260101T000000"
CHECKPOINT = "mask_rcnn_pneumonia_cpu_0003.h5"


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """A random tiny detector's checkpoint in a run folder with a stored post-processing (flip TTA, a threshold
    between its scores, in-graph 0), its config file and 6 test DICOMs."""
    from rsna_detector.data.synthetic import make_synthetic_dataset
    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.detector.inference import predict
    from rsna_detector.mrcnn import model as modellib

    root = tmp_path_factory.mktemp("stored")
    make_synthetic_dataset(root / "data", n_train=0, n_test=6, seed=7, image_size=256, progress=False)
    images = root / "data" / "stage_2_test_images"
    config = CPUDemoConfig()
    config.IMAGES_PER_GPU, config.SEED = 2, 5
    config.validate()
    config.to_json(root / "config.json")  # DETECTION_MIN_CONFIDENCE 0.5, as the preset
    settings = config.to_dict()
    settings["DETECTION_MIN_CONFIDENCE"] = 0.0
    model = modellib.MaskRCNN("inference", type(config).from_dict(settings), str(root))
    model.keras_model.get_layer("mrcnn_class_logits").bias.assign(np.array([0.0, 1.0], np.float32))
    (root / RUN).mkdir()
    model.save_weights(str(root / RUN / CHECKPOINT))
    everything = predict(model, images, flip_tta=True, progress=False)
    scores = np.concatenate([p.scores for p in everything.predictions])
    threshold = float(np.round(np.median(scores), 4))
    assert 0 < (scores >= threshold).sum() < len(scores)  # the stored threshold matters
    stored = PostProcessing(min_confidence=threshold, flip_tta=True, detection_min_confidence=0.0,
                            validation={"checkpoint": CHECKPOINT, "epoch": 3})
    stored.save(root / RUN / POSTPROCESSING_FILE)
    return root, images, stored, everything


def _boxes(results):
    return {pid: (p.boxes.tolist(), p.scores.tolist()) for pid, p in sorted(results.predictions.items())}


def test_predict_in_a_new_process_applies_the_stored_post_processing(stored_run, tmp_path):
    """``rsna-detector predict --model RUN_FOLDER`` in a fresh interpreter: the stored checkpoint, flip TTA, the
    in-graph 0 and the stored threshold, exactly the boxes of the library in this process."""
    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.detector.inference import predict
    from rsna_detector.detector.loading import load_detector

    root, images, stored, everything = stored_run
    config = CPUDemoConfig()
    config.IMAGES_PER_GPU = 2
    config.validate()
    detector = load_detector(root / RUN, config)
    assert detector.postprocessing == stored and detector.config.DETECTION_MIN_CONFIDENCE == 0.0
    here = predict(detector, images, progress=False)
    assert here.threshold == stored.min_confidence
    expected = {p.patient_id: p.scores[p.scores >= stored.min_confidence].tolist() for p in everything.predictions}
    assert {p.patient_id: p.scores.tolist() for p in here.predictions} == expected

    out = tmp_path / "predictions.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "MPLBACKEND": "Agg"}
    completed = subprocess.run(
        [sys.executable, "-m", "rsna_detector.cli", "predict", "--model", str(root / RUN), "--config",
         str(root / "config.json"), "--images", str(images), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=600, cwd=str(tmp_path))
    text = completed.stdout.decode("utf-8", "replace")
    assert completed.returncode == 0, text[-3000:]
    assert f"{CHECKPOINT}: threshold {stored.min_confidence:g}, flip TTA" in text
    results = read_results_file(out)
    assert results.postprocessing == stored.to_dict() and results.threshold == stored.min_confidence
    here_file = here.write(tmp_path / "here.json")
    assert _boxes(results) == _boxes(read_results_file(here_file))
    assert sum(len(p.scores) for p in here.predictions) < sum(len(p.scores) for p in everything.predictions)


def test_threshold_auto_against_a_number(stored_run, cli, tmp_path):  # noqa: F811 (the fixture)
    root, images, stored, everything = stored_run
    common = ["--model", str(root / RUN / CHECKPOINT), "--config", str(root / "config.json"), "--images",
              str(images), "--quiet"]
    assert cli(["predict", *common, "--out", str(tmp_path / "auto.json")]) == 0
    assert cli(["predict", *common, "--threshold", "0", "--out", str(tmp_path / "zero.json")]) == 0
    assert cli(["predict", *common, "--threshold", "0.99", "--no-flip-tta", "--out", str(tmp_path / "hi.json")]) == 0
    auto, zero, high = (read_results_file(tmp_path / f"{name}.json") for name in ("auto", "zero", "hi"))
    assert auto.threshold == stored.min_confidence and zero.threshold == 0.0 and high.threshold == 0.99
    assert zero.postprocessing["flip_tta"] and not high.postprocessing["flip_tta"]
    # a number replaces the stored threshold only: still the stored flip TTA and in-graph 0
    assert {pid: p.scores.tolist() for pid, p in zero.predictions.items()} == \
        {p.patient_id: p.scores.tolist() for p in everything.predictions}
    for pid, prediction in auto.predictions.items():
        keep = zero.predictions[pid].scores >= stored.min_confidence
        assert np.array_equal(prediction.scores, zero.predictions[pid].scores[keep])
        assert np.array_equal(prediction.boxes, zero.predictions[pid].boxes[keep])

    assert cli(["submit", *common, "--out", str(tmp_path / "auto.csv")]) == 0
    assert cli(["submit", *common, "--threshold", "0", "--out", str(tmp_path / "zero.csv")]) == 0
    rows = [len((tmp_path / f"{name}.csv").read_text().split()) for name in ("auto", "zero")]
    assert rows[0] < rows[1]  # the submission at the stored threshold carries fewer boxes


def test_without_a_stored_description_the_configs_threshold_applies_with_a_notice(stored_run, cli, tmp_path,  # noqa: F811
                                                                                   capsys):
    root, images, _, _ = stored_run
    shutil.copy(root / RUN / CHECKPOINT, tmp_path / "weights.h5")
    # the console handler of an earlier command writes to that test's captured stderr: start afresh (the
    # fixture puts the handlers back afterwards)
    logging.getLogger("rsna_detector").handlers[:] = []
    code = cli(["predict", "--model", str(tmp_path / "weights.h5"), "--config", str(root / "config.json"),
                "--images", str(images), "--out", str(tmp_path / "p.json"), "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    notice = [line for line in err.splitlines() if "no post-processing stored" in line]
    assert notice == [f"WARNING: no post-processing stored beside {tmp_path / 'weights.h5'}: the config's "
                      "DETECTION_MIN_CONFIDENCE 0.5 applies"]
    results = read_results_file(tmp_path / "p.json")
    assert results.threshold == 0.5 and results.postprocessing == PostProcessing().to_dict()
    assert all(score >= 0.5 for p in results.predictions.values() for score in p.scores)


def test_shards_predicted_with_different_thresholds_are_not_merged(stored_run, cli, tmp_path):  # noqa: F811
    root, images, _, _ = stored_run
    common = ["--model", str(root / RUN), "--config", str(root / "config.json"), "--images", str(images), "--quiet"]
    assert cli(["predict", *common, "--shard", "1/2", "--out", str(tmp_path / "1.json")]) == 0
    assert cli(["predict", *common, "--shard", "2/2", "--threshold", "0.9", "--out", str(tmp_path / "2.json")]) == 0
    code = cli(["submit", "--results", str(tmp_path / "1.json"), str(tmp_path / "2.json"), "--out",
                str(tmp_path / "s.csv")])
    assert code == 2 and not (tmp_path / "s.csv").exists()
    assert json.loads((tmp_path / "2.json").read_text())["threshold"] == 0.9
