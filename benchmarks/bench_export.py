"""The exported detector's speed, file sizes and accuracy against ``detect()``, all formats in one run (issue 21).

Usage::

    python benchmarks/bench_export.py --checkpoint DEMO/logs/<run>/mask_rcnn_pneumonia_cpu_0010.h5 \\
        --data DEMO/synthetic_data [--runs 5] [--json results.json]

(``rsna-detector demo --out DEMO`` makes the checkpoint and the data.)

Speed: the RSNA model (``DetectorConfig``: ResNet-50 FPN, 256 x 256, 1000 proposals;
random weights, seeded) exported as SavedModel, TFLite float32 / float16 / dynamic
range and ONNX; ``detect()`` and each format run on grey uint8 256 x 256 images at
batch 1 and 8 (one warm-up call, then ``--runs`` timed calls, median): milliseconds
per batch and images per second. TensorFlow uses its own thread pools, TFLite and
ONNX Runtime one thread per core. All formats run in this one process, one after the
other. The file sizes of each format are printed.

Accuracy: the demo's trained CPU model (128 px) exported in every format, run on the
synthetic data's validation split (the demo's split: 20 %, seed 0): mAP@0.5 and the
competition score (``detector.evaluate.detection_metrics``, box IoU, in the files'
pixels) of ``detect()`` and of each format, and the largest score difference.

The machine (CPU model, cores, load before and after) is printed: on a shared
machine the figures are worth something only when compared within one run.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import rsna_detector  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FORMATS = ["saved_model", "tflite", "tflite-float16", "tflite-dynamic-range", "onnx"]


def cpu_model():
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def runners(summary):
    """``{name: callable(images) -> list of detect() results}`` of the exported files."""
    from rsna_detector.mrcnn.export import OnnxDetector, SavedModelDetector, TFLiteDetector

    made = {}
    for name, entry in summary["formats"].items():
        path = entry["path"]
        if name == "saved_model":
            made[name] = SavedModelDetector(path).detect
        elif name == "onnx":
            made[name] = OnnxDetector(path).detect
        else:
            made[name] = TFLiteDetector(path).detect
    return made


def time_calls(function, images, runs):
    """Median seconds of ``function(images)`` after one warm-up call."""
    function(images)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(runs, folder):
    """Latency and throughput of detect() and every format, batch 1 and 8, 256 px, ResNet-50; and the sizes."""
    import keras

    from rsna_detector.detector.config import DetectorConfig
    from rsna_detector.detector.export import export_detector
    from rsna_detector.mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(0)
    config = DetectorConfig()
    model = MaskRCNN("inference", config, str(folder))
    started = time.perf_counter()
    # no check against detect(): random weights saturate the RPN (many scores exactly 1.0), so which proposals
    # survive the top-k among equals depends on rounding, and the formats' detections differ by design
    summary = export_detector(model, folder / "resnet50", formats=FORMATS, masks=True, verify=False)
    export_seconds = time.perf_counter() - started
    functions = {"detect()": lambda images: model.detect(list(images))}
    functions.update(runners(summary))
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 8):
        images = rng.integers(0, 256, (batch, 256, 256), dtype=np.uint8)
        for name, function in functions.items():
            seconds = time_calls(function, images, runs)
            rows.append({"format": name, "batch": batch, "ms_per_batch": 1000 * seconds,
                         "images_per_s": batch / seconds})
            print(f"  {name:22s} batch {batch}: {1000 * seconds:8.0f} ms  {batch / seconds:6.2f} images/s", flush=True)
    sizes = {name: entry["bytes"] for name, entry in summary["formats"].items()}
    return {"rows": rows, "sizes": sizes, "export_seconds": export_seconds}


def accuracy(checkpoint, data, folder):
    """mAP@0.5 and the competition score of detect() and of each exported format on the validation split."""
    from rsna_detector.cli.export import checkpoint_config
    from rsna_detector.detector.dataset import DetectorDataset
    from rsna_detector.detector.evaluate import detection_metrics, records_from_predictions
    from rsna_detector.detector.export import export_detector
    from rsna_detector.detector.submission import ImagePrediction
    from rsna_detector.mrcnn.model import MaskRCNN

    config = checkpoint_config(checkpoint)
    model = MaskRCNN("inference", config, str(Path(checkpoint).parent))
    model.load_weights(str(checkpoint), by_name=True)
    summary = export_detector(model, folder / "demo", formats=FORMATS, masks=False)
    _, val = DetectorDataset.split_from_data_dir(data, image_size=config.IMAGE_MAX_DIM, val_fraction=0.2, seed=0,
                                                 train_negatives_per_positive=1.0)
    ids = list(val.image_ids)
    images = np.stack([val.load_image(i)[..., 0] for i in ids])  # grey, the model's size
    ground_truth = {val.patient_id(i): val.load_boxes(i) for i in ids}
    scales = [np.tile(np.array(val.image_info[i]["original_shape"], np.float32) / config.IMAGE_MAX_DIM, 2) for i in ids]
    functions = {"detect()": lambda batch: model.detect(list(batch))}
    functions.update(runners(summary))
    results, table = {}, []
    for name, function in functions.items():
        detections = [r for start in range(0, len(ids), 8) for r in function(images[start:start + 8])]
        results[name] = detections
        predictions = [ImagePrediction(val.patient_id(i), r["rois"].astype(np.float32) * scale, r["scores"])
                       for i, r, scale in zip(ids, detections, scales, strict=True)]
        metrics = detection_metrics(records_from_predictions(ground_truth, predictions), iou="box")
        worst = max((float(np.abs(a["scores"] - b["scores"]).max()) for a, b in zip(detections, results["detect()"])
                     if len(a["scores"]) == len(b["scores"]) and len(a["scores"])), default=0.0)
        counts = sum(len(a["scores"]) != len(b["scores"]) for a, b in zip(detections, results["detect()"]))
        table.append({"format": name, "map50": metrics["map50"], "rsna_score": metrics["rsna_score"],
                      "max_score_difference": worst, "images_with_another_count": counts})
        print(f"  {name:22s} mAP@0.5 {metrics['map50']:.4f}  competition score {metrics['rsna_score']:.4f}  "
              f"max score difference {worst:.2g}  images with another count {counts}", flush=True)
    return {"images": len(ids), "table": table}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the demo's trained checkpoint (accuracy part)")
    parser.add_argument("--data", required=True, help="the demo's synthetic data folder (its validation split)")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per format and batch (default 5)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": os.getloadavg()}
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores, load {machine['load_before']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_export_") as temporary:
        print("speed (ResNet-50, 256 x 256 grey uint8, random weights):", flush=True)
        results = {"speed": speed(args.runs, Path(temporary))}
        for name, size in results["speed"]["sizes"].items():
            print(f"  {name:22s} {size / 1e6:7.1f} MB")
        print("accuracy (the demo's model on its validation split):", flush=True)
        results["accuracy"] = accuracy(args.checkpoint, args.data, Path(temporary))
    machine["load_after"] = os.getloadavg()
    results["machine"] = machine
    print(f"load after: {machine['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
