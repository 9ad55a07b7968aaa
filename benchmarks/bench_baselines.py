"""Training and inference speed of the baselines on CPU: the three classifiers and the RetinaNet.

Models, random weights (no download):

* classifiers (``rsna_detector.baselines.classifier.build_classifier``): VGG19, ResNet50,
  DenseNet121 (CheXNet has DenseNet121's cost), 224 x 224 x 3, compiled as the
  report (Adam, binary cross-entropy, accuracy/precision/recall/F1);
* RetinaNet (``rsna_detector.baselines.retinanet.build_retinanet``): keras-hub, ResNet-50
  FPN P3-P7, 9 anchors per location, 256 x 256, focal + smooth-L1 losses;
  inference includes keras-hub's box decoding and NMS.

Figures: training images per second (median ``fit`` step on one repeated batch over
the steps after warm-up, at ``--batch``) and inference milliseconds per image
(median ``predict`` call at batch 1, and at ``--batch`` divided by it). Inputs
are random preprocessed arrays: DICOM decoding is not included (see
``bench_decode.py``: about 3-4 ms per image at 256). The machine load
(``os.getloadavg``) is printed with the figures: compare runs on an idle machine.

Usage::

    python benchmarks/bench_baselines.py [--models vgg19,resnet50,densenet121,retinanet]
                                         [--steps 4] [--warmup 2] [--batch 8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

try:
    import rsna_detector  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("vgg19", "resnet50", "densenet121", "retinanet")


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from " + ", ".join(MODELS))
    parser.add_argument("--steps", type=int, default=4, help="timed steps / calls after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (graph tracing)")
    parser.add_argument("--batch", type=int, default=8, help="training and batched-inference batch size")
    parser.add_argument("--classifier-size", type=int, default=224, help="classifier input side")
    parser.add_argument("--retinanet-size", type=int, default=256, help="RetinaNet input side")
    parser.add_argument("--json", help="also write the results to this JSON file")
    return parser.parse_args(argv)


def _median_seconds(function, warmup, steps):
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _median_train_step(model, images, targets, warmup, steps):
    """Median seconds of a ``fit`` step on one repeated batch, timed by a callback (keras-hub's
    ``train_on_batch`` does not take its dict targets)."""
    import keras
    import tensorflow as tf

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.durations = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.durations.append(time.perf_counter() - self.start)

    timer = StepTimer()
    dataset = tf.data.Dataset.from_tensors((images, targets)).repeat()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0, shuffle=False)
    return statistics.median(timer.durations[warmup:])


def _classifier_case(name, size, batch, rng):
    from rsna_detector.baselines.classifier import build_classifier

    model = build_classifier(name, weights=None, input_shape=(size, size, 3))
    images = rng.normal(0, 1, (batch, size, size, 3)).astype("float32")
    labels = (rng.random((batch, 1)) < 0.3).astype("float32")
    return model, images, labels, lambda x: model.predict(x, batch_size=len(x), verbose=0)


def _retinanet_case(size, batch, rng):
    from rsna_detector.baselines.retinanet import build_retinanet

    model = build_retinanet(size, weights=None, seed=0)
    images = rng.normal(0, 50, (batch, size, size, 3)).astype("float32")
    boxes = np.full((batch, 2, 4), -1.0, "float32")
    labels = np.full((batch, 2), -1.0, "float32")
    for row in range(0, batch, 3):  # a third of the images hold one box, like RSNA's class balance
        top, left = rng.integers(0, size // 2, 2)
        boxes[row, 0] = [top, left, top + size // 4, left + size // 6]
        labels[row, 0] = 0
    return model, images, {"boxes": boxes, "labels": labels}, lambda x: model.predict(x, batch_size=len(x), verbose=0)


def measure(name, args, rng):
    """One row of the table.

    Returns
    -------
    dict
        ``model``, ``input``, ``params``, ``train_images_per_s``, ``infer_ms_per_image_batch1``,
        ``infer_ms_per_image_batchN``.
    """
    if name == "retinanet":
        size = args.retinanet_size
        model, images, targets, predict = _retinanet_case(size, args.batch, rng)
    else:
        size = args.classifier_size
        model, images, targets, predict = _classifier_case(name, size, args.batch, rng)
    train_step = _median_train_step(model, images, targets, args.warmup, args.steps)
    single = _median_seconds(lambda: predict(images[:1]), args.warmup, args.steps)
    # a fresh predict function for the new batch size (keras-hub's NMS fails on a retraced, unknown batch size)
    model.make_predict_function(force=True)
    batched = _median_seconds(lambda: predict(images), args.warmup, args.steps)
    return {
        "model": name, "input": f"{size}x{size}x3", "params": int(model.count_params()),
        "train_images_per_s": args.batch / train_step,
        "train_step_s": train_step,
        "infer_ms_per_image_batch1": single * 1000,
        f"infer_ms_per_image_batch{args.batch}": batched * 1000 / args.batch,
    }


def main(argv=None):
    args = _parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; expected {', '.join(MODELS)}")
    rng = np.random.default_rng(0)
    results = []
    print(f"CPU: {os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    for name in names:
        result = measure(name, args, rng)
        result["load_average_1min"] = os.getloadavg()[0]
        results.append(result)
        print(f"{name:12s} {result['input']:>11s}  {result['params'] / 1e6:5.1f} M params  "
              f"train {result['train_images_per_s']:6.2f} img/s (batch {args.batch})  "
              f"inference {result['infer_ms_per_image_batch1']:7.1f} ms/img (batch 1), "
              f"{result[f'infer_ms_per_image_batch{args.batch}']:7.1f} ms/img (batch {args.batch})  "
              f"load {result['load_average_1min']:.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
