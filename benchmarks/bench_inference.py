"""Inference-speed benchmark of ``MaskRCNN.detect`` at the RSNA settings, random weights.

Usage::

    python benchmarks/bench_inference.py [--runs 10] [--batches 1 8] [--backbone resnet50]

Settings (the brief's and torchvision's reference run): 256 x 256 RGB uint8 images,
ResNet-50 FPN, 1000 post-NMS proposals, 2 classes, anchor scales 16-128 on P2-P5,
detection confidence 0.78, NMS 0.01, at most 3 detections. Per batch size: one
warm-up call (graph tracing), then ``--runs`` timed ``detect`` calls (end to end:
molding, the compiled graph, unmolding masks); printed: median ms per image, the
reference figure (torchvision ``maskrcnn_resnet50_fpn`` at batch 1 on the same
machine type, about 435 ms/image) and the ratio. The machine load (``os.getloadavg``)
is printed before and after: on a shared machine the numbers are only worth
something when the load is low.
"""
import argparse
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

#: torchvision maskrcnn_resnet50_fpn, batch 1, 256 px, same settings, this machine type (docs/DATA_AND_SETTINGS.md, reference figures).
REFERENCE_MS_PER_IMAGE = 435.0


def benchmark_config(batch_size, backbone="resnet50"):
    """``DetectorConfig`` (the RSNA settings, 1000 proposals at inference) with ``IMAGES_PER_GPU = batch_size``."""
    from rsna_detector.detector.config import DetectorConfig

    config = DetectorConfig()
    config.IMAGES_PER_GPU, config.BACKBONE = batch_size, backbone
    assert config.POST_NMS_ROIS_INFERENCE == 1000
    return config.validate()


def time_detect(batch_size, runs, backbone, seed=0):
    """Median and spread of ms per image of ``detect`` on ``batch_size`` random images."""
    import keras

    from rsna_detector.mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(seed)
    model = MaskRCNN("inference", benchmark_config(batch_size, backbone), model_dir="/tmp/bench_inference_logs")
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(batch_size)]
    start = time.perf_counter()
    model.detect(images)
    warmup = time.perf_counter() - start
    per_image = []
    for _ in range(runs):
        start = time.perf_counter()
        results = model.detect(images)
        per_image.append((time.perf_counter() - start) * 1000.0 / batch_size)
    detections = sum(len(r["scores"]) for r in results) / batch_size
    return {"batch": batch_size, "median": statistics.median(per_image), "min": min(per_image),
            "max": max(per_image), "warmup_s": warmup, "traces": model.trace_count,
            "detections_per_image": detections}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed calls per batch size (default 10)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--backbone", default="resnet50", help="backbone (default resnet50)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    rows = [time_detect(batch, args.runs, args.backbone) for batch in args.batches]
    print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"\nMaskRCNN.detect, {args.backbone}, 256x256, 1000 proposals, random weights, "
          f"median of {args.runs} runs after one warm-up")
    print(f"{'batch':>5} {'ms/image':>9} {'min':>7} {'max':>7} {'warm-up s':>9} {'traces':>6} "
          f"{'dets/img':>8} {'vs 435 ms':>9}")
    for row in rows:
        print(f"{row['batch']:>5} {row['median']:>9.1f} {row['min']:>7.1f} {row['max']:>7.1f} "
              f"{row['warmup_s']:>9.1f} {row['traces']:>6} {row['detections_per_image']:>8.1f} "
              f"{row['median'] / REFERENCE_MS_PER_IMAGE:>8.2f}x")
    print(f"reference: torchvision maskrcnn_resnet50_fpn, batch 1: {REFERENCE_MS_PER_IMAGE:.0f} ms/image "
          "(ratio < 1 is faster)")
    return rows


if __name__ == "__main__":
    main()
