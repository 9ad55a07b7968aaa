"""Start-up cost of the data layer's worker pools: fork (before issue 26) against spawn (now).

Usage::

    python benchmarks/bench_pools.py [--repeats 5] [--workers 2]

Each case runs in a fresh process (``-c``, or a small script file where the case needs
one), with ``rsna_detector._processes.START_METHOD`` set to the method measured; median
of ``--repeats``:

* ``empty pool``: a pool of ``--workers`` workers, each importing what a ``convert``
  worker imports (``rsna_detector.data.convert``, ``data.dicom``, Pillow) and sleeping
  0.1 s (so that each worker gets a task), then shut down: the start-up cost alone;
* ``convert 16 files``: ``convert_dicoms`` on 16 copies of a 1024x1024 JPEG DICOM
  (PNG at 256 px), workers as above;
* ``convert, as the CLI``: the same through a script shaped like the ``rsna-detector``
  console script (``from rsna_detector.cli import main`` at its top, the call under
  its ``__main__`` guard): spawned workers import that script again (``__mp_main__``),
  which is part of their cost;
* ``synthetic 16 images``: ``make_synthetic_dataset(n_train=16, n_test=0,
  image_size=256)``;
* ``patient table``: ``build_patient_table`` of those 16 patients with
  ``workers=2`` (headers read in the pool).

The time of a case is the wall time of the call (imports of the parent excluded).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One case, run in a fresh interpreter: argv = method, workers, data folder, out folder.
PRELUDE = """\
import sys, time
sys.path.insert(0, {root!r})
import rsna_detector._processes as processes
processes.START_METHOD = sys.argv[1]
workers, data, out = int(sys.argv[2]), sys.argv[3], sys.argv[4]
"""

CASES = {
    "empty pool": """
import os
from rsna_detector._processes import process_pool

def ready(_):
    import PIL.Image
    from rsna_detector.data import convert, dicom
    time.sleep(0.1)  # every worker gets one
    return os.getpid()

def run():
    with process_pool(workers) as pool:
        assert len(set(pool.map(ready, range(workers)))) == workers

""",
    "convert 16 files": """
from rsna_detector.data.convert import convert_dicoms

def run():
    convert_dicoms(data + "/dicoms", out, size=256, workers=workers, progress=False)
""",
    "convert, as the CLI": """
from rsna_detector.cli import main

def run():
    main(["convert", data + "/dicoms", out, "--size", "256", "--workers", str(workers), "--quiet"])
""",
    "synthetic 16 images": """
from rsna_detector.data.synthetic import make_synthetic_dataset

def run():
    make_synthetic_dataset(out, n_train=16, n_test=0, seed=0, image_size=256, workers=workers, progress=False)
""",
    "patient table": """
from rsna_detector.data.table import build_patient_table

def run():
    build_patient_table(data + "/synthetic", cache_path=False, workers=workers, progress=False)
""",
}

EPILOGUE = """
if __name__ == "__main__":
    start = time.perf_counter()
    run()
    print(time.perf_counter() - start)
"""


def prepare(folder):
    """16 copies of a 1024x1024 JPEG DICOM, and a 16-patient synthetic data set."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from rsna_detector.data.synthetic import make_synthetic_dataset, write_jpeg_dicom

    dicoms = folder / "dicoms"
    dicoms.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (1024, 1024)).astype(np.uint8)
    for index in range(16):
        write_jpeg_dicom(dicoms / f"p{index:02d}.dcm", image, patient_id=f"p{index:02d}", quality=90)
    make_synthetic_dataset(folder / "synthetic", n_train=16, n_test=0, seed=0, image_size=256, workers=1,
                           progress=False)


def time_case(name, method, workers, data, scratch):
    script = scratch / "case.py"
    script.write_text(PRELUDE.format(root=str(ROOT)) + CASES[name] + EPILOGUE, encoding="utf-8")
    with tempfile.TemporaryDirectory(dir=scratch) as out:
        completed = subprocess.run([sys.executable, str(script), method, str(workers), str(data), out],
                                   capture_output=True, text=True, check=True, cwd=scratch)
    return float(completed.stdout.split()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["fork", "spawn"])
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.workers} workers; median of {args.repeats} (s)")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = scratch / "data"
        data.mkdir()
        prepare(data)
        print(f"  {'case':<22}" + "".join(f"{method:>10}" for method in args.methods))
        for name in CASES:
            row = []
            for method in args.methods:
                seconds = [time_case(name, method, args.workers, data, scratch) for _ in range(args.repeats)]
                row.append(statistics.median(seconds))
            print(f"  {name:<22}" + "".join(f"{value:10.2f}" for value in row), flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
