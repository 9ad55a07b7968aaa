"""bfloat16 inference (opt-in) against float32: its speed at the peer settings and its accuracy delta.

Usage (the library's venv)::

    python benchmarks/bf16_inference.py [--demo-dir /tmp/bf16_demo] [--reps 6] [--skip-accuracy]

* Speed: ``MaskRCNN.detect`` at the peer settings of ``bench_peer.py`` (ResNet-50-FPN, 256 px,
  1000 proposals, random weights), one model built under float32 and one under Keras'
  ``mixed_bfloat16`` policy with the same weights, timed alternately in one process (process CPU
  time per image: the load of a shared machine does not inflate it).
* Accuracy: the ``make demo`` model (``run_demo`` on its synthetic data, CPU preset, trained here
  unless ``--demo-dir`` already holds its run), its last checkpoint loaded into a float32 and a
  bfloat16 inference model, both scored by ``evaluate_detector`` on the demo's validation split;
  per image, the detections are compared (counts, box corners in pixels, scores).

Only meaningful where the CPU computes bfloat16 natively (AVX512_BF16 or AMX; the script says
which): elsewhere oneDNN emulates it and it is slower than float32.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402


def build(dtype_policy, factory):
    """``factory()`` (a MaskRCNN constructor call) under Keras' ``dtype_policy``."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        return factory()
    finally:
        keras.config.set_dtype_policy(previous)


def speed(reps):
    """CPU ms per image of float32 and bfloat16 ``detect`` at the peer settings, batches 1 and 8."""
    import peer_ours

    from rsna_detector.mrcnn.model import MaskRCNN

    out = {}
    for batch in (1, 8):
        images, _ = pc.synthetic_samples(batch)
        with tempfile.TemporaryDirectory() as logs:
            f32 = peer_ours.OurInference(True, batch, logs).model
            b16 = build("mixed_bfloat16", lambda batch=batch, logs=logs: MaskRCNN(
                "inference", peer_ours.our_config(batch, True), model_dir=logs))
            b16.keras_model.set_weights(f32.keras_model.get_weights())
            cpu = {"float32": [], "bfloat16": []}
            for rep in range(reps + 2):
                pair = [("float32", f32), ("bfloat16", b16)]
                for name, model in (pair if rep % 2 else pair[::-1]):
                    start = time.process_time()
                    model.detect(images)
                    if rep >= 2:
                        cpu[name].append(time.process_time() - start)
            out[batch] = {name: 1000 * statistics.median(v) / batch for name, v in cpu.items()}
    return out


def accuracy(demo_dir):
    """Metrics of the demo model in float32 and bfloat16, and the per-image differences."""
    import numpy as np

    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.detector.dataset import DetectorDataset
    from rsna_detector.detector.demo import run_demo
    from rsna_detector.detector.evaluate import evaluate_detector
    from rsna_detector.mrcnn.model import MaskRCNN

    demo_dir = Path(demo_dir)
    if not (demo_dir / "summary.json").exists():
        run_demo(demo_dir, progress=False)
    config = CPUDemoConfig()
    _, val = DetectorDataset.split_from_data_dir(demo_dir / "synthetic_data", image_size=config.IMAGE_MAX_DIM,
                                                 val_fraction=0.2, seed=0, train_negatives_per_positive=1.0)
    models = {}
    for name, policy in (("float32", "float32"), ("bfloat16", "mixed_bfloat16")):
        model = build(policy, lambda: MaskRCNN("inference", CPUDemoConfig(), model_dir=demo_dir / "logs"))
        model.load_weights(model.find_last(), by_name=True)
        models[name] = model
    metrics = {name: evaluate_detector(m, val, val.image_ids, config=m.config, out_dir=None, verbose=False)
               for name, m in models.items()}
    counts_differ, box_diffs, score_diffs = 0, [], []
    for image_id in val.image_ids:
        image = val.load_image(image_id)
        a, b = (models[name].detect([image])[0] for name in ("float32", "bfloat16"))
        if len(a["scores"]) != len(b["scores"]):
            counts_differ += 1
            continue
        if len(a["scores"]):
            box_diffs.append(int(np.abs(a["rois"].astype(int) - b["rois"].astype(int)).max()))
            score_diffs.append(float(np.abs(a["scores"] - b["scores"]).max()))
    return {"metrics": metrics, "images": len(val.image_ids), "detection_counts_differ": counts_differ,
            "max_box_diff_px": max(box_diffs, default=0),
            "median_box_diff_px": statistics.median(box_diffs) if box_diffs else 0,
            "max_score_diff": max(score_diffs, default=0.0)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default=os.path.join(tempfile.gettempdir(), "bf16_demo"))
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import peer_ours

    from rsna_detector.mrcnn.inference.detect import native_bfloat16

    peer_ours.set_threads(os.cpu_count())
    machine = pc.cpu_info()
    print(f"CPU {machine['model']} ({' '.join(machine['flags'])}); native bfloat16: {native_bfloat16()}; "
          f"load {pc.load()}")
    for batch, figures in speed(args.reps).items():
        print(f"peer settings, batch {batch}: CPU ms per image, float32 {figures['float32']:.0f}, bfloat16 "
              f"{figures['bfloat16']:.0f} ({figures['bfloat16'] / figures['float32']:.2f}x); load {pc.load()}")
    if not args.skip_accuracy:
        result = accuracy(args.demo_dir)
        for name, m in result.pop("metrics").items():
            print(f"demo model, {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()
                                                       if isinstance(v, float)))
        print(f"demo model, per image: {result}")


if __name__ == "__main__":
    main()
