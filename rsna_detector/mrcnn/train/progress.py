"""Training display: a progress bar per epoch and one line per epoch with the losses.

:class:`TrainingProgress` replaces Keras' own progress bar when
``loop.train`` runs with ``verbose='auto'`` (the default): a tqdm bar over the
epoch's training and validation steps (rate and ETA, removed when the epoch
ends) on stderr, then one line on stdout::

    epoch  3/8  loss 1.984  rpn_class 0.071  rpn_bbox 0.512  mrcnn_class 0.227  mrcnn_bbox 0.548  mrcnn_mask 0.379 | val loss 2.001  (22 s)

and, after an epoch a validation callback measured (its ``val_map50``, ``val_best_rsna_score``,
``val_best_threshold`` and ``val_coco_ap`` in the logs), ``| mAP50 0.612  rsna 0.201@0.86  coco AP 0.154``
before the time. Every value of every epoch is also in the run's ``training_log.csv``.
"""  # noqa: E501 (the example line is printed as it is)
from __future__ import annotations

import math
import sys
import time

import keras

from ..layers.losses import LOSS_NAMES

__all__ = ["TrainingProgress", "format_epoch_line"]


def format_epoch_line(epoch, epochs, logs, seconds=None):
    """One epoch's losses as one line.

    Parameters
    ----------
    epoch : int
        1-based epoch number.
    epochs : int
        The epoch the current ``fit`` runs to.
    logs : dict
        Keras' epoch logs: ``loss``, the five loss names, ``val_`` versions.
    seconds : float, optional
        Wall time of the epoch.

    Returns
    -------
    str
        ``epoch  3/8  loss 1.984  rpn_class 0.071 ... | val loss 2.001  (22 s)``;
        missing values are left out.
    """
    logs = logs or {}
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}}/{epochs}"]
    for name in ("loss",) + tuple(LOSS_NAMES):
        if name in logs:
            short = name if name == "loss" else name[: -len("_loss")]
            parts.append(f"{short} {float(logs[name]):.3f}")
    line = "  ".join(parts)
    if "val_loss" in logs:
        line += f" | val loss {float(logs['val_loss']):.3f}"
    validated = _validation_text(logs)
    if validated:
        line += f" | {validated}"
    if seconds is not None:
        line += f"  ({seconds:.0f} s)"
    return line


def _validation_text(logs):
    """A validation callback's metrics (``val_map50``, ``val_best_rsna_score`` at ``val_best_threshold``,
    ``val_coco_ap``) as ``mAP50 0.612  rsna 0.201@0.86  coco AP 0.154``; '' when absent or NaN (a skipped epoch)."""
    def value(name):
        number = float(logs.get(name, float("nan")))
        return number if math.isfinite(number) else None

    parts = []
    if value("val_map50") is not None:
        parts.append(f"mAP50 {value('val_map50'):.3f}")
    if value("val_best_rsna_score") is not None:
        at = value("val_best_threshold")
        parts.append(f"rsna {value('val_best_rsna_score'):.3f}" + (f"@{at:.2f}" if at is not None else ""))
    if value("val_coco_ap") is not None:
        parts.append(f"coco AP {value('val_coco_ap'):.3f}")
    return "  ".join(parts)


class TrainingProgress(keras.callbacks.Callback):
    """A tqdm bar over each epoch's steps and one printed line per epoch.

    Parameters
    ----------
    validation_steps : int
        Validation steps run at the end of each epoch (counted in the bar); 0 when none.
    stream : file, optional
        Where the epoch lines go (default ``sys.stdout`` at the time of printing).
    """

    def __init__(self, validation_steps=0, stream=None):
        super().__init__()
        self.validation_steps = int(validation_steps or 0)
        self.stream = stream
        self._bar = None
        self._started = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm

        self._epoch = epoch + 1
        self._started = time.perf_counter()
        epochs = self.params.get("epochs", self._epoch)
        total = (self.params.get("steps") or 0) + self.validation_steps
        self._bar = tqdm(total=total or None, desc=f"epoch {self._epoch}/{epochs}", unit="step", leave=False)

    def on_train_batch_end(self, batch, logs=None):
        self._advance(logs)

    def on_test_batch_end(self, batch, logs=None):
        self._advance(None)

    def on_epoch_end(self, epoch, logs=None):
        self._close_bar()
        seconds = time.perf_counter() - self._started if self._started is not None else None
        line = format_epoch_line(epoch + 1, self.params.get("epochs", epoch + 1), logs, seconds)
        print(line, file=self.stream or sys.stdout, flush=True)

    def on_train_end(self, logs=None):
        self._close_bar()

    def _advance(self, logs):
        if self._bar is None:
            return
        if logs and "loss" in logs:
            self._bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)
        self._bar.update(1)

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
