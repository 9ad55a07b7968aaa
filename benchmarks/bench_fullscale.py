"""Full-scale dry run: every step a user runs, on a synthetic data set of the real RSNA size.

Usage (by hand, not CI; ``make bench-fullscale`` runs the default)::

    python benchmarks/bench_fullscale.py [--root /tmp/rsna-fullscale] [--scale 1 0.1]
        [--steps generate table table_cached eda split pipeline train predict predict_tta submit]
        [--pipeline-workers 1 2 4] [--pipeline-processes 1 2] [--keep] [--report docs/PERFORMANCE.md]

For each ``--scale`` (1 = the real size: 26,684 training and 3,000 test patients; 0.1 = a tenth)
it writes a synthetic data set in the Kaggle layout (``make_synthetic_dataset``: the real class
and box-count proportions, JPEG Baseline DICOMs of 1024 x 1024, about 120 KB each, so about
3.5 GB at scale 1) into ``ROOT/scale-<s>/data`` and runs, each in its own process:

* ``generate``      the data set itself (preparation, not a user step);
* ``table``         ``build_patient_table``: labels + classes + every training DICOM header;
* ``table_cached``  the same call again, served by the header cache;
* ``eda``           ``rsna-detector eda`` with images, header cache cold (its own, empty);
* ``split``         ``DetectorDataset.split_from_data_dir`` at 256 px;
* ``pipeline``      the training input pipeline alone (``TrainingBatches`` +
  ``make_input_dataset``): DetectorConfig at 256 px, batch 8, the notebook's augmentation,
  images per second for each ``--pipeline-workers`` thread count and each
  ``--pipeline-processes`` worker-process count (``DATA_LOADER_PROCESSES``), one run each;
* ``train``         50 training steps of DetectorConfig (random initial weights: no download),
  all layers, notebook augmentation;
* ``predict``       ``predict`` over every test image (the train step's checkpoint), written
  as a results file; ``predict_tta`` the same with horizontal-flip TTA;
* ``submit``        ``rsna-detector submit --results`` with the sample submission.

Each step's wall time, CPU time and peak resident memory are measured from outside: the step
runs in a child process, and ``os.wait4`` returns its resource usage, whose ``ru_maxrss`` is the
largest resident set of that process or of any worker process it waited for. The 1-minute
load average (``os.getloadavg``) is recorded before and after each step: on a shared machine
the wall times are only comparable at a similar load, CPU times much more so. Every long step
shows a progress bar with its rate and ETA.

Results go to ``ROOT/results-<s>-<time>.json``; ``--report`` writes the table into the section
``## Full-scale dry run`` of a Markdown file (replacing that section only). The data sets are
deleted at the end unless ``--keep``; ``ROOT`` must lie outside the repository.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

FULL_TRAIN, FULL_TEST = 26_684, 3_000
BYTES_PER_IMAGE = 170_000  # JPEG DICOM of a synthetic 1024 chest (about 165 KB measured)
STEPS = ("generate", "table", "table_cached", "eda", "split", "pipeline", "train", "predict", "predict_tta",
         "submit")
TRAIN_STEPS = 50
IMAGE_SIZE = 256
SECTION = "## Full-scale dry run"
RESULT_PREFIX = "RESULT "


# =============================================================================== the parent: orchestration
def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/tmp/rsna-fullscale", help="working folder (outside the repository)")
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0],
                        help="data set sizes as fractions of the real one (default: 1); e.g. --scale 1 0.1")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="steps to run (default: all)")
    parser.add_argument("--pipeline-workers", type=int, nargs="+", default=[1, 2, 4],
                        help="input-pipeline thread counts to measure (default: 1 2 4)")
    parser.add_argument("--pipeline-processes", type=int, nargs="*", default=[1, 2],
                        help="input-pipeline worker-process counts to measure (default: 1 2)")
    parser.add_argument("--pipeline-batches", type=int, default=150, help="timed batches of 8 per pipeline run")
    parser.add_argument("--train-steps", type=int, default=TRAIN_STEPS, help="training steps (default: 50)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data sets")
    parser.add_argument("--report", default=None, help="write the table into this Markdown file's section")
    parser.add_argument("--report-from", nargs="+", default=None, metavar="JSON",
                        help="no run: build the report from saved results files (several runs of a scale are "
                             "merged in order; a step measured again keeps its earlier record, labelled)")
    return parser.parse_args(argv)


def _check_root(root):
    root = Path(root).resolve()
    if root == REPO or REPO in root.parents:
        raise SystemExit(f"--root {root}: must lie outside the repository {REPO} (gigabytes of DICOMs)")
    return root


def _check_disk(folder, n_images):
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    needed = n_images * BYTES_PER_IMAGE * 1.2
    if free < needed:
        raise SystemExit(f"{folder}: {free / 1e9:.1f} GB free, the data set needs about {needed / 1e9:.1f} GB")


def _child_env():
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if not sys.stderr.isatty():  # a log file: a few progress lines per step, not thousands
        env.setdefault("TQDM_MININTERVAL", "15")
    return env


def run_step(name, argv, *, env=None):
    """Run ``argv`` as a child process; wall time, CPU time, peak RSS, load and the child's RESULT line."""
    print(f"\n== {name}: {' '.join(str(a) for a in argv[1:])}", flush=True)
    load_before = os.getloadavg()
    start = time.perf_counter()
    process = subprocess.Popen([str(a) for a in argv], env=env or _child_env(), stdout=subprocess.PIPE, text=True)
    result = {}
    for line in process.stdout:
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
        else:
            print(line, end="", flush=True)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    record = {
        "step": name, "exit_code": process.returncode, "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "load_before": round(load_before[0], 2), "load_after": round(os.getloadavg()[0], 2), **result,
    }
    print(f"== {name}: {wall:.1f} s wall, {record['cpu_s']:.0f} s CPU, peak RSS {record['peak_rss_mb']:.0f} MB, "
          f"load {record['load_before']:.1f} -> {record['load_after']:.1f}"
          + ("" if process.returncode == 0 else f", FAILED (exit {process.returncode})"), flush=True)
    return record


def _step_argv(step, data, work, *extra):
    return [sys.executable, Path(__file__).resolve(), "_step", step, "--data", data, "--work", work, *extra]


def _cli_argv(*args):
    return [sys.executable, "-m", "rsna_detector.cli", *args]


def run_scale(scale, root, steps, pipeline_workers, pipeline_batches, train_steps=TRAIN_STEPS,
              pipeline_processes=()):
    """Every step at one scale; returns the list of step records."""
    base = root / f"scale-{scale:g}"
    data, work = base / "data", base / "work"
    n_train, n_test = round(FULL_TRAIN * scale), round(FULL_TEST * scale)
    records = []
    if "generate" in steps or not (data / "stage_2_train_labels.csv").is_file():
        _check_disk(base, n_train + n_test)
        records.append(run_step("generate", _step_argv("generate", data, work, "--n-train", n_train,
                                                       "--n-test", n_test)))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "headers.json"
    for step in ("table", "table_cached", "split"):
        if step in steps:
            records.append(run_step(step, _step_argv(step, data, work, "--cache", cache)))
    if "eda" in steps:
        eda_cache = work / "eda-cache"
        shutil.rmtree(eda_cache, ignore_errors=True)
        env = dict(_child_env(), RSNA_DETECTOR_CACHE=str(eda_cache))
        records.append(run_step("eda", _cli_argv("eda", "--data", data, "--out", work / "eda"), env=env))
    if "pipeline" in steps:
        for workers in pipeline_workers:
            records.append(run_step(f"pipeline-{workers}", _step_argv(
                "pipeline", data, work, "--workers", workers, "--batches", pipeline_batches)))
        for processes in pipeline_processes:
            records.append(run_step(f"pipeline-{processes}p", _step_argv(
                "pipeline", data, work, "--processes", processes, "--batches", pipeline_batches)))
    if "train" in steps:
        shutil.rmtree(work / "logs", ignore_errors=True)
        records.append(run_step("train", _step_argv("train", data, work, "--train-steps", train_steps)))
    for step, tta in (("predict", False), ("predict_tta", True)):
        if step in steps:
            records.append(run_step(step, _step_argv("predict", data, work, *(["--tta"] if tta else []))))
    if "submit" in steps:
        records.append(run_step("submit", _cli_argv(
            "submit", "--results", work / "predictions.json", "--out", work / "submission.csv",
            "--sample-submission", data / "stage_2_sample_submission.csv")))
    return {"scale": scale, "n_train": n_train, "n_test": n_test, "machine": _machine(), "steps": records}


def _machine():
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpus": affinity, "platform": platform.platform(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def merge_results(paths):
    """Saved results files -> one result per scale; a step run again keeps its earlier record, labelled."""
    merged = {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        into = merged.setdefault(result["scale"], dict(result, steps=[]))
        names = {r["step"] for r in result["steps"]}
        for record in into["steps"]:
            if record["step"] in names and "label" not in record:
                record["label"] = f"{record['step']}, earlier code ({into['machine']['date']})"
        into["machine"] = result["machine"]
        into["steps"] += [dict(r, date=result["machine"]["date"]) for r in result["steps"]]
    return [merged[scale] for scale in sorted(merged, reverse=True)]


def main(argv=None):
    args = _parse_args(argv)
    if args.report_from:
        results = merge_results(args.report_from)
        if args.report:
            write_report(results, args.report)
        print(format_report(results))
        return 0
    root = _check_root(args.root)
    root.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for scale in args.scale:
            result = run_scale(scale, root, set(args.steps), args.pipeline_workers, args.pipeline_batches,
                               args.train_steps, args.pipeline_processes)
            (root / f"results-{scale:g}-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=1))
            results.append(result)
    finally:
        if not args.keep:
            for scale in args.scale:
                shutil.rmtree(root / f"scale-{scale:g}", ignore_errors=True)
    if args.report:
        write_report(results, args.report)
    print(format_report(results))
    return 0


# =============================================================================== the report
TARGETS = {  # step -> (target text, check on the record); None when the step has no target
    "table": ("< 60 s", lambda r: r["wall_s"] < 60),
    "table_cached": ("< 1 s", lambda r: r.get("call_s", r["wall_s"]) < 1),
    "eda": ("< 180 s", lambda r: r["wall_s"] < 180),
    "train": ("peak RSS < 6 GB", lambda r: r["peak_rss_mb"] < 6 * 1024),
    "predict": ("peak RSS < 3 GB", lambda r: r["peak_rss_mb"] < 3 * 1024),
    "predict_tta": ("peak RSS < 3 GB", lambda r: r["peak_rss_mb"] < 3 * 1024),
}
PIPELINE_TARGET = 150.0


def _figure(record):
    """The step's own figure (rate, timing of the call alone) as short text."""
    parts = []
    if "call_s" in record:
        parts.append(f"call {record['call_s']:.2f} s")
    if "images_per_s" in record:
        parts.append(f"{record['images_per_s']:.1f} img/s")
    if "s_per_step" in record:
        parts.append(f"{record['s_per_step']:.2f} s/step")
    if "count" in record:
        parts.append(record["count"])
    return ", ".join(parts)


def _met(record):
    step = record["step"]
    if record.get("exit_code"):
        return "failed"
    if step.startswith("pipeline-"):
        return "yes" if record.get("images_per_s", 0) >= PIPELINE_TARGET else "no"
    target = TARGETS.get(step)
    return "" if target is None else ("yes" if target[1](record) else "no")


def _target(step):
    if step.startswith("pipeline-"):
        return f">= {PIPELINE_TARGET:.0f} img/s"
    return TARGETS.get(step, ("",))[0]


def format_report(results):
    """Markdown: one table per scale, then the notes."""
    lines = [SECTION, "",
             "Measured by `benchmarks/bench_fullscale.py` (`make bench-fullscale`): a synthetic data set of the",
             "real size in the Kaggle layout (JPEG Baseline DICOMs, 1024 px, the real class and box-count",
             "proportions), each step in its own process. Peak RSS: `ru_maxrss` of the step's process (or of its",
             "largest worker process). Load: the 1-minute load average before -> after the step; the machine",
             "was shared with other jobs, so wall times are noisy and CPU times are the steadier figure.", ""]
    for result in results:
        machine = result["machine"]
        lines += [f"### Scale {result['scale']:g}: {result['n_train']:,} training + {result['n_test']:,} test "
                  f"patients ({machine['cpus']} CPUs, {machine['date']})", "",
                  "| step | wall s | CPU s | peak RSS MB | load | figure | target | met |",
                  "|---|---:|---:|---:|---|---|---|---|"]
        for r in result["steps"]:
            lines.append(f"| {r.get('label', r['step'])} | {r['wall_s']:.1f} | {r['cpu_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                         f"{r['load_before']:.1f} -> {r['load_after']:.1f} | {_figure(r)} | {_target(r['step'])} | "
                         f"{_met(r)} |")
        lines.append("")
    return "\n".join(lines)


NOTES_HEADING = "### Targets, causes and fixes"


def write_report(results, path):
    """Replace (or append) the tables of the ``## Full-scale dry run`` section of ``path``.

    The section's hand-written ``### Targets, causes and fixes`` part, when there is
    one, is kept; other sections of the file are left alone.
    """
    path = Path(path)
    text = path.read_text() if path.is_file() else ""
    section = format_report(results)
    start = text.find(SECTION)
    if start < 0:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        end = len(text) if end < 0 else end + 1
        notes = text.find(NOTES_HEADING, start, end)
        kept = "\n" + text[notes:end].rstrip() + "\n" if notes >= 0 else ""
        text = text[:start] + section.rstrip() + "\n" + kept + ("\n" + text[end:] if end < len(text) else "")
    path.write_text(text.rstrip() + "\n")


# =============================================================================== the children: one step each
def _child_args(argv):
    parser = argparse.ArgumentParser(prog="bench_fullscale.py _step")
    parser.add_argument("step")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--n-train", type=int)
    parser.add_argument("--n-test", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--processes", type=int, default=0)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--train-steps", type=int, default=TRAIN_STEPS)
    return parser.parse_args(argv)


def _emit(**figures):
    print(RESULT_PREFIX + json.dumps(figures), flush=True)


def child_generate(args):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    summary = make_synthetic_dataset(args.data, n_train=args.n_train, n_test=args.n_test, seed=0, progress=True)
    print(summary)
    size = sum(p.stat().st_size for p in args.data.rglob("*.dcm"))
    _emit(count=f"{summary.n_train + summary.n_test:,} DICOMs, {size / 1e9:.2f} GB",
          images_per_s=(summary.n_train + summary.n_test) / summary.seconds)


def _table(args, refresh):
    from rsna_detector.data.table import build_patient_table

    start = time.perf_counter()
    table = build_patient_table(args.data, cache_path=args.cache, refresh=refresh, progress=True)
    seconds = time.perf_counter() - start
    with_header = int(table.patients["sex"].notna().sum())
    _emit(call_s=round(seconds, 3), count=f"{len(table.patients):,} patients, {with_header:,} headers")


def child_table(args):
    _table(args, refresh=True)


def child_table_cached(args):
    _table(args, refresh=False)


def child_split(args):
    from rsna_detector.detector.dataset import DetectorDataset

    start = time.perf_counter()
    train, val = DetectorDataset.split_from_data_dir(args.data, image_size=IMAGE_SIZE)
    _emit(call_s=round(time.perf_counter() - start, 3), count=f"{train.num_images:,} + {val.num_images:,}")


def _quiet():
    from rsna_detector.console import quiet_tensorflow

    quiet_tensorflow()


def child_pipeline(args):
    _quiet()
    from tqdm.auto import tqdm

    from rsna_detector.detector.augment import get_augmentation
    from rsna_detector.detector.config import DetectorConfig
    from rsna_detector.detector.dataset import DetectorDataset
    from rsna_detector.mrcnn.input.pipeline import TrainingBatches, make_input_dataset

    config = DetectorConfig()
    train, _ = DetectorDataset.split_from_data_dir(args.data, image_size=config.IMAGE_MAX_DIM)
    batches = TrainingBatches(train, config, shuffle=True, augmentation=get_augmentation("notebook"), seed=0)
    stream = iter(make_input_dataset(batches, workers=args.workers, processes=args.processes))
    for _ in range(2 + args.processes):  # warm-up: threads or processes started, first permutation
        next(stream)
    images = args.batches * config.BATCH_SIZE
    kind = f"{args.processes} processes" if args.processes else f"{args.workers} threads"
    with tqdm(total=images, desc=f"pipeline, {kind}", unit="img") as bar:
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        for _ in range(args.batches):
            next(stream)
            bar.update(config.BATCH_SIZE)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    workers_mb = _children_rss_mb()  # worker processes, alive until the stream goes
    del stream
    # CPU time per image (this process's threads and its worker processes) is the per-core cost,
    # much less sensitive to other jobs on the machine than images per second
    figures = dict(images_per_s=round(images / seconds, 2), cpu_ms_per_image=round(1000 * cpu / images, 2),
                   count=f"{kind}, {images} images, {1000 * cpu / images:.1f} CPU ms/image")
    if workers_mb:
        figures.update(workers_rss_mb=workers_mb, count=figures["count"] + f", worker RSS {max(workers_mb):.0f} MB each")
    _emit(**figures)


def _child_pids():
    children = set()
    for children_file in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        children.update(children_file.read_text().split())
    return children


def _cpu_seconds():
    """CPU seconds of this process (all threads) and of its live child processes (Linux /proc)."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in _child_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _children_rss_mb():
    """Resident MB of this process's child processes (Linux /proc), [] elsewhere."""
    sizes = []
    for pid in _child_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None)
        if rss:
            sizes.append(round(int(rss) / 1024, 1))
    return sizes


def child_train(args):
    _quiet()
    from rsna_detector.detector.augment import get_augmentation
    from rsna_detector.detector.config import DetectorConfig
    from rsna_detector.detector.dataset import DetectorDataset
    from rsna_detector.mrcnn import model as modellib

    config = DetectorConfig()
    config.STEPS_PER_EPOCH, config.VALIDATION_STEPS, config.SEED = args.train_steps, 0, 0
    config.validate()
    train, _ = DetectorDataset.split_from_data_dir(args.data, image_size=config.IMAGE_MAX_DIM)
    model = modellib.MaskRCNN("training", config, str(args.work / "logs"))
    start = time.perf_counter()
    model.train(train, None, config.LEARNING_RATE, 1, "all", augmentation=get_augmentation("notebook"))
    seconds = time.perf_counter() - start
    steps = args.train_steps
    _emit(s_per_step=round(seconds / steps, 3), images_per_s=round(steps * config.BATCH_SIZE / seconds, 2),
          count=f"{steps} steps of {config.BATCH_SIZE}")


def child_predict(args):
    _quiet()
    from rsna_detector.detector.config import DetectorConfig
    from rsna_detector.detector.inference import predict
    from rsna_detector.mrcnn import model as modellib

    checkpoints = sorted((args.work / "logs").glob("*/mask_rcnn_*.h5"))
    if not checkpoints:
        raise SystemExit(f"{args.work / 'logs'}: no checkpoint; run the train step first")
    model = modellib.MaskRCNN("inference", DetectorConfig(), str(args.work))
    model.load_weights(str(checkpoints[-1]), by_name=True)
    start = time.perf_counter()
    run = predict(model, args.data / "stage_2_test_images", flip_tta=args.tta, progress=True)
    seconds = time.perf_counter() - start
    run.write(args.work / ("predictions-tta.json" if args.tta else "predictions.json"))
    boxes = sum(len(p.boxes) for p in run.predictions)
    _emit(images_per_s=round(len(run.predictions) / seconds, 2), call_s=round(seconds, 1),
          count=f"{len(run.predictions):,} images, {boxes:,} boxes, {len(run.failed)} failed")


CHILDREN = {"generate": child_generate, "table": child_table, "table_cached": child_table_cached,
            "split": child_split, "pipeline": child_pipeline, "train": child_train, "predict": child_predict}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_step":
        child = _child_args(sys.argv[2:])
        CHILDREN[child.step](child)
    else:
        sys.exit(main())
