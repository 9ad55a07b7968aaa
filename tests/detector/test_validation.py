"""Validation while training (detector/validation.py): the callback through matterport's
``MaskRCNN.train(custom_callbacks=[...])`` on a tiny model that learns, the metrics it logs, the best
checkpoint and threshold it records, what evaluation of that checkpoint gives, resuming, and training
left undisturbed."""
import csv
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rsna_detector.detector.postprocess import POSTPROCESSING_FILE, PostProcessing
from rsna_detector.detector.validation import (
    LOGGED,
    ValidationCallback,
    ValidationError,
    validation_subset,
)
from rsna_detector.mrcnn import model as modellib
from tests.helpers import BlobDataset, tiny_config

EPOCHS = 4


def _config(**settings):
    # as tests/mrcnn/train/test_training.py's learning test: batch statistics in BN, empty images trained on
    values = dict(STEPS_PER_EPOCH=15, VALIDATION_STEPS=0, TRAIN_BN=True, TRAIN_ON_EMPTY_IMAGES=True)
    values.update(settings)
    return tiny_config(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4 epochs of 15 steps on 8 blobs + 2 empty images, validated after each epoch on 6 + 2 other images."""
    root = tmp_path_factory.mktemp("validation")
    model = modellib.MaskRCNN("training", _config(), str(root))
    val = BlobDataset(6, 2, seed=1)
    callback = ValidationCallback(model, val, images=None)
    history = model.train(BlobDataset(8, 2), val, 0.02, EPOCHS, "all", custom_callbacks=[callback])  # matterport's API
    return SimpleNamespace(root=root, model=model, val=val, callback=callback, history=history.history,
                           folder=Path(model.log_dir))


def test_the_metrics_of_every_epoch_are_logged(trained):
    assert [entry["epoch"] for entry in trained.callback.history] == list(range(1, EPOCHS + 1))
    with open(trained.folder / "training_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == EPOCHS
    for name in LOGGED:
        logged = [float(row[f"val_{name}"]) for row in rows]
        measured = [entry[name] for entry in trained.callback.history]
        assert logged == pytest.approx(measured, nan_ok=True), name
        assert trained.history[f"val_{name}"] == pytest.approx(measured, nan_ok=True)  # Keras' History too
    last = trained.callback.history[-1]
    assert last["best_rsna_score"] > 0.3 and last["map50"] > 0.5  # it learned, and the metrics show it
    assert last["best_rsna_score"] > trained.callback.history[0]["best_rsna_score"]
    assert 0 < last["coco_ap"] <= last["coco_ap50"] <= 1


def test_the_best_checkpoint_and_its_threshold_are_recorded(trained):
    history = trained.callback.history
    scores = [entry["best_rsna_score"] for entry in history]
    best = history[int(np.argmax(scores))]  # the first of equal bests
    record = json.loads((trained.folder / "run.json").read_text())["best"]
    assert record["metric"] == "best_rsna_score" and record["epoch"] == best["epoch"]
    assert record["value"] == pytest.approx(best["best_rsna_score"])
    assert record["threshold"] == pytest.approx(best["best_threshold"])
    assert record["checkpoint"] == f"mask_rcnn_blobs_{best['epoch']:04d}.h5"
    assert (trained.folder / record["checkpoint"]).is_file()
    assert record["images"] == record["of"] == 8
    stored = PostProcessing.load(trained.folder / POSTPROCESSING_FILE)
    assert stored.min_confidence == pytest.approx(best["best_threshold"]) and not stored.flip_tta
    # DETECTION_MIN_CONFIDENCE 0.7 lowered to the sweep's lowest threshold, 0.5
    assert stored.detection_min_confidence == 0.5 and trained.callback.in_graph_threshold == 0.5
    assert stored.validation["checkpoint"] == record["checkpoint"]


def test_evaluating_the_stored_checkpoint_gives_what_was_validated(trained):
    """load_detector(run folder) -> the best checkpoint, in-graph 0.5, the stored threshold applied: the
    competition score at the submission's threshold is the validated best, and every other figure agrees."""
    from rsna_detector.detector.evaluate import evaluate_detector
    from rsna_detector.detector.loading import load_detector

    record = json.loads((trained.folder / "run.json").read_text())["best"]
    detector = load_detector(trained.folder, _config(), images_per_gpu=trained.model.config.IMAGES_PER_GPU)
    assert Path(detector.weights_path).name == record["checkpoint"]
    assert detector.config.DETECTION_MIN_CONFIDENCE == 0.5
    metrics = evaluate_detector(detector, trained.val, trained.callback.image_ids)
    assert metrics["model_threshold"] == pytest.approx(record["threshold"])
    assert metrics["rsna_score"] == pytest.approx(record["value"], abs=1e-9)
    assert metrics["best_rsna_score"] == pytest.approx(record["value"], abs=1e-9)
    for name in ("map50", "coco_ap", "coco_ap50", "coco_ap75"):
        assert metrics[name] == pytest.approx(record["metrics"][name], abs=1e-9), name


def test_the_inference_model_gets_the_training_weights_and_leaves_them_alone(trained):
    """Every weight of the inference model is copied from the training model's layer of the same name; a
    validation changes no weight of the training model (with TRAIN_BN True, the inference model's batch
    normalisation runs in training mode and moves its own statistics, never the training model's)."""
    from rsna_detector.detector.validation import copy_weights

    training_weights = [np.asarray(w.value).copy() for w in trained.model.keras_model.weights]
    trained.callback.validate()
    assert all(np.array_equal(before, np.asarray(w.value))
               for before, w in zip(training_weights, trained.model.keras_model.weights, strict=True))
    pairs = trained.callback._pairs
    assert len(pairs) == len(trained.callback._inference.keras_model.weights)  # every weight has its source
    copy_weights(pairs)
    for target, source in pairs:
        assert np.array_equal(np.asarray(target.value), np.asarray(source.value)), target.path


def test_resume_keeps_the_best_so_far(trained, tmp_path):
    """A resumed run reads run.json's best and keeps it (and postprocessing.json) until an epoch beats it."""
    from rsna_detector.detector.schedule import Stage, train

    folder = tmp_path / trained.folder.name
    shutil.copytree(trained.folder, folder)
    run_json = folder / "run.json"
    record = json.loads(run_json.read_text())
    record["best"]["value"] = 2.0  # no score reaches it
    run_json.write_text(json.dumps(record))
    stored = (folder / POSTPROCESSING_FILE).read_bytes()

    # train() resumes from the last checkpoint, validating by default (these are its settings)
    model, _ = train((BlobDataset(8, 2), trained.val), _config(STEPS_PER_EPOCH=2), model_dir=tmp_path,
                     epochs=EPOCHS + 1, schedule=[Stage("all", 1.0, EPOCHS + 1, False)], augmentation=None,
                     resume=True, validation={"images": None})
    assert model.log_dir == str(folder) and model.epoch == EPOCHS + 1
    after = json.loads(run_json.read_text())
    assert after["best"] == record["best"] and (folder / POSTPROCESSING_FILE).read_bytes() == stored
    assert after["starts"][-1]["resumed"] is True and after["config"]["STEPS_PER_EPOCH"] == 2  # the rest rewritten
    with open(folder / "training_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == EPOCHS + 1 and math.isfinite(float(rows[-1]["val_best_rsna_score"]))  # it validated


def test_training_is_not_disturbed(tmp_path):
    """The same seeded run with a validation after each epoch and without: the same losses and weights."""
    runs = []
    for name, callbacks in (("plain", lambda model: []),
                            ("validated", lambda model: [ValidationCallback(model, BlobDataset(2, 1, seed=2))])):
        model = modellib.MaskRCNN("training", tiny_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=0), str(tmp_path / name))
        history = model.train(BlobDataset(3, 1), None, 0.02, 2, "all", custom_callbacks=callbacks(model), verbose=0)
        runs.append((history.history, [np.asarray(w.value) for w in model.keras_model.weights]))
    (plain, plain_weights), (validated, validated_weights) = runs
    assert "val_map50" in validated and "val_map50" not in plain
    assert {k: plain[k] for k in plain} == {k: validated[k] for k in plain}
    # Not bit for bit: the first training of a process rounds differently from later ones (two plain runs
    # in one process differ by up to 3e-5 here); a disturbed run (other ROIs sampled) differs far more.
    assert all(np.allclose(a, b, rtol=1e-3, atol=2e-4) for a, b in zip(plain_weights, validated_weights, strict=True))


# --------------------------------------------------------------------------- settings
def test_the_subset_is_fixed_by_its_seed():
    dataset = BlobDataset(20, 10)
    subset = validation_subset(dataset, 12, seed=3)
    assert len(subset) == 12 == len(set(subset)) and subset == sorted(subset)
    assert subset == validation_subset(dataset, 12, seed=3) != validation_subset(dataset, 12, seed=4)
    assert validation_subset(dataset, None) == validation_subset(dataset, 50) == list(dataset.image_ids)


def test_bad_settings_are_named():
    model = SimpleNamespace(config=tiny_config())
    for settings, message in [({"every": 0}, "every: expected a whole number of epochs >= 1"),
                              ({"images": 0}, "images: expected a whole number >= 1 or None"),
                              ({"monitor": "loss"}, "monitor: expected one of best_rsna_score, map50")]:
        with pytest.raises(ValidationError, match=message):
            ValidationCallback(model, BlobDataset(1, 1), **settings)


def test_train_adds_the_callback_once_and_only_with_a_validation_set():
    from rsna_detector.detector.schedule import _with_validation

    model, val = SimpleNamespace(config=tiny_config()), BlobDataset(2, 1)
    (added,) = _with_validation(model, val, True, None)
    assert isinstance(added, ValidationCallback) and len(added.image_ids) == 3 and added.every == 1
    mine = ValidationCallback(model, val, every=3)
    other = object()
    assert _with_validation(model, val, True, [other, mine]) == [other, mine]  # the user's own is kept
    first, rest = _with_validation(model, val, {"every": 2, "images": 2}, [other])
    assert first.every == 2 and len(first.image_ids) == 2 and rest is other  # first: others see its metrics
    assert _with_validation(model, val, False, [other]) == [other]
    assert _with_validation(model, None, True, None) == []


def test_a_best_after_the_resumed_epoch_is_forgotten(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"best": {"metric": "best_rsna_score", "value": 0.5, "epoch": 5}}))
    model = SimpleNamespace(config=tiny_config(), log_dir=str(tmp_path), epoch=5)
    callback = ValidationCallback(model, BlobDataset(1, 1))
    callback.on_train_begin()
    assert callback.best["epoch"] == 5
    model.epoch = 4  # resumed from epoch 4: epoch 5 is trained again, its checkpoint rewritten
    callback = ValidationCallback(model, BlobDataset(1, 1))
    callback.on_train_begin()
    assert callback.best is None
    callback = ValidationCallback(model, BlobDataset(1, 1), monitor="coco_ap")  # another metric: not comparable
    model.epoch = 5
    callback.on_train_begin()
    assert callback.best is None
