"""A live input pipeline never keeps the process from exiting: a tf.numpy_function call in flight when
Python finalizes would never return, and TensorFlow would wait for it (the matterport-style hang)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from tests.helpers import BlobDataset, tiny_config
    from rsna_detector.mrcnn.input import pipeline

    class SlowBlobs(BlobDataset):  # slow enough that batch calls are always in flight
        def load_image(self, image_id):
            time.sleep(0.05)
            return super().load_image(image_id)

    def main():
        config = tiny_config()
        processes = int(sys.argv[3])
        dataset = BlobDataset(2, 2) if processes else SlowBlobs(2, 2)  # processes need an importable class
        batches = pipeline.TrainingBatches(dataset, config)
        stream = iter(pipeline.make_input_dataset(batches, workers=2, processes=processes))
        next(stream)
        print("first batch", flush=True)
        if sys.argv[2] == "raise":
            raise RuntimeError("boom: an error while the pipeline runs")  # the traceback keeps `stream` alive
        return stream

    kept = main()
""")


@pytest.mark.parametrize("mode, code, processes", [("raise", 1, 0), ("return", 0, 0), ("raise", 1, 1)])
def test_the_process_exits_while_a_pipeline_is_live(mode, code, processes):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), mode, str(processes)], capture_output=True, text=True,
                              env=env, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung at exit with a live input pipeline")
    assert done.returncode == code and "first batch" in done.stdout, done.stderr[-2000:]
    assert ("boom" in done.stderr) == (mode == "raise")
