"""Training speed of the Mask R-CNN engine at the RSNA settings, on CPU.

Settings: ``DetectorConfig`` (ResNet-50, 256 x 256, batch 8, 32 ROIs per image,
anchor scales 16-128 on P2-P5, 2 classes, at most 4 boxes), random weights,
synthetic images (a third with one or two bright boxes, the rest empty, like
RSNA's class balance), all layers trained. The figure is the median time of a
full training step (data wait included) over the steps after warm-up, as
images per second. Reference: torchvision ``maskrcnn_resnet50_fpn`` trains at
about 0.72 images/s on this machine type (2 cores, ~11 s per step of 8).

The machine load (``os.getloadavg``) is printed with the figure: the result
is only comparable between runs on an idle machine.

Usage::

    python benchmarks/bench_train.py [--steps 6] [--warmup 2] [--layers all] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (tracing)")
    parser.add_argument("--layers", default="all", help="layers preset or regex to train")
    parser.add_argument("--batch", type=int, default=8, help="IMAGES_PER_GPU")
    parser.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0: TF default)")
    parser.add_argument("--json", help="also write the result to this JSON file")
    return parser.parse_args(argv)


def _synthetic_dataset(count, size, seed=0):
    from rsna_detector.mrcnn import utils

    class SyntheticXrays(utils.Dataset):
        """Grey noisy images; a third hold one or two bright filled boxes."""

        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(seed)
            self.add_class("synthetic", 1, "opacity")
            for i in range(count):
                boxes = []
                if i % 3 == 0:
                    for _ in range(1 + i % 2):
                        h, w = rng.integers(30, 90, 2)
                        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
                        boxes.append((int(y), int(x), int(y + h), int(x + w)))
                self.add_image("synthetic", image_id=i, path=None, boxes=boxes, noise=int(rng.integers(1 << 30)))
            self.prepare()

        def load_image(self, image_id):
            info = self.image_info[image_id]
            image = np.random.default_rng(info["noise"]).integers(40, 120, (size, size, 1)).astype(np.uint8)
            for y1, x1, y2, x2 in info["boxes"]:
                image[y1:y2, x1:x2] = 200
            return np.repeat(image, 3, axis=2)

        def load_mask(self, image_id):
            boxes = self.image_info[image_id]["boxes"]
            mask = np.zeros((size, size, len(boxes)), bool)
            for k, (y1, x1, y2, x2) in enumerate(boxes):
                mask[y1:y2, x1:x2, k] = True
            return mask, np.ones(len(boxes), np.int32)

    return SyntheticXrays()


class _StepTimer:
    """Keras callback recording the wall time of every training step."""

    def __new__(cls):
        import keras

        class StepTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []
                self._start = None

            def on_train_batch_begin(self, batch, logs=None):
                self._start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter() - self._start)

        return StepTimer()


def run(steps=6, warmup=2, layers="all", batch=8, threads=0):
    """Time ``steps`` training steps after ``warmup``; returns a dict of figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    from rsna_detector.detector.config import DetectorConfig
    from rsna_detector.mrcnn.input import pipeline
    from rsna_detector.mrcnn.layers import training_graph
    from rsna_detector.mrcnn.train import loop

    class BenchConfig(DetectorConfig):
        IMAGES_PER_GPU = batch
        SEED = 0

    config = BenchConfig()
    started = time.perf_counter()
    keras_model = training_graph.build_training_model(config)
    build_s = time.perf_counter() - started
    loop.set_trainable(keras_model, layers, train_bn=config.TRAIN_BN)
    loop.compile_training_model(keras_model, config.LEARNING_RATE, config)
    batches = pipeline.TrainingBatches(_synthetic_dataset(4 * batch, int(config.IMAGE_SHAPE[0])), config)
    timer = _StepTimer()
    started = time.perf_counter()
    keras_model.fit(pipeline.make_input_dataset(batches), epochs=1, steps_per_epoch=warmup + steps,
                    callbacks=[timer], verbose=0, shuffle=False)
    total_s = time.perf_counter() - started
    timed = timer.times[warmup:]
    median = statistics.median(timed)
    load = os.getloadavg()
    return {
        "images_per_s": config.BATCH_SIZE / median,
        "median_step_s": median,
        "step_times_s": [round(t, 3) for t in timer.times],
        "batch": config.BATCH_SIZE,
        "layers": layers,
        "trainable_weights": len(keras_model.trainable_weights),
        "build_s": build_s,
        "fit_total_s": total_s,
        "load_average_1_5_15": [round(v, 2) for v in load],
        "cpus": os.cpu_count(),
        "target_images_per_s": 0.72,
    }


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory():
        result = run(steps=args.steps, warmup=args.warmup, layers=args.layers, batch=args.batch,
                     threads=args.threads)
    print(json.dumps(result, indent=2))
    print(f"training: {result['images_per_s']:.3f} images/s (median step {result['median_step_s']:.2f} s, "
          f"batch {result['batch']}, layers {result['layers']}); target >= 0.72 images/s; "
          f"load average {result['load_average_1_5_15']} on {result['cpus']} CPUs")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
