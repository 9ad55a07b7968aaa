"""Inference models for prediction and evaluation, with the post-processing validated for them.

:func:`load_detector` is what ``rsna-detector predict``, ``submit`` and ``evaluate`` run: from a
checkpoint file or a run folder (its validated best checkpoint) it builds an inference-mode
``MaskRCNN`` whose in-graph ``DETECTION_MIN_CONFIDENCE`` lets the post-processing be applied
(``postprocess`` module docstring, the in-graph threshold rule), loads the weights, and attaches
the :class:`~.postprocess.PostProcessing` to apply as ``model.postprocessing``; ``predict`` and
``evaluate_detector`` apply it by default. :func:`inference_model_from` does the same for a
training model that just finished (the demo, notebooks).

Which post-processing (:func:`resolve_postprocessing`): with ``threshold='auto'`` (the default)
the stored ``postprocessing.json`` of the run; without one, the config's
``DETECTION_MIN_CONFIDENCE`` applies, with a one-line notice. A number overrides the stored
threshold (the in-graph threshold is lowered to it when needed).
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..mrcnn.train.checkpoints import CheckpointNotFoundError, checkpoint_files
from .postprocess import PostProcessing, PostProcessingError, load_postprocessing

__all__ = ["inference_config", "resolve_checkpoint", "resolve_postprocessing", "load_detector",
           "inference_model_from", "parse_threshold", "in_graph_settings"]

log = logging.getLogger(__name__)


def inference_config(config, **settings):
    """A validated copy of ``config`` (same class) with ``settings`` (setting name -> value) changed.

    Callables (BACKBONE, COMPUTE_BACKBONE_SHAPE) are passed as objects: ``Config.from_dict``
    imports nothing by name.
    """
    values = config.to_dict()
    for name in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE"):
        if callable(getattr(config, name, None)):
            values[name] = getattr(config, name)
    values.update(settings)
    return type(config).from_dict(values)


def parse_threshold(value):
    """``'auto'`` (or None) -> ``'auto'``; a number in [0, 1] (or its text) -> float.

    Raises
    ------
    PostProcessingError
        Anything else, naming the value.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return "auto"
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise PostProcessingError(f"threshold: expected 'auto' or a number in [0, 1], got {value!r}") from error
    if not 0.0 <= number <= 1.0:
        raise PostProcessingError(f"threshold: expected 'auto' or a number in [0, 1], got {value!r}")
    return number


def resolve_checkpoint(model_path):
    """The checkpoint file of ``model_path``: a file as it is; a run folder's validated best checkpoint.

    For a folder: the checkpoint its ``postprocessing.json`` was validated on, else its newest
    ``mask_rcnn_*.h5``.

    Raises
    ------
    FileNotFoundError
        Nothing there, or a folder without checkpoints (named).
    """
    path = Path(model_path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file or run folder")
    stored = load_postprocessing(path)
    validated = (stored.validation or {}).get("checkpoint") if stored else None
    if validated and (path / validated).is_file():
        return path / validated
    checkpoints = checkpoint_files(path)
    if not checkpoints:
        raise CheckpointNotFoundError(f"{path}: no mask_rcnn_*.h5 checkpoint in this run folder")
    return path / checkpoints[-1]


def resolve_postprocessing(model_path, config, *, threshold="auto", flip_tta=None, stored="auto"):
    """The post-processing to apply to the model of ``model_path``.

    Parameters
    ----------
    model_path : str, Path or None
        Checkpoint or run folder whose ``postprocessing.json`` is looked up (None: none).
    config : Config
        Its ``DETECTION_MIN_CONFIDENCE`` applies when nothing is stored.
    threshold : 'auto' or float
        'auto': the stored threshold; a number overrides it.
    flip_tta : bool, optional
        Overrides the stored choice (None keeps it; False without a stored description).
    stored : PostProcessing, None or 'auto'
        The stored description when already read; 'auto' reads it from ``model_path``.

    Returns
    -------
    PostProcessing
        Without a stored description, ``min_confidence`` is the threshold given or None (the
        config's in-graph ``DETECTION_MIN_CONFIDENCE`` decides), and a one-line notice is logged.
    """
    threshold = parse_threshold(threshold)
    if stored == "auto":
        stored = load_postprocessing(model_path) if model_path is not None else None
    if stored is None:
        if threshold == "auto":
            log.warning("no post-processing stored beside %s: the config's DETECTION_MIN_CONFIDENCE %g applies",
                        model_path, float(config.DETECTION_MIN_CONFIDENCE))
        stored = PostProcessing()
    changes = {}
    if threshold != "auto":
        changes["min_confidence"] = threshold
    if flip_tta is not None:
        changes["flip_tta"] = bool(flip_tta)
    return stored.replace(**changes) if changes else stored


def in_graph_settings(config, postprocessing, images_per_gpu):
    """Config overrides for an inference graph: the post-processing's detection threshold and, when
    given, ``images_per_gpu`` images on one GPU."""
    settings = {"DETECTION_MIN_CONFIDENCE": postprocessing.detection_threshold(config)}
    if images_per_gpu is not None:
        settings.update(IMAGES_PER_GPU=int(images_per_gpu), GPU_COUNT=1)
    return settings


def load_detector(model_path, config=None, *, threshold="auto", flip_tta=None, images_per_gpu=None):
    """An inference model from a checkpoint or run folder, carrying the post-processing to apply.

    Parameters
    ----------
    model_path : str or Path
        A checkpoint file, or a run folder (its validated best checkpoint, :func:`resolve_checkpoint`),
        or a folder whose description names ensemble ``members`` (a cross-validation folder): then an
        ``ensemble.Ensemble`` of them.
    config : Config, optional
        The model's settings; default ``DetectorConfig()``. Not changed: the model gets a copy
        whose ``DETECTION_MIN_CONFIDENCE`` is the post-processing's in-graph threshold.
    threshold, flip_tta
        See :func:`resolve_postprocessing`.
    images_per_gpu : int, optional
        Batch size of detection (default the config's).

    Returns
    -------
    MaskRCNN
        Inference mode; ``model.postprocessing`` (PostProcessing) and ``model.weights_path``
        (the checkpoint read) set.
    """
    from ..mrcnn import model as modellib
    from .config import DetectorConfig

    config = config or DetectorConfig()
    stored = load_postprocessing(model_path) if Path(model_path).is_dir() else None
    if stored is not None and stored.members:  # an ensemble's folder (cross_validation): every member
        from .ensemble import load_ensemble

        return load_ensemble(model_path, resolve_postprocessing(model_path, config, threshold=threshold,
                                                                flip_tta=flip_tta, stored=stored),
                             config, images_per_gpu=images_per_gpu)
    checkpoint = resolve_checkpoint(model_path)
    postprocessing = resolve_postprocessing(checkpoint, config, threshold=threshold, flip_tta=flip_tta)
    model = modellib.MaskRCNN(mode="inference", config=inference_config(
        config, **in_graph_settings(config, postprocessing, images_per_gpu)), model_dir=str(checkpoint.parent.parent))
    model.load_weights(str(checkpoint), by_name=True, require_complete=True)  # random layers: meaningless boxes
    model.postprocessing, model.weights_path = postprocessing, str(checkpoint)
    log.info("%s: %s", checkpoint, postprocessing.describe())
    return model


def inference_model_from(training_model, images_per_gpu=None, *, threshold="auto", flip_tta=None):
    """An inference-mode MaskRCNN carrying the weights of a training-mode one and its validated post-processing.

    The weights come from the run's validated best checkpoint (``postprocessing.json`` in
    ``training_model.log_dir``, written by the validation callback) when there is one, else the
    latest checkpoint (``find_last()``), else a file ``final_weights.h5`` written in
    ``model_dir``. The model carries ``postprocessing`` and ``weights_path`` as from
    :func:`load_detector`.
    """
    log_dir = Path(getattr(training_model, "log_dir", "") or ".")
    if load_postprocessing(log_dir) is not None:
        return load_detector(log_dir, training_model.config, threshold=threshold, flip_tta=flip_tta,
                             images_per_gpu=images_per_gpu)
    try:
        weights_path = training_model.find_last()
    except FileNotFoundError:
        weights_path = str(Path(training_model.model_dir) / "final_weights.h5")
        training_model.save_weights(weights_path)
    return load_detector(weights_path, training_model.config, threshold=threshold, flip_tta=flip_tta,
                         images_per_gpu=images_per_gpu)
