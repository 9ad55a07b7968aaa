"""Pneumonia classifier baselines: VGG19, ResNet50, DenseNet121 and CheXNet (the report's section 4).

A classifier says whether an image holds any opacity (RSNA ``Target``); the
detectors' boxes can then be gated by its score (:mod:`rsna_detector.gating`).

Models (the report's settings)
------------------------------
A ``keras.applications`` backbone without its top, global average pooling and
one sigmoid unit; input 224x224x3 (the report's "244" is a typo); Adam 1e-3,
binary cross-entropy, metrics accuracy, precision, recall and F1 (all at the
score threshold 0.5). 'chexnet' is DenseNet121 initialised from the published
14-class CheXNet Keras weights (``brucechou1983_CheXNet_Keras_0.3.0_weights.h5``:
a Keras-2 ``save_weights`` HDF5 file of ``DenseNet121(include_top=False,
pooling='avg')`` + ``Dense(14, sigmoid)``), whose 14-unit top is replaced by one
sigmoid unit.

Data
----
Images are read from the DICOMs through ``read_dicom``'s fast path at the model's
input size, grey repeated to three channels, then ``preprocess_input`` of the
backbone (``preprocessing='backbone'``, the right input scale for ImageNet and
CheXNet weights) or the report's ``rescale 1/255`` (``preprocessing='rescale'``).
Training images get the report's augmentation (rotation +-40 deg, shear 0.2,
zoom 0.2, horizontal flip, brightness 0.5-1.5: Keras ``ImageDataGenerator``'s
meaning of each, through imgaug). The split is 70:30 at patient level
(``split_patients``); the loss weights the classes by inverse frequency.

Metrics (numpy; scikit-learn is not needed)
-------------------------------------------
ROC-AUC (trapezoids under the ROC curve), PR-AUC (average precision: the
sum over score thresholds of the recall increase times the precision, as
scikit-learn's ``average_precision_score``), confusion matrices and the F1-best
threshold. An image is called positive when its score is ``>= threshold``,
except in the training metrics, which use ``> 0.5`` as Keras' precision and
recall do.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .data.batching import ShuffledBatches
from .saved_models import load_model_for_prediction, save_trained_model

__all__ = [
    "CLASSIFIER_NAMES",
    "CHEXNET_CLASS_COUNT",
    "ClassifierError",
    "build_classifier",
    "compile_classifier",
    "load_keras2_weights",
    "load_chexnet_weights",
    "BinaryF1Score",
    "preprocess_images",
    "classifier_augmentation",
    "ClassifierSequence",
    "patient_images",
    "labelled_images",
    "class_weights",
    "train_classifier",
    "predict_scores",
    "roc_curve",
    "roc_auc",
    "pr_curve",
    "average_precision",
    "confusion_matrix",
    "best_f1_threshold",
    "classification_metrics",
    "evaluate_classifier",
    "add_subcommands",
]

log = logging.getLogger(__name__)

CLASSIFIER_NAMES = ("vgg19", "resnet50", "densenet121", "chexnet")
CHEXNET_CLASS_COUNT = 14
DEFAULT_INPUT_SHAPE = (224, 224, 3)
_APPLICATION = {"vgg19": "VGG19", "resnet50": "ResNet50", "densenet121": "DenseNet121", "chexnet": "DenseNet121"}
_PREPROCESS_MODULE = {"vgg19": "vgg19", "resnet50": "resnet", "densenet121": "densenet", "chexnet": "densenet"}
_MODEL_SUFFIX = "_pneumonia"


class ClassifierError(ValueError):
    """Invalid classifier input: unknown backbone, weights file of another layout, bad labels."""


# --------------------------------------------------------------------------- Keras-2 HDF5 weights
def load_keras2_weights(model, path, *, required=None):
    """Set ``model``'s layer weights from a Keras-2 HDF5 file, matching layers by name.

    The file is read by the library's one Keras-2 reader
    (:func:`rsna_detector.weights.keras2_model.plan_hdf5_weights`, Keras 2's rules),
    its layer names in Keras 3's spelling (Keras 2.1's DenseNet ``conv1/conv`` is
    ``conv1_conv``); nothing is assigned unless every required layer is in the file.

    Parameters
    ----------
    model : keras.Model
    path : str or Path
        A Keras-2 ``save_weights`` file, or a ``model.save`` file (``model_weights``).
    required : iterable of str, optional
        Layer names that must be in the file; default every model layer that
        has weights.

    Returns
    -------
    list of str
        Names of the layers set, in model order.

    Raises
    ------
    ClassifierError
        Not a Keras-2 HDF5 file, a required layer is missing from the file, or a
        weight's shape differs (the message names the file, the layer and both shapes).
    """
    from .weights.keras2_hdf5 import WeightsFileError
    from .weights.keras2_model import WeightsMismatchError, plan_hdf5_weights

    try:
        plan = plan_hdf5_weights(model, path, by_name=True, normalise_names=True)
    except (WeightsFileError, WeightsMismatchError) as error:
        raise ClassifierError(str(error)) from error
    loaded, missing_from_file = plan.result.loaded, plan.result.missing_from_file
    required = set(loaded + missing_from_file) if required is None else set(required)
    missing = sorted(required - set(loaded))
    if missing:
        held = len(loaded) + len(plan.result.unused_in_file)
        raise ClassifierError(f"{path}: no weights for {len(missing)} layer(s) of {model.name}, e.g. "
                              f"{', '.join(missing[:5])}; the file holds {held} layers with weights")
    plan.apply()
    return list(loaded)


# --------------------------------------------------------------------------- models
def _check_name(name):
    if name not in CLASSIFIER_NAMES:
        raise ClassifierError(f"classifier name {name!r}: expected one of {', '.join(CLASSIFIER_NAMES)}")


def _backbone(name, input_shape, keras_weights):
    import keras

    application = getattr(keras.applications, _APPLICATION[name])
    try:
        return application(include_top=False, weights=keras_weights, input_shape=tuple(input_shape), pooling="avg")
    except Exception as error:  # keras.utils.get_file raises a bare Exception when the download fails
        if keras_weights != "imagenet":
            raise
        raise ClassifierError(
            f"{name}: Keras could not build keras.applications.{_APPLICATION[name]} with its ImageNet weights "
            f"({error}). Offline: put the file Keras downloads for it (no top) in ~/.keras/models/, or pass "
            "weights=None or a weights file path") from error


def load_chexnet_weights(backbone, path):
    """Load CheXNet's 14-class weights into a DenseNet121 backbone (``include_top=False, pooling='avg'``).

    The file's model is rebuilt as it was saved (``backbone`` +
    ``Dense(14, sigmoid, name='predictions')``), its weights loaded (a Keras-2
    HDF5 file by layer name, or a Keras 3 ``.weights.h5`` file), and the
    14-unit model returned; ``backbone``'s layers now hold the file's weights.

    Parameters
    ----------
    backbone : keras.Model
        ``keras.applications.DenseNet121(include_top=False, pooling='avg')``.
    path : str or Path

    Returns
    -------
    keras.Model
        The 14-class CheXNet model sharing ``backbone``'s layers.
    """
    import keras

    from .weights.keras2_hdf5 import is_keras2_weights_file

    top = keras.layers.Dense(CHEXNET_CLASS_COUNT, activation="sigmoid", name="predictions")
    chexnet = keras.Model(backbone.input, top(backbone.output), name="chexnet")
    if is_keras2_weights_file(path):
        load_keras2_weights(chexnet, path)
    else:
        chexnet.load_weights(str(path))
    return chexnet


def _resolve_weights(name, weights):
    """``(keras_weights, file)``: what ``keras.applications`` gets and a file to load afterwards."""
    if weights is None or str(weights).lower() == "none":
        return None, None
    from .weights import fetch_weights

    if name == "chexnet":
        return None, fetch_weights("chexnet" if weights in ("imagenet", "chexnet") else weights)
    if weights == "imagenet":
        return "imagenet", None
    return None, fetch_weights(weights)


def build_classifier(name="densenet121", weights="imagenet", input_shape=DEFAULT_INPUT_SHAPE, *,
                     compile=True, learning_rate=1e-3, run_eagerly=False):
    """A pneumonia classifier: backbone without top, global average pooling, one sigmoid unit.

    Parameters
    ----------
    name : {'vgg19', 'resnet50', 'densenet121', 'chexnet'}
    weights : 'imagenet', None or a path
        'imagenet': Keras' ImageNet backbone weights (for 'chexnet': the
        registry's 'chexnet' file, as does 'chexnet'); None: random
        initialisation; a path or registry name: a weights file for the
        backbone (for 'chexnet': a CheXNet-layout file, see
        :func:`load_chexnet_weights`; for the others a Keras file of the
        backbone without top).
    input_shape : (int, int, 3)
        At least 32x32 (keras.applications' minimum).
    compile : bool
        Compile as the report does (:func:`compile_classifier`).
    learning_rate : float
    run_eagerly : bool
        Passed to ``compile``: no graph tracing (tracing DenseNet121's training
        step takes about 45 s on 2 CPU cores; an eager step at 32x32 about 2 s).

    Returns
    -------
    keras.Model
        Input float32 ``[B, H, W, 3]`` preprocessed images (:func:`preprocess_images`),
        output float32 ``[B, 1]`` pneumonia probability; named ``<name>_pneumonia``.
    """
    import keras

    _check_name(name)
    keras_weights, weights_file = _resolve_weights(name, weights)
    backbone = _backbone(name, input_shape, keras_weights)
    if weights_file is not None:
        if name == "chexnet":
            load_chexnet_weights(backbone, weights_file)
        else:
            backbone.load_weights(str(weights_file))
    output = keras.layers.Dense(1, activation="sigmoid", name="pneumonia")(backbone.output)
    model = keras.Model(backbone.input, output, name=f"{name}{_MODEL_SUFFIX}")
    if compile:
        compile_classifier(model, learning_rate, run_eagerly=run_eagerly)
    return model


def _metric_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="rsna_detector")
    class BinaryF1Score(keras.metrics.Metric):
        """F1 of binary predictions: ``2 TP / (2 TP + FP + FN)``, a prediction positive when ``score > threshold``.

        Accumulates TP, FP and FN over batches (optional sample weights); 0 when
        there is no positive at all.

        Parameters
        ----------
        threshold : float
        name : str
        """

        def __init__(self, threshold=0.5, name="f1", **kwargs):
            super().__init__(name=name, **kwargs)
            self.threshold = float(threshold)
            self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")
            self.false_positives = self.add_variable(shape=(), initializer="zeros", name="false_positives")
            self.false_negatives = self.add_variable(shape=(), initializer="zeros", name="false_negatives")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true = ops.reshape(ops.cast(y_true, "float32"), (-1,))
            predicted = ops.cast(ops.reshape(y_pred, (-1,)) > self.threshold, "float32")
            weight = ops.ones_like(y_true) if sample_weight is None else ops.reshape(
                ops.cast(sample_weight, "float32"), (-1,))
            self.true_positives.assign_add(ops.sum(weight * y_true * predicted))
            self.false_positives.assign_add(ops.sum(weight * (1.0 - y_true) * predicted))
            self.false_negatives.assign_add(ops.sum(weight * y_true * (1.0 - predicted)))

        def result(self):
            denominator = 2.0 * self.true_positives + self.false_positives + self.false_negatives
            return ops.where(denominator > 0, 2.0 * self.true_positives / ops.maximum(denominator, 1e-12), 0.0)

        def reset_state(self):
            for variable in (self.true_positives, self.false_positives, self.false_negatives):
                variable.assign(0.0)

        def get_config(self):
            return {**super().get_config(), "threshold": self.threshold}

    return BinaryF1Score


def compile_classifier(model, learning_rate=1e-3, *, run_eagerly=False):
    """Compile as the report: Adam, binary cross-entropy, accuracy, precision, recall, F1 (threshold 0.5)."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.Precision(name="precision"),
                 keras.metrics.Recall(name="recall"), _lazy("BinaryF1Score")(0.5, name="f1")],
        run_eagerly=run_eagerly,
    )
    return model


def _name_of(model, name=None, default=None):
    """The backbone name: ``name`` if given, else from the model's name ``<name>_pneumonia``, else ``default``."""
    if name is not None:
        _check_name(name)
        return name
    prefix = model.name[: -len(_MODEL_SUFFIX)] if model.name.endswith(_MODEL_SUFFIX) else model.name
    if prefix in CLASSIFIER_NAMES:
        return prefix
    if default is not None:
        _check_name(default)
        return default
    raise ClassifierError(f"model {model.name!r}: cannot tell its backbone; pass name= one of "
                          f"{', '.join(CLASSIFIER_NAMES)}")


# --------------------------------------------------------------------------- images
def preprocess_images(images, name, mode="backbone"):
    """Grey uint8 images -> the classifier's float input.

    Parameters
    ----------
    images : uint8 array [B, H, W] or [B, H, W, 1] (or already [B, H, W, 3])
    name : str
        Backbone name (one of ``CLASSIFIER_NAMES``).
    mode : {'backbone', 'rescale'}
        'backbone': ``keras.applications.<net>.preprocess_input`` (VGG19 and
        ResNet50: BGR mean subtraction; DenseNet121/CheXNet: 1/255 then ImageNet
        mean and std); 'rescale': the report's ``x / 255``.

    Returns
    -------
    float32 array [B, H, W, 3]
    """
    import keras

    _check_name(name)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ClassifierError(f"images: expected [B, H, W], [B, H, W, 1] or [B, H, W, 3], got {images.shape}")
    images = np.repeat(images, 3 // images.shape[-1], axis=-1).astype(np.float32)
    if mode == "rescale":
        return images / 255.0
    if mode != "backbone":
        raise ClassifierError(f"preprocessing mode {mode!r}: expected 'backbone' or 'rescale'")
    module = getattr(keras.applications, _PREPROCESS_MODULE[name])
    return np.asarray(module.preprocess_input(images), np.float32)


def classifier_augmentation():
    """The report's training augmentation as an imgaug pipeline (uint8 grey images).

    Keras ``ImageDataGenerator(rotation_range=40, shear_range=0.2, zoom_range=0.2,
    horizontal_flip=True, brightness_range=(0.5, 1.5))`` semantics: rotation
    uniform in +-40 deg; shear uniform in +-0.2 *degrees* (Keras gives
    shear_range in degrees); zoom independently in x and y in [0.8, 1.2];
    flip left-right with probability 0.5; brightness multiplied by 0.5-1.5;
    borders filled with the nearest pixel (Keras' fill_mode 'nearest').

    Returns
    -------
    imgaug.augmenters.Sequential
    """
    import imgaug.augmenters as iaa

    return iaa.Sequential([
        iaa.Fliplr(0.5),
        iaa.Affine(rotate=(-40, 40), shear=(-0.2, 0.2), scale={"x": (0.8, 1.2), "y": (0.8, 1.2)}, mode="edge"),
        iaa.Multiply((0.5, 1.5)),
    ], name="report_classifier")


def _sequence_class():
    import keras

    class ClassifierSequence(ShuffledBatches, keras.utils.PyDataset):
        """Batches of (preprocessed images, labels) read from DICOMs, for ``fit`` and ``predict``.

        Parameters
        ----------
        paths : sequence of path
            DICOM files.
        labels : sequence of int, optional
            0/1 per path; None for prediction (batches are ``(images,)``).
        name : str
            Backbone name, for the preprocessing.
        image_size : int
            Images are read at ``[image_size, image_size]`` (fast DICOM path).
        batch_size : int
        augment : bool
            Apply :func:`classifier_augmentation` (training only).
        shuffle : bool
            Reshuffle at every epoch.
        preprocessing : {'backbone', 'rescale'}
        seed : int

        Batches
        -------
        images float32 [B, S, S, 3] and labels float32 [B, 1]; the last batch may be short.
        """

        def __init__(self, paths, labels=None, *, name="densenet121", image_size=224, batch_size=16,
                     augment=False, shuffle=False, preprocessing="backbone", seed=0, **kwargs):
            super().__init__(**kwargs)
            _check_name(name)
            self.paths = [Path(p) for p in paths]
            self.labels = None if labels is None else np.asarray(labels, np.float32).reshape(-1)
            if self.labels is not None and len(self.labels) != len(self.paths):
                raise ClassifierError(f"labels: {len(self.labels)} for {len(self.paths)} paths")
            self.name, self.image_size, self.batch_size = name, int(image_size), int(batch_size)
            self.preprocessing, self.shuffle = preprocessing, shuffle
            self._init_order(classifier_augmentation() if augment else None, seed)

        def read(self, indices):
            """uint8 [B, S, S] images of the given path indices (augmented when training)."""
            from .data.dicom import read_dicom

            images = np.stack([read_dicom(self.paths[i], size=self.image_size)[0] for i in indices])
            if self.augmenter is not None:
                images = np.stack(self.augmenter(images=list(images[..., None])))[..., 0]
            return images

        def __getitem__(self, index):
            indices = self.batch_indices(index)
            images = preprocess_images(self.read(indices), self.name, self.preprocessing)
            if self.labels is None:
                return (images,)
            return images, self.labels[indices][:, None]

    return ClassifierSequence


# Keras-dependent classes are built on first use, so that importing this module (the CLI does, for its
# parser) does not import Keras.
_LAZY_CLASSES = {"ClassifierSequence": _sequence_class, "BinaryF1Score": _metric_class}
_BUILT = {}


def _lazy(name):
    if name not in _BUILT:
        _BUILT[name] = _LAZY_CLASSES[name]()
    return _BUILT[name]


def __getattr__(name):
    if name in _LAZY_CLASSES:
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- data
def _records_and_dir(data, image_dir):
    from .data.labels import load_patient_records
    from .data.layout import KaggleLayout

    if isinstance(data, tuple) and len(data) == 2 and image_dir is None:
        data, image_dir = data
    if isinstance(data, dict):
        if image_dir is None:
            raise ClassifierError("records given without image_dir (the folder of <patientId>.dcm files)")
        return data, Path(image_dir)
    if isinstance(data, (list, tuple)):
        if image_dir is None:
            raise ClassifierError("records given without image_dir (the folder of <patientId>.dcm files)")
        return {record.patient_id: record for record in data}, Path(image_dir)
    layout = KaggleLayout.from_dir(data)
    records = load_patient_records(layout.require_labels())
    return records, Path(image_dir) if image_dir is not None else layout.require_train_images()


def patient_images(data, image_dir=None):
    """The labelled patients that have an image, with their DICOM paths.

    Parameters
    ----------
    data : path, dict, list or (records, image_dir)
        A Kaggle-layout data directory (labels CSV + training image folder),
        or ``{patientId: PatientRecord}`` / a list of records with ``image_dir``.
    image_dir : path, optional
        Folder of ``<patientId>.dcm``; default the layout's training images.

    Returns
    -------
    records : dict id -> PatientRecord
        In label order, only the patients whose ``<patientId>.dcm`` exists.
    paths : dict id -> Path

    Notes
    -----
    Patients without a file in ``image_dir`` are left out, and their count is
    logged (the shared sample folder holds 16 of the 26,684 labelled images).

    Raises
    ------
    ClassifierError
        No labelled patient has an image.
    """
    all_records, image_dir = _records_and_dir(data, image_dir)
    paths = {pid: image_dir / f"{pid}.dcm" for pid in all_records}
    records = {pid: record for pid, record in all_records.items() if paths[pid].is_file()}
    if len(records) < len(all_records):
        log.info("%d of %d labelled patients have no image in %s; left out", len(all_records) - len(records),
                 len(all_records), image_dir)
    if not records:
        raise ClassifierError(f"{image_dir}: none of the {len(all_records)} labelled patients has an image "
                              "<patientId>.dcm there")
    return records, {pid: paths[pid] for pid in records}


def labelled_images(data, image_dir=None):
    """Patients with an image: ids, targets and DICOM paths (see :func:`patient_images`).

    Returns
    -------
    ids : list of str
    targets : int64 array [N]
        1 when the patient has a box.
    paths : list of Path
    """
    records, paths = patient_images(data, image_dir)
    ids = list(records)
    return ids, np.asarray([records[i].target for i in ids], np.int64), [paths[i] for i in ids]


def class_weights(targets):
    """Inverse-frequency class weights ``{0: N / (2 N0), 1: N / (2 N1)}``.

    With RSNA's 3.4 negatives per positive this gives about 0.65 and 2.2. When a
    class is absent there is nothing to balance: ``{0: 1.0, 1: 1.0}``.
    """
    targets = np.asarray(targets).reshape(-1)
    counts = [int((targets == label).sum()) for label in (0, 1)]
    if min(counts) == 0:
        return {0: 1.0, 1: 1.0}
    return {label: len(targets) / (2.0 * count) for label, count in zip((0, 1), counts)}


def _split(ids, targets, val_fraction, seed):
    from .data.splits import split_patients

    if not val_fraction:
        return list(range(len(ids))), []
    train_ids, val_ids = split_patients(ids, targets, val_fraction=val_fraction, seed=seed)
    position = {pid: i for i, pid in enumerate(ids)}
    return [position[p] for p in train_ids], [position[p] for p in val_ids]


def train_classifier(data, name="densenet121", *, image_dir=None, model=None, weights="imagenet", epochs=3,
                     batch_size=16, image_size=224, val_fraction=0.3, seed=42, augment=True,
                     class_weighting=True, preprocessing="backbone", learning_rate=1e-3, steps_per_epoch=None,
                     verbose=1):
    """Train a pneumonia classifier with the report's settings.

    Parameters
    ----------
    data : path, dict, list or (records, image_dir)
        See :func:`labelled_images`.
    name : str
        One of ``CLASSIFIER_NAMES``.
    image_dir : path, optional
    model : keras.Model, optional
        Continue training this model instead of building one.
    weights : 'imagenet', None or path
        Initial weights (see :func:`build_classifier`).
    epochs : int
        3 in the report.
    batch_size, image_size : int
    val_fraction : float or None
        Patient-level validation share (the report's 70:30 split is 0.3);
        None or 0 trains on every image.
    seed : int
        Split, shuffling and augmentation seed.
    augment, class_weighting : bool
    preprocessing : {'backbone', 'rescale'}
    learning_rate : float
    steps_per_epoch : int, optional
        Fewer batches per epoch than the whole training set.
    verbose : int
        Keras fit verbosity.

    Returns
    -------
    model : keras.Model
    history : keras.callbacks.History
        ``history.history`` holds loss, accuracy, precision, recall, f1 (and
        ``val_*`` when there is a validation set).
    """
    ids, targets, paths = labelled_images(data, image_dir)
    train_index, val_index = _split(ids, targets, val_fraction, seed)
    if model is None:
        model = build_classifier(name, weights, (image_size, image_size, 3), learning_rate=learning_rate)
    sequence = _lazy("ClassifierSequence")
    common = dict(name=_name_of(model, default=name), image_size=image_size, batch_size=batch_size,
                  preprocessing=preprocessing)
    train_data = sequence([paths[i] for i in train_index], targets[train_index], augment=augment, shuffle=True,
                          seed=seed, **common)
    val_data = sequence([paths[i] for i in val_index], targets[val_index], **common) if val_index else None
    history = model.fit(train_data, validation_data=val_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        class_weight=class_weights(targets[train_index]) if class_weighting else None,
                        verbose=verbose)
    return model, history


def predict_scores(model, paths, *, name=None, batch_size=16, preprocessing="backbone"):
    """Pneumonia probability of each DICOM.

    Parameters
    ----------
    model : keras.Model
        A classifier of :func:`build_classifier` (its input size is used).
    paths : sequence of path
    name : str, optional
        Backbone name; default read from the model's name.
    batch_size : int
    preprocessing : {'backbone', 'rescale'}
        The mode the model was trained with.

    Returns
    -------
    float32 array [N]
    """
    paths = list(paths)
    if not paths:
        return np.zeros(0, np.float32)
    sequence = _lazy("ClassifierSequence")(paths, name=_name_of(model, name), image_size=int(model.input_shape[1]),
                                  batch_size=batch_size, preprocessing=preprocessing)
    scores = [np.asarray(model.predict_on_batch(sequence[i][0])).reshape(-1) for i in range(len(sequence))]
    return np.concatenate(scores).astype(np.float32)


# --------------------------------------------------------------------------- metrics
def _labels_and_scores(y_true, scores):
    y_true = np.asarray(y_true).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(y_true) != len(scores):
        raise ClassifierError(f"y_true has {len(y_true)} values, scores {len(scores)}; expected one score per label")
    if not np.isin(y_true, (0, 1)).all():
        raise ClassifierError("y_true: expected labels 0 and 1 only")
    if not np.isfinite(scores).all():
        raise ClassifierError("scores: expected finite numbers")
    return y_true.astype(np.int64), scores


def _cumulative_counts(y_true, scores):
    """Thresholds (distinct scores, descending) and the TP and FP counts of ``score >= threshold``."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], y_true[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_each]
    false_positives = last_of_each + 1 - true_positives
    return sorted_scores[last_of_each], true_positives, false_positives


def roc_curve(y_true, scores):
    """The ROC curve.

    Parameters
    ----------
    y_true : array-like of 0/1 [N]
    scores : array-like of float [N]

    Returns
    -------
    fpr, tpr : float64 arrays [T + 1]
        False and true positive rates of ``score >= threshold``, starting at (0, 0).
    thresholds : float64 array [T + 1]
        ``inf`` then the distinct scores in descending order.
        Rates are NaN where a class is absent.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    thresholds, tps, fps = _cumulative_counts(y_true, scores)
    positives, negatives = tps[-1] if len(tps) else 0, fps[-1] if len(fps) else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0, tps] / positives
        fpr = np.r_[0, fps] / negatives
    return fpr.astype(np.float64), tpr.astype(np.float64), np.r_[np.inf, thresholds]


def roc_auc(y_true, scores):
    """Area under the ROC curve (trapezoids); NaN when only one class is present.

    Equals the probability that a random positive scores above a random
    negative, ties counting one half.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pr_curve(y_true, scores):
    """Precision and recall of ``score >= threshold`` at each distinct score.

    Returns
    -------
    precision, recall, thresholds : float64 arrays [T]
        Thresholds descending; recall is NaN when there is no positive.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    thresholds, tps, fps = _cumulative_counts(y_true, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tps / (tps[-1] if len(tps) else 0)
    precision = tps / np.maximum(tps + fps, 1)
    return precision.astype(np.float64), recall.astype(np.float64), thresholds


def average_precision(y_true, scores):
    """PR-AUC as average precision: ``sum_k (R_k - R_{k-1}) P_k`` over descending thresholds, ``R_0 = 0``.

    NaN when there is no positive.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    if not y_true.any():
        return float("nan")
    precision, recall, _ = pr_curve(y_true, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def confusion_matrix(y_true, scores, threshold=0.5):
    """``[[TN, FP], [FN, TP]]`` (int64 [2, 2]) of ``score >= threshold``: rows truth, columns prediction."""
    y_true, scores = _labels_and_scores(y_true, scores)
    predicted = (scores >= threshold).astype(np.int64)
    matrix = np.zeros((2, 2), np.int64)
    np.add.at(matrix, (y_true, predicted), 1)
    return matrix


def best_f1_threshold(y_true, scores):
    """The score threshold with the best F1 of ``score >= threshold``.

    Returns
    -------
    (threshold, f1) : (float, float)
        The highest such threshold on ties; ``(nan, 0.0)`` without positives.
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    thresholds, tps, fps = _cumulative_counts(y_true, scores)
    positives = int(y_true.sum())
    if positives == 0:
        return float("nan"), 0.0
    f1 = 2 * tps / (2 * tps + fps + (positives - tps))
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return float(thresholds[best]), float(f1[best])


def _f1_from_matrix(matrix):
    (_, fp), (fn, tp) = matrix
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def _save_curves(y_true, scores, metrics, out_dir):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figures = {}
    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = pr_curve(y_true, scores)
    for key, (x, y, xlabel, ylabel, title, diagonal) in {
        "roc": (fpr, tpr, "false positive rate", "true positive rate", f"ROC (AUC {metrics['roc_auc']:.3f})", True),
        "pr": (recall, precision, "recall", "precision", f"Precision-recall (AP {metrics['pr_auc']:.3f})", False),
    }.items():
        figure, axis = plt.subplots(figsize=(5, 5))
        axis.plot(x, y, drawstyle="steps-post" if key == "pr" else "default")
        if diagonal:
            axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
        axis.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figures[key] = str(Path(out_dir) / f"{key}_curve.png")
        figure.savefig(figures[key], dpi=100)
        plt.close(figure)
    return figures


def classification_metrics(y_true, scores, *, threshold=0.5, out_dir=None):
    """Everything the report's classifier table needs, from labels and scores.

    Parameters
    ----------
    y_true : array-like of 0/1 [N]
    scores : array-like of float [N]
    threshold : float
        Threshold of the fixed-threshold metrics (``score >= threshold``).
    out_dir : path, optional
        When given: ``roc_curve.png``, ``pr_curve.png`` and ``metrics.json``.

    Returns
    -------
    dict
        ``n``, ``positives``, ``roc_auc``, ``pr_auc``, ``threshold``,
        ``confusion_matrix`` ([[TN, FP], [FN, TP]] as lists), ``accuracy``,
        ``precision``, ``recall``, ``f1`` (at ``threshold``), ``best_threshold``,
        ``best_f1``, ``best_confusion_matrix``; with ``out_dir`` also ``figures``
        and ``metrics_json``. Undefined values are NaN (null in the JSON file).
    """
    y_true, scores = _labels_and_scores(y_true, scores)
    matrix = confusion_matrix(y_true, scores, threshold)
    (tn, fp), (fn, tp) = matrix
    best_threshold, best_f1 = best_f1_threshold(y_true, scores)
    metrics = {
        "n": int(len(y_true)), "positives": int(y_true.sum()),
        "roc_auc": roc_auc(y_true, scores), "pr_auc": average_precision(y_true, scores),
        "threshold": float(threshold), "confusion_matrix": matrix.tolist(),
        "accuracy": float((tp + tn) / len(y_true)) if len(y_true) else float("nan"),
        "precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
        "recall": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "f1": _f1_from_matrix(matrix),
        "best_threshold": best_threshold, "best_f1": best_f1,
        "best_confusion_matrix": (confusion_matrix(y_true, scores, best_threshold).tolist()
                                  if np.isfinite(best_threshold) else None),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics["figures"] = _save_curves(y_true, scores, metrics, out_dir)
        metrics["metrics_json"] = str(out_dir / "metrics.json")
        from ._io import write_json

        write_json(metrics["metrics_json"], metrics)
    return metrics


def evaluate_classifier(model, data, image_dir=None, *, name=None, split="validation", val_fraction=0.3, seed=42,
                        batch_size=16, preprocessing="backbone", threshold=0.5, out_dir=None):
    """Score a classifier on the validation split (or all images) of a data set.

    Parameters
    ----------
    model : keras.Model
    data, image_dir
        As :func:`train_classifier`.
    name : str, optional
        Backbone name; default read from the model's name.
    split : {'validation', 'all'}
        'validation' rebuilds :func:`train_classifier`'s split from
        ``val_fraction`` and ``seed`` (give the values used in training).
    val_fraction : float
    seed : int
    batch_size : int
    preprocessing : {'backbone', 'rescale'}
    threshold : float
    out_dir : path, optional
        Figures and metrics.json (see :func:`classification_metrics`).

    Returns
    -------
    dict
        :func:`classification_metrics`' dict plus ``patient_ids`` and ``scores``
        (lists, in evaluation order).
    """
    ids, targets, paths = labelled_images(data, image_dir)
    if split == "validation":
        _, index = _split(ids, targets, val_fraction, seed)
    elif split == "all":
        index = list(range(len(ids)))
    else:
        raise ClassifierError(f"split {split!r}: expected 'validation' or 'all'")
    scores = predict_scores(model, [paths[i] for i in index], name=name, batch_size=batch_size,
                            preprocessing=preprocessing)
    metrics = classification_metrics(targets[index], scores, threshold=threshold, out_dir=out_dir)
    metrics["patient_ids"] = [ids[i] for i in index]
    metrics["scores"] = scores.tolist()
    return metrics


# --------------------------------------------------------------------------- command line
def _cmd_train(args):
    model, history = train_classifier(
        args.data, args.name, weights=None if args.weights == "none" else args.weights, epochs=args.epochs,
        batch_size=args.batch_size, image_size=args.image_size, val_fraction=args.val_fraction or None,
        seed=args.seed, augment=not args.no_augment, class_weighting=not args.no_class_weights,
        preprocessing=args.preprocessing, learning_rate=args.learning_rate, steps_per_epoch=args.steps_per_epoch,
        verbose=0 if args.quiet else 1)
    print(save_trained_model(model, history, args.out))
    return 0


def _cmd_evaluate(args):
    model = load_model_for_prediction(args.model)
    metrics = evaluate_classifier(model, args.data, split=args.split, val_fraction=args.val_fraction,
                                  seed=args.seed, batch_size=args.batch_size, preprocessing=args.preprocessing,
                                  threshold=args.threshold, out_dir=args.out)
    shown = {k: v for k, v in metrics.items() if k not in ("patient_ids", "scores", "figures")}
    print(json.dumps(shown, indent=2, default=str))
    return 0


def add_subcommands(subparsers):
    """Register ``classifier-train`` and ``classifier-evaluate`` on an argparse subparsers object.

    Each parser sets ``func`` to a function of the parsed arguments returning
    the exit code (0 on success); errors are raised as ``ValueError`` subclasses
    for the caller to print and turn into a non-zero status.
    """
    train = subparsers.add_parser(
        "classifier-train", help="train a VGG19 / ResNet50 / DenseNet121 / CheXNet pneumonia classifier",
        description="Train a pneumonia (Target) classifier with the report's settings: 224x224 input, Adam 1e-3, "
                    "binary cross-entropy, 3 epochs, 70:30 patient split, class weights, augmentation. Saves a "
                    ".keras model.")
    train.add_argument("--data", required=True, help="Kaggle-layout data directory")
    train.add_argument("--name", choices=CLASSIFIER_NAMES, default="densenet121",
                       help="backbone (default: %(default)s)")
    train.add_argument("--weights", default="imagenet",
                       help="imagenet (default; chexnet: the registry's CheXNet file), none, or a weights file")
    train.add_argument("--out", default="classifier.keras", help="model file to write (default: %(default)s)")
    train.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    train.add_argument("--batch-size", type=int, default=16, help="batch size (default: 16)")
    train.add_argument("--image-size", type=int, default=224, help="input side (default: 224)")
    train.add_argument("--val-fraction", type=float, default=0.3, help="validation share, 0 for none (default: 0.3)")
    train.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default: all)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    train.add_argument("--preprocessing", choices=["backbone", "rescale"], default="backbone",
                       help="backbone preprocess_input (default) or the report's 1/255 rescale")
    train.add_argument("--no-augment", action="store_true", help="no augmentation")
    train.add_argument("--no-class-weights", action="store_true", help="no class weighting")
    train.add_argument("--seed", type=int, default=42, help="split and shuffling seed (default: 42)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(func=_cmd_train)

    evaluate = subparsers.add_parser(
        "classifier-evaluate", help="ROC-AUC, PR-AUC, confusion matrix and best-F1 threshold of a classifier",
        description="Score a saved classifier on the validation split of --data (same --val-fraction and --seed "
                    "as in training) and write roc_curve.png, pr_curve.png and metrics.json to --out.")
    evaluate.add_argument("--model", required=True, help="a .keras model written by classifier-train")
    evaluate.add_argument("--data", required=True, help="Kaggle-layout data directory")
    evaluate.add_argument("--out", default="classifier_evaluation", help="output folder (default: %(default)s)")
    evaluate.add_argument("--split", choices=["validation", "all"], default="validation",
                          help="images to score (default: validation)")
    evaluate.add_argument("--val-fraction", type=float, default=0.3, help="validation share used in training")
    evaluate.add_argument("--seed", type=int, default=42, help="split seed used in training (default: 42)")
    evaluate.add_argument("--batch-size", type=int, default=16, help="batch size (default: 16)")
    evaluate.add_argument("--threshold", type=float, default=0.5, help="threshold of the fixed-threshold metrics")
    evaluate.add_argument("--preprocessing", choices=["backbone", "rescale"], default="backbone",
                          help="the preprocessing used in training")
    evaluate.set_defaults(func=_cmd_evaluate)
    return subparsers
