"""Validation while training: detection metrics every N epochs, the best checkpoint and its threshold.

:class:`ValidationCallback` is a Keras callback for matterport's
``MaskRCNN.train(..., custom_callbacks=[ValidationCallback(model, val_dataset)])``;
``detector.schedule.train`` adds one by default when there is a validation set. At the end of
every ``every``-th epoch (and of the last one), after the epoch's checkpoint is written, it:

1. copies the training model's current weights into an inference model (variable by variable,
   matched by layer name: no checkpoint is read or written; built once, with
   ``DETECTION_MIN_CONFIDENCE`` lowered to the sweep's lowest threshold, the rule of
   ``postprocess``);
2. detects on the validation images (:func:`validation_subset`: all of them, or a fixed seeded
   subset of ``images``), through ``postprocess.detect``;
3. logs, in the epoch's Keras logs (so in ``training_log.csv``, TensorBoard when installed, and
   the epoch line), ``val_map50``, ``val_best_rsna_score``, ``val_best_threshold``,
   ``val_coco_ap``, ``val_coco_ap50`` and ``val_coco_ap75`` (:data:`LOGGED`; NaN in the epochs it
   skips, so the CSV keeps its columns). ``map50`` is ``evaluate.detection_metrics``' at the best
   threshold (the detections a submission at that threshold carries); the competition score is
   the sweep's best and its threshold; COCO AP ranks every detection (pycocotools);
4. when the monitored metric (``monitor``, default ``best_rsna_score``) beats the best so far:
   writes the :class:`~.postprocess.PostProcessing` of that checkpoint (its best threshold, the
   in-graph threshold, where it comes from) as ``postprocessing.json`` in the run folder, and
   ``best`` in ``run.json`` (metric, value, epoch, checkpoint, threshold, every metric). A resumed
   run reads ``best`` back from ``run.json`` and keeps it until an epoch beats it.

Training is not disturbed: the inference model is a separate Keras model (its batch
normalisation runs in inference mode on copied statistics), nothing is written into the training
model, and Python's and numpy's global random states are restored after each validation (the
input pipeline draws from its own seeded generators). In a multi-worker run only the chief
validates and writes.

Cost: one detection pass over the subset per validated epoch. The default subset
(:data:`DEFAULT_VALIDATION_IMAGES`, 200 images) is sized for the RSNA settings (200 steps of 8
images and 50 validation-loss steps per epoch): one validation image costs about 0.8 training
images on this project's 2-core CPU, so 200 images are 8-10% of an epoch
(``benchmarks/bench_validation.py``, docs/PERFORMANCE.md). The CPU preset's epochs are 8 times
smaller: there 200 images cost about 40% of an epoch; pass ``images`` or ``every``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
from pathlib import Path

import keras
import numpy as np

from ..errors import RsnaDetectorError
from .competition import DEFAULT_SWEEP

__all__ = ["ValidationCallback", "ValidationError", "DEFAULT_VALIDATION_IMAGES", "MONITORS", "LOGGED",
           "validation_subset", "weight_pairs", "copy_weights"]

log = logging.getLogger(__name__)

#: Images validated by default each time (a fixed seeded subset when the validation set is larger).
DEFAULT_VALIDATION_IMAGES = 200
#: Metrics that can decide the best checkpoint (all: higher is better).
MONITORS = ("best_rsna_score", "map50", "coco_ap", "coco_ap50", "coco_ap75")
#: What each validation adds to the epoch's logs, as ``val_<name>``.
LOGGED = ("map50", "best_rsna_score", "best_threshold", "coco_ap", "coco_ap50", "coco_ap75")


class ValidationError(RsnaDetectorError, ValueError):
    """Validation settings or models that do not fit (the message names the setting or layer)."""


def validation_subset(dataset, images=DEFAULT_VALIDATION_IMAGES, seed=0):
    """The image ids validated: all of ``dataset``'s, or ``images`` of them drawn with ``seed``.

    Returns
    -------
    list of int
        Sorted; the same for the same dataset, ``images`` and ``seed`` (``numpy.random.default_rng``,
        no global state).
    """
    ids = [int(i) for i in dataset.image_ids]
    if images is None or images >= len(ids):
        return ids
    chosen = np.random.default_rng(seed).choice(len(ids), size=int(images), replace=False)
    return sorted(ids[k] for k in chosen)


def weight_pairs(source, target):
    """``(target variable, source variable)`` for every weight of ``target``'s layers, by layer name.

    Parameters
    ----------
    source : keras.Model
        The training graph (it has every layer with weights of the inference graph).
    target : keras.Model
        The inference graph.

    Raises
    ------
    ValidationError
        A layer of ``target`` with weights that ``source`` lacks, or whose weights differ in number
        or shape (named).
    """
    pairs = []
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError as error:
            raise ValidationError(f"layer {layer.name!r} of the inference model is not in the training model") \
                from error
        shapes = [tuple(w.shape) for w in layer.weights], [tuple(w.shape) for w in other.weights]
        if shapes[0] != shapes[1]:
            raise ValidationError(f"layer {layer.name!r}: weights {shapes[1]} in the training model, "
                                  f"{shapes[0]} in the inference model")
        pairs += zip(layer.weights, other.weights, strict=True)
    return pairs


def copy_weights(pairs):
    """Assign each source variable's current value to its target (:func:`weight_pairs`); returns the count."""
    for target, source in pairs:
        target.assign(source.value)
    return len(pairs)


@contextlib.contextmanager
def _random_state_kept():
    """Restore Python's and numpy's global random states on leaving (Keras draws default seeds from them)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class ValidationCallback(keras.callbacks.Callback):
    """Detection metrics on validation images every ``every`` epochs; the best checkpoint recorded.

    Parameters
    ----------
    mrcnn_model : MaskRCNN
        The training-mode model being trained (its ``config``, ``keras_model``, ``log_dir``,
        ``checkpoint_path``, ``epoch``).
    dataset : utils.Dataset
        Prepared validation dataset (ground truth through ``load_image_gt``).
    images : int or None
        Images per validation: a fixed seeded subset of this many (default
        :data:`DEFAULT_VALIDATION_IMAGES`), or None for all.
    every : int
        Validate after every ``every``-th epoch (and after the last epoch of each ``train`` call).
    seed : int
        Seed of the subset.
    monitor : str
        One of :data:`MONITORS`: decides the best checkpoint (higher is better; ties keep the
        earlier epoch).
    thresholds : sequence of float, optional
        The threshold sweep (default ``competition.DEFAULT_SWEEP``, 0.50-0.98).
    flip_tta : bool
        Validate with flip TTA (recorded in the post-processing).
    record : bool
        Write ``postprocessing.json`` and ``run.json``'s ``best`` (default True).

    Attributes
    ----------
    image_ids : list of int
    best : dict or None
        ``run.json``'s ``best`` entry so far.
    history : list of dict
        ``{"epoch", "seconds", <every metric of LOGGED>}`` per validation in this process.
    """

    def __init__(self, mrcnn_model, dataset, *, images=DEFAULT_VALIDATION_IMAGES, every=1, seed=0,
                 monitor="best_rsna_score", thresholds=None, flip_tta=False, record=True):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValidationError(f"every: expected a whole number of epochs >= 1, got {every!r}")
        if images is not None and (isinstance(images, bool) or not isinstance(images, int) or images < 1):
            raise ValidationError(f"images: expected a whole number >= 1 or None (all), got {images!r}")
        if monitor not in MONITORS:
            raise ValidationError(f"monitor: expected one of {', '.join(MONITORS)}, got {monitor!r}")
        self.mrcnn_model, self.dataset = mrcnn_model, dataset
        self.every, self.seed, self.monitor, self.flip_tta, self.record = every, seed, monitor, flip_tta, record
        self.thresholds = np.asarray(DEFAULT_SWEEP if thresholds is None else thresholds, np.float64)
        self.image_ids = validation_subset(dataset, images, seed)
        self.in_graph_threshold = min(float(mrcnn_model.config.DETECTION_MIN_CONFIDENCE), float(self.thresholds.min()))
        self.best, self.history = None, []
        self._inference, self._pairs = None, None

    # ------------------------------------------------------------------ Keras hooks
    def on_train_begin(self, logs=None):
        if self.best is None and self.record:
            self.best = self._stored_best()

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        values = dict.fromkeys((f"val_{name}" for name in LOGGED), float("nan"))
        if self._due(number) and self._is_chief():
            metrics = self.validate(epoch=number)
            values = {f"val_{name}": float(metrics[name]) for name in LOGGED}
            if self.record:
                self._keep_if_best(number, metrics)
        if logs is not None:
            logs.update(values)

    # ------------------------------------------------------------------ validation
    def validate(self, epoch=None):
        """Detect on :attr:`image_ids` with the training model's current weights; the metrics.

        Returns
        -------
        dict
            ``evaluate.detection_metrics``' dict at the sweep's best threshold (``map50``,
            ``best_rsna_score``, ``best_threshold``, ``coco_ap``, ... over the subset).
        """
        import time

        from .eval_records import collect_detections
        from .postprocess import PostProcessing
        from .scoring import detection_metrics

        started = time.perf_counter()
        with _random_state_kept():
            model = self._inference_model()
            copy_weights(self._pairs)
            records = collect_detections(model, self.dataset, self.image_ids, config=model.config,
                                         postprocessing=PostProcessing(flip_tta=self.flip_tta),
                                         skipped=[])  # an unreadable file is logged, not fatal to training
        metrics = detection_metrics(records, "box", model_threshold="best", thresholds=self.thresholds)
        seconds = time.perf_counter() - started
        self.history.append({"epoch": epoch, "seconds": seconds, **{name: metrics[name] for name in LOGGED}})
        return metrics

    def _inference_model(self):
        """The inference model, built once (same settings, in-graph threshold lowered); its weight pairs."""
        if self._inference is None:
            from ..mrcnn import model as modellib
            from .loading import inference_config

            config = inference_config(self.mrcnn_model.config, DETECTION_MIN_CONFIDENCE=self.in_graph_threshold,
                                      GPU_COUNT=1)
            self._inference = modellib.MaskRCNN("inference", config, self.mrcnn_model.model_dir)
            self._pairs = weight_pairs(self.mrcnn_model.keras_model, self._inference.keras_model)
        return self._inference

    def _due(self, number):
        last = (self.params or {}).get("epochs")
        return number % self.every == 0 or number == last

    def _is_chief(self):
        from ..mrcnn.layers.training_graph import is_chief

        return is_chief(getattr(self.mrcnn_model.keras_model, "distribute_strategy", None))

    # ------------------------------------------------------------------ the best checkpoint
    def _run_json(self):
        from .schedule import RUN_RECORD

        return Path(self.mrcnn_model.log_dir) / RUN_RECORD

    def _stored_best(self):
        """``best`` of an existing run.json when it is for this monitor and an epoch already trained."""
        from .schedule import read_run_record

        best = read_run_record(self._run_json()).get("best")
        if not isinstance(best, dict) or best.get("metric") != self.monitor:
            return None
        if int(best.get("epoch", 0)) > int(self.mrcnn_model.epoch):
            log.warning("%s: best checkpoint of epoch %s is after the resumed epoch %d: it will be retrained, "
                        "so it is forgotten", self._run_json(), best.get("epoch"), self.mrcnn_model.epoch)
            return None
        return best

    def _keep_if_best(self, epoch, metrics):
        value = float(metrics[self.monitor])
        if not math.isfinite(value) or (self.best is not None and not value > float(self.best["value"])):
            return
        from .._io import write_json
        from ..mrcnn.train.checkpoints import checkpoint_file
        from .postprocess import POSTPROCESSING_FILE, PostProcessing
        from .schedule import read_run_record

        threshold = float(metrics["best_threshold"])
        threshold = threshold if math.isfinite(threshold) else None
        checkpoint = Path(checkpoint_file(self.mrcnn_model.checkpoint_path, epoch)).name
        summary = {name: float(metrics[name]) for name in LOGGED}
        best = {"metric": self.monitor, "value": value, "epoch": int(epoch), "checkpoint": checkpoint,
                "threshold": threshold, "postprocessing": POSTPROCESSING_FILE, "metrics": summary,
                "images": len(self.image_ids), "of": int(len(self.dataset.image_ids)), "seed": self.seed}
        folder = Path(self.mrcnn_model.log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        validation = {key: best[key] for key in ("checkpoint", "epoch", "metric", "value", "threshold",
                                                 "images", "of", "seed")}
        PostProcessing(min_confidence=threshold, flip_tta=self.flip_tta,
                       detection_min_confidence=self.in_graph_threshold,
                       validation={**validation, "metrics": summary}).save(folder / POSTPROCESSING_FILE)
        record = read_run_record(self._run_json())
        record["best"] = best
        write_json(self._run_json(), record)
        self.best = best
