"""The input worker processes never import TensorFlow or Keras.

A worker process imports the worker entry point (``_start_worker`` / ``_worker_batch``
of the input worker module), unpickles the batch builder (dataset, config,
augmentation) and builds batches: none of that may pull TensorFlow in, which would
cost every worker about 700 MB of memory (docs/PERFORMANCE.md,
``benchmarks/bench_worker_rss.py``). Each check runs in a fresh interpreter, as a
spawned worker does.
"""
import json
import pickle
import subprocess
import sys
from pathlib import Path

from rsna_detector.detector.augment import rsna_notebook_augmentation
from rsna_detector.detector.config import DetectorConfig
from rsna_detector.mrcnn.input import pipeline
from tests.helpers import BlobDataset

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("tensorflow", "keras", "keras_hub")

IMPORT_ONLY = """
import json, sys
import rsna_detector.mrcnn.input.workers as workers
assert callable(workers._start_worker) and callable(workers._worker_batch)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""

BUILD_A_BATCH = """
import json, sys
import rsna_detector.mrcnn.input.workers as workers
workers._start_worker(open(sys.argv[1], "rb").read())
arrays = workers._worker_batch(1, None)
print(json.dumps({"modules": sorted({m.split(".")[0] for m in sys.modules}),
                  "shapes": [list(a.shape) for a in arrays], "dtypes": [str(a.dtype) for a in arrays],
                  "rpn_match": arrays[2].ravel().tolist(), "gt_boxes": arrays[5].ravel().tolist()}))
"""


def _run(code, *arguments):
    completed = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, cwd=ROOT,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_worker_entry_point_imports_no_tensorflow_or_keras():
    modules = _run(IMPORT_ONLY)
    assert "rsna_detector" in modules and "numpy" in modules
    assert [name for name in HEAVY if name in modules] == []


class _SmallDetectorConfig(DetectorConfig):
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 64
    IMAGES_PER_GPU = 2
    RPN_ANCHOR_SCALES = (8, 16, 32, 64)
    TRAIN_ROIS_PER_IMAGE = 8
    MAX_GT_INSTANCES = 4


def test_a_worker_builds_a_detector_batch_without_tensorflow(tmp_path):
    """The RSNA detector's own builder (DetectorConfig, the notebook's imgaug augmentation) in a worker."""
    config = _SmallDetectorConfig().validate()
    batches = pipeline.TrainingBatches(BlobDataset(3, 1), config, shuffle=True,
                                             augmentation=rsna_notebook_augmentation(), seed=3)
    payload = tmp_path / "payload.pickle"
    payload.write_bytes(pickle.dumps(batches, protocol=pickle.HIGHEST_PROTOCOL))
    result = _run(BUILD_A_BATCH, str(payload))
    expected = batches.batch(1)
    assert result["shapes"] == [list(a.shape) for a in expected]
    assert result["dtypes"][1:] == [str(a.dtype) for a in expected[1:]]
    assert result["dtypes"][0] in ("uint8", str(expected[0].dtype))
    # the same seeded batch as in this process: the RPN targets and the augmented boxes
    assert result["rpn_match"] == expected[2].ravel().tolist()
    assert result["gt_boxes"] == expected[5].ravel().tolist()
    assert [name for name in HEAVY if name in result["modules"]] == []
