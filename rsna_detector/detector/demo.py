"""The main job end to end: data -> training -> evaluation -> submission -> pictures.

``rsna-detector demo`` (README's first command) runs :func:`run_demo`. Without a
data directory it generates a synthetic data set in the exact Kaggle layout and
trains the small CPU preset; with ``data_dir`` it runs the same job on a real
Kaggle download with the full ``DetectorConfig`` and COCO initial weights.
"""
from __future__ import annotations

import time
from pathlib import Path

from .._io import write_json
from .loading import inference_model_from

__all__ = ["run_demo", "inference_model_from", "resolve_demo_weights", "format_results", "RESULT_ROWS"]


def _schedule(epochs, weights):
    """The staged schedule for pretrained weights; from scratch, all layers train from the start.

    Training the heads alone on top of a random backbone (the first stage of
    the fine-tuning schedule) would waste epochs, so a randomly initialised
    model trains all layers at LR for three quarters of the epochs, then at LR / 5.
    """
    from .schedule import Stage, default_schedule

    if weights is not None:
        return default_schedule(epochs)
    first = max(1, round(epochs * 0.75))
    return [Stage("all", 1.0, first, False)] + ([Stage("all", 0.2, epochs, False)] if epochs > first else [])


def resolve_demo_weights(weights, synthetic):
    """The initial weights of a demo run, checked before anything starts.

    On synthetic data the default is None (random initialisation). On real data
    the default is 'coco', which the demo does not download unasked: a local
    copy (``$RSNA_DETECTOR_WEIGHTS_DIR`` or the cache, checked against the
    registry) is used, and without one the demo stops at once, saying where to
    put the file, with no network call. An explicit ``weights`` (for example
    'coco', which may download, or 'none') is returned unchanged.

    Raises
    ------
    WeightsOfflineError
        Real data, no ``weights`` given, and no local COCO file; the message
        names the file, where to put it and how to download it instead.
    WeightsChecksumError
        The local COCO file found is not the right one.
    """
    if weights is not None:
        return weights
    if synthetic:
        return None
    from ..weights import WeightsOfflineError, default_cache_dir, fetch_weights, load_registry

    try:
        fetch_weights("coco", offline=True, progress=False)
    except WeightsOfflineError as error:
        entry = load_registry()["coco"]
        raise WeightsOfflineError(
            f"run_demo: the initial weights 'coco' ({entry.filename}) are not on this machine, and the demo does "
            f"not download them unasked. Put {entry.filename} (from {entry.url}) in a folder named by "
            f"$RSNA_DETECTOR_WEIGHTS_DIR or in the cache {default_cache_dir()}; or pass weights='coco' "
            f"(rsna-detector demo --weights coco) to download it, or weights='none' to train from scratch."
        ) from error
    return "coco"


def _synthetic_data(out_dir, n_train, n_test, seed, progress):
    from ..data.synthetic import make_synthetic_dataset

    data_dir = Path(out_dir) / "synthetic_data"
    summary = make_synthetic_dataset(data_dir, n_train=n_train, n_test=n_test, seed=seed, progress=progress)
    print(summary)
    return data_dir


def _step(number, text):
    """A numbered heading of the demo's console output."""
    print(f"[{number}/5] {text}", flush=True)


#: The metrics of the results table: (key of evaluate_detector's dict, label).
RESULT_ROWS = (
    ("map50", "mAP@0.5, all validation images"),
    ("map50_positive", "mAP@0.5, images with opacities"),
    ("mean_iou", "mean IoU of matched boxes"),
    ("coco_ap", "COCO AP@[.5:.95]"),
    ("model_threshold", "submission threshold"),
    ("rsna_score", "competition score, submission threshold"),
    ("best_threshold", "best confidence threshold"),
    ("best_rsna_score", "competition score, best threshold"),
)


def format_results(summary):
    """The demo's closing text: a table of the metrics, then where the outputs are.

    Parameters
    ----------
    summary : dict
        What :func:`run_demo` returns.

    Returns
    -------
    str
        Several lines; the last ones name the output folder and its files.
    """
    from ..console import format_table

    metrics = summary["metrics"]
    rows = [(label, float(metrics.get(key, float("nan")))) for key, label in RESULT_ROWS]
    rows.append(("wall time, s", int(round(float(summary["wall_time_s"])))))
    title = (f"results ({summary['val_patients']} validation patients, {summary['epochs']} epochs of "
             f"{summary['config']}):")
    out = Path(summary["out_dir"])
    outputs = [f"outputs in {out}/:",
               "  summary.json, evaluation/ (metrics.json, precision_recall.png, threshold_sweep.png)",
               f"  pictures/ ({len(summary['pictures'])} ground truth vs prediction PNGs), "
               f"{Path(summary['submission']).name if summary['submission'] else 'no submission (no test images)'}",
               f"  {summary['checkpoints']}/ (checkpoints, run.json, training_log.csv)"]
    return "\n".join([title, format_table(rows, headers=("metric", "value"))] + outputs)


def run_demo(out_dir="demo_output", data_dir=None, *, n_train=400, n_test=40, epochs=None, seed=0,
             config=None, weights=None, progress=True, steps_per_epoch=None):
    """Run the whole job and write its outputs into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Receives ``synthetic_data/`` (when generated), ``logs/`` (checkpoints),
        ``evaluation/`` (metrics.json, precision_recall.png, threshold_sweep.png),
        ``pictures/`` (ground truth beside prediction), ``submission.csv`` and
        ``summary.json``.
    data_dir : str or Path, optional
        A Kaggle-layout download. None: synthetic data (``n_train`` training and
        ``n_test`` test patients, seeded).
    epochs : int, optional
        Default 10 on synthetic data, 16 on real data.
    config : Config, optional
        Default ``CPUDemoConfig`` on synthetic data, ``DetectorConfig`` on real data.
    weights : str, optional
        Initial weights; default None (random) on synthetic data, 'coco' on real
        data when a copy is on this machine (see :func:`resolve_demo_weights`:
        without one the demo stops at once saying where to put it; pass
        'coco' explicitly to allow a download, 'none' for random weights).
    progress : bool
        Progress bars (data generation, training steps, detection, prediction).
    steps_per_epoch : int, optional
        Overrides the config's STEPS_PER_EPOCH (a shorter demo).

    Returns
    -------
    dict
        The summary also written to ``summary.json``: wall time, the metrics
        (``evaluate_detector``'s), the checkpoint and post-processing used,
        ``submission_threshold``, ``rsna_score`` (at that threshold) and
        ``best_rsna_score`` (at the sweep's best), paths. The console gets a
        numbered line per step, one line per training epoch, and the results
        table (:func:`format_results`) last.

    Notes
    -----
    Training validates every epoch on the validation split (``validation.ValidationCallback``)
    and stores the best checkpoint's threshold beside it; the evaluation, the pictures and
    the submission use that checkpoint and threshold (``loading.inference_model_from``), so the
    competition score at the submission's threshold is the validation split's best.
    """
    from ..data.layout import KaggleLayout
    from .config import config_for_preset
    from .dataset import DetectorDataset
    from .evaluate import evaluate_detector
    from .figures import save_gt_vs_prediction
    from .inference import predict
    from .loading import inference_config
    from .schedule import train
    from .submission import write_submission

    started = time.perf_counter()
    synthetic = data_dir is None
    weights = resolve_demo_weights(weights, synthetic)  # before anything is written
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if synthetic:
        _step(1, f"synthetic data: {n_train} training + {n_test} test patients in the Kaggle layout")
        data_dir = _synthetic_data(out_dir, n_train, n_test, seed, progress)
    else:
        _step(1, f"data: {data_dir}")
    config = config or config_for_preset("cpu" if synthetic else "full")
    if steps_per_epoch is not None:  # a validated copy: the caller's config is never changed
        config = inference_config(config, STEPS_PER_EPOCH=int(steps_per_epoch))
    epochs = epochs or (10 if synthetic else 16)

    # the short synthetic training sees as many negative as positive patients; validation keeps ~3.4:1
    train_ds, val_ds = DetectorDataset.split_from_data_dir(
        data_dir, image_size=config.IMAGE_MAX_DIM, val_fraction=0.2, seed=seed,
        train_negatives_per_positive=1.0 if synthetic else None)
    _step(2, f"training {config.__class__.__name__} for {epochs} epochs of {config.STEPS_PER_EPOCH} steps on "
             f"{train_ds.num_images} patients (validation: {val_ds.num_images})")
    training_model, history = train((train_ds, val_ds), config, weights=weights, model_dir=out_dir / "logs",
                                    epochs=epochs, seed=seed, schedule=_schedule(epochs, weights),
                                    augmentation=None if synthetic else "notebook")
    model = inference_model_from(training_model)
    _step(3, f"evaluation on the {val_ds.num_images} validation patients: {Path(model.weights_path).name}, "
             f"{model.postprocessing.describe()}")
    metrics = evaluate_detector(model, val_ds, val_ds.image_ids, config=model.config, out_dir=out_dir / "evaluation",
                                verbose=progress)

    layout = KaggleLayout.from_dir(data_dir)
    submission_path = None
    if layout.test_images is not None:
        _step(4, f"prediction on {layout.test_images} -> submission.csv")
        run = predict(model, layout.test_images, progress=progress)
        submission_path = out_dir / "submission.csv"
        write_submission(run.predictions, submission_path, sample_submission=layout.sample_submission)
    else:
        _step(4, "prediction skipped: the data has no test images")
    _step(5, "pictures: ground truth beside prediction")
    positives = [i for i in val_ds.image_ids if len(val_ds.image_info[i]["boxes"])][:4]
    negatives = [i for i in val_ds.image_ids if not len(val_ds.image_info[i]["boxes"])][:2]
    pictures = save_gt_vs_prediction(model, val_ds, positives + negatives, out_dir / "pictures")

    summary = {
        "out_dir": str(out_dir),
        "data": str(data_dir),
        "synthetic": synthetic,
        "config": config.__class__.__name__,
        "epochs": epochs,
        "train_patients": int(train_ds.num_images),
        "val_patients": int(val_ds.num_images),
        "final_losses": {k: float(v[-1]) for k, v in history.items() if v},
        "metrics": metrics,
        "checkpoint": str(model.weights_path),
        "postprocessing": model.postprocessing.to_dict(),
        "submission_threshold": metrics["model_threshold"],
        "rsna_score": metrics["rsna_score"],
        "best_rsna_score": metrics["best_rsna_score"],
        "submission": str(submission_path) if submission_path else None,
        "pictures": [str(p) for p in pictures],
        "checkpoints": str(Path(training_model.log_dir)),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    write_json(out_dir / "summary.json", summary)
    print(format_results(summary), flush=True)
    return summary
