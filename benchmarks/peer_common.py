"""What both sides of the peer benchmark share: settings, synthetic data, timing, the machine.

numpy only: the TensorFlow worker (``peer_ours.py``) and the torch worker (``peer_torch.py``)
both import it, so neither engine's process ever loads the other's framework.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

IMAGE_SIZE = 256
NUM_CLASSES = 2
PEER_ANCHOR_SCALES = (16, 32, 64, 128, 256)
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
POST_NMS_INFERENCE, POST_NMS_TRAINING = 1000, 2000
TRAIN_ROIS_PER_IMAGE = 32
RPN_ANCHORS_PER_IMAGE = 256
RPN_NMS_THRESHOLD = 0.7
DETECTION_MIN_CONFIDENCE, DETECTION_NMS_THRESHOLD, DETECTION_MAX_INSTANCES = 0.78, 0.01, 3
LEARNING_RATE, MOMENTUM, CLIP_NORM, WEIGHT_DECAY = 0.006, 0.9, 5.0, 1e-4

#: The stages of one inference, in order (profile tables, FLOP counts).
FLOP_STAGES = ["backbone", "FPN", "RPN head", "box head", "mask head"]


def settings(threads=None):
    """The equalised settings as one dict: written to the settings file both workers read."""
    return {"image_size": IMAGE_SIZE, "num_classes": NUM_CLASSES, "anchor_scales": list(PEER_ANCHOR_SCALES),
            "anchor_ratios": list(ANCHOR_RATIOS), "post_nms_inference": POST_NMS_INFERENCE,
            "post_nms_training": POST_NMS_TRAINING, "train_rois_per_image": TRAIN_ROIS_PER_IMAGE,
            "rpn_anchors_per_image": RPN_ANCHORS_PER_IMAGE, "rpn_nms_threshold": RPN_NMS_THRESHOLD,
            "detection_min_confidence": DETECTION_MIN_CONFIDENCE,
            "detection_nms_threshold": DETECTION_NMS_THRESHOLD,
            "detection_max_instances": DETECTION_MAX_INSTANCES, "learning_rate": LEARNING_RATE,
            "momentum": MOMENTUM, "clip_norm": CLIP_NORM, "weight_decay": WEIGHT_DECAY,
            "threads": int(threads or os.cpu_count()), "seed": 0}


def check_settings(path):
    """The settings file's dict, after checking it holds this module's values (a stale file fails)."""
    given = json.loads(Path(path).read_text())
    expected = settings(given.get("threads"))
    if given != expected:
        raise SystemExit(f"{path}: settings differ from peer_common.settings(): {given} != {expected}")
    return given


def load():
    """The 1-minute load average, rounded."""
    return round(os.getloadavg()[0], 2)


def cpu_info():
    """``{'model': ..., 'cores': ..., 'flags': [...]}``: the CPU model and its vector/matrix flags."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
            flags = [f for f in value.split() if f in wanted]
    return {"model": model, "cores": os.cpu_count(), "flags": sorted(set(flags))}


def synthetic_samples(count, size=IMAGE_SIZE, seed=0):
    """``count`` grey noisy uint8 images ``[size, size, 3]`` and their boxes.

    A third of the images hold one or two bright filled boxes (RSNA's class balance);
    boxes are ``(y1, x1, y2, x2)`` pixels, ``y2``/``x2`` exclusive.
    """
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for i in range(count):
        image = rng.integers(40, 120, (size, size, 1)).astype(np.uint8)
        image_boxes = []
        if i % 3 == 0:
            for _ in range(1 + i % 2):
                h, w = rng.integers(30, 90, 2)
                y, x = rng.integers(0, size - h), rng.integers(0, size - w)
                image_boxes.append((int(y), int(x), int(y + h), int(x + w)))
                image[y:y + h, x:x + w] = 200
        images.append(np.repeat(image, 3, axis=2))
        boxes.append(image_boxes)
    return images, boxes


def time_calls(fn, reps, warmup):
    """Call ``fn`` ``warmup`` times untimed, then ``reps`` times timed.

    Returns ``{"times": [wall s], "cpu": [process CPU s], "loads": [1-min load after each call],
    "value": last return value}``.
    """
    for _ in range(warmup):
        fn()
    record = {"times": [], "cpu": [], "loads": [], "value": None}
    for _ in range(reps):
        start, cpu_start = time.perf_counter(), time.process_time()
        record["value"] = fn()
        record["times"].append(time.perf_counter() - start)
        record["cpu"].append(time.process_time() - cpu_start)
        record["loads"].append(load())
    return record


def best_rate(fn, flops, reps=5):
    """``{"gflops": best wall GFLOP/s, "gflops_per_cpu_s": best GFLOP per process-CPU second}`` of ``fn``."""
    record = time_calls(fn, reps, warmup=1)
    return {"gflops": flops / min(record["times"]) / 1e9,
            "gflops_per_cpu_s": flops / max(min(record["cpu"]), 1e-9) / 1e9, "load": load()}


#: The kernels of the peak measurement: (name, kind, shape); FLOPs = 2 x multiply-adds.
PEAK_KERNELS = [
    ("GEMM 1000x12544x1024 (box head fc6)", "gemm", (1000, 12544, 1024)),
    ("GEMM 2048x2048x2048", "gemm", (2048, 2048, 2048)),
    ("conv 3x3 256->512 on 64x64 (RPN, P2)", "conv", (1, 64, 64, 256, 512)),
    ("conv 3x3 256->256 on 64x64 (FPN, P2)", "conv", (1, 64, 64, 256, 256)),
]


def kernel_flops(kind, shape):
    """FLOPs (2 x multiply-adds) of one peak kernel."""
    if kind == "gemm":
        m, k, n = shape
        return 2 * m * k * n
    batch, h, w, cin, cout = shape
    return 2 * batch * h * w * 9 * cin * cout


def median(values):
    return statistics.median(values)
