"""Training numbers as matterport's: gradient clipping, batch normalisation, trainable layers.

* matterport's SGD has Keras 2's ``clipnorm``, which scales *all* gradients by one
  factor so that their global norm is at most ``GRADIENT_CLIP_NORM`` (Keras 3's
  ``global_clipnorm``; Keras 3's ``clipnorm`` clips each weight on its own).
* ``TRAIN_BN = False``: matterport calls BN with ``training=False`` (statistics
  fixed) while ``set_trainable`` makes every layer matching the regex trainable, BN
  included, so gamma and beta train. ``FREEZE_BN_AFFINE`` freezes them too.
* Keras 2's ``trainable`` flag never changed how BN normalises: a frozen BN layer
  called in training mode uses the batch's statistics (Keras 3's switches to the
  moving ones); :class:`~rsna_detector.mrcnn.layers.backbone.BatchNorm` keeps Keras 2's.
* the trainable weights of the presets are those matterport's ``set_trainable``
  selects: its own ``layer_regex`` (read from its ``MaskRCNN.train``) applied to
  our layer names, BN layers included.
"""
import ast

import keras
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn.input import pipeline
from rsna_detector.mrcnn.layers import training_graph
from rsna_detector.mrcnn.layers.backbone import BatchNorm
from rsna_detector.mrcnn.train import loop
from tests import matterport_oracle as oracle
from tests.helpers import BlobDataset, tiny_config

MOVING = ("moving_mean", "moving_variance")


# ----------------------------------------------------------------------------
# gradient clipping
# ----------------------------------------------------------------------------

def _toy_model():
    inputs = keras.Input((2,))
    outputs = keras.layers.Dense(1, name="toy")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("toy").kernel.assign(np.zeros((2, 1), np.float32))
    model.get_layer("toy").bias.assign(np.zeros((1,), np.float32))
    return model


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_gradient_clipping_is_keras2_global_norm(momentum):
    # gradients: kernel (3, 0) (norm 3), bias (4,) (norm 4); global norm 5 > clip 1.
    # Keras 2 clipnorm (global): every gradient times 1/5 -> (0.6, 0), (0.8,).
    # Per-weight clipping would give (1, 0), (1,): a different step.
    model = _toy_model()
    loop.compile_training_model(model, 0.1, tiny_config(GRADIENT_CLIP_NORM=1.0, LEARNING_MOMENTUM=momentum))
    assert model.optimizer.global_clipnorm == 1.0 and model.optimizer.clipnorm is None
    kernel, bias = model.get_layer("toy").kernel, model.get_layer("toy").bias
    gradients = [tf.constant([[3.0], [0.0]]), tf.constant([4.0])]
    model.optimizer.apply(gradients, [kernel, bias])
    np.testing.assert_allclose(kernel.numpy()[:, 0], [-0.06, 0.0], rtol=1e-6)
    np.testing.assert_allclose(bias.numpy(), [-0.08], rtol=1e-6)
    # a second step: Keras 2 SGD momentum, v = m * v - lr * g, w += v
    model.optimizer.apply(gradients, [kernel, bias])
    np.testing.assert_allclose(bias.numpy(), [-0.08 + (momentum * -0.08 - 0.08)], rtol=1e-6)


def test_gradients_below_the_clip_norm_are_unchanged():
    model = _toy_model()
    loop.compile_training_model(model, 0.1, tiny_config(GRADIENT_CLIP_NORM=5.0, LEARNING_MOMENTUM=0.0))
    kernel, bias = model.get_layer("toy").kernel, model.get_layer("toy").bias
    model.optimizer.apply([tf.constant([[3.0], [0.0]]), tf.constant([3.9])], [kernel, bias])
    np.testing.assert_allclose(kernel.numpy()[:, 0], [-0.3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(bias.numpy(), [-0.39], rtol=1e-6)


# ----------------------------------------------------------------------------
# batch normalisation
# ----------------------------------------------------------------------------

def _bn_values(model):
    values = {}
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            values[layer.name] = {w.name: w.numpy().copy() for w in layer.weights}
    return values


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _one_training_step(config):
    model = training_graph.build_training_model(config)
    loop.set_trainable(model, "all", train_bn=config.TRAIN_BN)
    loop.compile_training_model(model, 0.05, config)
    batch = pipeline.TrainingBatches(BlobDataset(2, 0), config, shuffle=False, batch_size=2).batch(0)
    before = _bn_values(model)
    kernel_before = model.get_layer("mrcnn_class_logits").kernel.numpy().copy()
    model.train_step((tuple(batch),))
    assert np.any(model.get_layer("mrcnn_class_logits").kernel.numpy() != kernel_before)
    return model, before, _bn_values(model)


def test_frozen_bn_statistics_with_trained_gamma_and_beta():
    # TRAIN_BN False, layers 'all', FREEZE_BN_AFFINE False (matterport)
    config = tiny_config(TRAIN_BN=False, IMAGES_PER_GPU=2)
    model, before, after = _one_training_step(config)
    trainable = {w.path for w in model.trainable_weights}
    assert len(before) >= 8
    for name in before:
        for weight in MOVING:
            np.testing.assert_array_equal(after[name][weight], before[name][weight], err_msg=f"{name} {weight}")
        layer = next(layer for layer in _all_layers(model) if layer.name == name)
        assert layer.gamma.path in trainable and layer.beta.path in trainable
    # the backbone's and the box head's BN always receive a gradient: they moved
    for name in [n for n in before if n.startswith(("tiny_bn", "mrcnn_class_bn"))]:
        assert np.any(after[name]["gamma"] != before[name]["gamma"]), name
        assert np.any(after[name]["beta"] != before[name]["beta"]), name


def test_freeze_bn_affine_freezes_gamma_and_beta_too():
    config = tiny_config(TRAIN_BN=False, IMAGES_PER_GPU=2, FREEZE_BN_AFFINE=True)
    model, before, after = _one_training_step(config)
    trainable = {w.path for w in model.trainable_weights}
    for name in before:
        for weight, value in before[name].items():
            np.testing.assert_array_equal(after[name][weight], value, err_msg=f"{name} {weight}")
        layer = next(layer for layer in _all_layers(model) if layer.name == name)
        assert layer.gamma.path not in trainable


def _bn_layer(train_bn, trainable, channels=3):
    layer = BatchNorm(train_bn=train_bn, name="bn_test")
    layer.build((None, 5, 5, channels))
    layer.gamma.assign([1.5, 0.5, 2.0])
    layer.beta.assign([0.1, -0.2, 0.3])
    layer.moving_mean.assign([1.0, 2.0, 3.0])
    layer.moving_variance.assign([4.0, 0.25, 9.0])
    layer.trainable = trainable
    return layer


def _reference(x, mean, variance, layer):
    mean, variance = np.asarray(mean, np.float32), np.asarray(variance, np.float32)
    return (x - mean) / np.sqrt(variance + layer.epsilon) * layer.gamma.numpy() + layer.beta.numpy()


X = np.random.default_rng(0).normal(2.0, 3.0, (4, 5, 5, 3)).astype(np.float32)
BATCH_MEAN, BATCH_VARIANCE = X.mean(axis=(0, 1, 2)), X.var(axis=(0, 1, 2))


@pytest.mark.parametrize("trainable", [True, False])
def test_batch_norm_fixed_statistics_when_train_bn_false(trainable):
    layer = _bn_layer(False, trainable)
    got = layer(tf.constant(X), training=True).numpy()
    np.testing.assert_allclose(got, _reference(X, [1.0, 2.0, 3.0], [4.0, 0.25, 9.0], layer), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, 2.0, 3.0])


def test_frozen_batch_norm_in_training_mode_uses_batch_statistics_as_keras2():
    layer = _bn_layer(True, trainable=False)
    got = layer(tf.constant(X)).numpy()
    np.testing.assert_allclose(got, _reference(X, BATCH_MEAN, BATCH_VARIANCE, layer), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, 2.0, 3.0])  # not updated (frozen)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), [4.0, 0.25, 9.0])


def test_trainable_batch_norm_in_training_mode_updates_its_statistics():
    layer = _bn_layer(True, trainable=True)
    got = layer(tf.constant(X)).numpy()
    np.testing.assert_allclose(got, _reference(X, BATCH_MEAN, BATCH_VARIANCE, layer), rtol=1e-4, atol=1e-4)
    momentum = layer.momentum
    np.testing.assert_allclose(layer.moving_mean.numpy(), momentum * np.array([1.0, 2.0, 3.0])
                               + (1 - momentum) * BATCH_MEAN, rtol=1e-5)


# ----------------------------------------------------------------------------
# trainable weights of the presets
# ----------------------------------------------------------------------------

def matterport_layer_regex():
    """The ``layer_regex`` dict literal of matterport's ``MaskRCNN.train``, read from its source."""
    source = (oracle.require_matterport() / "model.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "train":
            for statement in ast.walk(node):
                if (isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name)
                        and statement.targets[0].id == "layer_regex"):
                    return ast.literal_eval(statement.value)
    raise AssertionError("layer_regex not found in matterport's MaskRCNN.train")


def matterport_selection(model, regex, freeze_bn=False):
    """Paths of the weights matterport's set_trainable makes trainable: every weight but the BN
    statistics of each layer (nested models entered) whose name fully matches ``regex``."""
    import re

    selected = set()
    for layer in _all_layers(model):
        if not layer.weights or not re.fullmatch(regex, layer.name):
            continue
        if freeze_bn and isinstance(layer, keras.layers.BatchNormalization):
            continue
        selected.update(w.path for w in layer.weights if w.name not in MOVING)
    return selected


@pytest.fixture(scope="module")
def resnet_model():
    config = tiny_config(BACKBONE="resnet50", IMAGES_PER_GPU=1, TRAIN_BN=False)
    return training_graph.build_training_model(config)


def test_layer_presets_are_matterports():
    assert loop.LAYER_PRESETS == matterport_layer_regex()


@pytest.mark.parametrize("preset", ["heads", "3+", "4+", "5+", "all"])
def test_preset_trainable_weights_as_matterport(resnet_model, preset):
    regex = matterport_layer_regex()[preset]
    names = loop.set_trainable(resnet_model, preset, train_bn=False)
    got = {w.path for w in resnet_model.trainable_weights}
    expected = matterport_selection(resnet_model, regex)
    assert got == expected
    assert any(name.startswith("bn") for name in names) == (preset != "heads")
    assert {"mrcnn_class_bn1", "mrcnn_mask_bn4"} <= set(names)
    # FREEZE_BN_AFFINE: the same selection without the BN layers
    loop.set_trainable(resnet_model, preset, train_bn=False, freeze_bn_affine=True)
    assert {w.path for w in resnet_model.trainable_weights} == matterport_selection(resnet_model, regex, True)
