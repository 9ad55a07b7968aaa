"""``BatchNormFoldingConv2D``: a frozen BN folded into the convolution before it, in training only.

The folded training call must give what the convolution followed by the BN layer gives (outputs
and every gradient, up to float rounding), and every other call must be exactly the plain pair.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn.layers import training_graph
from rsna_detector.mrcnn.layers.backbone import BatchNorm, resnet_graph
from rsna_detector.mrcnn.layers.bn_folding import BatchNormFoldingConv2D, is_folded_output
from tests.mrcnn.pinned import scenario

RNG = np.random.default_rng(7)
X = tf.constant(RNG.normal(size=(2, 9, 7, 5)).astype(np.float32))


def _pair(train_bn=False, strides=1, use_bias=True, dtype=None, fold=True):
    """A folding convolution and its BN layer with non-trivial weights and statistics; also the plain conv."""
    conv = BatchNormFoldingConv2D(4, 3, strides=strides, padding="same", use_bias=use_bias, dtype=dtype)
    plain = keras.layers.Conv2D(4, 3, strides=strides, padding="same", use_bias=use_bias, dtype=dtype)
    batch_norm = BatchNorm(train_bn=train_bn, dtype=dtype)
    if fold:
        conv.fold(batch_norm)
    batch_norm(conv(X))  # build
    plain(X)
    conv.set_weights([RNG.normal(size=w.shape).astype(np.float32) for w in conv.get_weights()])
    plain.set_weights(conv.get_weights())
    gamma, beta = RNG.uniform(0.5, 2.0, 4), RNG.normal(size=4)
    mean, variance = RNG.normal(size=4), RNG.uniform(0.2, 3.0, 4)
    batch_norm.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, variance)])
    return conv, batch_norm, plain


def _output_and_gradients(conv, batch_norm, training):
    cotangent = tf.constant(np.random.default_rng(3).normal(size=conv.compute_output_shape(X.shape)), tf.float32)
    variables = conv.trainable_weights + batch_norm.trainable_weights
    with tf.GradientTape() as tape:
        tape.watch(X)
        y = batch_norm(conv(X, training=training), training=training)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * cotangent)
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [X] + variables)]


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("use_bias", [True, False])
def test_folded_training_call_equals_the_convolution_then_the_frozen_bn(strides, use_bias):
    conv, batch_norm, _ = _pair(strides=strides, use_bias=use_bias)
    folded = _output_and_gradients(conv, batch_norm, training=True)
    conv.fold(None)
    unfolded = _output_and_gradients(conv, batch_norm, training=True)
    names = ["output", "input", "kernel"] + (["bias"] if use_bias else []) + ["gamma", "beta"]
    assert len(folded) == len(names)
    for name, got, expected in zip(names, folded, unfolded, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max(), err_msg=name)
    # the frozen statistics neither train nor change
    assert len(batch_norm.trainable_weights) == 2


def test_the_training_call_of_the_convolution_already_holds_the_normalised_values():
    conv, batch_norm, plain = _pair()
    conv_output = conv(X, training=True)
    assert is_folded_output(conv_output, batch_norm)
    normalised = batch_norm(plain(X), training=True).numpy()
    np.testing.assert_allclose(conv_output.numpy(), normalised, rtol=1e-5, atol=1e-5)
    # and the BN layer passes it through unchanged
    assert batch_norm(conv_output, training=True) is conv_output


def test_outside_training_the_pair_is_exactly_the_plain_convolution_and_bn():
    conv, batch_norm, plain = _pair()
    for training in (False, None):
        output = conv(X, training=training)
        assert not is_folded_output(output, batch_norm)
        np.testing.assert_array_equal(output.numpy(), plain(X).numpy())
        np.testing.assert_array_equal(batch_norm(output, training=training).numpy(),
                                      batch_norm(plain(X), training=training).numpy())


@pytest.mark.parametrize("train_bn", [True, None])
def test_no_folding_when_the_bn_uses_batch_statistics(train_bn):
    conv, batch_norm, plain = _pair(train_bn=train_bn)
    output = conv(X, training=True)
    assert not is_folded_output(output, batch_norm)
    np.testing.assert_array_equal(output.numpy(), plain(X).numpy())
    statistics = batch_norm(output, training=True).numpy()
    # batch statistics: every channel has mean beta over the batch and the image
    np.testing.assert_allclose(statistics.mean(axis=(0, 1, 2)), batch_norm.beta.numpy(), atol=1e-4)


def test_no_folding_under_mixed_precision():
    conv, batch_norm, _ = _pair(dtype="mixed_float16")
    assert not is_folded_output(conv(X, training=True), batch_norm)


def test_a_folded_output_given_to_another_bn_layer_is_normalised_by_it():
    conv, batch_norm, _ = _pair()
    _, other, _ = _pair()
    folded = conv(X, training=True)
    assert other(folded, training=True) is not folded
    np.testing.assert_allclose(other(folded, training=True).numpy(), other(folded + 0.0, training=True).numpy())


def test_the_bn_weights_stay_the_bn_layers_own():
    conv, batch_norm, _ = _pair()
    assert [w.path.split("/")[-1] for w in conv.weights] == ["kernel", "bias"]
    model_input = keras.Input((9, 7, 5))
    model = keras.Model(model_input, batch_norm(conv(model_input)))
    assert len(model.weights) == 2 + 4
    assert len({id(w) for w in model.weights}) == len(model.weights)
    config = conv.get_config()
    assert BatchNormFoldingConv2D.from_config(config).get_config() == config


def test_resnet_keeps_matterport_names_and_folds_every_bn_into_its_convolution():
    image = keras.Input((64, 64, 3))
    model = keras.Model(image, resnet_graph(image, "resnet50", stage5=True, train_bn=False)[4])
    conv = model.get_layer("res2a_branch2a")
    assert isinstance(conv, BatchNormFoldingConv2D)
    assert conv._folded_batch_norm is model.get_layer("bn2a_branch2a")
    convolutions = [layer for layer in model.layers if isinstance(layer, BatchNormFoldingConv2D)]
    batch_norms = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    assert len(convolutions) == len(batch_norms) == 53
    assert {id(c._folded_batch_norm) for c in convolutions} == {id(b) for b in batch_norms}


def _given_rois(config, seed=0):
    """``[batch, POST_NMS_ROIS_TRAINING, (y1, x1, y2, x2)]`` pixel ROIs: each GT box moved by 2 px, then random boxes."""
    rng = np.random.default_rng(seed)
    gt_boxes = scenario.training_inputs("four_scales")[5]
    rois = np.zeros((len(gt_boxes), config.POST_NMS_ROIS_TRAINING, 4), np.float32)
    for image, boxes in enumerate(gt_boxes):
        real = boxes[np.any(boxes != 0, axis=1)] + 2.0
        corners = rng.uniform(0, scenario.IMAGE_SIZE - 64, (len(rois[image]) - len(real), 2))
        sizes = rng.uniform(8, 64, corners.shape)
        rois[image] = np.concatenate([real, np.concatenate([corners, corners + sizes], axis=1)])
    return rois


@pytest.fixture
def deterministic_ops():
    """TensorFlow's deterministic kernels for one test.

    The CPU kernel of ``CropAndResizeGradImage`` (the ROI align's gradient to the feature maps)
    accumulates from several threads without synchronisation unless op determinism is on: two
    identical calls' feature-map gradients then differ by up to 10% of their largest value
    (tensorflow/tensorflow#42033), which would hide what this file compares.
    """
    from tensorflow.python.framework import config as tf_config

    tf.config.experimental.enable_op_determinism()
    yield
    tf_config.disable_op_determinism()


def test_the_training_step_is_the_same_with_and_without_folding(monkeypatch, deterministic_ops):
    """Losses and gradients of a whole training step (tiny backbone, frozen BN) match the unfolded step.

    The ROIs are given (``USE_RPN_ROIS = False``): with random weights the RPN's scores are
    near-ties that rounding alone reorders, and other proposals would get sampled; the kernels are
    the deterministic ones (:func:`deterministic_ops`). Up to rounding:
    the losses within 1e-5; the gradients within 2e-3 of each variable's largest (the random-weight
    mask head's gradients move by up to 4e-4 of their largest when the unfolded backbone's outputs
    are perturbed by 1e-7 relative noise; folding moves them by up to 4e-4, measured).
    """
    config = scenario.config("four_scales")
    assert config.TRAIN_BN is False
    config.USE_RPN_ROIS = False
    inputs = [tf.constant(a) for a in scenario.training_inputs("four_scales")] + [tf.constant(_given_rois(config))]
    folded_calls = []
    original = BatchNormFoldingConv2D._folding_applies
    monkeypatch.setattr(BatchNormFoldingConv2D, "_folding_applies",
                        lambda self: folded_calls.append(self.name) or original(self))
    with scenario.fixed_roi_sampling():
        model = training_graph.build_training_model(config)
        scenario.set_fixed_weights(model)

        def losses_and_gradients():
            with tf.GradientTape() as tape:
                total, _ = model._objective(inputs, training=True)
            return [total.numpy()] + [g.numpy() for g in tape.gradient(total, model.trainable_variables)]

        folded = losses_and_gradients()
        assert len(set(folded_calls)) == 5 + 4  # the tiny backbone's stem and four stages, the mask head
        monkeypatch.setattr(BatchNormFoldingConv2D, "_folding_applies", lambda self: False)
        unfolded = losses_and_gradients()
    np.testing.assert_allclose(folded[0], unfolded[0], rtol=1e-5)
    assert len(folded) == len(model.trainable_variables) + 1
    for variable, got, expected in zip(model.trainable_variables, folded[1:], unfolded[1:], strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3 * max(np.abs(expected).max(), 1e-3),
                                   err_msg=variable.path)
