"""The report's comparison as one reproducible table: classifiers, RetinaNet and a Mask R-CNN ladder.

On one patient-level split, one training budget and the same seeds, it trains and scores:

* the classifiers VGG19, ResNet50 and DenseNet121 (CheXNet's architecture): ROC-AUC on the test
  split, and F1 at the threshold that is best on the validation split;
* the RetinaNet baseline: mAP@0.5 and the competition score at the validated threshold;
* Mask R-CNN as a ladder, each rung adding one technique to the one above, every choice (threshold,
  gate, box scale) fitted on the validation split and scored on the test split:
  single model at its default threshold; + validated threshold; + flip TTA; + scale TTA (views at
  0.8, 1.0, 1.2, each plain and mirrored, fused by weighted boxes fusion); + a k-fold ensemble
  (k models trained on the folds of the training split, all their views fused by WBF); + classifier
  gating (DenseNet121's score); + box scaling about the centre.

Every row gives the mean, the standard deviation and the range over the seeds, and the CPU time
its models cost (training, and detection on the validation and test splits; process and child
CPU seconds, ``os.times``). The split: the test split (25 % of the patients, stratified by
Target) is held out of everything; the rest is cut into training (80 %) and validation (20 %);
the ensemble's folds cut the training split. Seeds change initialisation, shuffling and
augmentation, never the split.

Presets:

* ``cpu`` (default): the realistic synthetic preset (``rsna-detector synth --preset realistic``,
  800 patients at 256 pixels), the CPU Mask R-CNN preset, small classifier and RetinaNet inputs,
  random initial weights, 3 seeds, 3 folds: about 1.5 h on 2 cores;
* ``quick``: the same pipeline at a few steps on 90 patients, 2 seeds, 2 folds: minutes (a smoke
  run; its numbers mean nothing);
* ``full`` (``--data DIR``, a Kaggle download): DetectorConfig, COCO/ImageNet weights, the report's
  settings, 5 folds (needs GPUs).

Outputs: ``--out`` (default ``docs``; ``<work>/report`` for the quick preset) receives
``RESULTS.md`` and ``results/`` (figures, the table as JSON); ``--work`` keeps the data, the models
and every seed's detections, so an interrupted run continues where it stopped.

Usage::

    python benchmarks/bench_models.py                      # make bench-models
    python benchmarks/bench_models.py --quick --work /tmp/bench_models_quick
    python benchmarks/bench_models.py --data /data/rsna --preset full
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

try:
    import rsna_detector  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSIFIERS = ("vgg19", "resnet50", "densenet121")
GATING_CLASSIFIER = "densenet121"


@dataclass(frozen=True)
class Settings:
    """One preset's data, budget and seeds."""

    name: str
    n_patients: int = 800
    image_size: int = 256
    seeds: tuple = (0, 1, 2)
    folds: int = 3
    scales: tuple = (0.8, 1.0, 1.2)
    config: str = "cpu"
    weights: str | None = None
    epochs: int = 12
    steps_per_epoch: int = 50
    negatives_per_positive: float | None = 1.0
    classifier_size: int = 128
    classifier_epochs: int = 3
    classifier_steps: int | None = None
    classifier_weights: str | None = None
    retinanet_size: int = 128
    retinanet_epochs: int = 6
    retinanet_steps: int | None = None
    retinanet_batch: int = 8
    retinanet_weights: str | None = None
    test_fraction: float = 0.25
    val_fraction: float = 0.2
    sweep: tuple = field(default=tuple(np.round(np.arange(0.05, 0.99, 0.025), 4).tolist()))


PRESETS = {
    "cpu": Settings("cpu"),
    "quick": Settings("quick", n_patients=90, image_size=128, seeds=(0, 1), folds=2, epochs=2, steps_per_epoch=4,
                      classifier_size=64, classifier_epochs=1, classifier_steps=2, retinanet_size=128,
                      retinanet_epochs=1, retinanet_steps=2, retinanet_batch=4),
    "full": Settings("full", n_patients=0, image_size=1024, seeds=(0, 1, 2), folds=5, config="full", weights="coco",
                     epochs=16, steps_per_epoch=200, negatives_per_positive=None, classifier_size=224,
                     classifier_epochs=3, classifier_weights="imagenet", retinanet_size=256, retinanet_epochs=50,
                     retinanet_batch=32, retinanet_weights="imagenet"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="cpu (default), quick or full")
    parser.add_argument("--quick", action="store_true", help="the quick preset (a smoke run of a few minutes)")
    parser.add_argument("--data", default=None, help="a Kaggle-layout download (default: synthetic data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds")
    parser.add_argument("--out", default=None, help="where RESULTS.md and results/ go (default: docs; with the "
                                                    "quick preset WORK/report, so a smoke run never replaces "
                                                    "docs/RESULTS.md)")
    parser.add_argument("--work", default=None, help="data, models and detections (default: bench_models_work/"
                                                     "<preset> in the current folder)")
    args = parser.parse_args(argv)
    name = args.preset or ("quick" if args.quick else "full" if args.data else "cpu")
    settings = PRESETS[name]
    if args.seeds:
        settings = replace(settings, seeds=tuple(args.seeds))
    args.settings = settings
    args.work = Path(args.work or Path("bench_models_work") / name)
    args.out = Path(args.out or (args.work / "report" if name == "quick" else "docs"))
    return args


# --------------------------------------------------------------------------- CPU time
def cpu_seconds():
    """User + system CPU seconds of this process and its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Clock:
    """``with Clock() as clock: ...`` -> ``clock.seconds`` of CPU time."""

    def __enter__(self):
        self.start = cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = cpu_seconds() - self.start
        return False


# --------------------------------------------------------------------------- data and split
def prepare_data(args):
    """The data directory (synthetic realistic preset unless ``--data``) and its patient records."""
    from rsna_detector.data.labels import load_patient_records
    from rsna_detector.data.layout import KaggleLayout
    from rsna_detector.data.synthetic import make_synthetic_dataset

    settings = args.settings
    if args.data:
        data_dir = Path(args.data)
    else:
        data_dir = args.work / "data"
        if not (data_dir / "stage_2_train_labels.csv").is_file():
            print(make_synthetic_dataset(data_dir, n_train=settings.n_patients, n_test=0, seed=2018,
                                         image_size=settings.image_size, preset="realistic", progress=False))
    layout = KaggleLayout.from_dir(data_dir)
    return data_dir, load_patient_records(layout.require_labels(), layout.class_info)


def make_split(records, settings):
    """{'train', 'val', 'test'} -> patient ids: test held out, the rest cut into training and validation."""
    from rsna_detector.data.splits import split_patients

    ids = list(records)
    dev, test = split_patients(ids, [records[i].target for i in ids], val_fraction=settings.test_fraction)
    train, val = split_patients(dev, [records[i].target for i in dev], val_fraction=settings.val_fraction)
    return {"train": train, "val": val, "test": test}


def detector_training_ids(split, records, settings):
    """The detectors' training patients: the training split, negatives downsampled as the demo does."""
    from rsna_detector.detector.dataset import _downsample_negatives

    if settings.negatives_per_positive is None:
        return list(split["train"])
    return _downsample_negatives(split["train"], records, settings.negatives_per_positive, 0)


# --------------------------------------------------------------------------- the runs of one seed
def run_seed(seed, args, data_dir, records, split):
    """Train every model of one seed and keep its detections on the validation and test splits (cached)."""
    from rsna_detector._io import write_json

    path = args.work / f"seed_{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from run_models import run_classifiers, run_maskrcnn, run_retinanet

    started = time.time()
    result = {"seed": seed}
    result["maskrcnn"] = run_maskrcnn(seed, args, data_dir, records, split)
    result["classifiers"] = run_classifiers(seed, args, data_dir, records, split)
    result["retinanet"] = run_retinanet(seed, args, data_dir, records, split)
    result["wall_s"] = time.time() - started
    write_json(path, result)
    return result


def main(argv=None):
    args = parse_args(argv)
    from models_table import write_report

    from rsna_detector._io import write_json

    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    data_dir, records = prepare_data(args)
    split = make_split(records, args.settings)
    write_json(args.work / "split.json", split)
    print(f"{args.settings.name} preset: {len(split['train'])} training, {len(split['val'])} validation, "
          f"{len(split['test'])} test patients; seeds {list(args.settings.seeds)}", flush=True)
    seeds = []
    for seed in args.settings.seeds:
        seeds.append(run_seed(seed, args, data_dir, records, split))
        print(f"seed {seed} done ({seeds[-1]['wall_s'] / 60:.1f} min)", flush=True)
    report = write_report(seeds, records, split, args, data_dir, wall_s=time.time() - started,
                          settings=asdict(args.settings))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
