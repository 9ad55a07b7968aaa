"""Side-by-side speed of rsna_detector.mrcnn and torchvision's Mask R-CNN at identical settings.

Usage (``make bench-peer`` builds the venv ``.venv-peer`` with the library plus
torch/torchvision and runs this)::

    python benchmarks/bench_peer.py [--reps 5] [--warmup 2] [--infer-batches 1 8] [--train-batch 8]

Both engines are measured **in one process, interleaved** (each repetition times
every contestant once, in alternating order), so that load from other processes
falls on both sides alike; ``os.getloadavg()`` is recorded with every figure.
Warm-up repetitions (tracing, first-call allocation) are excluded; the timed ones give the
best and the median figure, each contestant's process CPU time too. The final SUMMARY block
gives, per line, the min / median / max over the repetitions of each repetition's ratio (the
acceptance figures of issue 12: run it three times on a quiet machine). Ratios are the figures to
quote; absolute times depend on the machine's load. On a loaded machine torch's default
spinning OpenMP threads collapse (several times slower, not in proportion to the load):
``--omp-passive`` sets ``OMP_WAIT_POLICY=PASSIVE`` for such runs; on a quiet machine leave it off.

Settings equalised (ours = ``DetectorConfig`` with the overrides below; the peer =
``torchvision.models.detection.MaskRCNN`` built as ``maskrcnn_resnet50_fpn`` builds it):

* ResNet-50-FPN, random weights (seeded), 2 classes (background + 1).
* 256 x 256 RGB input; torchvision ``min_size = max_size = 256`` so its transform
  does not resize (scale 1.0), and no padding is needed (256 is a multiple of 32).
* Anchors: one scale per level, 16, 32, 64, 128, 256 on P2-P6, 3 aspect ratios
  (0.5, 1, 2) (ours ``RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)``; torchvision
  ``AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5)``).
* RPN NMS 0.7; 1000 post-NMS proposals at inference, 2000 in training
  (``POST_NMS_ROIS_INFERENCE/TRAINING``; ``rpn_post_nms_top_n_test/train``).
* 256 RPN anchors per image in training (``RPN_TRAIN_ANCHORS_PER_IMAGE``; ``rpn_batch_size_per_image``).
* 32 box-head ROIs per image in training (``TRAIN_ROIS_PER_IMAGE``; ``box_batch_size_per_image``).
* Detection: score threshold 0.78, NMS 0.01, 3 detections per image
  (``DETECTION_MIN_CONFIDENCE/NMS_THRESHOLD/MAX_INSTANCES``; ``box_score_thresh``,
  ``box_nms_thresh``, ``box_detections_per_img``).
* Frozen batch norm (ours ``TRAIN_BN = False``; torchvision ``FrozenBatchNorm2d``, which is
  what ``maskrcnn_resnet50_fpn`` uses with pretrained weights; with ``weights=None`` it
  would otherwise build trainable ``BatchNorm2d``), all other layers trained.
* Optimiser: SGD, momentum 0.9, learning rate 0.006, gradients clipped to a global norm of 5
  (ours: Keras' ``global_clipnorm``, matterport's Keras 2 ``clipnorm``; torchvision:
  ``clip_grad_norm_``), L2 weight decay 1e-4 (ours through the loss, torchvision through
  ``SGD(weight_decay)``). Batch norm: both use the frozen statistics; ours also trains the BN
  gamma/beta as matterport does (``FREEZE_BN_AFFINE`` False), torchvision's
  ``FrozenBatchNorm2d`` does not (about 2% of our step).
* Threads = cores on both sides: ``torch.set_num_threads``; TF intra-op and inter-op pools.

Not equalisable (each engine's own design, stated, not changed): pre-NMS selection (ours:
the best ``PRE_NMS_LIMIT = 6000`` anchors over all levels, then one NMS; torchvision: the
best 1000 (inference) / 2000 (training) per level, then NMS per level); positive ROI
fraction 0.33 (ours) vs 0.25 (torchvision); image normalisation (mean pixel vs ImageNet
mean/std). Both run the training mask head on the positive ROIs only.

What is timed:

* inference: ``MaskRCNN.detect(images)`` end to end (molding, the compiled graph, unmolding
  boxes and masks) vs ``model(tensors)`` in ``eval`` mode under ``torch.inference_mode``
  (uint8 numpy -> float tensor conversion, transform, network, postprocess pasting masks),
  same uint8 images, per image.
* training: one optimiser step on a fixed batch of 8 synthetic images (a third with one or
  two boxes) prepared beforehand. Ours: ``keras_model.train_function`` on an iterator over
  that batch -- the very compiled step (``MaskRCNNTrainingModel.train_step``: forward, targets,
  losses, gradients, SGD) that ``MaskRCNN.train`` reaches through ``keras.Model.fit``, minus
  the data loader and callbacks; torchvision: forward with targets, sum of its losses,
  backward, clip, ``optimizer.step()``. Figures are images per second.
* ``DetectorConfig`` as is (anchor scales 16-128 on P2-P5, RPN on P2-P5) is measured in the
  same loop as a third contestant and printed on its own line, with the same peer figure.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import rsna_detector
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import rsna_detector

IMAGE_SIZE = 256
NUM_CLASSES = 2
PEER_ANCHOR_SCALES = (16, 32, 64, 128, 256)
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
POST_NMS_INFERENCE, POST_NMS_TRAINING = 1000, 2000
TRAIN_ROIS_PER_IMAGE = 32
LEARNING_RATE, MOMENTUM, CLIP_NORM, WEIGHT_DECAY = 0.006, 0.9, 5.0, 1e-4


def load():
    """The 1-minute load average, rounded."""
    return round(os.getloadavg()[0], 2)


def set_threads(threads):
    """Intra-/inter-op threads of TF and torch (before either runs an op)."""
    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------
# shared synthetic data
# ----------------------------------------------------------------------------

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


def samples_dataset(images, boxes):
    """A matterport ``Dataset`` over the samples (filled-box masks, class 1)."""
    from rsna_detector.mrcnn import utils

    class Samples(utils.Dataset):
        def load_image(self, image_id):
            return images[image_id]

        def load_mask(self, image_id):
            masks = np.zeros((IMAGE_SIZE, IMAGE_SIZE, len(boxes[image_id])), bool)
            for k, (y1, x1, y2, x2) in enumerate(boxes[image_id]):
                masks[y1:y2, x1:x2, k] = True
            return masks, np.ones(len(boxes[image_id]), np.int32)

    dataset = Samples()
    dataset.add_class("synthetic", 1, "opacity")
    for i in range(len(images)):
        dataset.add_image("synthetic", image_id=i, path=None)
    dataset.prepare()
    return dataset


# ----------------------------------------------------------------------------
# our engine
# ----------------------------------------------------------------------------

def our_config(batch, peer_settings=True):
    """``DetectorConfig`` with ``IMAGES_PER_GPU = batch``; with ``peer_settings`` the peer's anchors."""
    from rsna_detector.detector.config import DetectorConfig

    class BenchConfig(DetectorConfig):
        IMAGES_PER_GPU = batch
        SEED = 0
        DATA_LOADER_WORKERS = 0

    if peer_settings:
        BenchConfig.NAME = "peer_settings"
        BenchConfig.RPN_ANCHOR_SCALES = PEER_ANCHOR_SCALES
    config = BenchConfig()
    assert config.POST_NMS_ROIS_INFERENCE == POST_NMS_INFERENCE
    assert config.POST_NMS_ROIS_TRAINING == POST_NMS_TRAINING
    assert config.TRAIN_ROIS_PER_IMAGE == TRAIN_ROIS_PER_IMAGE
    assert config.TRAIN_BN is False and config.IMAGE_MIN_DIM == config.IMAGE_MAX_DIM == IMAGE_SIZE
    assert tuple(config.RPN_ANCHOR_RATIOS) == ANCHOR_RATIOS
    assert (config.LEARNING_MOMENTUM, config.GRADIENT_CLIP_NORM, config.WEIGHT_DECAY) == (
        MOMENTUM, CLIP_NORM, WEIGHT_DECAY)
    return config.validate()


class OurInference:
    """``MaskRCNN.detect`` of an inference model (random weights, seeded)."""

    def __init__(self, peer_settings, batch, model_dir):
        import keras

        from rsna_detector.mrcnn.model import MaskRCNN

        keras.utils.set_random_seed(0)
        self.model = MaskRCNN("inference", our_config(batch, peer_settings), model_dir=model_dir)

    def __call__(self, images):
        results = self.model.detect(images)
        return sum(len(r["scores"]) for r in results)


class OurTraining:
    """One compiled training step of ``MaskRCNN.train``'s model on a fixed batch."""

    def __init__(self, peer_settings, images, boxes, layers="all"):
        import tensorflow as tf

        from rsna_detector.mrcnn import input_pipeline, trainer, training

        config = our_config(len(images), peer_settings)
        self.config = config
        self.keras_model = training.build_training_model(config)
        trainer.set_trainable(self.keras_model, layers, train_bn=config.TRAIN_BN)
        trainer.compile_training_model(self.keras_model, LEARNING_RATE, config)
        batch = input_pipeline.TrainingBatches(samples_dataset(images, boxes), config, shuffle=False).batch(0)
        self.iterator = iter(tf.data.Dataset.from_tensors((tuple(batch),)).repeat())
        self.keras_model.make_train_function()

    def __call__(self):
        logs = self.keras_model.train_function(self.iterator)
        return float(logs["loss"])


# ----------------------------------------------------------------------------
# torchvision
# ----------------------------------------------------------------------------

def peer_model():
    """torchvision's Mask R-CNN R50-FPN at the equalised settings (random weights, seeded)."""
    import torch
    from torchvision.models import resnet50
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc

    torch.manual_seed(0)
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=misc.FrozenBatchNorm2d), 5)
    anchors = AnchorGenerator(tuple((s,) for s in PEER_ANCHOR_SCALES), (ANCHOR_RATIOS,) * len(PEER_ANCHOR_SCALES))
    return MaskRCNN(
        backbone, num_classes=NUM_CLASSES, min_size=IMAGE_SIZE, max_size=IMAGE_SIZE,
        rpn_anchor_generator=anchors, rpn_nms_thresh=0.7, rpn_batch_size_per_image=256,
        rpn_post_nms_top_n_test=POST_NMS_INFERENCE, rpn_post_nms_top_n_train=POST_NMS_TRAINING,
        box_batch_size_per_image=TRAIN_ROIS_PER_IMAGE, box_score_thresh=0.78, box_nms_thresh=0.01,
        box_detections_per_img=3)


def to_tensor(image):
    import torch

    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)


class PeerInference:
    def __init__(self):
        self.model = peer_model().eval()

    def __call__(self, images):
        import torch

        with torch.inference_mode():
            outputs = self.model([to_tensor(image) for image in images])
        return sum(len(o["scores"]) for o in outputs)


class PeerTraining:
    def __init__(self, images, boxes):
        import torch

        self.model = peer_model().train()
        self.images = [to_tensor(image) for image in images]
        self.targets = []
        for image_boxes in boxes:
            masks = torch.zeros((len(image_boxes), IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
            for k, (y1, x1, y2, x2) in enumerate(image_boxes):
                masks[k, y1:y2, x1:x2] = 1
            xyxy = [(x1, y1, x2, y2) for y1, x1, y2, x2 in image_boxes]
            self.targets.append({"boxes": torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4),
                                 "labels": torch.ones(len(image_boxes), dtype=torch.int64), "masks": masks})
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(self.params, lr=LEARNING_RATE, momentum=MOMENTUM,
                                         weight_decay=WEIGHT_DECAY)

    def __call__(self):
        import torch

        losses = self.model(self.images, self.targets)
        loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, CLIP_NORM)  # the global norm, as ours
        self.optimizer.step()
        return float(loss.detach())


# ----------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------

def interleaved(contestants, reps, warmup):
    """Time each ``name -> callable`` once per repetition, in alternating order.

    Returns ``name -> {"times": [wall s...], "cpu": [process CPU s...], "loads": [...], "value":
    last return value}`` (warm-up calls excluded).
    """
    names = list(contestants)
    record = {name: {"times": [], "cpu": [], "loads": [], "value": None} for name in names}
    for rep in range(warmup + reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            value = contestants[name]()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            record[name]["value"] = value
            if rep >= warmup:
                record[name]["times"].append(elapsed)
                record[name]["cpu"].append(cpu)
                record[name]["loads"].append(load())
    return record


def summary(times, per):
    """min / median / max of ``times / per``."""
    values = [t / per for t in times]
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run_inference(batches, reps, warmup, with_detector_config, model_dir, images):
    ours = {"ours (peer settings)": OurInference(True, max(batches), model_dir)}
    if with_detector_config:
        ours["ours (DetectorConfig)"] = OurInference(False, max(batches), model_dir)
    peer = PeerInference()
    rows = []
    for batch in batches:
        batch_images = images[:batch]
        contestants = {name: (lambda m=m: m(batch_images)) for name, m in ours.items()}
        contestants["torchvision"] = lambda: peer(batch_images)
        record = interleaved(contestants, reps, warmup)
        for name, rec in record.items():
            stats = summary(rec["times"], batch)  # seconds per image
            rows.append({"phase": "inference", "batch": batch, "who": name,
                         "seconds": [t / batch for t in rec["times"]],
                         "ms_per_image": {k: 1000 * v for k, v in stats.items()},
                         "cpu_ms_per_image": 1000 * statistics.median(rec["cpu"]) / batch,
                         "detections": rec["value"], "loads": rec["loads"]})
    return rows


def run_training(batch, reps, warmup, with_detector_config, images, boxes):
    contestants = {"ours (peer settings)": OurTraining(True, images[:batch], boxes[:batch])}
    if with_detector_config:
        contestants["ours (DetectorConfig)"] = OurTraining(False, images[:batch], boxes[:batch])
    contestants["torchvision"] = PeerTraining(images[:batch], boxes[:batch])
    record = interleaved(contestants, reps, warmup)
    rows = []
    for name, rec in record.items():
        stats = summary(rec["times"], 1)
        rows.append({"phase": "training", "batch": batch, "who": name, "seconds": rec["times"],
                     "step_s": stats, "cpu_s_per_step": statistics.median(rec["cpu"]),
                     "images_per_s": {"min": batch / stats["max"], "median": batch / stats["median"],
                                      "max": batch / stats["min"]},
                     "last_loss": rec["value"], "loads": rec["loads"]})
    return rows


def print_rows(rows):
    peer = {(r["phase"], r["batch"]): r for r in rows if r["who"] == "torchvision"}
    print(f"\n{'phase':9} {'batch':>5} {'who':24} {'best':>9} {'median':>9} {'unit':10} "
          f"{'ratio(med)':>10} {'ratio(best)':>11} {'cpu':>8} {'ratio(cpu)':>9}  load 1-min during the reps")
    for r in rows:
        p = peer[(r["phase"], r["batch"])]
        if r["phase"] == "inference":
            fig, ref, unit = r["ms_per_image"], p["ms_per_image"], "ms/image"
            ratio_med, ratio_min = fig["median"] / ref["median"], fig["min"] / ref["min"]
            lo, med = fig["min"], fig["median"]
            cpu = f"{r['cpu_ms_per_image']:8.0f}"
            cpu_ratio = r["cpu_ms_per_image"] / p["cpu_ms_per_image"]
        else:
            fig, ref, unit = r["images_per_s"], p["images_per_s"], "images/s"
            ratio_med, ratio_min = fig["median"] / ref["median"], fig["max"] / ref["max"]
            lo, med = fig["max"], fig["median"]  # best and median throughput
            cpu = f"{r['cpu_s_per_step']:8.2f}"
            cpu_ratio = p["cpu_s_per_step"] / r["cpu_s_per_step"]
        ratio = "" if r["who"] == "torchvision" else f"{ratio_med:>10.2f} {ratio_min:>11.2f}"
        loads = " ".join(f"{v:.1f}" for v in r["loads"])
        cpu_ratio = "" if r["who"] == "torchvision" else f"{cpu_ratio:.2f}"
        print(f"{r['phase']:9} {r['batch']:>5} {r['who']:24} {lo:>9.1f} {med:>9.1f} {unit:10} "
              f"{ratio:22} {cpu} {cpu_ratio:>9}  {loads}")
    print("\nratio: inference = ours ms/image / torchvision ms/image (< 1: ours faster; target <= 0.8 at batch 1);"
          "\n       training  = ours images/s / torchvision images/s (> 1: ours faster; target >= 1.5)."
          "\n       '(best)' compares best repetitions (inference: min time; training: max images/s)."
          "\n       cpu: median process CPU time (inference ms/image, training s/step), all threads, and"
          "\n       the same ratio on CPU time; torch's spinning OpenMP threads count in it unless --omp-passive."
          "\n       On a quiet machine the wall-time ratios are the figures; on a loaded one see --omp-passive.")


def repetition_ratios(row, peer_row):
    """The ratio of every repetition (both sides timed in it): inference ours / torchvision time,
    training torchvision / ours time (= ours / torchvision images per second)."""
    pairs = zip(row["seconds"], peer_row["seconds"])
    if row["phase"] == "inference":
        return [ours / peer for ours, peer in pairs]
    return [peer / ours for ours, peer in pairs]


def print_summary(rows):
    """The acceptance figures: min / median / max over the repetitions of each repetition's ratio."""
    peer = {(r["phase"], r["batch"]): r for r in rows if r["who"] == "torchvision"}

    def target(row):
        if row["phase"] == "training":
            return "target >= 1.5"
        return "target <= 0.8" if row["batch"] == 1 else "stated; the target is at batch 1"

    print("\nSUMMARY: ratio of each repetition (both engines timed in it), min / median / max over "
          "the repetitions")
    for r in rows:
        if r["who"] == "torchvision":
            continue
        p = peer[(r["phase"], r["batch"])]
        ratios = repetition_ratios(r, p)
        loads = r["loads"] + p["loads"]
        print(f"  {r['phase']:9} batch {r['batch']:>2}  {r['who']:24} {min(ratios):5.2f} / "
              f"{statistics.median(ratios):5.2f} / {max(ratios):5.2f}   ({target(r)}; "
              f"{len(ratios)} repetitions, load {min(loads):.1f}-{max(loads):.1f})")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per contestant (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first repetitions (default 2)")
    parser.add_argument("--infer-batches", type=int, nargs="*", default=[1, 8], help="default: 1 8")
    parser.add_argument("--train-batch", type=int, default=8, help="0 skips training (default 8)")
    parser.add_argument("--train-reps", type=int, help="timed training steps (default --reps)")
    parser.add_argument("--no-detector-config", action="store_true", help="skip the DetectorConfig line")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads (default: cores)")
    parser.add_argument("--omp-passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE for torch: on a loaded machine torch's spinning OpenMP "
                             "threads collapse (several times slower); on a quiet one leave it off")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.omp_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch loads its OpenMP runtime
    # torch/torchvision first: torchvision's ops import triton, whose LLVM crashes (SIGSEGV)
    # when TensorFlow's is already loaded; the other order works.
    import tensorflow as tf
    import torch
    import torchvision
    import torchvision.models.detection  # noqa: F401

    set_threads(args.threads)

    print(f"engine {Path(rsna_detector.__file__).parent}; "
          f"tensorflow {tf.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}; "
          f"{os.cpu_count()} CPUs, threads {args.threads}, OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', 'default')}; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with_dc = not args.no_detector_config
    images, boxes = synthetic_samples(max([args.train_batch] + list(args.infer_batches)))
    rows = []
    with tempfile.TemporaryDirectory() as model_dir:
        if args.infer_batches:
            rows += run_inference(args.infer_batches, args.reps, args.warmup, with_dc, model_dir, images)
        if args.train_batch:
            rows += run_training(args.train_batch, args.train_reps or args.reps, args.warmup, with_dc,
                                 images, boxes)
    print_rows(rows)
    print_summary(rows)
    print(f"load average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
