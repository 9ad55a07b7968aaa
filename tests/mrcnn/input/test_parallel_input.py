"""Batches built by worker processes are the threaded pipeline's, batch for batch; failures are named."""
import numpy as np
import pytest

from rsna_detector.mrcnn.input import pipeline, workers
from tests.helpers import BlobDataset, tiny_config


class BrokenBlobs(BlobDataset):
    def load_image(self, image_id):
        if image_id == 2:
            raise OSError("disk read error")
        return super().load_image(image_id)


def _first(dataset, count):
    iterator = iter(dataset)
    batches = [next(iterator) for _ in range(count)]
    del iterator
    return [[np.asarray(array) for array in element[0]] for element in batches]


@pytest.mark.slow
def test_worker_processes_build_the_threads_batches():
    config = tiny_config(IMAGES_PER_GPU=3)
    batches = pipeline.TrainingBatches(BlobDataset(3, 2), config, shuffle=True)
    threaded = _first(pipeline.make_input_dataset(batches, start_batch=5, workers=2), 3)
    spawned = _first(pipeline.make_input_dataset(batches, start_batch=5, processes=2), 3)
    for thread_batch, process_batch in zip(threaded, spawned):
        for a, b in zip(thread_batch, process_batch):
            assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.slow
def test_a_failing_image_in_a_worker_process_is_named():
    config = tiny_config(IMAGES_PER_GPU=5)
    batches = pipeline.TrainingBatches(BrokenBlobs(3, 2), config, shuffle=False)
    with pytest.raises(Exception, match=r"image 2 .*OSError: disk read error"):
        _first(pipeline.make_input_dataset(batches, processes=1), 1)


def test_builders_that_cannot_reach_a_worker_process_fall_back_to_threads(caplog):
    class Local(BlobDataset):  # a class defined in a function: not importable by a fresh process
        pass

    batches = pipeline.TrainingBatches(Local(1, 1), tiny_config(IMAGES_PER_GPU=2), shuffle=False)
    assert workers.process_input_dataset(batches, processes=2) is None
    assert "building them in threads" in caplog.text
    element = _first(pipeline.make_input_dataset(batches, processes=2), 1)[0]
    assert np.array_equal(element[0], batches.batch(0)[0])


def test_a_script_that_workers_would_rerun_builds_in_threads(caplog, monkeypatch):
    """Training started from a script's top level, outside ``if __name__ == "__main__":`` (issue 26)."""
    batches = pipeline.TrainingBatches(BlobDataset(1, 1), tiny_config(IMAGES_PER_GPU=2), shuffle=False)
    monkeypatch.setattr(workers, "main_reruns_in_workers", lambda: True)
    assert workers.process_input_dataset(batches, processes=2) is None
    assert "every worker process would run again; building batches in threads" in caplog.text
