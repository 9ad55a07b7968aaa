"""The model runs of ``bench_models.py``: train each model of one seed, keep its detections or scores.

Every run returns JSON-ready values and its CPU cost (``bench_models.Clock``). Boxes are engine boxes
``(y1, x1, y2, x2)`` in the DICOMs' own pixels, as ``predict`` writes them; each run's result is also
written under ``--work`` so that an interrupted benchmark continues after the last finished run.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from bench_models import CLASSIFIERS, Clock, detector_training_ids


def _cached(path, compute):
    from rsna_detector._io import write_json

    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    write_json(path, result)
    return result


def _image_dir(data_dir):
    from rsna_detector.data.layout import KaggleLayout

    return KaggleLayout.from_dir(data_dir).require_train_images()


def _forget_models():
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


# --------------------------------------------------------------------------- Mask R-CNN
def maskrcnn_config(settings):
    """The preset's detector config (CPU preset or DetectorConfig) at the preset's steps per epoch."""
    from rsna_detector.detector.config import CPUDemoConfig, DetectorConfig

    config = CPUDemoConfig() if settings.config == "cpu" else DetectorConfig()
    config.STEPS_PER_EPOCH = int(settings.steps_per_epoch)
    return config.validate()


def _inference_model(checkpoint, config, settings):
    """An inference model of ``checkpoint`` keeping detections down to the sweep's lowest threshold."""
    import copy

    from rsna_detector.mrcnn import model as modellib

    inference = copy.copy(config)
    inference.DETECTION_MIN_CONFIDENCE = float(min(settings.sweep))
    inference.validate()
    model = modellib.MaskRCNN(mode="inference", config=inference, model_dir=str(Path(checkpoint).parent.parent))
    model.load_weights(str(checkpoint), by_name=True)
    return model


def _view_key(scale, mirrored):
    return f"{scale:g}|{'mirror' if mirrored else 'plain'}"


def detect_views(model, dataset, scales):
    """Detections of every view (scale x plain/mirror) of every image, in the DICOMs' pixels, with CPU costs.

    The views are the library's (``postprocess.detect_views``); a scale's plain and mirrored views run
    together and share its cost.

    Returns
    -------
    views : dict view -> {patientId: [boxes [N, 4], scores [N]]}
    cost : dict view -> CPU seconds (reading the images counted once, in the view 1|plain)
    """
    from rsna_detector.detector.postprocess import PostProcessing
    from rsna_detector.detector.postprocess import detect_views as library_views

    with Clock() as reading:
        images = [dataset.load_image(i) for i in dataset.image_ids]
    ids = [dataset.patient_id(i) for i in dataset.image_ids]
    frames = [np.array(dataset._original_shape(i) * 2, np.float64) / np.array(im.shape[:2] * 2)
              for i, im in zip(dataset.image_ids, images)]
    views, cost = {}, {}
    for scale in scales:
        with Clock() as clock:
            found = library_views(model, images, PostProcessing(flip_tta=True, scales=(scale,)))
        for k, mirrored in enumerate((False, True)):
            key = _view_key(scale, mirrored)
            views[key] = {pid: [(np.asarray(per_view[k].boxes, np.float64) * frame).tolist(),
                                np.asarray(per_view[k].scores).tolist()]
                          for pid, frame, per_view in zip(ids, frames, found)}
            cost[key] = clock.seconds / 2 + (reading.seconds if key == _view_key(1.0, False) else 0.0)
    return views, cost


def _member(checkpoint, config, settings, datasets, train_cpu_s):
    model = _inference_model(checkpoint, config, settings)
    member = {"checkpoint": str(checkpoint), "train_cpu_s": train_cpu_s, "views": {}, "cost": {}}
    for split, dataset in datasets.items():
        member["views"][split], member["cost"][split] = detect_views(model, dataset, settings.scales)
    _forget_models()
    return member


def run_maskrcnn(seed, args, data_dir, records, split):
    """The single model and the k fold models of one seed, their views on the validation and test splits."""
    return _cached(args.work / f"seed_{seed}" / "maskrcnn.json", lambda: _run_maskrcnn(seed, args, data_dir,
                                                                                       records, split))


def _run_maskrcnn(seed, args, data_dir, records, split):
    from rsna_detector.detector.cross_validation import train_folds
    from rsna_detector.detector.dataset import DetectorDataset
    from rsna_detector.detector.demo import _schedule
    from rsna_detector.detector.schedule import train

    settings = args.settings
    config = maskrcnn_config(settings)
    image_dir = _image_dir(data_dir)
    train_ids = detector_training_ids(split, records, settings)
    datasets = {name: DetectorDataset.from_records(records, image_dir, image_size=config.IMAGE_MAX_DIM,
                                                   patient_ids=split[name]) for name in ("val", "test")}
    train_ds = DetectorDataset.from_records(records, image_dir, image_size=config.IMAGE_MAX_DIM,
                                            patient_ids=train_ids)
    options = dict(epochs=settings.epochs, schedule=_schedule(settings.epochs, settings.weights),
                   augmentation=None if args.data is None else "notebook")
    folder = args.work / f"seed_{seed}"
    print(f"seed {seed}: Mask R-CNN, one model on {len(train_ids)} patients", flush=True)
    with Clock() as clock:
        model, _ = train((train_ds, datasets["val"]), config, settings.weights, model_dir=folder / "single",
                         seed=seed, resume=any((folder / "single").rglob("mask_rcnn_*.h5")), **options)
    checkpoint = model.find_last()
    _forget_models()
    members = {"single": _member(checkpoint, config, settings, datasets, clock.seconds)}
    print(f"seed {seed}: Mask R-CNN, {settings.folds} fold models", flush=True)
    with Clock() as clock:
        cv = train_folds(data_dir, config, settings.weights, folds=settings.folds, model_dir=folder / "folds",
                         seed=seed, resume=True, oof=False, patient_ids=train_ids, **options)
    _forget_models()
    for fold, checkpoint in enumerate(cv.checkpoints, start=1):
        members[f"fold_{fold}"] = _member(checkpoint, config, settings, datasets, clock.seconds / settings.folds)
    return {"config": type(config).__name__, "default_threshold": float(config.DETECTION_MIN_CONFIDENCE),
            "members": members}


# --------------------------------------------------------------------------- classifiers
def run_classifiers(seed, args, data_dir, records, split):
    """VGG19, ResNet50 and DenseNet121 trained on the training split; their scores on validation and test."""
    return {name: _cached(args.work / f"seed_{seed}" / f"classifier_{name}.json",
                          lambda name=name: _run_classifier(name, seed, args, data_dir, records, split))
            for name in CLASSIFIERS}


def _run_classifier(name, seed, args, data_dir, records, split):
    import keras

    from rsna_detector.baselines.classifier import predict_scores, train_classifier

    settings = args.settings
    image_dir = _image_dir(data_dir)
    print(f"seed {seed}: classifier {name}", flush=True)
    keras.utils.set_random_seed(seed)
    with Clock() as clock:
        model, _ = train_classifier(({pid: records[pid] for pid in split["train"]}, image_dir), name,
                                    weights=settings.classifier_weights, epochs=settings.classifier_epochs,
                                    image_size=settings.classifier_size, val_fraction=None, seed=seed,
                                    steps_per_epoch=settings.classifier_steps, verbose=0)
    result = {"train_cpu_s": clock.seconds, "scores": {}, "cost": {}}
    for part in ("val", "test"):
        with Clock() as clock:
            scores = predict_scores(model, [image_dir / f"{pid}.dcm" for pid in split[part]], name=name)
        result["scores"][part] = dict(zip(split[part], np.asarray(scores, np.float64).tolist()))
        result["cost"][part] = clock.seconds
    _forget_models()
    return result


# --------------------------------------------------------------------------- RetinaNet
def run_retinanet(seed, args, data_dir, records, split):
    """The RetinaNet trained on the detectors' training patients; its detections on validation and test."""
    return _cached(args.work / f"seed_{seed}" / "retinanet.json",
                   lambda: _run_retinanet(seed, args, data_dir, records, split))


def _run_retinanet(seed, args, data_dir, records, split):
    import keras

    from rsna_detector.baselines.retinanet import predict_retinanet, train_retinanet

    settings = args.settings
    image_dir = _image_dir(data_dir)
    train_ids = detector_training_ids(split, records, settings)
    print(f"seed {seed}: RetinaNet on {len(train_ids)} patients", flush=True)
    keras.utils.set_random_seed(seed)
    with Clock() as clock:
        model, _ = train_retinanet(({pid: records[pid] for pid in train_ids}, image_dir),
                                   image_size=settings.retinanet_size, weights=settings.retinanet_weights,
                                   epochs=settings.retinanet_epochs, batch_size=settings.retinanet_batch,
                                   val_fraction=None, seed=seed, steps_per_epoch=settings.retinanet_steps,
                                   verbose=0)
    result = {"train_cpu_s": clock.seconds, "detections": {}, "cost": {}}
    for part in ("val", "test"):
        with Clock() as clock:
            predictions = predict_retinanet(model, [image_dir / f"{pid}.dcm" for pid in split[part]])
        result["detections"][part] = {p.patient_id: [np.asarray(p.boxes, np.float64).tolist(),
                                                     np.asarray(p.scores, np.float64).tolist()]
                                      for p in predictions}
        result["cost"][part] = clock.seconds
    _forget_models()
    return result
