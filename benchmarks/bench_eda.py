"""EDA runtime benchmark: ``run_eda`` on a labels-only directory (the full RSNA label files).

Usage::

    python benchmarks/bench_eda.py [--data DIR] [--repeats 3] [--cpus 2]

DIR defaults to ``$RSNA_DATA_DIR/labels`` (the genuine full label files, 30,227
rows). Timed, median over the repeats:

* cold: a fresh Python process running ``run_eda(DIR, OUT, with_images=False)``,
  imports included (what ``rsna-detector eda --no-images`` costs);
* warm, in this process: the phases of a run (patient table, statistics,
  label figures, the whole ``run_eda``).

The processes are pinned to the first ``--cpus`` allowed CPUs (Linux). The
brief's target: under 30 s on 2 cores.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import rsna_detector  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pin_cpus(count):
    """Pin this process (and its children) to its first ``count`` allowed CPUs; returns them or None."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))[:count]
    os.sched_setaffinity(0, cpus)
    return cpus


def time_cold(data_dir, repeats):
    code = ("import sys; from rsna_detector.eda import run_eda; "
            "run_eda(sys.argv[1], sys.argv[2], with_images=False, progress=False)")
    seconds = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, str(data_dir), out], check=True,
                           env={**os.environ, "MPLBACKEND": "Agg"})
            seconds.append(time.perf_counter() - start)
    return seconds


def time_phases(data_dir, repeats):
    from rsna_detector import eda
    from rsna_detector.data.layout import KaggleLayout
    from rsna_detector.eda import figures as eda_figures
    from rsna_detector.eda import report as eda_report

    layout = KaggleLayout.from_dir(data_dir)
    phases = {"patient table": [], "statistics": [], "label figures": [], "run_eda (whole)": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            table = eda_report._build_table(layout, False, False, False)
            phases["patient table"].append(time.perf_counter() - start)
            start = time.perf_counter()
            stats = eda.compute_label_statistics(table.boxes)
            features = eda.box_features(table.boxes)
            phases["statistics"].append(time.perf_counter() - start)
            start = time.perf_counter()
            (Path(out) / "figures").mkdir()
            eda_figures._write_label_figures(Path(out) / "figures", stats, features, 1024)
            phases["label figures"].append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            eda.run_eda(data_dir, out, with_images=False, progress=False)
            phases["run_eda (whole)"].append(time.perf_counter() - start)
    return phases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("RSNA_DATA_DIR", "../shared/rsna")) / "labels"
    parser.add_argument("--data", type=Path, default=default, help="labels-only data directory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    cpus = pin_cpus(args.cpus)
    print(f"data {args.data}; CPUs {cpus}; median of {args.repeats}")
    cold = time_cold(args.data, args.repeats)
    print(f"  cold process, imports included: {statistics.median(cold):6.2f} s  (all: "
          f"{', '.join(f'{s:.2f}' for s in cold)})")
    for name, seconds in time_phases(args.data, args.repeats).items():
        print(f"  {name:<31} {statistics.median(seconds):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
