"""k-fold cross-validation of the detector: one run per fold, out-of-fold predictions, the fold models.

``train(data, folds=k)`` (and ``rsna-detector train --folds K``) runs :func:`train_folds`:

* the training patients are cut into k folds at patient level, stratified by their number of
  boxes (``data.splits.assign_folds``: 0 for a negative patient, 1-4 for a positive one), with
  the split seed; the assignment is written to ``<model_dir>/folds.json`` and a later start must
  find the same one;
* fold ``i`` (1-based) trains on the other folds and validates on fold ``i``, in its own model
  folder ``<model_dir>/fold_<i>`` (its run folder with ``run.json`` and checkpoints inside, as
  ``train`` makes it, and ``split.json``: the fold's training and validation patients);
  ``resume=True`` continues each fold from its newest checkpoint and leaves
  finished folds as they are;
* after training, fold ``i``'s model predicts its own validation patients: every training
  patient is predicted exactly once, by the one fold model that did not train on it. Each fold's
  predictions are a results file ``fold_<i>/oof_predictions.json`` (``results`` format: engine
  boxes ``(y1, x1, y2, x2)`` in the DICOM's own pixels), all of them together
  ``<model_dir>/oof_predictions.json``. The detector runs with its in-graph
  ``DETECTION_MIN_CONFIDENCE`` lowered to the lowest threshold of the competition sweep (0.5), and
  through the views the ensemble will use (``flip_tta``, ``scales``, fused by weighted boxes fusion);
* from the out-of-fold predictions of every patient, :func:`fit_ensemble` chooses the confidence
  threshold (the competition's sweep) and the box-scale factor (``ensemble.fit_box_scale``), and
  writes the ensemble's description ``<model_dir>/postprocessing.json`` (``postprocess``): its
  ``members`` are the folds' checkpoints (each fold's validated best, relative paths). So
  ``load_detector(model_dir)`` (``rsna-detector predict --model MODEL_DIR``) detects with every
  fold model, fuses their views by WBF and applies what was validated. The threshold is fitted on
  single-model predictions and applied to the fused ensemble, whose scores are the members' mean
  where they agree and lower where they do not (weighted boxes fusion).

:func:`fold_checkpoints` lists the members.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileNotFoundError, RsnaDetectorError

__all__ = [
    "FOLDS_FILE",
    "OOF_FILE",
    "SPLIT_FILE",
    "CrossValidationError",
    "CrossValidation",
    "fold_folder",
    "train_folds",
    "fold_checkpoints",
    "read_oof_predictions",
    "fit_ensemble",
]

log = logging.getLogger(__name__)

#: The fold assignment of a cross-validation run, in its model folder.
FOLDS_FILE = "folds.json"
#: Out-of-fold predictions (``results`` format), per fold folder and merged in the model folder.
OOF_FILE = "oof_predictions.json"
#: A fold's training and validation patients, in its fold folder.
SPLIT_FILE = "split.json"


class CrossValidationError(RsnaDetectorError, ValueError):
    """A cross-validation run that cannot go on: another fold assignment on resume, a fold without checkpoint."""


@dataclass
class CrossValidation:
    """What :func:`train_folds` did.

    Attributes
    ----------
    model_dir : Path
    folds : int
    assignment : dict str -> int
        Fold (1-based) of every training patient.
    checkpoints : list of Path
        Fold ``i``'s checkpoint (the newest of its run) at index ``i - 1``.
    oof_path : Path or None
        The merged out-of-fold predictions (None when they were not made).
    postprocessing : PostProcessing or None
        The ensemble's description (:func:`fit_ensemble`), None until every fold has its predictions.
    histories : dict int -> dict
        Fold -> the loss history ``train`` returned (empty for a fold finished earlier).
    """

    model_dir: Path
    folds: int
    assignment: dict
    checkpoints: list = field(default_factory=list)
    oof_path: Path | None = None
    histories: dict = field(default_factory=dict)
    postprocessing: object = None

    def validation_ids(self, fold):
        """The patients of fold ``fold`` (1-based), in the data's order."""
        return [pid for pid, f in self.assignment.items() if f == fold]


def fold_folder(model_dir, fold):
    """``<model_dir>/fold_<fold>`` (folds numbered from 1)."""
    return Path(model_dir) / f"fold_{int(fold)}"


def _assignment(records, folds, seed, model_dir):
    """Fold (1-based) of every patient; the one in ``folds.json`` when a run exists, which must agree."""
    from .._io import write_json
    from ..data.splits import assign_folds

    boxes = [records[pid].n_boxes for pid in records]
    assignment = {pid: fold + 1 for pid, fold in assign_folds(list(records), boxes, folds=folds, seed=seed).items()}
    path = Path(model_dir) / FOLDS_FILE
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("assignment") != assignment:
            raise CrossValidationError(
                f"{path}: this model folder holds another fold assignment (folds {stored.get('folds')}, seed "
                f"{stored.get('seed')}, {len(stored.get('assignment', {}))} patients) than folds={folds}, seed={seed} "
                f"on these {len(assignment)} patients: use another --model-dir, or the same data, folds and seed")
    else:
        write_json(path, {"folds": int(folds), "seed": int(seed), "stratified_by": "number of boxes",
                          "assignment": assignment})
    return assignment


def _has_checkpoint(folder, config):
    from ..mrcnn.train.checkpoints import find_last_checkpoint

    try:
        find_last_checkpoint(str(folder), str(config.NAME).lower())
    except FileNotFoundError:
        return False
    return True


def _fold_checkpoint(folder, config):
    """The checkpoint of a fold: in its newest run, the validated best (``loading.resolve_checkpoint``)."""
    from ..mrcnn.train.checkpoints import find_last_checkpoint
    from .loading import resolve_checkpoint

    try:
        return Path(resolve_checkpoint(Path(find_last_checkpoint(str(folder), str(config.NAME).lower())).parent))
    except FileNotFoundError as error:
        raise CrossValidationError(f"{folder}: no checkpoint of this fold ({error})") from error


def train_folds(data, config=None, weights="coco", *, folds=5, model_dir="logs", seed=None, resume=False,
                oof=True, only=None, patient_ids=None, flip_tta=False, scales=(1.0,), fusion_iou=0.55,
                box_scale=True, **train_options):
    """Train one detector per fold and predict each fold's patients with the model that did not see them.

    Parameters
    ----------
    data : str or Path
        A Kaggle-layout data directory (its training patients are the folds).
    config : DetectorConfig, optional
        Default ``DetectorConfig()``.
    weights : str or None
        Initial weights of every fold (``schedule.train``).
    folds : int
        k >= 2.
    model_dir : str or Path
        Holds ``folds.json``, ``fold_1`` ... ``fold_k`` and ``oof_predictions.json``.
    seed : int, optional
        The fold assignment's seed (default ``DEFAULT_SPLIT_SEED``, 42); fold ``i`` trains with
        ``seed + i - 1`` (another initialisation and shuffle per fold: more diverse members).
    resume : bool
        Continue every fold from its newest checkpoint (a fold without one starts from ``weights``).
    oof : bool
        Predict the out-of-fold patients after training.
    only : sequence of int, optional
        Train these folds (1-based) only, e.g. one per machine; the merged out-of-fold file is
        written once every fold has its own.
    patient_ids : sequence of str, optional
        Cross-validate these training patients only (e.g. a development split, a held-out test
        split kept apart); default all.
    flip_tta, scales, fusion_iou
        The views every member runs and the IoU of their fusion (``postprocess.PostProcessing``);
        the out-of-fold predictions go through them too.
    box_scale : bool
        Fit the box-scale factor on the out-of-fold predictions (else 1.0).
    **train_options
        Passed to ``schedule.train`` (epochs, schedule, augmentation, custom_callbacks, ...).

    Returns
    -------
    CrossValidation
        With ``oof`` and every fold done: ``postprocessing``, the ensemble's description written
        to ``<model_dir>/postprocessing.json`` (:func:`fit_ensemble`).
    """
    from .._io import write_json
    from ..data.splits import DEFAULT_SPLIT_SEED
    from .config import DetectorConfig
    from .dataset import DetectorDataset, records_and_image_dir
    from .schedule import train

    config = config or DetectorConfig()
    seed = DEFAULT_SPLIT_SEED if seed is None else int(seed)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    records, image_dir = records_and_image_dir(data, strict=True)
    if patient_ids is not None:
        unknown = [pid for pid in patient_ids if pid not in records]
        if unknown:
            raise CrossValidationError(f"patient_ids: {len(unknown)} id(s) not among the training patients of "
                                       f"{data}: {', '.join(unknown[:5])}")
        records = {pid: records[pid] for pid in dict.fromkeys(patient_ids)}
    assignment = _assignment(records, folds, seed, model_dir)
    wanted = range(1, int(folds) + 1) if only is None else sorted({int(f) for f in only})
    result = CrossValidation(model_dir=model_dir, folds=int(folds), assignment=assignment)
    views = _views(config, flip_tta, scales, fusion_iou)
    for fold in wanted:
        folder = fold_folder(model_dir, fold)
        train_ids = [pid for pid, f in assignment.items() if f != fold]
        val_ids = [pid for pid, f in assignment.items() if f == fold]
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / SPLIT_FILE, {"fold": fold, "folds": int(folds), "train": train_ids, "validation": val_ids})
        datasets = tuple(DetectorDataset.from_records(records, image_dir, image_size=config.IMAGE_MAX_DIM,
                                                      patient_ids=ids) for ids in (train_ids, val_ids))
        carry_on = resume and _has_checkpoint(folder, config)
        log.info("fold %d of %d: %d training, %d validation patients%s", fold, folds, len(train_ids), len(val_ids),
                 " (resumed)" if carry_on else "")
        _, history = train(datasets, config, weights, model_dir=folder, seed=seed + fold - 1, resume=carry_on,
                           **train_options)
        result.histories[fold] = history
        if oof:
            _predict_fold(folder, config, datasets[1], views)
    result.checkpoints = [_fold_checkpoint(fold_folder(model_dir, f), config)
                          for f in range(1, int(folds) + 1) if _has_checkpoint(fold_folder(model_dir, f), config)]
    if oof and all((fold_folder(model_dir, f) / OOF_FILE).is_file() for f in range(1, int(folds) + 1)):
        result.oof_path = _merge_oof(model_dir, folds)
        result.postprocessing = fit_ensemble(model_dir, {pid: records[pid] for pid in assignment}, views,
                                             result.checkpoints, box_scale=box_scale)
    return result


def _views(config, flip_tta, scales, fusion_iou):
    """The views' description without threshold, the in-graph threshold the sweep's lowest (0.5) or lower."""
    from .competition import DEFAULT_SWEEP
    from .postprocess import PostProcessing

    low = float(min(config.DETECTION_MIN_CONFIDENCE, float(np.min(DEFAULT_SWEEP))))
    return PostProcessing(flip_tta=bool(flip_tta), scales=tuple(scales), fusion_iou=fusion_iou,
                          detection_min_confidence=low)


def _oof_model(checkpoint, config, views):
    """An inference model of ``checkpoint`` running with the views' in-graph threshold."""
    from ..mrcnn import model as modellib
    from .loading import inference_config

    inference = inference_config(config, DETECTION_MIN_CONFIDENCE=views.detection_min_confidence)
    model = modellib.MaskRCNN(mode="inference", config=inference, model_dir=str(Path(checkpoint).parent.parent))
    model.load_weights(str(checkpoint), by_name=True, require_complete=True)
    return model


def _predict_fold(folder, config, val_dataset, views):
    """Fold ``folder``'s model on its validation patients' DICOMs -> ``folder/oof_predictions.json``."""
    from .inference import predict

    checkpoint = _fold_checkpoint(folder, config)
    model = _oof_model(checkpoint, config, views)
    files = [info["path"] for info in val_dataset.image_info]
    run = predict(model, files, progress=False, postprocessing=views)
    path = run.write(folder / OOF_FILE)
    log.info("%s: out-of-fold predictions of %d patients by %s", path, len(run.predictions), checkpoint.name)
    return path


def _merge_oof(model_dir, folds):
    """All folds' out-of-fold results files as one (each patient once)."""
    from .results import merge_results_files, write_results_file

    merged = merge_results_files([fold_folder(model_dir, f) / OOF_FILE for f in range(1, int(folds) + 1)])
    return write_results_file(merged.predictions, Path(model_dir) / OOF_FILE)


def fold_checkpoints(model_dir, config=None):
    """The checkpoint of every fold of a cross-validation folder, fold 1 first.

    Raises
    ------
    FileNotFoundError
        ``model_dir`` holds no ``folds.json``.
    CrossValidationError
        A fold without a checkpoint (named).
    """
    from .config import DetectorConfig

    config = config or DetectorConfig()
    path = Path(model_dir) / FOLDS_FILE
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: not a cross-validation folder (no {FOLDS_FILE}; train with folds=k)")
    folds = int(json.loads(path.read_text(encoding="utf-8"))["folds"])
    return [_fold_checkpoint(fold_folder(model_dir, fold), config) for fold in range(1, folds + 1)]


def read_oof_predictions(model_dir):
    """``{patientId: ImagePrediction}`` of a cross-validation folder's merged out-of-fold predictions."""
    from .results import read_results_file

    return dict(read_results_file(Path(model_dir) / OOF_FILE).predictions)


def fit_ensemble(model_dir, records, views, checkpoints, *, box_scale=True):
    """The ensemble's description, fitted on the out-of-fold predictions, saved as ``<model_dir>/postprocessing.json``.

    Parameters
    ----------
    model_dir : str or Path
        A cross-validation folder with its merged ``oof_predictions.json``.
    records : dict patientId -> PatientRecord
        The ground truth of the cross-validated patients (boxes in the DICOMs' pixels).
    views : PostProcessing
        The views (flip, scales, fusion IoU) and in-graph threshold the predictions were made with.
    checkpoints : list of Path
        The members, fold 1 first.
    box_scale : bool
        Fit the box-scale factor (``ensemble.fit_box_scale``, on the predictions kept by the
        threshold) or keep 1.0.

    Returns
    -------
    PostProcessing
        ``min_confidence``: the competition sweep's best threshold; ``box_scale``; ``members``:
        the checkpoints relative to ``model_dir``; ``validation``: the out-of-fold scores.
    """
    from .competition import sweep_confidence_threshold
    from .ensemble import fit_box_scale
    from .eval_records import records_from_predictions
    from .postprocess import POSTPROCESSING_FILE

    model_dir = Path(model_dir)
    predictions = read_oof_predictions(model_dir)
    truth = {pid: np.asarray(records[pid].boxes, np.float64).reshape(-1, 4) for pid in predictions}
    threshold, score, _ = sweep_confidence_threshold(records_from_predictions(truth, list(predictions.values())))
    threshold = None if not np.isfinite(threshold) else float(threshold)
    factor, scaled_score = 1.0, score
    if box_scale and threshold is not None:
        from .submission import ImagePrediction

        kept = {pid: ImagePrediction(pid, p.boxes[p.scores >= threshold], p.scores[p.scores >= threshold])
                for pid, p in predictions.items()}
        factor, scaled_score, _ = fit_box_scale(truth, kept)
    description = views.replace(
        min_confidence=threshold, box_scale=float(factor) if np.isfinite(factor) else 1.0,
        members=tuple(Path(c).relative_to(model_dir).as_posix() for c in checkpoints),
        validation={"source": OOF_FILE, "folds": len(checkpoints), "images": len(predictions),
                    "best_rsna_score": score, "rsna_score_box_scaled": scaled_score})
    description.save(model_dir / POSTPROCESSING_FILE)
    log.info("%s: %s (out-of-fold competition score %.3f)", model_dir / POSTPROCESSING_FILE,
             description.describe(), scaled_score)
    return description
