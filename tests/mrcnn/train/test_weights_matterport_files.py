"""matterport-era weight files, loaded as matterport (Keras 2) loaded them.

* The ImageNet ResNet-50 file matterport starts from
  (``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``, 2016, Keras 1): written by
  Keras 1's ``save_weights``, so the root has ``layer_names`` only (no ``keras_version``,
  no ``backend``: Keras 2 read it as version '1'); every layer of the Keras 1 model is
  listed, weightless ones with an empty ``weight_names``; weight names are Keras 1's
  (``conv1_W:0``, ``conv1_b:0``, ``bn_conv1_gamma:0``, ``bn_conv1_beta:0``,
  ``bn_conv1_running_mean:0``, ``bn_conv1_running_std:0``) and the datasets sit directly
  in the layer's group. :func:`write_keras1_resnet50_notop` writes that layout for the
  ResNet-50 graph, with every dataset at its real shape and dtype (float32). To keep the
  file small, most datasets are never written: HDF5 then returns their fill value, a
  constant unique to each dataset, so a read is indistinguishable from a written one and
  every weight can still be traced to its position.
* matterport's COCO file, in both layouts users have: ``save_weights`` (root
  ``layer_names``) and ``model.save`` (a top-level ``model_weights`` group, next to
  ``model_config``, ``training_config`` and ``optimizer_weights``), Keras-2 names, the
  ResNet-101 backbone, 81-class heads and the nested ``rpn_model`` group.
"""
import hashlib
import json
import logging
import os
import re
import warnings

import h5py
import keras
import numpy as np
import pytest

import rsna_detector.weights.registry as weights_registry
from rsna_detector.detector.schedule import Stage, build_model, train
from rsna_detector.mrcnn import model as modellib
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.train import hdf5_weights as weights_io
from rsna_detector.mrcnn.train.hdf5_weights import WeightsLoadResult, WeightsLoadWarning, WeightsMismatchError

IMAGENET_FILENAME = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
COCO_HEADS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
# layers whose datasets hold random data (the others read back their fill value)
WRITTEN = {"conv1", "bn_conv1", "res2a_branch2b", "bn2a_branch2b", "res2a_branch1", "bn2a_branch1"}
KERAS1_BN = ("gamma", "beta", "running_mean", "running_std")
KERAS2_BN = ("gamma", "beta", "moving_mean", "moving_variance")
STAGES = ((2, (64, 64, 256)), (3, (128, 128, 512)), (4, (256, 256, 1024)), (5, (512, 512, 2048)))


class SmallResnetConfig(Config):
    NAME = "r50small"
    BACKBONE = "resnet50"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    POST_NMS_ROIS_INFERENCE = 16
    POST_NMS_ROIS_TRAINING = 16
    TRAIN_ROIS_PER_IMAGE = 8
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1


# ----------------------------------------------------------------------------
# the files
# ----------------------------------------------------------------------------

def _blocks(stage, stage4_blocks):
    count = {2: 3, 3: 4, 4: stage4_blocks, 5: 3}[stage]
    return "abcdefghijklmnopqrstuvw"[:count]


def resnet_layers(weight_names, stage4_blocks=6, weightless=None):
    """[(layer, [(weight name, shape)])] of a Caffe-style ResNet in Keras' topological order.

    ``weight_names(layer, kind)`` gives a layer's weight names, kind 'conv' or 'bn';
    ``weightless(kind)`` the name of the next weightless layer ('activation', 'merge').
    """
    layers = []

    def conv(name, k, cin, cout):
        layers.append((name, list(zip(weight_names(name, "conv"), [(k, k, cin, cout), (cout,)]))))

    def bn(name, c):
        layers.append((name, [(n, (c,)) for n in weight_names(name, "bn")]))

    def plain(kind):
        if weightless:
            layers.append((weightless(kind), []))

    conv("conv1", 7, 3, 64)
    bn("bn_conv1", 64)
    plain("activation")
    channels = 64
    for stage, (fa, fb, fc) in STAGES:
        for block in _blocks(stage, stage4_blocks):
            base = f"{stage}{block}_branch"
            conv(f"res{base}2a", 1, channels, fa), bn(f"bn{base}2a", fa), plain("activation")
            conv(f"res{base}2b", 3, fa, fb), bn(f"bn{base}2b", fb), plain("activation")
            conv(f"res{base}2c", 1, fb, fc)
            if block == "a":
                conv(f"res{base}1", 1, channels, fc)
            bn(f"bn{base}2c", fc)
            if block == "a":
                bn(f"bn{base}1", fc)
            plain("merge"), plain("activation")
            channels = fc
    return layers


def keras1_resnet50_notop_layers():
    """The layers of Keras 1's ``ResNet50(include_top=False)`` as its file lists them."""
    counters = {}

    def weightless(kind):
        counters[kind] = counters.get(kind, 0) + 1
        return f"{kind}_{counters[kind]}"

    def names(layer, kind):
        suffixes = ("W", "b") if kind == "conv" else KERAS1_BN
        return [f"{layer}_{suffix}:0" for suffix in suffixes]

    body = resnet_layers(names, stage4_blocks=6, weightless=weightless)
    return ([("input_1", []), ("zeropadding2d_1", [])] + body[:3] + [("maxpooling2d_1", [])] + body[3:]
            + [("avg_pool", [])])


def fill_value(layer_index, weight_index):
    """The constant an unwritten dataset reads back as (exact in float32, unique per dataset)."""
    return float(layer_index * 8 + weight_index + 1)


def write_weights_file(path, layers, *, root=None, attrs=None, written=WRITTEN, seed=0,
                       empty_attribute=None):
    """Write ``layers`` in the Keras-1/2 HDF5 layout; return ``{(layer, weight name): expected array}``.

    ``root``: the group holding the weights (created when not the file itself);
    ``attrs``: extra attributes of that group (``keras_version``, ``backend``).
    Weightless layers get ``empty_attribute`` (default ``np.zeros(0)``) as ``weight_names`` (Keras 1 and 2 wrote
    an empty list, which h5py stores as an empty float64 array).
    """
    rng = np.random.default_rng(seed)
    expected = {}
    with h5py.File(path, "w") as handle:
        group_root = handle.create_group(root) if root else handle
        group_root.attrs["layer_names"] = np.array([name.encode("utf8") for name, _ in layers])
        for key, value in (attrs or {}).items():
            group_root.attrs[key] = value
        for layer_index, (name, weights) in enumerate(layers):
            group = group_root.create_group(name)
            group.attrs["weight_names"] = (np.array([w.encode("utf8") for w, _ in weights]) if weights
                                           else (np.zeros(0) if empty_attribute is None else empty_attribute))
            for weight_index, (weight_name, shape) in enumerate(weights):
                if name in written:
                    value = rng.normal(size=shape).astype(np.float32)
                    group.create_dataset(weight_name, data=value)
                else:
                    constant = fill_value(layer_index, weight_index)
                    group.create_dataset(weight_name, shape=shape, dtype="<f4", fillvalue=constant)
                    value = np.full(shape, constant, np.float32)
                expected[(name, weight_name)] = value
    return expected


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """``(path, layers, expected)``: the ImageNet ResNet-50 file in Keras 1's layout."""
    path = tmp_path_factory.mktemp("imagenet") / IMAGENET_FILENAME
    layers = keras1_resnet50_notop_layers()
    expected = write_weights_file(path, layers)
    return path, layers, expected


def coco_layers(head_classes=81):
    """[(layer, [(weight name, shape)])] of matterport's COCO file (ResNet-101, Keras-2 names)."""

    def names(layer, kind):
        return [f"{layer}/{v}:0" for v in (("kernel", "bias") if kind == "conv" else KERAS2_BN)]

    def dense(name, cin, cout):
        return name, [(f"{name}/kernel:0", (cin, cout)), (f"{name}/bias:0", (cout,))]

    def conv(name, k, cin, cout, transpose=False):
        shape = (k, k, cout, cin) if transpose else (k, k, cin, cout)
        return name, [(f"{name}/kernel:0", shape), (f"{name}/bias:0", (cout,))]

    def bn(name, c):
        return name, [(f"{name}/{v}:0", (c,)) for v in KERAS2_BN]

    layers = [("input_image", []), ("input_image_meta", []), ("zero_padding2d_1", [])]
    layers += resnet_layers(names, stage4_blocks=23)
    layers += [conv("fpn_c5p5", 1, 2048, 256), conv("fpn_c4p4", 1, 1024, 256), conv("fpn_c3p3", 1, 512, 256),
               conv("fpn_c2p2", 1, 256, 256), ("fpn_p5upsampled", []), ("fpn_p4add", []),
               conv("fpn_p2", 3, 256, 256), conv("fpn_p3", 3, 256, 256), conv("fpn_p4", 3, 256, 256),
               conv("fpn_p5", 3, 256, 256), ("fpn_p6", [])]
    rpn = [conv("rpn_conv_shared", 3, 256, 512), conv("rpn_class_raw", 1, 512, 6), conv("rpn_bbox_pred", 1, 512, 12)]
    layers.append(("rpn_model", [weight for _, weights in rpn for weight in weights]))
    layers += [("ROI", []), ("roi_align_classifier", []),
               conv("mrcnn_class_conv1", 7, 256, 1024), bn("mrcnn_class_bn1", 1024),
               conv("mrcnn_class_conv2", 1, 1024, 1024), bn("mrcnn_class_bn2", 1024),
               dense("mrcnn_class_logits", 1024, head_classes), ("mrcnn_class", []),
               dense("mrcnn_bbox_fc", 1024, 4 * head_classes), ("mrcnn_bbox", []), ("roi_align_mask", [])]
    for i in range(1, 5):
        layers += [conv(f"mrcnn_mask_conv{i}", 3, 256, 256), bn(f"mrcnn_mask_bn{i}", 256)]
    layers += [conv("mrcnn_mask_deconv", 2, 256, 256, transpose=True), conv("mrcnn_mask", 1, 256, head_classes)]
    return layers


def write_coco_file(path, layout):
    """matterport's COCO file written by ``save_weights`` or by ``model.save``; returns the expected values."""
    keras2 = {"keras_version": b"2.1.6", "backend": b"tensorflow"}
    written = {"conv1", "bn_conv1", "fpn_p5", "rpn_model", "mrcnn_mask_deconv", "mrcnn_class_bn1"}
    if layout == "save_weights":
        return write_weights_file(path, coco_layers(), attrs=keras2, written=written, seed=1)
    expected = write_weights_file(path, coco_layers(), root="model_weights", attrs=keras2, written=written, seed=1)
    with h5py.File(path, "a") as handle:  # what Keras 2's save_model wrote around the weights
        for key, value in keras2.items():
            handle.attrs[key] = value
        handle.attrs["model_config"] = json.dumps({"class_name": "Model", "config": {"name": "mask_rcnn"}}).encode()
        handle.attrs["training_config"] = json.dumps({"optimizer_config": {"class_name": "SGD"}}).encode()
        optimizer = handle.create_group("optimizer_weights")
        optimizer.attrs["weight_names"] = np.array([b"training/SGD/Variable:0"])
        optimizer.create_dataset("training/SGD/Variable:0", data=np.zeros((7, 7, 3, 64), np.float32))
    return expected


# ----------------------------------------------------------------------------
# helpers on the model side
# ----------------------------------------------------------------------------

def _build(model_dir, mode="inference", seed=0, **settings):
    keras.utils.set_random_seed(seed)
    config = SmallResnetConfig()
    for key, value in settings.items():
        setattr(config, key, value)
    return modellib.MaskRCNN(mode, config, str(model_dir))


@pytest.fixture(scope="module")
def resnet50(tmp_path_factory):
    keras.utils.set_random_seed(0)
    return modellib.MaskRCNN("inference", SmallResnetConfig(), str(tmp_path_factory.mktemp("r50")))


def _snapshot(keras_model):
    """{(layer, position): ndarray} of every weight, positions in Keras 2's order."""
    return {(layer, position): keras.ops.convert_to_numpy(variable)
            for layer, variables in weights_io.model_weight_groups(keras_model).items()
            for position, variable in enumerate(variables.values())}


def _expected_by_position(layers, expected, skip=()):
    """{(layer, position): array} the file should put into a model (by position within a layer)."""
    return {(layer, position): expected[(layer, name)]
            for layer, weights in layers if layer not in skip
            for position, (name, _) in enumerate(weights)}


def _assert_holds(keras_model, wanted):
    got = _snapshot(keras_model)
    for key, value in wanted.items():
        np.testing.assert_array_equal(got[key], value, err_msg=str(key))


def _backbone_names(layers):
    return [name for name, weights in layers if weights]


def _heads_of(keras_model, backbone):
    return tuple(layer.name for layer in keras_model.layers if layer.weights and layer.name not in backbone)


# ----------------------------------------------------------------------------
# the ImageNet ResNet-50 file (Keras 1)
# ----------------------------------------------------------------------------

class TestImagenetFile:
    def test_the_fixture_has_keras1s_layout(self, imagenet_file):
        path, layers, _ = imagenet_file
        assert os.path.getsize(path) < 1_000_000  # the unwritten datasets take no space
        with h5py.File(path, "r") as handle:
            assert set(handle.attrs) == {"layer_names"}  # Keras 1: no keras_version, no backend
            names = handle.attrs["layer_names"]
            assert names.dtype.kind == "S" and [n.decode() for n in names[:5]] == [
                "input_1", "zeropadding2d_1", "conv1", "bn_conv1", "activation_1"]
            assert names[-1] == b"avg_pool" and len(names) == len(layers)
            assert list(handle["conv1"].attrs["weight_names"]) == [b"conv1_W:0", b"conv1_b:0"]
            assert list(handle["bn_conv1"].attrs["weight_names"]) == [
                b"bn_conv1_gamma:0", b"bn_conv1_beta:0", b"bn_conv1_running_mean:0", b"bn_conv1_running_std:0"]
            kernel = handle["conv1"]["conv1_W:0"]  # directly in the group: no 'conv1/' subgroup
            assert isinstance(kernel, h5py.Dataset) and kernel.dtype == np.float32 and kernel.shape == (7, 7, 3, 64)
            assert handle["res5c_branch2c"]["res5c_branch2c_W:0"].shape == (1, 1, 512, 2048)
            assert handle["res4f_branch2b"]["res4f_branch2b_W:0"][0, 0, 0, 0] == fill_value(
                [n.decode() for n in names].index("res4f_branch2b"), 0)
            assert len(handle["activation_1"].attrs["weight_names"]) == 0
        # ResNet-50: conv1 + 16 blocks x 3 convs + 4 shortcuts, each with its BN
        assert len(_backbone_names(layers)) == 2 * (1 + 16 * 3 + 4)

    def test_loads_by_name_with_weights_by_position(self, resnet50, imagenet_file):
        path, layers, expected = imagenet_file
        keras_model = resnet50.keras_model
        backbone = _backbone_names(layers)
        before = _snapshot(keras_model)
        with pytest.warns(WeightsLoadWarning) as record:
            result = resnet50.load_weights(str(path), by_name=True)
        heads = _heads_of(keras_model, backbone)
        assert "fpn_c5p5" in heads and "rpn_model" in heads and "mrcnn_mask" in heads and len(heads) == 25
        assert result == WeightsLoadResult(filepath=str(path), by_name=True, loaded=tuple(
            layer.name for layer in keras_model.layers if layer.name in backbone), missing_from_file=heads)
        assert sorted(result.loaded) == sorted(backbone)
        assert len(record) == 1
        message = str(record[0].message)
        assert message.startswith(f"{path}: 25 layer(s) of the model are not in the file and keep their current "
                                  "weights: fpn_")
        assert all(name in message for name in heads)
        _assert_holds(keras_model, _expected_by_position(layers, expected))
        after = _snapshot(keras_model)
        assert all(np.array_equal(after[k], before[k]) for k in before if k[0] in heads)  # left as they were
        # by position: W -> kernel, b -> bias, running_std (Keras 1's variance) -> moving_variance
        bn = weights_io.model_weight_groups(keras_model)["bn_conv1"]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn["moving_variance"]),
                                      expected[("bn_conv1", "bn_conv1_running_std:0")])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn["gamma"]),
                                      expected[("bn_conv1", "bn_conv1_gamma:0")])

    @pytest.mark.parametrize("attrs", [
        {"keras_version": b"1.1.0", "backend": b"tensorflow"},
        {"keras_version": b"2.1.6", "backend": b"tensorflow"},
    ])
    def test_version_attributes_do_not_change_a_tensorflow_file(self, resnet50, tmp_path, attrs):
        layers = keras1_resnet50_notop_layers()
        expected = write_weights_file(tmp_path / "versions.h5", layers, attrs=attrs, seed=2)
        with pytest.warns(WeightsLoadWarning):
            resnet50.load_weights(str(tmp_path / "versions.h5"), by_name=True)
        _assert_holds(resnet50.keras_model, _expected_by_position(layers, expected))

    def test_theano_kernels_are_flipped_as_keras2_did(self, resnet50, tmp_path):
        layers = keras1_resnet50_notop_layers()
        expected = write_weights_file(tmp_path / "theano.h5", layers, attrs={"backend": b"theano"}, seed=3)
        with pytest.warns(WeightsLoadWarning):
            resnet50.load_weights(str(tmp_path / "theano.h5"), by_name=True)
        got = _snapshot(resnet50.keras_model)
        kernel = expected[("conv1", "conv1_W:0")]
        np.testing.assert_array_equal(got[("conv1", 0)], kernel[::-1, ::-1])  # convolution -> correlation
        assert not np.array_equal(got[("conv1", 0)], kernel)
        np.testing.assert_array_equal(got[("conv1", 1)], expected[("conv1", "conv1_b:0")])  # bias untouched
        np.testing.assert_array_equal(got[("bn_conv1", 3)], expected[("bn_conv1", "bn_conv1_running_std:0")])

    def test_theano_ordered_kernel_is_transposed_when_that_fits(self, resnet50, tmp_path):
        layers = keras1_resnet50_notop_layers()
        expected = write_weights_file(tmp_path / "plain.h5", layers, seed=4)
        kernel = expected[("conv1", "conv1_W:0")]
        stored = np.transpose(kernel, np.argsort((3, 2, 0, 1)))  # what Keras 2's transpose(3, 2, 0, 1) undoes
        with h5py.File(tmp_path / "plain.h5", "a") as handle:
            del handle["conv1"]["conv1_W:0"]
            handle["conv1"].create_dataset("conv1_W:0", data=stored)
        assert stored.shape == (3, 64, 7, 7)
        with pytest.warns(WeightsLoadWarning):
            resnet50.load_weights(str(tmp_path / "plain.h5"), by_name=True)
        np.testing.assert_array_equal(_snapshot(resnet50.keras_model)[("conv1", 0)], kernel)

    def test_chunked_attributes_and_empty_dataspaces(self, resnet50, tmp_path):
        # Keras 2 split attributes over 64 KB into name0, name1, ...; h5py.Empty reads as no weights
        layers = keras1_resnet50_notop_layers()
        path = tmp_path / "chunked.h5"
        expected = write_weights_file(path, layers, seed=5, empty_attribute=h5py.Empty("f8"))
        with h5py.File(path, "a") as handle:
            names = handle.attrs["layer_names"]
            del handle.attrs["layer_names"]
            for index, part in enumerate(np.array_split(names, 3)):
                handle.attrs[f"layer_names{index}"] = part
            bn = handle["bn_conv1"]
            weight_names = bn.attrs["weight_names"]
            del bn.attrs["weight_names"]
            bn.attrs["weight_names0"], bn.attrs["weight_names1"] = weight_names[:3], weight_names[3:]
            assert isinstance(handle["activation_1"].attrs["weight_names"], h5py.Empty)
        with pytest.warns(WeightsLoadWarning):
            result = resnet50.load_weights(str(path), by_name=True)
        assert len(result.loaded) == 106
        _assert_holds(resnet50.keras_model, _expected_by_position(layers, expected))

    def test_mismatches_name_the_file_and_the_layer_and_assign_nothing(self, resnet50, tmp_path):
        layers = dict(keras1_resnet50_notop_layers())
        layers["res2a_branch2a"] = [("res2a_branch2a_W:0", (1, 1, 64, 32)), ("res2a_branch2a_b:0", (32,))]
        layers["bn3a_branch1"] = layers["bn3a_branch1"][:2]  # no running statistics
        path = tmp_path / "broken.h5"
        write_weights_file(path, list(layers.items()), seed=6)
        before = _snapshot(resnet50.keras_model)
        with pytest.raises(WeightsMismatchError) as error:
            resnet50.load_weights(str(path), by_name=True)
        message = str(error.value)
        assert isinstance(error.value, ValueError) and message.startswith(f"{path}: 2 layer(s) do not fit")
        assert ("res2a_branch2a: kernel: file shape (1, 1, 64, 32) vs model shape (1, 1, 64, 64) "
                "(file weight 'res2a_branch2a_W:0')") in message
        assert "res2a_branch2a: bias: file shape (32,) vs model shape (64,)" in message
        assert ("bn3a_branch1: the model layer has 4 weight(s) ['gamma', 'beta', 'moving_mean', 'moving_variance'], "
                "the file 2 ['bn3a_branch1_gamma:0', 'bn3a_branch1_beta:0']") in message
        assert error.value.layers == ["bn3a_branch1", "res2a_branch2a"]
        after = _snapshot(resnet50.keras_model)
        assert all(np.array_equal(after[k], before[k]) for k in before)

    def test_by_order_needs_as_many_layers_with_weights(self, resnet50, imagenet_file):
        path, _, _ = imagenet_file
        with pytest.raises(WeightsMismatchError, match="the file has 106 layers with weights, the model 131"):
            resnet50.load_weights(str(path), by_name=False)

    def test_a_resnet101_model_is_told_which_backbone_layers_stay_random(self, tmp_path, imagenet_file):
        path, _, _ = imagenet_file
        model = _build(tmp_path, BACKBONE="resnet101")
        with pytest.warns(WeightsLoadWarning, match="res4g_branch2a, bn4g_branch2a") as record:
            result = model.load_weights(str(path), by_name=True)
        missing = [name for name in result.missing_from_file if name.startswith(("res4", "bn4"))]
        assert len(missing) == 17 * 6 and missing[-1] == "bn4w_branch2c" and "res4f_branch2c" not in missing
        assert all(name in str(record[0].message) for name in missing)


@pytest.fixture
def weights_dir(tmp_path, imagenet_file, monkeypatch):
    """The fixture placed in $RSNA_DETECTOR_WEIGHTS_DIR; offline, with an empty cache."""
    folder = tmp_path / "hand_downloaded"
    folder.mkdir()
    (folder / IMAGENET_FILENAME).write_bytes(imagenet_file[0].read_bytes())
    monkeypatch.setenv(weights_registry.ENV_WEIGHTS_DIR, str(folder))
    monkeypatch.setenv(weights_registry.ENV_OFFLINE, "1")
    monkeypatch.setenv(weights_registry.ENV_CACHE, str(tmp_path / "cache"))
    return folder


@pytest.fixture
def registry_with_fixture_md5(tmp_path, weights_dir, monkeypatch):
    """The packaged registry with the 'imagenet' MD5 replaced by the fixture's."""
    registry = json.loads(weights_registry.REGISTRY_PATH.read_text())
    md5 = hashlib.md5((weights_dir / IMAGENET_FILENAME).read_bytes()).hexdigest()
    assert registry["weights"]["imagenet"]["md5"] == "a268eb855778b3df3c7506639542a6af"
    registry["weights"]["imagenet"]["md5"] = md5
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    monkeypatch.setattr(weights_registry, "REGISTRY_PATH", path)


class TestGetImagenetWeights:
    def test_matterports_notebook_sequence(self, resnet50, imagenet_file, weights_dir, registry_with_fixture_md5):
        path = resnet50.get_imagenet_weights()
        assert path == str(weights_dir / IMAGENET_FILENAME) and isinstance(path, str)
        with pytest.warns(WeightsLoadWarning):
            result = resnet50.load_weights(resnet50.get_imagenet_weights(), by_name=True)
        assert len(result.loaded) == 106
        _, layers, expected = imagenet_file
        _assert_holds(resnet50.keras_model, _expected_by_position(layers, expected))

    def test_a_file_with_another_checksum_is_refused(self, resnet50, weights_dir):
        with pytest.raises(weights_registry.WeightsChecksumError, match="a268eb855778b3df3c7506639542a6af"):
            resnet50.get_imagenet_weights()
        assert (weights_dir / IMAGENET_FILENAME).is_file()  # a placed file is left where it is


class TestTrainWithImagenet:
    @pytest.fixture
    def stages(self, monkeypatch):
        """MaskRCNN.train replaced by a recorder: train() runs its weights and stage logic only."""
        calls = []

        def record(model, train_dataset, val_dataset, learning_rate, epochs, layers, **kwargs):
            conv1 = model.keras_model.get_layer("conv1").weights[0]
            calls.append((layers, epochs, keras.ops.convert_to_numpy(conv1)))
            model.epoch = epochs

        monkeypatch.setattr(modellib.MaskRCNN, "train", record)
        return calls

    def test_train_loads_the_keras1_file_and_warns_only_about_the_backbone(
            self, tmp_path, imagenet_file, weights_dir, registry_with_fixture_md5, stages, caplog):
        _, layers, expected = imagenet_file
        schedule = [Stage("heads", 1.0, 1, False)]
        with warnings.catch_warnings():
            warnings.simplefilter("error", WeightsLoadWarning)
            with caplog.at_level(logging.INFO, logger="rsna_detector.detector.schedule"):
                model, _ = train(("train", "val"), config=SmallResnetConfig(), weights="imagenet",
                                              model_dir=tmp_path, schedule=schedule, augmentation="none")
        assert [(layers_, epochs) for layers_, epochs, _ in stages] == [("heads", 1)]
        np.testing.assert_array_equal(stages[0][2], expected[("conv1", "conv1_W:0")])
        _assert_holds(model.keras_model, _expected_by_position(layers, expected))
        assert "106 backbone layers loaded; 25 FPN/RPN/head layers start from their initialisation" in caplog.text

    def test_build_model_warns_about_backbone_layers_the_file_lacks(self, tmp_path, weights_dir,
                                                                    registry_with_fixture_md5):
        path = weights_dir / IMAGENET_FILENAME
        config = SmallResnetConfig()
        config.BACKBONE = "resnet101"
        with pytest.warns(WeightsLoadWarning) as record:
            build_model(config, tmp_path, "imagenet")
        assert len(record) == 1
        message = str(record[0].message)
        assert f"{path}: 102 backbone layer(s) of the model are not in the ImageNet file" in message
        assert "res4w_branch2c" in message and "fpn_" not in message and "mrcnn_" not in message


# ----------------------------------------------------------------------------
# matterport's COCO file, both layouts
# ----------------------------------------------------------------------------

class TestCocoFiles:
    @pytest.mark.parametrize("layout", ["save_weights", "model.save"])
    def test_loads_with_the_heads_excluded(self, resnet50, tmp_path, layout):
        path = tmp_path / "mask_rcnn_coco.h5"
        expected = write_coco_file(path, layout)
        with h5py.File(path, "r") as handle:
            assert ("layer_names" in handle.attrs) == (layout == "save_weights")
        keras_model = resnet50.keras_model
        before = _snapshot(keras_model)
        with warnings.catch_warnings():
            warnings.simplefilter("error", WeightsLoadWarning)  # nothing missing, no unknown name
            result = resnet50.load_weights(str(path), by_name=True, exclude=COCO_HEADS)
        weighted = [layer.name for layer in keras_model.layers if layer.weights]
        resnet101_only = tuple(name for name, _ in coco_layers() if re.fullmatch(r"(res|bn)4[g-w]_branch2[abc]", name))
        assert len(resnet101_only) == 17 * 6
        assert result == WeightsLoadResult(
            filepath=str(path), by_name=True, loaded=tuple(n for n in weighted if n not in COCO_HEADS),
            excluded=("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"), unused_in_file=resnet101_only)
        layers = [(name, weights) for name, weights in coco_layers() if name in weighted]
        _assert_holds(keras_model, _expected_by_position(layers, expected, skip=COCO_HEADS))
        after = _snapshot(keras_model)
        assert all(np.array_equal(after[k], before[k]) for k in before if k[0] in COCO_HEADS)
        # the nested rpn_model: its six weights by position, in the file's order
        rpn = weights_io.model_weight_groups(keras_model)["rpn_model"]
        assert list(rpn) == [f"{layer}/{v}" for layer in ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")
                             for v in ("kernel", "bias")]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(rpn["rpn_class_raw/kernel"]),
                                      expected[("rpn_model", "rpn_class_raw/kernel:0")])

    def test_without_exclude_the_heads_do_not_fit(self, resnet50, tmp_path):
        path = tmp_path / "mask_rcnn_coco.h5"
        write_coco_file(path, "model.save")
        with pytest.raises(WeightsMismatchError) as error:
            resnet50.load_weights(str(path), by_name=True)
        assert error.value.layers == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
        assert "mrcnn_class_logits: kernel: file shape (1024, 81) vs model shape (1024, 2)" in str(error.value)

    def test_a_misspelt_exclude_name_is_warned_about(self, resnet50, tmp_path):
        path = tmp_path / "mask_rcnn_coco.h5"
        write_coco_file(path, "save_weights")
        exclude = ["mrcnn_class_logits", "mrcnn_bbox_fcc", "mrcnn_mask", "mrcnn_bbox"]
        with pytest.warns(WeightsLoadWarning, match=r"exclude names \['mrcnn_bbox_fcc'\] match no layer"):
            with pytest.raises(WeightsMismatchError, match="mrcnn_bbox_fc: kernel"):
                resnet50.load_weights(str(path), by_name=True, exclude=exclude)
