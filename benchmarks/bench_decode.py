"""Decode-speed benchmark: one RSNA DICOM -> uint8 [256, 256], single-threaded.

Usage::

    python benchmarks/bench_decode.py [--data DIR] [--size 256] [--repeats 5]

DIR defaults to ``$RSNA_DATA_DIR/images`` (the real samples). Paths timed,
per image, median over every file and repeat:

* naive: ``pydicom.dcmread(path).pixel_array`` (pydicom's default JPEG
  plugin) then a Pillow bilinear resize, as notebooks do;
* reference: ``read_dicom(path, size=S, fast=False)`` (pixel_array, uint8
  rules, the library's resize);
* fast: ``read_dicom(path, size=S)`` (simplejpeg / libjpeg-turbo, strict, with DCT-domain
  downscaling).

The process is pinned to one CPU and BLAS/OpenMP pools to one thread.
"""
import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

try:
    import rsna_detector  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pin_to_one_cpu():
    """Pin this process to its first allowed CPU (Linux); returns the CPU or None."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def naive(path, size):
    import pydicom
    from PIL import Image

    pixels = pydicom.dcmread(path).pixel_array
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR))


def reference(path, size):
    from rsna_detector.data.dicom import read_dicom_image

    return read_dicom_image(path, size=size, fast=False)


def fast(path, size):
    from rsna_detector.data.dicom import read_dicom_image

    return read_dicom_image(path, size=size, fast=True)


def time_per_image_ms(function, files, size, repeats):
    """Median milliseconds per call over every file and repeat (one warm-up pass first)."""
    for path in files:
        function(path, size)
    samples = []
    for _ in range(repeats):
        for path in files:
            start = time.perf_counter()
            function(path, size)
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def default_data_dir():
    root = os.environ.get("RSNA_DATA_DIR")
    return Path(root) / "images" if root else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_dir(),
                        help="folder of .dcm files (default: $RSNA_DATA_DIR/images)")
    parser.add_argument("--size", type=int, default=256, help="output side (default: 256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the files (default: 5)")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("no data folder: pass --data DIR or set RSNA_DATA_DIR")
    files = sorted(args.data.glob("*.dcm"))
    if not files:
        parser.error(f"{args.data}: no .dcm files")
    cpu = pin_to_one_cpu()
    print(f"{len(files)} files from {args.data}, size {args.size}, {args.repeats} repeats, "
          f"pinned to CPU {cpu}, OMP_NUM_THREADS=1")
    results = {name: time_per_image_ms(function, files, args.size, args.repeats)
               for name, function in (("naive", naive), ("reference", reference), ("fast", fast))}
    for name, milliseconds in results.items():
        print(f"  {name:<10s} {milliseconds:7.2f} ms per image")
    print(f"  fast path speed-up over naive: {results['naive'] / results['fast']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
