"""The shortcuts of the speed work (issue 12) compute what the plain path computes.

* ``GatherRealRois`` / ``ScatterRealRois``: a head on the real ROI rows only; when no row is
  padding the rows are reshaped instead of copied, with or without the zero row.
* ``KeepPositiveRois`` and the training mask head on positive ROIs only (frozen BN statistics).
* ``SparseGradientConv2D``: the RPN convolution's gradients from the cells that have one.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.mrcnn.layers import training_graph
from rsna_detector.mrcnn.layers.heads import GatherRealRois, ScatterRealRois, build_fpn_mask_graph
from rsna_detector.mrcnn.layers.sparse_conv import SPARSE_GRADIENT_MAX_DENSITY, SparseGradientConv2D
from rsna_detector.mrcnn.layers.training_graph import KeepPositiveRois
from tests.mrcnn.pinned import scenario

ROIS_WITH_PADDING = np.array([[[0.1, 0.1, 0.5, 0.5], [0, 0, 0, 0], [0.2, 0.3, 0.4, 0.9]],
                              [[0, 0, 0, 0], [0.5, 0.5, 0.9, 0.6], [0, 0, 0, 0]]], np.float32)
ROIS_ALL_REAL = np.array([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.4, 0.9]],
                          [[0.5, 0.5, 0.9, 0.6], [0.0, 0.0, 0.2, 0.2]]], np.float32)


def _features(rois):
    batch, count = rois.shape[:2]
    return np.arange(batch * count * 2 * 3, dtype=np.float32).reshape(batch, count, 2, 3) + 1.0


@pytest.mark.parametrize("keep_zero_row", [False, True])
def test_gather_with_padding_takes_the_real_rows_then_a_zero_row(keep_zero_row):
    x = _features(ROIS_WITH_PADDING)
    rows = GatherRealRois(keep_zero_row=keep_zero_row)([x, ROIS_WITH_PADDING]).numpy()
    np.testing.assert_array_equal(rows, np.stack([x[0, 0], x[0, 2], x[1, 1], np.zeros((2, 3), np.float32)]))


def test_gather_without_padding_is_every_row_in_order():
    x = _features(ROIS_ALL_REAL)
    rows = GatherRealRois()([x, ROIS_ALL_REAL]).numpy()
    np.testing.assert_array_equal(rows, x.reshape(4, 2, 3))
    with_zero_row = GatherRealRois(keep_zero_row=True)([x, ROIS_ALL_REAL]).numpy()
    np.testing.assert_array_equal(with_zero_row, np.concatenate([x.reshape(4, 2, 3), np.zeros((1, 2, 3))]))


@pytest.mark.parametrize("rois", [ROIS_WITH_PADDING, ROIS_ALL_REAL], ids=["padding", "all_real"])
@pytest.mark.parametrize("keep_zero_row", [False, True])
def test_scatter_puts_rows_back_with_zeros_on_padding(rois, keep_zero_row):
    x = _features(rois)
    rows = GatherRealRois(keep_zero_row=keep_zero_row)([x, rois])
    back = ScatterRealRois(target_shape=(6,))([rows * 2.0, rois])
    real = np.any(rois != 0, axis=-1)
    expected = np.where(real[..., None], 2.0 * x.reshape(x.shape[0], x.shape[1], 6), 0.0)
    assert back.shape == expected.shape
    np.testing.assert_array_equal(back.numpy(), expected)


def test_gather_and_scatter_keep_the_static_shape_inside_a_graph():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 2, 3]), tf.TensorSpec([None, None, 4])])
    def round_trip(x, rois):
        rows = GatherRealRois()([x, rois])
        assert rows.shape.as_list() == [None, 2, 3]
        back = ScatterRealRois()([rows, rois])
        assert back.shape.as_list() == [None, None, 2, 3]
        return back

    x = _features(ROIS_WITH_PADDING)
    np.testing.assert_array_equal(round_trip(x, ROIS_WITH_PADDING).numpy()[0, 2], x[0, 2])


def test_gather_config_round_trip():
    layer = GatherRealRois(keep_zero_row=True, name="g")
    assert GatherRealRois.from_config(layer.get_config()).keep_zero_row is True


def test_keep_positive_rois_zeroes_the_other_rows():
    rois = np.arange(1, 2 * 3 * 4 + 1, dtype=np.float32).reshape(2, 3, 4)
    class_ids = np.array([[1, 0, 2, 0], [0, 0, 0, 0]], np.int32)  # more rows than rois, as the targets give
    kept = KeepPositiveRois()([rois, class_ids]).numpy()
    np.testing.assert_array_equal(kept[0, 0], rois[0, 0])
    np.testing.assert_array_equal(kept[0, 2], rois[0, 2])
    assert not kept[0, 1].any() and not kept[1].any()


def test_training_mask_head_runs_on_positive_rois_only():
    """Frozen BN: mrcnn_mask is zero on non-positive rows, and equal to the full head's on positive ones."""
    config = scenario.config("five_scales")
    inputs = [tf.constant(a) for a in scenario.training_inputs("five_scales")]
    with scenario.fixed_roi_sampling():
        model = training_graph.build_training_model(config)
        scenario.set_fixed_weights(model)
        probe = keras.Model(model.inputs, [model.get_layer("proposal_targets").output[1],
                                           model.get_layer("positive_rois").output, model.outputs[6]])
        class_ids, rois, masks = [t.numpy() for t in probe(inputs, training=True)]
    positive = class_ids[:, :masks.shape[1]] > 0
    assert positive.any() and (~positive).any()
    assert not masks[~positive].any()
    # The same mask layers on every row (the plain fold path) give the positive rows' masks.
    feature_names = ["fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5"]
    features = keras.Model(model.inputs, [model.get_layer(n).output for n in feature_names])(inputs, training=True)
    roi_input = keras.Input((rois.shape[1], 4))
    meta_input = keras.Input((config.IMAGE_META_SIZE,))
    map_inputs = [keras.Input(tuple(f.shape[1:])) for f in features]
    full = keras.Model([roi_input, meta_input] + map_inputs, build_fpn_mask_graph(
        roi_input, map_inputs, meta_input, config.MASK_POOL_SIZE, config.NUM_CLASSES, train_bn=False))
    for layer in full.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    # training=True like the training graph's call (both fold the frozen BN into the convolutions)
    every_row = full([tf.constant(rois), inputs[1]] + list(features), training=True).numpy()
    np.testing.assert_allclose(masks[positive], every_row[positive], rtol=0, atol=1e-6)


def _conv_pair(kernel_size, activation, strides=1, seed=0):
    plain = keras.layers.Conv2D(4, kernel_size, strides=strides, padding="same", activation=activation)
    sparse = SparseGradientConv2D(4, kernel_size, strides=strides, padding="same", activation=activation)
    shape = (2, 9, 7, 5)
    plain.build(shape)
    sparse.build(shape)
    rng = np.random.default_rng(seed)
    sparse.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in plain.get_weights()])
    plain.set_weights(sparse.get_weights())
    return plain, sparse


def _output_and_gradients(layer, x, weights):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * weights)
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_weights)]


@pytest.mark.parametrize("kernel_size", [(3, 3), (1, 1), (3, 5)])
@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("density", [0.05, 0.3, 0.9])
def test_sparse_gradient_conv_equals_conv2d(kernel_size, activation, density):
    """Same outputs; the same gradients up to float rounding (sparse path) or exactly (dense fallback)."""
    plain, sparse = _conv_pair(kernel_size, activation)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 9, 7, 5)).astype(np.float32))
    weights = rng.normal(size=(2, 9, 7, 4)) * (rng.random((2, 9, 7, 1)) < density)
    expected = _output_and_gradients(plain, x, tf.constant(weights, tf.float32))
    got = _output_and_gradients(sparse, x, tf.constant(weights, tf.float32))
    np.testing.assert_array_equal(got[0], expected[0])
    tolerance = 0 if density > SPARSE_GRADIENT_MAX_DENSITY + 0.1 else 1e-5
    for name, g, e in zip(["input", "kernel", "bias"], got[1:], expected[1:]):
        np.testing.assert_allclose(g, e, rtol=0, atol=tolerance * max(np.abs(e).max(), 1.0), err_msg=name)


def test_sparse_gradient_conv_inside_a_compiled_function_with_no_gradient_cell():
    plain, sparse = _conv_pair((3, 3), "relu")
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 9, 7, 5)).astype(np.float32))

    @tf.function
    def gradients(layer, weights):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * weights)
        return tape.gradient(loss, layer.trainable_weights)

    for weights in (np.zeros((2, 9, 7, 4), np.float32), np.eye(9, 7, dtype=np.float32)[None, :, :, None] * [1, 2, 3, 4]):
        for g, e in zip(gradients(sparse, tf.constant(weights, tf.float32)), gradients(plain, tf.constant(weights, tf.float32))):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=0, atol=1e-5)


def test_sparse_gradient_conv_is_a_plain_conv_where_it_does_not_apply():
    _, strided = _conv_pair((3, 3), "relu", strides=2)
    assert not strided._sparse_backward_applies()
    assert SparseGradientConv2D(4, 3, padding="valid")._sparse_backward_applies() is False
    assert SparseGradientConv2D(4, 3, padding="same", activation="sigmoid")._sparse_backward_applies() is False
    layer = SparseGradientConv2D(4, 3, padding="same", activation="relu", name="rpn_conv_shared")
    assert SparseGradientConv2D.from_config(layer.get_config()).get_config() == layer.get_config()


def test_the_training_graph_takes_the_sparse_gradient_of_the_rpn_and_fpn_convolutions(monkeypatch):
    """The training step's gradient builds the sparse path for rpn_conv_shared (each level) and fpn_p2-p5."""
    from rsna_detector.mrcnn.layers import sparse_conv

    built = []
    original = sparse_conv._sparse_conv_gradients
    monkeypatch.setattr(sparse_conv, "_sparse_conv_gradients",
                        lambda x, kernel, *args: built.append(tuple(kernel.shape)) or original(x, kernel, *args))
    config = scenario.config("four_scales")
    inputs = [tf.constant(a) for a in scenario.training_inputs("four_scales")]
    model = training_graph.build_training_model(config)

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            total, _ = model._objective(inputs, training=True)
        return tape.gradient(total, model.trainable_variables)

    gradients.get_concrete_function()
    depth = config.TOP_DOWN_PYRAMID_SIZE
    assert built.count((3, 3, depth, 512)) == config.RPN_PYRAMID_LEVELS  # rpn_conv_shared on P2-P5
    assert built.count((3, 3, depth, depth)) == 4  # fpn_p2 .. fpn_p5
