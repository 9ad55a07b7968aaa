"""Running the training input in parallel: worker processes, one share per replica, a clean exit.

* :func:`process_input_dataset` -- batches built in worker *processes*
  (``config.DATA_LOADER_PROCESSES``). Threads cannot build batches in parallel:
  decoding, imgaug and the targets are mostly Python holding the GIL, so the
  threaded pipeline delivers the same images per second with 1, 2 or 4 threads
  (measured: docs/PERFORMANCE.md). Processes scale with the cores. They are
  started with ``spawn`` (never ``fork``: forking a process that runs
  TensorFlow's threads can deadlock the child), receive the batch builder once,
  and return batch ``i`` for index ``i``: the stream is the same, batch for
  batch, as the threaded one. A worker that dies or fails is an error named in
  the training process, never a hang.
* :func:`make_distributed_input` -- the input of a multi-replica strategy, each
  replica building only its own share of every global batch.
* :data:`EXIT_GUARD` -- lets the process exit while a pipeline is live.

Classes defined in ``__main__`` (a notebook, a script) cannot be rebuilt in a
fresh process: with any of those in the dataset, config or augmentation, the
batches are built in threads instead, with one warning. So are they when
training is started from the top level of a script without an
``if __name__ == "__main__":`` block, which every spawned worker would run
again (``rsna_detector._processes.main_reruns_in_workers``).
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import pickle
import threading
import time

import numpy as np

from ..._processes import START_METHOD, main_reruns_in_workers
from ...errors import InvalidArgumentError, RsnaDetectorError

__all__ = ["EXIT_GUARD", "ExitGuard", "guarded_batch", "process_input_dataset", "make_distributed_input",
           "WorkerError"]

log = logging.getLogger(__name__)


class WorkerError(RsnaDetectorError, RuntimeError):
    """A batch-building worker process failed; the message names why."""


# ----------------------------------------------------------------------------- exit guard
class ExitGuard:
    """Lets the interpreter exit while an input pipeline is still live.

    A ``tf.numpy_function`` call that starts, or waits for the GIL, once Python
    is finalizing never returns, and TensorFlow's destruction of the iterator
    waits for it: the process hangs at exit (typically after an uncaught
    exception, whose traceback keeps Keras' iterator alive). At ``atexit`` time,
    while threads can still run Python, the guard makes every new batch call
    return at once (an empty batch nobody will read) and waits until the calls
    in flight have finished; the pipelines' buffers then fill, their threads
    wait without Python, and finalization destroys them cleanly.
    """

    QUIET_S = 0.2  # no call started for this long: the buffers are full

    def __init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_start = 0.0
        self.stopping = False
        self._registered = False

    def register(self):
        """Arm the guard (once per process); pipelines call it when they are made."""
        with self._lock:
            if not self._registered:
                atexit.register(self.quiesce)
                self._registered = True

    @contextlib.contextmanager
    def call(self):
        """Wraps one batch call; yields True when the process is exiting (return at once)."""
        with self._lock:
            self._in_flight += 1
            self._last_start = time.monotonic()
        try:
            yield self.stopping
        finally:
            with self._lock:
                self._in_flight -= 1

    def quiesce(self, timeout_s=30.0):
        """Stop building batches and wait (at most ``timeout_s``) until no call is in flight."""
        self.stopping = True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight == 0 and time.monotonic() - self._last_start > self.QUIET_S:
                    return
            time.sleep(0.02)


#: The process's guard, armed by every pipeline of this package.
EXIT_GUARD = ExitGuard()


def guarded_batch(batches, index, slots=None):
    """``batches.batch(index, slots)``, or an empty batch of the same shapes when the process is exiting."""
    with EXIT_GUARD.call() as exiting:
        if exiting:
            return batches.empty_batch(None if slots is None else len(slots))
        # without slots, the one-argument call that subclasses overriding batch(index) expect
        return batches.batch(int(index)) if slots is None else batches.batch(int(index), slots=slots)


# ----------------------------------------------------------------------------- worker processes
_WORKER = {}  # in a worker process: the batch builder, or why it could not be rebuilt


def _start_worker(payload):
    try:
        _WORKER["batches"] = pickle.loads(payload)
    except BaseException as error:  # noqa: BLE001 - reported with the first batch asked for
        _WORKER["error"] = f"{type(error).__name__}: {error}"


def _worker_batch(index, slots):
    """Batch ``index`` for the training process; its images travel as uint8 when that is exact.

    Molded float32 images are four times the bytes of the uint8 images they come
    from: the worker sends the uint8 images (``unmold_image``) when molding them
    again gives the very same float32 values, and the training process molds them
    (:func:`_received_batch`).
    """
    from ..ops.molding import mold_image, unmold_image

    if "error" in _WORKER:
        raise WorkerError(f"a worker process could not rebuild the training batches ({_WORKER['error']}); "
                          "set DATA_LOADER_PROCESSES = 0 to build them in threads")
    batches = _WORKER["batches"]
    arrays = batches.batch(index) if slots is None else batches.batch(index, slots=slots)
    images = unmold_image(arrays[0], batches.config)
    if np.array_equal(mold_image(images, batches.config), arrays[0]):
        return (images,) + tuple(arrays[1:])
    return tuple(arrays)


def _received_batch(arrays, config):
    """A worker's batch with its images molded again (float32), as ``TrainingBatches.batch`` returns them."""
    from ..ops.molding import mold_image

    if arrays[0].dtype == np.uint8:
        return (mold_image(arrays[0], config),) + tuple(arrays[1:])
    return arrays


class _ProcessPool:
    """Batches ``start, start + step, ...`` (each with ``slots``) from worker processes, in order.

    Keeps ``ahead`` batches in flight; ``next()`` returns the oldest.
    """

    def __init__(self, payload, processes, start, step=1, slots=None, ahead=None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(START_METHOD),
                                            initializer=_start_worker, initargs=(payload,))
        self.next_index, self.step, self.slots = int(start), int(step), slots
        self.ahead = int(ahead or processes + 1)
        self.futures = collections.deque()

    def next(self):
        from concurrent.futures.process import BrokenProcessPool

        while len(self.futures) < self.ahead:
            self.futures.append(self.executor.submit(_worker_batch, self.next_index, self.slots))
            self.next_index += self.step
        try:
            return self.futures.popleft().result()
        except BrokenProcessPool as error:
            raise WorkerError(f"a batch-building worker process died ({error}); it may have run out of memory: "
                              "lower DATA_LOADER_PROCESSES") from error

    def close(self):
        for future in self.futures:
            future.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _payload(batches):
    """The pickled batch builder, or None when a fresh process cannot rebuild it or would rerun the script."""
    if main_reruns_in_workers():
        log.warning("DATA_LOADER_PROCESSES: training runs from the top level of a script without an "
                    "`if __name__ == \"__main__\":` block, which every worker process would run again; "
                    "building batches in threads")
        return None
    try:
        payload = pickle.dumps(batches, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        log.warning("DATA_LOADER_PROCESSES: the training batches cannot be sent to worker processes (%s); "
                    "building them in threads", error)
        return None
    if b"__main__" in payload:
        log.warning("DATA_LOADER_PROCESSES: the dataset, config or augmentation uses a class defined in __main__ "
                    "(a notebook or a script), which a worker process cannot import; building batches in threads")
        return None
    return payload


def process_input_dataset(batches, processes, start_batch=0, prefetch=2, step=1, slots=None, shapes=None):
    """A ``tf.data.Dataset`` of batches ``start_batch, start_batch + step, ...`` built by worker processes.

    Parameters
    ----------
    batches : TrainingBatches
        Pickled once per worker.
    processes : int
        Worker processes (spawned).
    start_batch, step : int
        The batch indexes produced.
    prefetch : int
        Batches buffered after the ones in flight.
    slots : range, optional
        The slots of each batch to build (a replica's share).
    shapes : (dtypes, shapes), optional
        Default ``batches.signature(len(slots))``.

    Returns
    -------
    tf.data.Dataset or None
        Elements ``((images, ..., gt_masks),)`` as :func:`~.input_pipeline.make_input_dataset`'s;
        None when the builder cannot go to another process (``__main__`` classes).
    """
    import tensorflow as tf

    payload = _payload(batches)
    if payload is None:
        return None
    dtypes, array_shapes = shapes or batches.signature(None if slots is None else len(slots))
    specs = zip(dtypes, array_shapes, strict=True)
    signature = (tuple(tf.TensorSpec(shape, tf.as_dtype(dtype)) for dtype, shape in specs),)
    EXIT_GUARD.register()

    def generate():
        pool = _ProcessPool(payload, processes, start_batch, step, slots)
        try:
            while True:
                with EXIT_GUARD.call() as exiting:
                    if exiting:
                        return
                    arrays = _received_batch(pool.next(), batches.config)
                yield (arrays,)
        finally:
            pool.close()

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(max(int(prefetch), 0))


# ----------------------------------------------------------------------------- one share per replica
def make_distributed_input(batches, strategy, start_batch=0, workers=None, prefetch=2, processes=None):
    """The input of a multi-replica strategy: each replica builds only its own share of every batch.

    ``batches.batch_size`` is the global batch; replica ``r`` of ``R``
    (``strategy.num_replicas_in_sync``, across every worker) gets slots
    ``r * B/R .. (r + 1) * B/R - 1`` of each batch (``TrainingBatches.batch``
    with ``slots``), so one step sees the same images, augmentations and
    targets whatever the number of workers and devices. A worker builds its
    replicas' slices only (``strategy.distribute_datasets_from_function``).

    Parameters
    ----------
    batches : TrainingBatches
    strategy : tf.distribute.Strategy
    start_batch, workers, prefetch
        As for ``make_input_dataset`` (``workers`` threads per worker).
    processes : int, optional
        Worker processes per replica's input (default ``config.DATA_LOADER_PROCESSES``; 0: threads).

    Returns
    -------
    tf.distribute.DistributedDataset
        Per-replica elements ``((images, ..., gt_masks),)`` of ``B/R`` images.

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) When the batch size is not a multiple of the replica count.
    """
    import tensorflow as tf

    replicas = int(strategy.num_replicas_in_sync)
    if batches.batch_size % replicas:
        raise InvalidArgumentError(f"batch of {batches.batch_size} images cannot be split evenly over {replicas} "
                                   "replicas")
    share = batches.batch_size // replicas
    config = batches.config
    workers = config.DATA_LOADER_WORKERS if workers is None else int(workers)
    processes = getattr(config, "DATA_LOADER_PROCESSES", 0) if processes is None else int(processes)
    dtypes, shapes = batches.signature(share)
    tf_dtypes = [tf.as_dtype(d) for d in dtypes]
    EXIT_GUARD.register()

    def replica_dataset(replica):
        """Replica ``replica``'s share of batches ``start_batch, start_batch + 1, ...``."""
        slots = range(replica * share, (replica + 1) * share)
        if processes:
            dataset = process_input_dataset(batches, processes, start_batch, prefetch, slots=slots)
            if dataset is not None:
                return dataset

        def load(index):
            arrays = tf.numpy_function(lambda i: guarded_batch(batches, int(i), slots), [index], tf_dtypes,
                                       stateful=False)
            for array, shape in zip(arrays, shapes, strict=True):
                array.set_shape(shape)
            return (tuple(arrays),)

        dataset = tf.data.Dataset.range(int(start_batch), 2**62)
        return dataset.map(load, num_parallel_calls=max(workers, 1), deterministic=True)

    def dataset_fn(context):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        # element k of this worker: its replica first + k % local, of batch start + k // local
        replicas_here = [replica_dataset(first + j) for j in range(local)]
        dataset = replicas_here[0] if local == 1 else tf.data.Dataset.choose_from_datasets(
            replicas_here, tf.data.Dataset.range(local).repeat())
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(max(int(prefetch), 0))

    return strategy.distribute_datasets_from_function(dataset_fn)
