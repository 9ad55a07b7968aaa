"""Start-up cost of the data layer's worker pools: fork (before issue 26) against spawn (now).

Usage::

    python benchmarks/bench_pools.py [--repeats 5] [--workers 2] [--methods serial fork spawn]

Each case runs in a fresh process (a small script file with a ``__main__`` guard, as
the ``rsna-detector`` console script is), with ``rsna_detector._processes.START_METHOD``
set to the method measured (``serial``: the same job with ``workers=1``, no pool);
median of ``--repeats``:

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
* ``patient table 16`` / ``N``: ``build_patient_table`` of the 16 patients above /
  ``--table-patients`` (2,000) synthetic patients at 64 px, no cache (headers read in
  the pool unless serial).

Two figures per case: the wall time of the call (imports of the parent excluded), and the
CPU time of the whole case process and its workers (user + system, the parent's imports
included): on a busy machine the wall time mostly measures the other processes, while the
CPU time is what starting the workers costs.
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
serial = sys.argv[1] == "serial"
processes.START_METHOD = "spawn" if serial else sys.argv[1]
workers, data, out = 1 if serial else int(sys.argv[2]), sys.argv[3], sys.argv[4]
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
    "patient table 16": """
from rsna_detector.data.table import build_patient_table

def run():
    build_patient_table(data + "/synthetic", cache_path=False, workers=workers, progress=False)
""",
    "patient table N": """
from rsna_detector.data.table import build_patient_table

def run():
    build_patient_table(data + "/synthetic_n", cache_path=False, workers=workers, progress=False)
""",
}

EPILOGUE = """
if __name__ == "__main__":
    import resource
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(wall, sum(u.ru_utime + u.ru_stime for u in usage))
"""


def prepare(folder, table_patients):
    """16 copies of a 1024x1024 JPEG DICOM, a 16-patient (256 px) and a ``table_patients`` (64 px) synthetic set."""
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
    make_synthetic_dataset(folder / "synthetic_n", n_train=table_patients, n_test=0, seed=0, image_size=64,
                           progress=False)


def time_case(name, method, workers, data, scratch):
    """(wall s, CPU s) of one run of a case."""
    script = scratch / "case.py"
    script.write_text(PRELUDE.format(root=str(ROOT)) + CASES[name] + EPILOGUE, encoding="utf-8")
    with tempfile.TemporaryDirectory(dir=scratch) as out:
        completed = subprocess.run([sys.executable, str(script), method, str(workers), str(data), out],
                                   capture_output=True, text=True, check=True, cwd=scratch)
    wall, cpu = completed.stdout.split()[-2:]
    return float(wall), float(cpu)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["serial", "fork", "spawn"])
    parser.add_argument("--table-patients", type=int, default=2000)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.workers} workers; N = {args.table_patients}; median of {args.repeats}; wall s / CPU s")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = scratch / "data"
        data.mkdir()
        prepare(data, args.table_patients)
        print(f"  {'case':<22}" + "".join(f"{method:>14}" for method in args.methods))
        for name in args.cases:
            cells = []
            for method in args.methods:
                if name == "empty pool" and method == "serial":
                    cells.append(f"{'-':>14}")
                    continue
                runs = [time_case(name, method, args.workers, data, scratch) for _ in range(args.repeats)]
                wall, cpu = (statistics.median(values) for values in zip(*runs))
                cells.append(f"{wall:7.2f} /{cpu:5.1f}")
            print(f"  {name:<22}" + "".join(cells), flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
