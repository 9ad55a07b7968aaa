"""``train()``: the RSNA detector's staged fine-tuning schedule in one call.

The default schedule is the well-known RSNA Mask R-CNN notebook's
(docs/DATA_AND_SETTINGS.md, Settings), expressed as fractions of the total so it scales to other lengths:

====================  ==========  ===========  ============  ==============
stage                 layers      learning     augmentation  ends at epoch
                                  rate                        (of 16)
====================  ==========  ===========  ============  ==============
1. heads              'heads'     2 x LR       none          2
2. all layers         'all'       LR           yes           6
3. all layers, low LR 'all'       LR / 5       yes           16
====================  ==========  ===========  ============  ==============

With the DetectorConfig LR of 0.006, stage 1 runs at 0.012: the report's
"initial learning rate 0.012". Epoch numbers continue across stages (matterport
semantics), so an interrupted run resumes from its last checkpoint into the
right stage.
"""
from __future__ import annotations

import datetime
import json
import logging
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InvalidArgumentError

__all__ = ["Stage", "default_schedule", "train", "prepare_datasets", "build_model", "COCO_HEAD_LAYERS", "RUN_RECORD",
           "read_run_record"]

log = logging.getLogger(__name__)

#: The run's record beside its checkpoints: settings, starts, the best validated checkpoint.
RUN_RECORD = "run.json"
# matterport's COCO file has 81-class heads: these layers are re-initialised.
COCO_HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")
# Layers after the backbone (matterport's names): the ImageNet file has none of them.
_HEAD_LAYER = re.compile(r"^(fpn_|rpn_|mrcnn_)")


@dataclass(frozen=True)
class Stage:
    """One stage of a schedule: train ``layers`` at ``lr_factor`` x LEARNING_RATE until ``until_epoch``."""

    layers: str
    lr_factor: float
    until_epoch: int
    augment: bool


def default_schedule(epochs=16):
    """The notebook's three stages scaled to ``epochs`` total (2/16, 6/16, 16/16).

    Every stage gets at least one epoch when ``epochs >= 3``.
    """
    if epochs < 1:
        raise InvalidArgumentError(f"epochs must be >= 1, got {epochs}")
    if epochs < 3:
        return [Stage("heads", 2.0, 1, False), Stage("all", 1.0, epochs, True)][: epochs]
    first = max(1, round(epochs * 2 / 16))
    second = min(epochs - 1, max(first + 1, round(epochs * 6 / 16)))
    return [Stage("heads", 2.0, first, False), Stage("all", 1.0, second, True), Stage("all", 0.2, epochs, True)]


def prepare_datasets(data, config, *, val_fraction=None, val_count=None, seed=None):
    """Turn ``data`` into prepared (train, validation) datasets.

    Parameters
    ----------
    data : str, Path or tuple
        A data directory in the Kaggle layout (split at patient level, stratified
        by Target), or an already prepared ``(train_dataset, val_dataset)`` pair.
    config : Config
        Supplies the image size the DICOMs are read at.
    val_fraction, val_count : optional
        Validation share (default 0.1) or patient count (the notebook's 1,500).
    seed : int, optional
        Split seed; default ``data.splits.DEFAULT_SPLIT_SEED`` (42).
    """
    if isinstance(data, (tuple, list)):
        train_ds, val_ds = data
        return train_ds, val_ds
    from ..data.splits import DEFAULT_SPLIT_SEED
    from .dataset import DetectorDataset

    seed = DEFAULT_SPLIT_SEED if seed is None else seed

    return DetectorDataset.split_from_data_dir(
        data, image_size=config.IMAGE_MAX_DIM, val_fraction=val_fraction, val_count=val_count, seed=seed
    )


def build_model(config, model_dir, weights):
    """A training-mode MaskRCNN with initial weights.

    ``weights``: 'coco' (matterport's COCO file, heads excluded), 'imagenet'
    (ResNet-50 backbone), 'last' (latest checkpoint in ``model_dir``), a file
    path, or None (random initialisation).
    """
    from ..mrcnn import model as modellib
    from ..weights import fetch_weights

    model = modellib.MaskRCNN(mode="training", config=config, model_dir=str(model_dir))
    if weights is None or weights == "none":
        return model
    if weights == "last":
        path = model.find_last()  # the newest readable one; unreadable ones are warned about and skipped
        model.load_weights(path, by_name=True)
        model.resumed_from = str(path)
        return model
    path = fetch_weights(weights)
    log.info("loading initial weights %s", path)
    if weights == "imagenet":
        _load_imagenet_weights(model, path)
        return model
    exclude = list(COCO_HEAD_LAYERS) if weights == "coco" else None
    model.load_weights(str(path), by_name=True, exclude=exclude)
    return model


def _load_imagenet_weights(model, path):
    """matterport's ``init_with="imagenet"``: the ResNet-50 file by name into the backbone.

    The file holds the backbone only, so the FPN, RPN and head layers it lacks are
    expected (logged at info level); only other layers it lacks (a ResNet-101's
    res4g..res4w, another backbone's layers) are warned about.
    """
    from ..mrcnn.train.hdf5_weights import WeightsLoadWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsLoadWarning)
        result = model.load_weights(str(path), by_name=True)
    heads = [name for name in result.missing_from_file if _HEAD_LAYER.match(name)]
    others = [name for name in result.missing_from_file if not _HEAD_LAYER.match(name)]
    log.info("%s: %d backbone layers loaded; %d FPN/RPN/head layers start from their initialisation",
             path, len(result.loaded), len(heads))
    if others:
        warnings.warn(f"{path}: {len(others)} backbone layer(s) of the model are not in the ImageNet file and keep "
                      f"their initial weights: {', '.join(others)}", WeightsLoadWarning, stacklevel=3)
    return result


def train(data, config=None, weights="coco", *, model_dir="logs", epochs=16, schedule=None,
          augmentation="notebook", val_fraction=None, val_count=None, seed=None, resume=False,
          custom_callbacks=None, divergence_factor=1e4, validation=True, folds=None):
    """Train the pneumonia detector with the staged schedule.

    Parameters
    ----------
    data : str, Path or (train_dataset, val_dataset)
        A Kaggle-layout data directory or prepared datasets.
    config : DetectorConfig, optional
        Default: ``DetectorConfig()`` (the brief's RSNA settings).
    weights : str or None
        Initial weights: 'coco', 'imagenet', a path, or None. Ignored when
        resuming from a checkpoint.
    model_dir : str or Path
        Where timestamped log directories and checkpoints go.
    epochs : int
        Total epochs (16 by default); the stages scale with it.
    schedule : list of Stage, optional
        Overrides :func:`default_schedule`.
    augmentation : str, imgaug augmenter or None
        'notebook' (default), 'report', 'none', or an augmenter; used in the
        stages that augment.
    val_fraction, val_count : optional
        Validation split when ``data`` is a directory.
    seed : int, optional
        Makes the split, shuffling and initialisation repeatable (CPU).
    resume : bool
        Continue from the newest readable checkpoint in ``model_dir``
        (``find_last()``: a truncated or unreadable newer one is skipped with a
        warning naming it); completed stages are skipped, the current one
        continues in the same run folder, and ``run.json`` gains an entry in
        its ``starts`` list.
    custom_callbacks : list of keras callbacks, optional
        Run after the validation callback, so they see its metrics in the logs.
    divergence_factor : float or None
        Training stops with ``LossDivergenceError`` when the loss exceeds this
        many times its first value (1e4 by default: only a diverging run, such
        as a far too high learning rate, reaches it); None turns the check off.
    validation : bool or dict
        True (default): when there is a validation set, a
        ``validation.ValidationCallback`` measures mAP@0.5, the competition score at
        its best threshold and COCO AP after every epoch (on at most
        ``DEFAULT_VALIDATION_IMAGES`` validation images), and records the best
        checkpoint and its threshold (``run.json``'s ``best``, ``postprocessing.json``)
        for ``predict``/``evaluate``/``submit`` to apply. A dict gives its settings
        (``images``, ``every``, ``seed``, ``monitor``, ``flip_tta``, ...); False turns it
        off. Not added when ``custom_callbacks`` already hold one.
    folds : int, optional
        k >= 2: k-fold cross-validation instead of one split
        (``cross_validation.train_folds``: one model folder per fold under
        ``model_dir``, each resumable, and out-of-fold predictions).
        ``val_fraction``/``val_count`` do not apply; ``seed`` is the folds' seed.

    Returns
    -------
    (MaskRCNN, dict)
        The trained training-mode model and the history (loss lists per key,
        concatenated across stages). With ``folds``: a
        ``cross_validation.CrossValidation`` instead.
    """
    if folds is not None:
        from .cross_validation import train_folds

        return train_folds(data, config, weights, folds=folds, model_dir=model_dir, seed=seed, resume=resume,
                           epochs=epochs, schedule=schedule, augmentation=augmentation,
                           custom_callbacks=custom_callbacks, divergence_factor=divergence_factor,
                           validation=validation)
    from .augment import get_augmentation
    from .config import DetectorConfig

    config = config or DetectorConfig()
    if seed is not None:  # a validated copy: the caller's config is never changed
        from .loading import inference_config

        config = inference_config(config, SEED=seed)
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    train_ds, val_ds = prepare_datasets(data, config, val_fraction=val_fraction, val_count=val_count, seed=seed)
    model = build_model(config, model_dir, "last" if resume else weights)
    augmenter = get_augmentation(augmentation)
    schedule = schedule or default_schedule(epochs)
    history = {}
    callbacks = _with_validation(model, val_ds, validation, custom_callbacks)
    _write_run_record(model, config, schedule, weights, resume)
    for stage in schedule:
        if model.epoch >= stage.until_epoch:
            continue
        log.info("stage %s: layers=%s lr=%.5g epochs %d..%d", stage, stage.layers,
                 config.LEARNING_RATE * stage.lr_factor, model.epoch + 1, stage.until_epoch)
        stage_history = model.train(
            train_ds, val_ds, learning_rate=config.LEARNING_RATE * stage.lr_factor,
            epochs=stage.until_epoch, layers=stage.layers,
            augmentation=augmenter if stage.augment else None, custom_callbacks=callbacks,
            divergence_factor=divergence_factor,
        )
        for key, values in _history_dict(stage_history).items():
            history.setdefault(key, []).extend(values)
    return model, history


def _with_validation(model, val_ds, validation, custom_callbacks):
    """``custom_callbacks`` with a ``ValidationCallback`` first when ``validation`` asks and a validation set exists."""
    from .validation import ValidationCallback

    callbacks = list(custom_callbacks or [])
    if not validation or val_ds is None or any(isinstance(c, ValidationCallback) for c in callbacks):
        return callbacks
    if not len(getattr(val_ds, "image_ids", ())):
        return callbacks
    settings = validation if isinstance(validation, dict) else {}
    return [ValidationCallback(model, val_ds, **settings)] + callbacks


def _history_dict(stage_history):
    if stage_history is None:
        return {}
    return dict(getattr(stage_history, "history", stage_history))


def _write_run_record(model, config, schedule, weights, resume):
    """Record the settings of the run next to its checkpoints (``run.json``), atomically.

    ``run.json`` holds the latest start's ``config``, ``schedule``,
    ``initial_weights``, ``resumed`` and ``start_epoch``, and ``starts``: one
    entry per start of the run (time, resumed, start_epoch, initial_weights,
    checkpoint resumed from), so that resuming keeps the history; ``best``, the
    best validated checkpoint so far (``validation.ValidationCallback``), is kept
    across starts. An existing ``run.json`` that cannot be read is kept as
    ``run.json.unreadable``. In a multi-worker run only the chief writes it.
    """
    from .._io import write_json
    from ..mrcnn.layers.training_graph import is_chief

    if not getattr(model, "log_dir", None) or \
            not is_chief(getattr(getattr(model, "keras_model", None), "distribute_strategy", None)):
        return
    make = getattr(model, "make_log_dir", None)
    log_dir = Path(make() if make is not None else model.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / RUN_RECORD
    start = {
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "resumed": bool(resume),
        "start_epoch": int(model.epoch),
        "initial_weights": None if weights is None else str(weights),
        "checkpoint": getattr(model, "resumed_from", None) if resume else None,
    }
    record = {
        "config": config.to_dict(),
        "schedule": [asdict(stage) for stage in schedule],
        "initial_weights": start["initial_weights"],
        "resumed": start["resumed"],
        "start_epoch": start["start_epoch"],
    }
    previous = read_run_record(path)
    record["starts"] = _previous_starts(previous) + [start]
    if "best" in previous:
        record["best"] = previous["best"]
    write_json(path, record)


def read_run_record(path):
    """An existing run.json (``path``) as a dict; {} when there is none, or when it cannot be read: it is then
    kept aside as ``run.json.unreadable`` with a warning."""
    from .._io import rename_over

    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text())
        problem = None if isinstance(previous, dict) else "not a JSON object"
    except (OSError, ValueError) as error:
        problem = error
    if problem is not None:
        aside = rename_over(path, path.with_name(path.name + ".unreadable"))
        warnings.warn(f"{path}: unreadable ({problem}); kept as {aside}, the history of earlier starts is lost "
                      f"from run.json", stacklevel=3)
        return {}
    return previous


def _previous_starts(previous):
    """The ``starts`` of an earlier run.json's dict (a pre-history file counts as one start); [] when none."""
    if not previous:
        return []
    if isinstance(previous.get("starts"), list):
        return previous["starts"]
    return [{key: previous.get(key) for key in ("resumed", "start_epoch", "initial_weights")}]
