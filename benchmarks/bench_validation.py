"""Cost of validation while training (``detector.validation.ValidationCallback``) as a fraction of an epoch.

Two measurements, each in its own process run (``--preset``):

* ``cpu`` (measured whole): ``CPUDemoConfig`` (the demo's settings: 50 steps of 4 images, 5
  validation-loss steps per epoch) on synthetic Kaggle-layout data (1024 px JPEG DICOMs read at
  128 px, as the demo reads them), random weights, every layer trained. Epochs 2.. are timed
  (epoch 1 traces the graphs) and each is followed by the callback on ``--images`` validation
  images (default: ``DEFAULT_VALIDATION_IMAGES``), so epoch and validation alternate round by
  round on the same machine load. Figure: validation seconds / epoch seconds, per round.
* ``rsna`` (measured in parts, extrapolated): ``DetectorConfig`` (ResNet-50, 256 px, batch 8).
  A full RSNA epoch (200 steps + 50 validation-loss steps) takes about an hour on 2 CPU cores,
  so the benchmark times the parts after warm-up, alternating: training steps and
  validation-loss steps (median per step, from a callback's timestamps), and the callback's
  validation of ``--rsna-images`` images (per image, its second run: the first traces), then
  extrapolates ``fraction = (images x validation per image) / (STEPS_PER_EPOCH x train step +
  VALIDATION_STEPS x validation-loss step)``. Assumptions, stated with the figure: validation
  cost grows linearly with the images (detection in batches of 8 plus the metrics, which are
  milliseconds per image); an epoch is its steps (the checkpoint write, ~0.2 s, is left out);
  the ratio of inference to training cost is the CPU's (a GPU's is not measured here).

The machine load (``os.getloadavg``) is printed with every round; the machine is shared, so only
figures of one run (the same load) compare.

Usage::

    python benchmarks/bench_validation.py --preset cpu [--rounds 3] [--images 200]
    python benchmarks/bench_validation.py --preset rsna [--rounds 2] [--rsna-images 24] [--steps 4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["cpu", "rsna"], default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="timed epoch + validation rounds (cpu) / repeats (rsna)")
    parser.add_argument("--images", type=int, default=None, help="validation images (cpu; default the library's)")
    parser.add_argument("--rsna-images", type=int, default=24, help="validation images timed at the RSNA settings")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per round at the RSNA settings")
    parser.add_argument("--json", help="also write the result to this JSON file")
    return parser.parse_args(argv)


def _load():
    return round(os.getloadavg()[0], 1)


def _data(root, n_train):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(root, n_train=n_train, n_test=0, seed=0, progress=False)
    return root


def _clock():
    """A Keras callback timing each epoch, and each training and validation-loss step of it."""
    import keras

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []  # per epoch: {"seconds", "train_steps": [...], "test_steps": [...]}
            self._last = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append({"train_steps": [], "test_steps": []})
            self._start = self._last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # before the validation callback (listed after it)
            self.epochs[-1]["seconds"] = time.perf_counter() - self._start

        def on_train_batch_end(self, batch, logs=None):
            self._lap("train_steps")

        def on_test_begin(self, logs=None):
            self._last = time.perf_counter()

        def on_test_batch_end(self, batch, logs=None):
            self._lap("test_steps")

        def _lap(self, kind):
            now = time.perf_counter()
            self.epochs[-1][kind].append(now - self._last)
            self._last = now

    return Clock()


def _train_alternating(model, train_ds, val_ds, config, rounds, validation):
    """One ``train`` call of ``rounds + 1`` epochs (epoch 1 traces), each followed by ``validation``; loads."""
    import keras

    clock, loads = _clock(), []

    class Load(keras.callbacks.Callback):  # the load at each epoch's start
        def on_epoch_begin(self, epoch, logs=None):
            loads.append(_load())

    model.train(train_ds, val_ds, config.LEARNING_RATE, rounds + 1, "all",
                custom_callbacks=[Load(), clock, validation], verbose=0)
    loads.append(_load())
    return [(clock.epochs[k], validation.history[k], [loads[k], loads[k + 1]]) for k in range(1, rounds + 1)]


def _cpu(args):
    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.detector.dataset import DetectorDataset
    from rsna_detector.detector.validation import DEFAULT_VALIDATION_IMAGES, ValidationCallback
    from rsna_detector.mrcnn import model as modellib

    images = args.images or DEFAULT_VALIDATION_IMAGES
    with tempfile.TemporaryDirectory(prefix="bench_validation_") as tmp:
        data = _data(os.path.join(tmp, "data"), n_train=images + 100)
        config = CPUDemoConfig()
        config.SEED = 0
        config.validate()
        train_ds, val_ds = DetectorDataset.split_from_data_dir(data, image_size=config.IMAGE_MAX_DIM,
                                                               val_count=images, seed=0)
        model = modellib.MaskRCNN("training", config, os.path.join(tmp, "logs"))
        validation = ValidationCallback(model, val_ds, images=images)
        rounds = []
        for epoch, validated, load in _train_alternating(model, train_ds, val_ds, config, args.rounds, validation):
            rounds.append({"epoch_s": round(epoch["seconds"], 2), "validation_s": round(validated["seconds"], 2),
                           "fraction": round(validated["seconds"] / epoch["seconds"], 4), "load": load})
            print(json.dumps(rounds[-1]), flush=True)
    fractions = [r["fraction"] for r in rounds]
    return {"preset": "cpu", "images": images, "steps_per_epoch": config.STEPS_PER_EPOCH,
            "batch": config.BATCH_SIZE, "validation_steps": config.VALIDATION_STEPS, "rounds": rounds,
            "fraction_median": statistics.median(fractions), "fraction_range": [min(fractions), max(fractions)]}


def _rsna(args):
    from rsna_detector.detector.config import DetectorConfig
    from rsna_detector.detector.dataset import DetectorDataset
    from rsna_detector.detector.validation import DEFAULT_VALIDATION_IMAGES, ValidationCallback
    from rsna_detector.mrcnn import model as modellib

    full = DetectorConfig()
    with tempfile.TemporaryDirectory(prefix="bench_validation_") as tmp:
        data = _data(os.path.join(tmp, "data"), n_train=args.rsna_images + 40)
        config = DetectorConfig()
        config.SEED, config.STEPS_PER_EPOCH, config.VALIDATION_STEPS = 0, args.steps + 1, 3
        config.validate()
        train_ds, val_ds = DetectorDataset.split_from_data_dir(data, image_size=config.IMAGE_MAX_DIM,
                                                               val_count=args.rsna_images, seed=0)
        model = modellib.MaskRCNN("training", config, os.path.join(tmp, "logs"))
        validation = ValidationCallback(model, val_ds, images=args.rsna_images)
        rounds = []
        for epoch, validated, load in _train_alternating(model, train_ds, val_ds, config, args.rounds, validation):
            step = statistics.median(epoch["train_steps"][1:])  # the first waits for the input pipeline
            test_step = statistics.median(epoch["test_steps"][1:])
            per_image = validated["seconds"] / args.rsna_images
            epoch_s = full.STEPS_PER_EPOCH * step + full.VALIDATION_STEPS * test_step
            fraction = DEFAULT_VALIDATION_IMAGES * per_image / epoch_s
            rounds.append({"train_step_s": round(step, 3), "val_loss_step_s": round(test_step, 3),
                           "validation_per_image_s": round(per_image, 4), "epoch_s_extrapolated": round(epoch_s, 1),
                           "fraction": round(fraction, 4), "load": load})
            print(json.dumps(rounds[-1]), flush=True)
    fractions = [r["fraction"] for r in rounds]
    return {"preset": "rsna", "images": DEFAULT_VALIDATION_IMAGES, "timed_images": args.rsna_images,
            "steps_per_epoch": full.STEPS_PER_EPOCH, "validation_steps": full.VALIDATION_STEPS,
            "batch": full.BATCH_SIZE, "rounds": rounds, "fraction_median": statistics.median(fractions),
            "fraction_range": [min(fractions), max(fractions)]}


def main(argv=None):
    args = _parse_args(argv)
    from rsna_detector.console import quiet_tensorflow

    quiet_tensorflow()
    started = time.perf_counter()
    result = _cpu(args) if args.preset == "cpu" else _rsna(args)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=1))
    if args.json:
        from rsna_detector._io import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
