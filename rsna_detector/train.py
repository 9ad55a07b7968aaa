"""``train()``: the RSNA detector's staged fine-tuning schedule in one call.

The default schedule is the well-known RSNA Mask R-CNN notebook's (DESIGN.md
section 4), expressed as fractions of the total so it scales to other lengths:

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

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Stage", "default_schedule", "train", "prepare_datasets", "build_model", "COCO_HEAD_LAYERS"]

log = logging.getLogger(__name__)

# matterport's COCO file has 81-class heads: these layers are re-initialised.
COCO_HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")


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
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if epochs < 3:
        return [Stage("heads", 2.0, 1, False), Stage("all", 1.0, epochs, True)][: epochs]
    first = max(1, round(epochs * 2 / 16))
    second = min(epochs - 1, max(first + 1, round(epochs * 6 / 16)))
    return [Stage("heads", 2.0, first, False), Stage("all", 1.0, second, True), Stage("all", 0.2, epochs, True)]


def prepare_datasets(data, config, *, val_fraction=None, val_count=None, seed=42):
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
    """
    if isinstance(data, (tuple, list)):
        train_ds, val_ds = data
        return train_ds, val_ds
    from .data.dataset import DetectorDataset

    return DetectorDataset.split_from_data_dir(
        data, image_size=config.IMAGE_MAX_DIM, val_fraction=val_fraction, val_count=val_count, seed=seed
    )


def build_model(config, model_dir, weights):
    """A training-mode MaskRCNN with initial weights.

    ``weights``: 'coco' (matterport's COCO file, heads excluded), 'imagenet'
    (ResNet-50 backbone), 'last' (latest checkpoint in ``model_dir``), a file
    path, or None (random initialisation).
    """
    from .mrcnn import model as modellib
    from .weights import fetch_weights

    model = modellib.MaskRCNN(mode="training", config=config, model_dir=str(model_dir))
    if weights is None or weights == "none":
        return model
    if weights == "last":
        path = model.find_last()
        model.load_weights(path, by_name=True)
        return model
    path = fetch_weights(weights)
    exclude = list(COCO_HEAD_LAYERS) if weights == "coco" else None
    log.info("loading initial weights %s", path)
    model.load_weights(str(path), by_name=True, exclude=exclude)
    return model


def train(data, config=None, weights="coco", *, model_dir="logs", epochs=16, schedule=None,
          augmentation="notebook", val_fraction=None, val_count=None, seed=None, resume=False,
          custom_callbacks=None):
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
        Continue from the latest checkpoint in ``model_dir`` (``find_last()``);
        completed stages are skipped, the current one continues.
    custom_callbacks : list of keras callbacks, optional

    Returns
    -------
    (MaskRCNN, dict)
        The trained training-mode model and the history (loss lists per key,
        concatenated across stages).
    """
    from .augment import get_augmentation
    from .config import DetectorConfig

    config = config or DetectorConfig()
    if seed is not None:
        config.SEED = seed
        config.validate()
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    train_ds, val_ds = prepare_datasets(data, config, val_fraction=val_fraction, val_count=val_count,
                                        seed=42 if seed is None else seed)
    model = build_model(config, model_dir, "last" if resume else weights)
    augmenter = get_augmentation(augmentation)
    schedule = schedule or default_schedule(epochs)
    history = {}
    _write_run_record(model, config, schedule, weights, resume)
    for stage in schedule:
        if model.epoch >= stage.until_epoch:
            continue
        log.info("stage %s: layers=%s lr=%.5g epochs %d..%d", stage, stage.layers,
                 config.LEARNING_RATE * stage.lr_factor, model.epoch + 1, stage.until_epoch)
        stage_history = model.train(
            train_ds, val_ds, learning_rate=config.LEARNING_RATE * stage.lr_factor,
            epochs=stage.until_epoch, layers=stage.layers,
            augmentation=augmenter if stage.augment else None, custom_callbacks=custom_callbacks,
        )
        for key, values in _history_dict(stage_history).items():
            history.setdefault(key, []).extend(values)
    return model, history


def _history_dict(stage_history):
    if stage_history is None:
        return {}
    return dict(getattr(stage_history, "history", stage_history))


def _write_run_record(model, config, schedule, weights, resume):
    """Record the settings of the run next to its checkpoints (``run.json``; the chief only, in a multi-worker run)."""
    from .mrcnn.training import is_chief

    log_dir = getattr(model, "log_dir", None)
    if not log_dir or not is_chief(getattr(getattr(model, "keras_model", None), "distribute_strategy", None)):
        return
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    record = {
        "config": config.to_dict(),
        "schedule": [asdict(stage) for stage in schedule],
        "initial_weights": None if weights is None else str(weights),
        "resumed": bool(resume),
        "start_epoch": int(model.epoch),
    }
    (Path(log_dir) / "run.json").write_text(json.dumps(record, indent=2))
