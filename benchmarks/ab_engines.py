"""A/B of two versions of the engine in one process: equal results first, then interleaved timing.

Usage (from a checkout; the working tree is "new", a git revision is "base")::

    PYTHONPATH=$PWD python benchmarks/ab_engines.py train [--base HEAD] [--reps 6] [--batch 8]
    PYTHONPATH=$PWD python benchmarks/ab_engines.py infer [--base HEAD] [--batches 1 8]

``--base`` is exported with ``git archive`` and imported as the package ``rsna_detector_base``
beside the working tree's ``rsna_detector``, so both run in the same process, on the same
weights (copied by layer name), interleaved (each repetition times both, in alternating
order), and the machine's load falls on both alike. Settings: ``bench_peer.py``'s (peer
anchor scales 16-256 on P2-P6; ``--detector-config`` for DetectorConfig's 16-128 on P2-P5).

Equality checks printed before the timing:

* ``infer``: detections (classes and order exactly, boxes, scores), the class masks, and every
  output of the Keras inference model (max absolute difference);
* ``train``: the five losses and the objective, and every gradient (max |difference| /
  max |gradient| per variable), with the ROI sampling of the detection targets made
  deterministic on both sides (a fixed key per proposal instead of uniform noise).

Timing: ``detect`` per image (``infer``); the compiled training step ``train_function``
(``train``); wall and process CPU time, median and best, B/A ratios, with the 1-minute load.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BASE_PACKAGE = "rsna_detector_base"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["infer", "train"])
    parser.add_argument("--base", default="HEAD", help="git revision of the base (default HEAD)")
    parser.add_argument("--reps", type=int, default=6, help="timed repetitions (default 6)")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 8], help="inference batches")
    parser.add_argument("--batch", type=int, default=8, help="training batch (default 8)")
    parser.add_argument("--detector-config", action="store_true", help="DetectorConfig's anchors, not the peer's")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--same", action="store_true", help="base = the working tree too (noise floor)")
    return parser.parse_args(argv)


def export_base(revision, folder):
    """``rsna_detector`` at ``revision`` as package ``rsna_detector_base`` under ``folder``."""
    archive = subprocess.run(["git", "archive", revision, "rsna_detector"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (Path(folder) / "rsna_detector").rename(Path(folder) / BASE_PACKAGE)
    sys.path.insert(0, str(folder))


def config_for(package, batch, detector_config):
    import peer_common

    base = importlib.import_module(package + ".detector.config").DetectorConfig

    class Settings(base):
        IMAGES_PER_GPU = batch
        SEED = 0
        DATA_LOADER_WORKERS = 0

    if not detector_config:
        Settings.RPN_ANCHOR_SCALES = peer_common.PEER_ANCHOR_SCALES
    return Settings().validate()


def copy_weights(source, target):
    import keras

    for layer in source.layers:
        if isinstance(layer, keras.Model):
            copy_weights(layer, target.get_layer(layer.name))
        elif layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def interleave(functions, reps, per=1.0):
    """``name -> (wall [s], cpu [s], loads)`` of ``reps`` calls each, alternating the order; one untimed call first."""
    record = {name: ([], [], []) for name in functions}
    names = list(functions)
    for rep in range(reps + 1):
        for name in (names if rep % 2 == 0 else names[::-1]):
            wall, cpu = time.perf_counter(), time.process_time()
            functions[name]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if rep:
                record[name][0].append(wall / per)
                record[name][1].append(cpu / per)
                record[name][2].append(os.getloadavg()[0])
    return record


def report(record, scale, unit):
    base = None
    for name, (wall, cpu, loads) in record.items():
        figures = (statistics.median(wall), min(wall), statistics.median(cpu), min(cpu))
        line = (f"  {name:4} wall median {figures[0] * scale:8.1f} best {figures[1] * scale:8.1f}   "
                f"cpu median {figures[2] * scale:8.1f} best {figures[3] * scale:8.1f} {unit}")
        if base is None:
            base = figures
        else:
            ratios = [new / old for new, old in zip(figures, base)]
            line += "   B/A wall {:.3f} / {:.3f}  cpu {:.3f} / {:.3f}".format(*ratios)
        print(line + f"   load {min(loads):.1f}-{max(loads):.1f}", flush=True)


def packages(args):
    return {"A": "rsna_detector" if args.same else BASE_PACKAGE, "B": "rsna_detector"}


def infer(args):
    import keras
    import peer_common

    models = {}
    for tag, package in packages(args).items():
        MaskRCNN = importlib.import_module(package + ".mrcnn.model").MaskRCNN
        keras.utils.set_random_seed(0)
        models[tag] = MaskRCNN("inference", config_for(package, max(args.batches), args.detector_config),
                               model_dir=tempfile.mkdtemp())
    copy_weights(models["A"].keras_model, models["B"].keras_model)
    images, _ = peer_common.synthetic_samples(max(args.batches))
    molded, metas, _ = models["A"].mold_inputs(images)
    outputs = {tag: [o.numpy() for o in m._detect_function(molded.shape[1:])(molded, metas)]
               for tag, m in models.items()}
    (det_a, mask_a), (det_b, mask_b) = outputs["A"], outputs["B"]
    print(f"detect: classes/order equal {np.array_equal(det_a[..., 4], det_b[..., 4])}, max |box diff| "
          f"{np.abs(det_a[..., :4] - det_b[..., :4]).max():.2e}, max |score diff| "
          f"{np.abs(det_a[..., 5] - det_b[..., 5]).max():.2e}, max |mask diff| {np.abs(mask_a - mask_b).max():.2e}")
    anchors = models["A"].get_anchors(molded.shape[1:])
    anchors = np.broadcast_to(anchors, (len(molded),) + anchors.shape)
    raw = {tag: m.keras_model([molded, metas, anchors], training=False) for tag, m in models.items()}
    names = ["detections", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "rpn_rois", "rpn_class", "rpn_bbox"]
    print("keras model outputs, max |diff|: " + ", ".join(
        f"{n} {np.abs(a.numpy() - b.numpy()).max():.1e}" for n, a, b in zip(names, raw["A"], raw["B"])))
    for batch in args.batches:
        print(f"detect, batch {batch} (ms per image):")
        record = interleave({t: (lambda m=m: m.detect(images[:batch])) for t, m in models.items()}, args.reps, batch)
        report(record, 1000, "ms")


def fixed_keys_sampling(targets_module):
    """Make ``targets_module``'s detection targets sample with fixed keys (returns an undo function)."""
    import tensorflow as tf

    original = targets_module.detection_targets_graph

    def with_fixed_keys(proposals, gt_class_ids, gt_boxes, gt_masks, config, random_keys=None):
        shape = tf.shape(proposals)[:2]
        index = tf.cast(tf.range(shape[0] * shape[1]), tf.float32)
        keys = tf.reshape(tf.math.floormod(index * 0.618034 + 0.123, 1.0), shape)
        return original(proposals, gt_class_ids, gt_boxes, gt_masks, config, random_keys=keys)

    targets_module.detection_targets_graph = with_fixed_keys
    return lambda: setattr(targets_module, "detection_targets_graph", original)


def train(args):
    import peer_common
    import peer_ours
    import tensorflow as tf

    images, boxes = peer_common.synthetic_samples(args.batch)
    models, batch = {}, None
    for tag, package in packages(args).items():
        training = importlib.import_module(package + ".mrcnn.layers.training_graph")
        trainer = importlib.import_module(package + ".mrcnn.train.loop")
        config = config_for(package, args.batch, args.detector_config)
        model = training.build_training_model(config)
        trainer.set_trainable(model, "all", train_bn=config.TRAIN_BN)
        trainer.compile_training_model(model, peer_common.LEARNING_RATE, config)
        models[tag] = model
        if batch is None:
            input_pipeline = importlib.import_module("rsna_detector.mrcnn.input.pipeline")
            dataset = peer_ours.samples_dataset(images, boxes)
            batch = input_pipeline.TrainingBatches(dataset, config, shuffle=False).batch(0)
    copy_weights(models["A"], models["B"])
    inputs = [tf.constant(a) for a in batch]
    results = {}
    for tag, package in packages(args).items():
        undo = fixed_keys_sampling(importlib.import_module(package + ".mrcnn.layers.detection_targets"))
        model = models[tag]

        @tf.function
        def loss_and_gradients(x, model=model):
            with tf.GradientTape() as tape:
                total, named = model._objective(x, training=True)
            return total, named, tape.gradient(total, model.trainable_variables)

        try:
            total, named, gradients = loss_and_gradients(inputs)
        finally:
            undo()
        results[tag] = (float(total), {k: float(v) for k, v in named.items()}, gradients)
    (total_a, named_a, grads_a), (total_b, named_b, grads_b) = results["A"], results["B"]
    print(f"objective A {total_a:.7f} B {total_b:.7f} (relative diff {abs(total_a - total_b) / abs(total_a):.1e}); "
          + ", ".join(f"{k} {named_a[k]:.7f}/{named_b[k]:.7f}" for k in named_a))
    worst = max((np.abs(a.numpy() - b.numpy()).max() / (np.abs(a.numpy()).max() + 1e-12)
                 for a, b in zip(grads_a, grads_b) if a is not None and b is not None), default=0.0)
    print(f"gradients: {len(grads_a)} variables, worst max|diff| / max|grad| {worst:.1e}", flush=True)
    steps = {}
    for tag, model in models.items():
        model.make_train_function()
        iterator = iter(tf.data.Dataset.from_tensors((tuple(batch),)).repeat())
        steps[tag] = (lambda model=model, iterator=iterator: model.train_function(iterator))
        steps[tag]()
    print(f"training step, batch {args.batch} (s):")
    report(interleave(steps, args.reps), 1, "s")


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        if not args.same:
            export_base(args.base, folder)
        print(f"A = {'working tree' if args.same else 'base ' + args.base}, B = working tree; "
              f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        (infer if args.mode == "infer" else train)(args)


if __name__ == "__main__":
    main()
