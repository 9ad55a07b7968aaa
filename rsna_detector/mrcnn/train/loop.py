"""The training loop behind ``MaskRCNN.train`` (matterport's semantics, made safe).

* layer presets 'heads', '3+', '4+', '5+', 'all' or any regex (full match on the
  layer name, nested ``rpn_model`` included), BN layers included as in
  matterport (their statistics stay fixed while ``TRAIN_BN`` is False; with
  ``FREEZE_BN_AFFINE`` their gamma/beta are frozen too);
* SGD with ``LEARNING_MOMENTUM``, gradients clipped to a global norm of
  ``GRADIENT_CLIP_NORM`` (Keras 2's ``clipnorm``) and matterport's L2 weight
  decay (in the training step);
* epochs continue across calls (``initial_epoch = model.epoch``), so a staged
  schedule ``train(..., epochs=2)``, ``train(..., epochs=6)`` runs epochs 1-2
  then 3-6, and a run resumed from ``find_last()`` continues its numbering and
  its (seeded) data stream;
* a checkpoint per epoch, written atomically (``weights.save_hdf5_weights``),
  named ``checkpoint_path`` (``mask_rcnn_<name>_<epoch:04d>.h5``);
* ``training_log.csv`` and (when the ``tensorboard`` package is installed)
  TensorBoard events in ``model.log_dir``; custom callbacks run after the epoch's
  checkpoint is written and before these logs, so values they add to the epoch's
  ``logs`` (a validation callback's metrics) are logged too;
* training stops with :class:`NonFiniteLossError` naming the epoch, the step and
  the loss that became NaN or infinite, and with :class:`LossDivergenceError` when
  the loss grows beyond ``divergence_factor`` (default 1e4) times its first value
  while staying finite;
* a checkpoint that cannot be written (disk full, permissions) stops training with
  :class:`CheckpointWriteError` naming the file, the free space and the earlier
  checkpoints, which are kept.
"""
from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil

import keras
import numpy as np
import tensorflow as tf

from ...errors import RsnaDetectorError
from ..input.pipeline import TrainingBatches, make_input_dataset
from ..input.workers import make_distributed_input
from ..layers.losses import LOSS_NAMES
from ..layers.training_graph import is_chief
from .checkpoints import checkpoint_file, checkpoint_files
from .hdf5_weights import save_hdf5_weights
from .progress import TrainingProgress

__all__ = [
    "LAYER_PRESETS",
    "TrainerError",
    "NonFiniteLossError",
    "LossDivergenceError",
    "CheckpointWriteError",
    "DIVERGENCE_FACTOR",
    "train",
    "set_trainable",
    "compile_training_model",
    "CheckpointSaver",
    "NonFiniteLossStop",
    "LossDivergenceStop",
    "divergence_callbacks",
    "LOG_CSV_NAME",
]

#: matterport's layer presets (regexes over layer names, full match).
LAYER_PRESETS = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}
#: Name of the per-epoch CSV log in the run's log directory.
LOG_CSV_NAME = "training_log.csv"
#: Default ``divergence_factor`` of :func:`train`: the loss may grow to this many times its first value.
DIVERGENCE_FACTOR = 1e4


class TrainerError(RsnaDetectorError, ValueError):
    """``train`` got arguments it cannot use."""


class NonFiniteLossError(RsnaDetectorError, FloatingPointError):
    """A training loss became NaN or infinite; the message names the epoch, step and loss."""


class LossDivergenceError(RsnaDetectorError, FloatingPointError):
    """The loss grew beyond the divergence factor times its first value; the message names epoch, step and values."""


class CheckpointWriteError(RsnaDetectorError, OSError):
    """A checkpoint could not be written (``errno``, ``strerror`` and ``filename`` as the OSError's).

    The message names the file, why, the free space and the checkpoint's size,
    and the earlier checkpoints of the run, which are kept.
    """

    def __init__(self, errno_, strerror, filename, detail=""):
        super().__init__(errno_, strerror, filename)
        self.detail = detail

    def __str__(self):
        return f"{self.filename}: checkpoint not written: {self.strerror}" + (f"; {self.detail}" if self.detail else "")


# ----------------------------------------------------------------------------
# trainable layers and compilation
# ----------------------------------------------------------------------------

def set_trainable(keras_model, layer_regex, train_bn=False, verbose=0, freeze_bn_affine=None):
    """Make the layers whose name fully matches ``layer_regex`` trainable, the others frozen.

    matterport's rule: every layer with weights (batch normalisation included)
    is trainable exactly when its name fully matches the regex. ``TRAIN_BN``
    does not enter it: with ``TRAIN_BN = False`` a selected BN layer keeps its
    statistics fixed (:class:`~.backbone.BatchNorm` always normalises with the
    moving ones) while its gamma and beta train.

    Parameters
    ----------
    keras_model : keras.Model
        Nested models (``rpn_model``) are entered; their own layers are matched.
    layer_regex : str
        A key of :data:`LAYER_PRESETS` or a regular expression.
    train_bn : bool or None
        The config's ``TRAIN_BN``; only used with ``freeze_bn_affine``.
    verbose : int
        1 prints the trainable layers.
    freeze_bn_affine : bool or None
        True (``FREEZE_BN_AFFINE``): with ``train_bn`` False, every
        batch-normalisation layer is frozen whatever the regex (gamma and beta
        too). None: the model's ``config.FREEZE_BN_AFFINE`` when it has a
        config, else False (matterport).

    Returns
    -------
    list of str
        Names of the layers with weights that are now trainable.
    """
    if freeze_bn_affine is None:
        freeze_bn_affine = bool(getattr(getattr(keras_model, "config", None), "FREEZE_BN_AFFINE", False))
    pattern = re.compile(LAYER_PRESETS.get(layer_regex, layer_regex))
    freeze_bn = freeze_bn_affine and train_bn is False
    trainable = []
    for layer in keras_model.layers:
        if isinstance(layer, keras.Model):
            trainable += set_trainable(layer, layer_regex, train_bn=train_bn, verbose=verbose,
                                       freeze_bn_affine=freeze_bn_affine)
            layer.trainable = True  # its sublayers carry their own flags
            continue
        if not layer.weights:
            continue
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = bool(pattern.fullmatch(layer.name)) and not (is_bn and freeze_bn)
        if layer.trainable:
            trainable.append(layer.name)
            if verbose:
                print(f"    trainable: {layer.name:30} ({type(layer).__name__})")
    return trainable


def compile_training_model(keras_model, learning_rate, config):
    """Compile with SGD in the model's strategy scope (matterport's optimizer).

    SGD with ``LEARNING_MOMENTUM`` and Keras 2's ``clipnorm``: the gradients are
    scaled together so that their global norm (over every trainable weight) is at
    most ``GRADIENT_CLIP_NORM`` (Keras 3's ``global_clipnorm``; Keras 3's
    ``clipnorm`` would clip each weight's gradient on its own). A
    ``LossScaleOptimizer`` wraps SGD when ``config.MIXED_PRECISION`` (it unscales
    the gradients before they are clipped). XLA is off (NMS and the proposal
    gathers do not compile well on CPU).
    """
    with keras_model.distribute_strategy.scope():
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.LEARNING_MOMENTUM,
                                         global_clipnorm=config.GRADIENT_CLIP_NORM)
        if config.MIXED_PRECISION:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        keras_model.compile(optimizer=optimizer, jit_compile=False)
    return keras_model


# ----------------------------------------------------------------------------
# callbacks
# ----------------------------------------------------------------------------

class CheckpointSaver(keras.callbacks.Callback):
    """Write ``mrcnn_model``'s weights at the end of every epoch and advance its ``epoch``.

    The file is ``mrcnn_model.checkpoint_path`` formatted with the 1-based epoch
    number; the write is atomic, so an interrupted write leaves the previous
    checkpoint as the latest loadable one. A write that fails (disk full,
    permissions) raises :class:`CheckpointWriteError` naming the file, the free
    space, the checkpoint's size and the checkpoints kept. In a multi-worker run
    only the chief writes (``training.is_chief``); every worker advances ``epoch``.
    """

    def __init__(self, mrcnn_model):
        super().__init__()
        self.mrcnn_model = mrcnn_model
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        path = checkpoint_file(self.mrcnn_model.checkpoint_path, number)
        if is_chief(self.mrcnn_model.keras_model.distribute_strategy):
            try:
                save_hdf5_weights(self.mrcnn_model.keras_model, path, config=self.mrcnn_model.config, epoch=number)
            except OSError as error:
                raise _checkpoint_write_error(self.mrcnn_model, path, number, error) from error
            self.saved.append(path)
        self.mrcnn_model.epoch = number


def _checkpoint_write_error(mrcnn_model, path, epoch, error):
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = f"{_megabytes(shutil.disk_usage(folder).free)} free on {folder}"
    except OSError:
        free = f"free space on {folder} unknown"
    needed = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in mrcnn_model.keras_model.weights)
    kept = checkpoint_files(folder)
    detail = (f"epoch {epoch}: {free}, the checkpoint needs about {_megabytes(needed)}; "
              f"earlier checkpoints kept: {', '.join(kept) if kept else 'none'}")
    return CheckpointWriteError(error.errno, error.strerror or str(error), str(path), detail=detail)


def _megabytes(size):
    return f"{size / 1e6:.1f} MB"


class NonFiniteLossStop(keras.callbacks.Callback):
    """Raise :class:`NonFiniteLossError` as soon as a reported loss is NaN or infinite.

    The message names the epoch (1-based), the step of the epoch (1-based) and
    every non-finite loss (the running epoch means Keras reports: a NaN step
    makes them NaN at once).
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0  # 1-based, for messages
        self.step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        self.step = batch + 1

    def on_train_batch_end(self, batch, logs=None):
        bad = {}
        for name, value in (logs or {}).items():
            number = float(np.asarray(value))
            if not math.isfinite(number):
                bad[name] = number
        if not bad:
            return
        parts = [name for name in LOSS_NAMES if name in bad]
        if not parts:
            parts = ["loss (the weight-decay term: the weights themselves are no longer finite)"]
        values = ", ".join(f"{name}={value}" for name, value in bad.items())
        self.model.stop_training = True
        raise NonFiniteLossError(
            f"training stopped at epoch {self.epoch}, step {batch + 1}: {', '.join(parts)} became "
            f"NaN or infinite ({values}); lower the learning rate or check the data of this step")


class LossDivergenceStop(keras.callbacks.Callback):
    """Raise :class:`LossDivergenceError` when the loss exceeds ``factor`` times its first value.

    The reference is the first positive ``loss`` reported in this ``train`` call
    (after its first step); Keras reports running epoch means, so a loss that
    explodes by orders of magnitude while staying finite (a far too high
    learning rate) is stopped within a step or two, before the epoch's
    checkpoint is written. NaN and inf are :class:`NonFiniteLossStop`'s.

    Parameters
    ----------
    factor : float
        Greater than 1; :data:`DIVERGENCE_FACTOR` (1e4) by default.
    """

    def __init__(self, factor=DIVERGENCE_FACTOR):
        super().__init__()
        self.factor = float(factor)
        self.reference = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if not logs or "loss" not in logs:
            return
        loss = float(np.asarray(logs["loss"]))
        if not math.isfinite(loss):
            return  # NonFiniteLossStop's
        if self.reference is None:
            if loss > 0:
                self.reference = loss
            return
        if loss > self.factor * self.reference:
            if self.model is not None:
                self.model.stop_training = True
            raise LossDivergenceError(
                f"training stopped at epoch {self.epoch}, step {batch + 1}: loss {loss:g} grew beyond "
                f"{self.factor:g} x its first value {self.reference:g} (the divergence factor); lower the "
                f"learning rate")


def divergence_callbacks(divergence_factor):
    """``[LossDivergenceStop(divergence_factor)]``, or ``[]`` when it is None (the check is off).

    Raises
    ------
    ValueError
        A factor that is not a number greater than 1.
    """
    if divergence_factor is None:
        return []
    try:
        factor = float(divergence_factor)
    except (TypeError, ValueError):
        factor = float("nan")
    if not factor > 1:
        raise TrainerError(f"divergence_factor: expected a number > 1 or None, got {divergence_factor!r}")
    return [LossDivergenceStop(factor)]


# ----------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------

def train(model, train_dataset, val_dataset, learning_rate, epochs, layers, augmentation=None,
          custom_callbacks=None, no_augmentation_sources=None, verbose="auto", divergence_factor=DIVERGENCE_FACTOR):
    """Train a training-mode ``MaskRCNN`` from ``model.epoch`` up to epoch ``epochs``.

    Parameters
    ----------
    model : MaskRCNN
        Training mode; uses ``keras_model``, ``config``, ``epoch``, ``log_dir``,
        ``checkpoint_path``. ``model.epoch`` is advanced after every epoch.
    train_dataset, val_dataset : utils.Dataset
        Prepared datasets (images without objects are trained on).
        ``val_dataset`` may be None, and validation is skipped when
        ``config.VALIDATION_STEPS`` is 0.
    learning_rate : float
    epochs : int
        The epoch number to reach (not a count): training runs epochs
        ``model.epoch + 1 .. epochs``.
    layers : str
        'heads', '3+', '4+', '5+', 'all' or a regex over layer names.
    augmentation : imgaug augmenter, optional
    custom_callbacks : list of keras.callbacks.Callback, optional
    no_augmentation_sources : list of str, optional
    verbose : 'auto', 0, 1 or 2
        'auto': a progress bar per epoch and one line per epoch with the losses
        (:class:`~rsna_detector.mrcnn.train.progress.TrainingProgress`); 0 silent; 1 or 2
        Keras' own progress display.
    divergence_factor : float or None
        Stop with :class:`LossDivergenceError` when the loss exceeds this many
        times its first value (default :data:`DIVERGENCE_FACTOR`, 1e4); None
        turns the check off.

    Returns
    -------
    keras.callbacks.History or None
        None when ``model.epoch >= epochs`` (nothing to do).

    Raises
    ------
    NonFiniteLossError
        When a loss becomes NaN or infinite.
    LossDivergenceError
        When the loss grows beyond ``divergence_factor`` times its first value.
    CheckpointWriteError
        When a checkpoint cannot be written (the earlier ones are kept).
    TrainerError
        For a model not in training mode or bad arguments.
    """
    if getattr(model, "mode", "training") != "training":
        raise TrainerError("train: the model must be created with mode='training'")
    if not isinstance(layers, str):
        raise TrainerError(f"layers: expected a preset {sorted(LAYER_PRESETS)} or a regex, got {layers!r}")
    config = model.config
    if model.epoch >= epochs:
        print(f"train: already at epoch {model.epoch} >= epochs={epochs}; nothing to do")
        return None
    divergence_stop = divergence_callbacks(divergence_factor)
    keras_model = model.keras_model

    set_trainable(keras_model, layers, train_bn=config.TRAIN_BN)
    compile_training_model(keras_model, learning_rate, config)
    train_input, val_input = _inputs(model, train_dataset, val_dataset, augmentation, no_augmentation_sources)

    # Custom callbacks run after the epoch's checkpoint is written and before the logs are: what they
    # add to the epoch's logs (the validation callback's metrics) reaches the CSV, TensorBoard and the epoch line.
    callbacks = [NonFiniteLossStop(), *divergence_stop, CheckpointSaver(model), *list(custom_callbacks or [])]
    if is_chief(keras_model.distribute_strategy):  # in a multi-worker run, the other workers write no file
        _make_log_dir(model)
        callbacks += [keras.callbacks.CSVLogger(os.path.join(model.log_dir, LOG_CSV_NAME), append=True)]
        callbacks += _tensorboard(model.log_dir)
    if verbose == "auto":  # a bar per epoch and one line of losses, instead of Keras' bar
        callbacks.append(TrainingProgress(config.VALIDATION_STEPS if val_input is not None else 0))

    print(f"\nStarting at epoch {model.epoch}. LR={learning_rate}\nCheckpoint Path: {model.checkpoint_path}")
    try:
        history = keras_model.fit(
            train_input,
            initial_epoch=model.epoch,
            epochs=epochs,
            steps_per_epoch=config.STEPS_PER_EPOCH,
            validation_data=val_input,
            validation_steps=config.VALIDATION_STEPS if val_input is not None else None,
            callbacks=callbacks,
            shuffle=False,  # the input pipeline shuffles, seeded
            verbose=0 if verbose == "auto" else verbose,
        )
    except tf.errors.InvalidArgumentError as exc:
        if "finite" not in str(exc).lower():
            raise
        stop = callbacks[0]
        detail = next((line.strip() for line in str(exc).splitlines() if "finite" in line.lower()), "")
        raise NonFiniteLossError(
            f"training stopped at epoch {stop.epoch}, step {stop.step}: a tensor became NaN or infinite "
            f"inside the graph ({detail}); lower the learning rate or check the data of this step"
        ) from exc
    model.epoch = max(model.epoch, epochs)
    return history


def _make_log_dir(model):
    """The run's folder, claimed for this run (``MaskRCNN.make_log_dir``: unique, atomic)."""
    make = getattr(model, "make_log_dir", None)
    if make is not None:
        return make()
    os.makedirs(model.log_dir, exist_ok=True)
    return model.log_dir


def _tensorboard(log_dir):
    """A TensorBoard callback when the ``tensorboard`` package is installed (TF no longer requires it)."""
    if importlib.util.find_spec("tensorboard") is None:
        print("train: TensorBoard logs skipped (pip install tensorboard to get them); "
              f"the CSV log is {os.path.join(log_dir, LOG_CSV_NAME)}")
        return []
    return [keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0, write_graph=False)]


def _inputs(model, train_dataset, val_dataset, augmentation, no_augmentation_sources):
    """The training and validation ``tf.data`` pipelines (validation None when skipped)."""
    config = model.config
    strategy = model.keras_model.distribute_strategy
    replicas = strategy.num_replicas_in_sync
    # Several replicas: the global batch is IMAGES_PER_GPU per replica, across every worker.
    batch_size = config.IMAGES_PER_GPU * replicas if replicas > 1 else None
    seed = config.SEED
    if seed is None and replicas > 1:  # every worker must draw the same stream: worker 0's seed, broadcast
        seed = _shared_random_seed(strategy)
    train_batches = TrainingBatches(train_dataset, config, shuffle=True, augmentation=augmentation,
                                    no_augmentation_sources=no_augmentation_sources, seed=seed,
                                    batch_size=batch_size)
    # Continue the seeded stream where the finished epochs left it.
    start = model.epoch * config.STEPS_PER_EPOCH
    if replicas > 1:
        train_input = make_distributed_input(train_batches, strategy, start_batch=start)
    else:
        train_input = make_input_dataset(train_batches, start_batch=start)
    if val_dataset is None or not config.VALIDATION_STEPS:
        return train_input, None
    val_seed = None if seed is None else seed + 1
    val_batches = TrainingBatches(val_dataset, config, shuffle=False, seed=val_seed, batch_size=batch_size)
    if replicas > 1:
        return train_input, make_distributed_input(val_batches, strategy, workers=1)
    return train_input, make_input_dataset(val_batches, workers=1)


def _shared_random_seed(strategy):
    """A random seed drawn by worker 0 and shared by all (a strategy variable's initial value is broadcast)."""
    with strategy.scope():
        seed = tf.Variable(np.random.SeedSequence().entropy % 2**31, dtype=tf.int64, trainable=False)
    return int(seed.numpy())
