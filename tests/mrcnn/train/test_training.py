"""Training end to end: learning, resume, checkpoints, NaN stop, MirroredStrategy, layers."""
import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn import model as modellib
from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.input import pipeline
from rsna_detector.mrcnn.layers import training_graph
from rsna_detector.mrcnn.ops.anchors import pyramid_anchors
from rsna_detector.mrcnn.train import loop
from tests.helpers import BlobDataset, tiny_config

# ----------------------------------------------------------------------------
# learning
# ----------------------------------------------------------------------------

RSNA_SWITCHES = dict(ROI_FILL_NEGATIVES=True, CLASS_LOSS_SKIPS_PADDING=True, ACTIVE_CLASS_PER_IMAGE=True)


@pytest.mark.parametrize("switches", [pytest.param({}, id="matterport"),
                                      pytest.param(RSNA_SWITCHES, marks=pytest.mark.slow, id="rsna-switches")])
def test_learns_blobs_from_scratch(tmp_path, switches):
    """8 images with one blob and 2 empty ones: mAP@0.5 >= 0.9 on them after 120 steps (~1 CPU minute).

    With matterport's ROI sampling and class loss (the defaults), and with the
    switches DetectorConfig turns on.

    From scratch, batch normalisation uses batch statistics (TRAIN_BN True,
    matterport's large-batch setting): frozen, never-fitted BN learns too slowly
    for a CI test, and 120 steps are too few for the moving averages that
    TRAIN_BN None would use at inference. Detection then runs on the 10 images
    as one batch.
    """
    dataset = BlobDataset(8, 2)
    config = tiny_config(STEPS_PER_EPOCH=20, VALIDATION_STEPS=0, TRAIN_BN=True, TRAIN_ON_EMPTY_IMAGES=True,
                         **switches)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    model.train(dataset, None, config.LEARNING_RATE, 6, "all", verbose=0)  # the facade, as users call it

    inference_config = tiny_config(IMAGES_PER_GPU=10, TRAIN_BN=True)
    detector = modellib.MaskRCNN("inference", inference_config, str(tmp_path))
    detector.load_weights(model.find_last(), by_name=True)
    results = detector.detect([dataset.load_image(i) for i in dataset.image_ids])
    precisions = []
    for image_id, result in zip(dataset.image_ids, results):
        masks, class_ids = dataset.load_mask(image_id)
        if len(class_ids):
            ap = utils.compute_ap(utils.extract_bboxes(masks), class_ids, masks, result["rois"],
                                  result["class_ids"], result["scores"], result["masks"])[0]
            precisions.append(ap)
    assert np.mean(precisions) >= 0.9, precisions
    false_detections = sum(len(result["rois"]) for result in results[8:])
    assert false_detections <= 1  # the empty images were trained on


@pytest.mark.slow
def test_seeded_runs_repeat_exactly(tmp_path):
    dataset = BlobDataset(3, 1)
    histories = []
    for run in range(2):
        config = tiny_config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=2)
        model = modellib.MaskRCNN("training", config, str(tmp_path / str(run)))
        histories.append(loop.train(model, dataset, None, 0.02, 1, "all", verbose=0).history)
    assert set(histories[0]) == {"loss", *training_graph.LOSS_NAMES}
    assert histories[0] == histories[1]


def test_mixed_precision_builds_float16_trunk_and_float32_losses():
    import keras

    config = tiny_config(MIXED_PRECISION=True)
    keras_model = training_graph.build_training_model(config)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert keras_model.get_layer("fpn_p2").compute_dtype == "float16"
    assert keras_model.get_layer("mrcnn_class_logits").compute_dtype == "float32"
    loop.set_trainable(keras_model, "all")
    loop.compile_training_model(keras_model, 0.01, config)
    assert isinstance(keras_model.optimizer, keras.optimizers.LossScaleOptimizer)
    batch = pipeline.TrainingBatches(BlobDataset(3, 1), config, shuffle=False).batch(0)
    dataset = tf.data.Dataset.from_tensors((batch,)).repeat()
    history = keras_model.fit(dataset, epochs=2, steps_per_epoch=1, verbose=0, shuffle=False).history
    assert all(np.isfinite(values).all() for values in history.values())
    assert all(output.dtype == tf.float32 for output in keras_model(list(batch))[-5:])


# ----------------------------------------------------------------------------
# graph and layers
# ----------------------------------------------------------------------------

def test_training_graph_outputs_and_names():
    config = tiny_config()
    keras_model = training_graph.build_training_model(config)
    names = {layer.name for layer in keras_model.layers}
    assert set(training_graph.LOSS_NAMES) <= names
    assert {"rpn_model", "ROI", "proposal_targets", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask",
            "fpn_p2", "fpn_c5p5"} <= names
    batch = pipeline.TrainingBatches(BlobDataset(1, 1), config, shuffle=False, batch_size=2).batch(0)
    outputs = keras_model(list(batch), training=False)
    anchors = len(pyramid_anchors(config))
    assert tuple(outputs[0].shape) == (2, anchors, 2)  # rpn_class_logits on P2..P4 only
    assert tuple(outputs[7].shape) == (2, 64, 4)  # rpn_rois
    assert tuple(outputs[8].shape) == (2, 16, 4)  # output_rois
    assert tuple(outputs[6].shape) == (2, 5, 28, 28, 2)  # masks for the int(16 * 0.33) = 5 positive slots
    for value in outputs[-5:]:
        assert np.isfinite(float(value))


def test_layer_presets_select_batch_norm_layers_as_matterport():
    # matterport: BN layers follow the regex like any layer (TRAIN_BN only fixes their statistics)
    config = tiny_config(TRAIN_BN=False)
    keras_model = training_graph.build_training_model(config)
    heads = set(loop.set_trainable(keras_model, "heads", train_bn=False))
    assert "rpn_conv_shared" in heads and "fpn_p2" in heads and "mrcnn_mask" in heads
    assert "tiny_c2" not in heads and "tiny_bn2" not in heads
    assert {"mrcnn_mask_bn1", "mrcnn_class_bn1"} <= heads
    everything = set(loop.set_trainable(keras_model, "all", train_bn=False))
    assert "tiny_c2" in everything and "tiny_bn2" in everything
    custom = loop.set_trainable(keras_model, r"mrcnn\_mask.*", train_bn=False)
    assert "mrcnn_mask" in custom and "mrcnn_class_logits" not in custom


def test_layer_presets_with_freeze_bn_affine():
    # FREEZE_BN_AFFINE with TRAIN_BN False: every BN layer frozen whatever the regex
    config = tiny_config(TRAIN_BN=False, FREEZE_BN_AFFINE=True)
    keras_model = training_graph.build_training_model(config)
    heads = set(loop.set_trainable(keras_model, "heads", train_bn=False))  # the switch read from the model
    assert "mrcnn_mask" in heads
    assert not any(name.startswith("mrcnn_mask_bn") or name.startswith("mrcnn_class_bn") for name in heads)
    everything = set(loop.set_trainable(keras_model, "all", train_bn=False))
    assert "tiny_c2" in everything and "tiny_bn2" not in everything
    with_bn = set(loop.set_trainable(keras_model, "all", train_bn=True))
    assert "tiny_bn2" in with_bn


def test_model_set_trainable_is_matterports_method(tmp_path):
    model = modellib.MaskRCNN("training", tiny_config(TRAIN_BN=False), str(tmp_path))
    names = set(model.set_trainable("heads", verbose=0))
    assert "mrcnn_mask" in names and "tiny_c2" not in names
    assert not model.keras_model.get_layer("tiny_c2").trainable


def test_weight_decay_term_matches_matterport_formula():
    config = tiny_config(WEIGHT_DECAY=0.01)
    keras_model = training_graph.build_training_model(config)
    loop.set_trainable(keras_model, "heads", train_bn=False)
    expected = sum(0.01 * np.mean(np.square(w.numpy())) for w in keras_model.trainable_weights
                   if w.name not in ("gamma", "beta"))
    assert float(keras_model.weight_decay_loss()) == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------
# checkpoints and resume
# ----------------------------------------------------------------------------

def test_epochs_continue_and_resume_from_last_checkpoint(tmp_path):
    dataset = BlobDataset(3, 1)
    model = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    history = loop.train(model, dataset, dataset, 0.01, 1, "heads", verbose=0)
    assert model.epoch == 1 and len(history.history["loss"]) == 1 and "val_loss" in history.history
    first = Path(model.find_last())
    assert first.name == "mask_rcnn_blobs_0001.h5"

    resumed = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    resumed.load_weights(resumed.find_last(), by_name=True)
    assert resumed.epoch == 1 and Path(resumed.log_dir) == first.parent
    resumed.train(dataset, dataset, 0.01, 2, "all", verbose=0)
    assert resumed.epoch == 2
    assert sorted(p.name for p in first.parent.glob("*.h5")) == ["mask_rcnn_blobs_0001.h5", "mask_rcnn_blobs_0002.h5"]
    with open(first.parent / loop.LOG_CSV_NAME) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    with h5py.File(first.parent / "mask_rcnn_blobs_0002.h5") as handle:
        assert int(handle.attrs["epoch"]) == 2
    assert loop.train(resumed, dataset, None, 0.01, 2, "all", verbose=0) is None  # nothing left to do


def test_interrupted_checkpoint_write_keeps_previous_loadable(tmp_path, monkeypatch):
    dataset = BlobDataset(2, 1)
    config = tiny_config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=1)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    loop.train(model, dataset, None, 0.01, 1, "heads", verbose=0)

    class CrashingFile(h5py.File):
        """Opens the temporary file, then fails while writing (a full disk, a kill)."""

        def create_group(self, name, *args, **kwargs):
            raise OSError("simulated crash during checkpoint write")

    monkeypatch.setattr(h5py, "File", CrashingFile)
    saver = loop.CheckpointSaver(model)  # the callback train() uses, at the end of epoch 2
    with pytest.raises(OSError, match="simulated crash"):
        saver.on_epoch_end(1)
    monkeypatch.undo()

    assert model.epoch == 1
    folder = Path(model.log_dir)
    assert sorted(p.name for p in folder.iterdir() if "mask_rcnn" in p.name) == ["mask_rcnn_blobs_0001.h5"]
    fresh = modellib.MaskRCNN("training", config, str(tmp_path))
    fresh.load_weights(fresh.find_last(), by_name=True)
    assert fresh.epoch == 1


# ----------------------------------------------------------------------------
# NaN stop
# ----------------------------------------------------------------------------

def test_nan_loss_stops_naming_epoch_step_and_loss(tmp_path, monkeypatch):
    original = pipeline.TrainingBatches.batch

    def poisoned(self, index):
        arrays = list(original(self, index))
        if index == 1:
            arrays[3] = np.full_like(arrays[3], np.nan)  # RPN box targets of the second batch
        return tuple(arrays)

    monkeypatch.setattr(pipeline.TrainingBatches, "batch", poisoned)
    config = tiny_config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=3)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with pytest.raises(loop.NonFiniteLossError, match=r"epoch 1, step 2: rpn_bbox_loss became NaN"):
        loop.train(model, BlobDataset(2, 1), None, 0.01, 1, "all", verbose=0)
    assert not list(Path(model.log_dir).glob("*.h5"))  # no checkpoint of a broken epoch


@pytest.mark.slow
def test_huge_learning_rate_stops_with_a_named_loss(tmp_path):
    config = tiny_config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=20, GRADIENT_CLIP_NORM=1e30)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with pytest.raises(loop.NonFiniteLossError, match=r"epoch 1, step \d+: .*_loss"):
        loop.train(model, BlobDataset(2, 1), None, 1e12, 1, "all", verbose=0)


# ----------------------------------------------------------------------------
# multi-device
# ----------------------------------------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from tests.helpers import BlobDataset, tiny_config
    from rsna_detector.mrcnn.input import pipeline
    from rsna_detector.mrcnn.layers import training_graph
    from rsna_detector.mrcnn.train import hdf5_weights, loop

    # Every proposal kept (16 proposals, 16 ROIs, ratio 1) so the ROI sampling is not random,
    # and clipping off: per-replica clipping of partial gradients would differ by design.
    settings = dict(POST_NMS_ROIS_TRAINING=16, TRAIN_ROIS_PER_IMAGE=16, ROI_POSITIVE_RATIO=1.0,
                    GRADIENT_CLIP_NORM=1e9, WEIGHT_DECAY=0.001)
    single = tiny_config(GPU_COUNT=1, IMAGES_PER_GPU=4, **settings)
    mirrored = tiny_config(GPU_COUNT=2, IMAGES_PER_GPU=2, **settings)
    pair = pipeline.TrainingBatches(BlobDataset(1, 1), single, shuffle=False, batch_size=2).batch(0)
    # global batch [a, b, a, b]: each replica gets [a, b]
    batch = tuple(np.concatenate([x, x]) for x in pair)
    dataset = tf.data.Dataset.from_tensors((batch,)).repeat()

    results = {}
    path = os.path.join(sys.argv[2], "init.h5")
    for name, config in (("single", single), ("mirrored", mirrored)):
        model = training_graph.build_training_model(config)
        if name == "single":
            hdf5_weights.save_hdf5_weights(model, path)
        else:
            hdf5_weights.load_hdf5_weights(model, path, by_name=True)
        loop.set_trainable(model, "all")
        loop.compile_training_model(model, 0.01, config)
        kernels = [model.get_layer("mrcnn_class_logits").kernel,
                   model.get_layer("rpn_model").get_layer("rpn_conv_shared").kernel,
                   model.get_layer("tiny_c2").kernel]
        before = [k.numpy().ravel()[:200] for k in kernels]
        history = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        results[name] = {
            "replicas": model.distribute_strategy.num_replicas_in_sync,
            "losses": {k: v[-1] for k, v in history.history.items()},
            "updates": [(k.numpy().ravel()[:200] - b).tolist() for k, b in zip(kernels, before)],
        }
    print("RESULT " + json.dumps(results))
""")


@pytest.mark.slow
def test_mirrored_strategy_two_cpus_matches_one_device(tmp_path):
    root = Path(__file__).resolve().parents[3]
    # Deterministic kernels, as in test_multi_worker: the comparison is to float tolerance.
    env = dict(os.environ, PYTHONPATH=str(root), TF_DETERMINISTIC_OPS="1")
    completed = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(root), str(tmp_path)],
                               capture_output=True, text=True, timeout=600, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    results = json.loads(lines[-1][len("RESULT "):])
    single, mirrored = results["single"], results["mirrored"]
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    # Tolerance: float32 reductions in a different order (per replica, then summed).
    for name, value in single["losses"].items():
        assert mirrored["losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    # One SGD step moved the weights by the same amount (a missing 1/replicas would double it).
    for got, want in zip(mirrored["updates"], single["updates"]):
        want = np.asarray(want)
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_more_replicas_than_devices_is_refused():
    with pytest.raises(ValueError, match="GPU_COUNT is 64"):
        training_graph.training_strategy(tiny_config(GPU_COUNT=64))
