"""Memory of an input worker process after its imports: with TensorFlow (before issue 25) and without (now).

Usage::

    python benchmarks/bench_worker_rss.py [--repeats 3]

Each case runs in a fresh interpreter, as a spawned worker does (``spawn``: the worker
imports the entry point's module and unpickles the batch builder), and prints the
process's resident set size (``VmRSS`` of ``/proc/self/status``), median of
``--repeats``:

* ``before``: ``import tensorflow`` and the worker's modules: what a worker imported
  while the RPN targets lived beside ``DetectionTargetLayer`` (the old ``mrcnn/targets.py``
  imported TensorFlow and Keras at module level);
* ``after, imports``: the worker entry point's module (``rsna_detector.mrcnn.input.workers``),
  the input pipeline and the RSNA detector's builder modules (``detector.config``,
  ``detector.dataset``, ``detector.augment``): what a worker imports now;
* ``one batch``: each of the two once it has unpickled a ``TrainingBatches``
  (DetectorConfig at 256 px, the notebook's augmentation, synthetic images) and built
  one batch of 8.

Linux only (``/proc``). Prints the CPU model and the load, which the figures depend on.
"""
import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER_MODULES = """
import json, sys
import rsna_detector.mrcnn.input.workers
import rsna_detector.mrcnn.input.pipeline
import rsna_detector.detector.config, rsna_detector.detector.dataset, rsna_detector.detector.augment
"""

REPORT = """
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({"rss_mb": rss / 1024, "tensorflow": "tensorflow" in sys.modules}))
"""

ONE_BATCH = """
import rsna_detector.mrcnn.input.workers as workers
workers._start_worker(open(sys.argv[1], "rb").read())
workers._worker_batch(0, None)
"""
OLD_IMPORTS = "import tensorflow\nimport keras\n"

CASES = {
    "before, imports: TensorFlow, Keras + the worker's modules": WORKER_MODULES + OLD_IMPORTS + REPORT,
    "after, imports: the worker's modules": WORKER_MODULES + REPORT,
    "before, one batch of 8 at 256 px": WORKER_MODULES + OLD_IMPORTS + ONE_BATCH + REPORT,
    "after, one batch of 8 at 256 px": WORKER_MODULES + ONE_BATCH + REPORT,
}


def _payload(folder):
    """A pickled TrainingBatches of the RSNA detector's settings over synthetic images."""
    from rsna_detector.detector.augment import rsna_notebook_augmentation
    from rsna_detector.detector.config import DetectorConfig
    from rsna_detector.mrcnn.input.pipeline import TrainingBatches
    from tests.helpers import BlobDataset

    config = DetectorConfig()
    config.IMAGE_MIN_DIM = config.IMAGE_MAX_DIM = 256
    config.IMAGES_PER_GPU = 8
    config = config.validate()
    batches = TrainingBatches(BlobDataset(8, 8, size=256), config, augmentation=rsna_notebook_augmentation(), seed=0)
    path = Path(folder) / "payload.pickle"
    path.write_bytes(pickle.dumps(batches, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def _measure(code, payload):
    done = subprocess.run([sys.executable, "-c", code, str(payload)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        sys.exit(f"a worker case failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"CPU: {_cpu_model()}, {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        payload = _payload(folder)
        print("| worker | RSS, MB (median of %d) | TensorFlow imported |" % args.repeats)
        print("|---|---|---|")
        for name, code in CASES.items():
            runs = [_measure(code, payload) for _ in range(args.repeats)]
            rss = statistics.median(run["rss_mb"] for run in runs)
            print(f"| {name} | {rss:.0f} | {'yes' if runs[0]['tensorflow'] else 'no'} |")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
