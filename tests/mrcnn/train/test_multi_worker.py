"""Multi-worker training (TF_CONFIG -> MultiWorkerMirroredStrategy): two worker processes on localhost
train, checkpoint (the chief only) and resume like one process with the same global batch."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rsna_detector.mrcnn.layers import training_graph

ROOT = Path(__file__).resolve().parents[3]

# One role per process: "single" (no TF_CONFIG, 4 images per step) or "worker" (TF_CONFIG, 2 images per
# worker and step). Each trains epoch 1 (3 steps), then a new model resumes from find_last() and trains
# epoch 2, and dumps its initial and final weights.
WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    root, out, role = sys.argv[1:4]
    sys.path.insert(0, root)
    from rsna_detector.mrcnn.layers import training_graph
    strategy = training_graph.training_strategy(None) if role == "worker" else None  # before any TF operation
    import numpy as np
    import tensorflow as tf
    from tests.helpers import BlobDataset, tiny_config
    from rsna_detector.mrcnn import model as modellib

    # As in the MirroredStrategy test: every proposal kept (no random ROI sampling), no clipping
    # (per-replica clipping of partial gradients differs by design), and a data set of one positive
    # and one negative image, so that each worker's half of a batch holds one of each: the losses
    # are means over images' anchors and ROIs, and halves with equal counts average to the whole.
    config = tiny_config(IMAGES_PER_GPU=4 if role == "single" else 2, STEPS_PER_EPOCH=3, VALIDATION_STEPS=0,
                         POST_NMS_ROIS_TRAINING=16, TRAIN_ROIS_PER_IMAGE=16, ROI_POSITIVE_RATIO=1.0,
                         GRADIENT_CLIP_NORM=1e9, WEIGHT_DECAY=0.001)
    dataset = BlobDataset(1, 1)
    model_dir = os.path.join(out, role)
    model = modellib.MaskRCNN("training", config, model_dir)
    initial = [w.numpy() for w in model.keras_model.weights]
    first = model.train(dataset, None, 0.01, 1, "all", verbose=0).history
    if strategy is not None:  # barrier: the chief has written its checkpoint when every worker gets here
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)

    resumed = modellib.MaskRCNN("training", config, model_dir)
    resumed.load_weights(resumed.find_last(), by_name=True)
    epoch_after_load = resumed.epoch
    second = resumed.train(dataset, None, 0.01, 2, "all", verbose=0).history
    task = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
    name = f"{role}{task}"
    np.savez(os.path.join(out, name + "_initial.npz"), *initial)
    np.savez(os.path.join(out, name + "_final.npz"), *[w.numpy() for w in resumed.keras_model.weights])
    print("RESULT " + json.dumps({
        "replicas": resumed.keras_model.distribute_strategy.num_replicas_in_sync,
        "chief": training_graph.is_chief(resumed.keras_model.distribute_strategy), "epoch_after_load": epoch_after_load, "epoch": resumed.epoch,
        "losses": [{k: v[-1] for k, v in h.items()} for h in (first, second)]}))
""")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(out, role, tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    # Deterministic kernels: this test compares a strategy with one process to float tolerance, and
    # without them about one CPU training run in five differs from the others by ~1e-4 after a resume.
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", TF_DETERMINISTIC_OPS="1")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(ROOT), str(out), role], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(processes, timeout_s):
    """Wait for every process; kill them all when the time runs out. Returns [(returncode, stdout, stderr)]."""
    deadline = time.monotonic() + timeout_s
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((process.returncode, stdout, stderr))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        details = [process.communicate()[1][-2000:] for process in processes]
        pytest.fail(f"multi-worker training did not finish in {timeout_s} s; stderr tails: {details}")
    return results


def _result(run):
    code, stdout, stderr = run
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert code == 0 and lines, stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def _weights(path):
    with np.load(path) as archive:
        return [archive[f"arr_{k}"] for k in range(len(archive.files))]


@pytest.mark.slow
def test_two_workers_train_checkpoint_and_resume_like_one_process(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = [_start(tmp_path, "worker", {"cluster": cluster, "task": {"type": "worker", "index": k}})
                 for k in range(2)] + [_start(tmp_path, "single")]
    worker0, worker1, single = (_result(run) for run in _finish(processes, timeout_s=900))

    assert (worker0["replicas"], worker1["replicas"], single["replicas"]) == (2, 2, 1)
    assert (worker0["chief"], worker1["chief"]) == (True, False)
    # both resumed from the chief's epoch-1 checkpoint and reached epoch 2
    assert [r["epoch_after_load"] for r in (worker0, worker1, single)] == [1, 1, 1]
    assert [r["epoch"] for r in (worker0, worker1, single)] == [2, 2, 2]

    # the chief alone wrote files: one run folder, one checkpoint per epoch, one CSV row per epoch
    runs = [d for d in (tmp_path / "worker").iterdir()]
    assert len(runs) == 1
    assert sorted(p.name for p in runs[0].glob("*.h5")) == ["mask_rcnn_blobs_0001.h5", "mask_rcnn_blobs_0002.h5"]
    assert len((runs[0] / "training_log.csv").read_text().strip().splitlines()) == 1 + 2

    start, final = _weights(tmp_path / "single0_initial.npz"), _weights(tmp_path / "single0_final.npz")
    for name in ("worker0", "worker1"):
        initial = _weights(tmp_path / f"{name}_initial.npz")
        assert all(np.array_equal(a, b) for a, b in zip(initial, start)), "the seeded initial weights differ"
    chief_final, other_final = _weights(tmp_path / "worker0_final.npz"), _weights(tmp_path / "worker1_final.npz")
    assert all(np.array_equal(a, b) for a, b in zip(chief_final, other_final)), "the workers' weights diverged"
    # 6 SGD steps moved the weights as on one process. Tolerance: float32 sums in another order
    # (per worker, then all-reduced), carried through 6 steps.
    moved = 0
    for got, want, before in zip(chief_final, final, start):
        update = want - before
        if np.abs(update).max() > 0:
            moved += 1
            np.testing.assert_allclose(got - before, update, rtol=1e-3, atol=1e-3 * np.abs(update).max())
    assert moved > 10
    for multi, one in zip(worker0["losses"], single["losses"]):
        for key, value in one.items():
            assert multi[key] == pytest.approx(value, rel=1e-3, abs=1e-5), key


def test_tf_config_with_several_tasks_selects_multi_worker_training():
    def environ(workers, task_type="worker", index=0, chief=False):
        cluster = {"worker": [f"h:{k}" for k in range(workers)]} | ({"chief": ["h:9"]} if chief else {})
        return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}

    assert training_graph.multi_worker_task({}) is None and training_graph.multi_worker_task({"TF_CONFIG": " "}) is None
    assert training_graph.multi_worker_task(environ(1)) is None  # a one-task cluster is a single process
    assert training_graph.multi_worker_task(environ(2, index=1)) == ("worker", 1, {"worker": ["h:0", "h:1"]})
    assert training_graph.multi_worker_task(environ(1, "chief", 0, chief=True))[:2] == ("chief", 0)
    assert training_graph.is_chief() and not training_graph.is_multi_worker(training_graph.tf.distribute.get_strategy())


@pytest.mark.parametrize("text, expected", [
    ("not json", "expected JSON with 'cluster'"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}}', "expected JSON with 'cluster'"),
    ('{"cluster": {"worker": ["h:1"], "ps": ["h:2"]}, "task": {"type": "worker", "index": 0}}',
     "only 'chief' and 'worker' tasks"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "evaluator", "index": 0}}',
     "only 'chief' and 'worker' tasks"),
])
def test_a_bad_tf_config_is_named(text, expected):
    with pytest.raises(training_graph.TrainingGraphError, match=expected):
        training_graph.multi_worker_task({"TF_CONFIG": text})
