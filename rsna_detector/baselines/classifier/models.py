"""The classifier models: a ``keras.applications`` backbone, global average pooling, one sigmoid unit.

Compiled as the report: Adam 1e-3, binary cross-entropy, accuracy, precision,
recall and F1 (:class:`BinaryF1Score`), all at the score threshold 0.5.
"""
from __future__ import annotations

import keras
from keras import ops

from .chexnet import load_chexnet_weights, resolve_weights
from .settings import DEFAULT_INPUT_SHAPE, MODEL_SUFFIX, ClassifierError, check_name

__all__ = ["build_classifier", "compile_classifier", "BinaryF1Score"]

_APPLICATION = {"vgg19": "VGG19", "resnet50": "ResNet50", "densenet121": "DenseNet121", "chexnet": "DenseNet121"}


def _backbone(name, input_shape, keras_weights):
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
    check_name(name)
    keras_weights, weights_file = resolve_weights(name, weights)
    backbone = _backbone(name, input_shape, keras_weights)
    if weights_file is not None:
        if name == "chexnet":
            load_chexnet_weights(backbone, weights_file)
        else:
            backbone.load_weights(str(weights_file))
    output = keras.layers.Dense(1, activation="sigmoid", name="pneumonia")(backbone.output)
    model = keras.Model(backbone.input, output, name=f"{name}{MODEL_SUFFIX}")
    if compile:
        compile_classifier(model, learning_rate, run_eagerly=run_eagerly)
    return model


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


def compile_classifier(model, learning_rate=1e-3, *, run_eagerly=False):
    """Compile as the report: Adam, binary cross-entropy, accuracy, precision, recall, F1 (threshold 0.5)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.Precision(name="precision"),
                 keras.metrics.Recall(name="recall"), BinaryF1Score(0.5, name="f1")],
        run_eagerly=run_eagerly,
    )
    return model
