"""Keras-2 HDF5 weights: matterport layer names, loading by name with exclude, saving, checkpoints."""
import json
import logging
import os
import warnings

import h5py
import keras
import numpy as np
import pytest

from rsna_detector.mrcnn import model as modellib
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.train import hdf5_weights as weights_io
from rsna_detector.mrcnn.train.hdf5_weights import WeightsFileError, WeightsMismatchError

HEADS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"]
COCO_CLASSES = 81


class TinyConfig(Config):
    NAME = "tinyweights"
    BACKBONE = "tiny"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64)
    TOP_DOWN_PYRAMID_SIZE = 16
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    POST_NMS_ROIS_INFERENCE = 16
    DETECTION_MAX_INSTANCES = 3


class Resnet50Config(Config):
    NAME = "r50"
    BACKBONE = "resnet50"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    POST_NMS_ROIS_INFERENCE = 16


def _tiny_model(tmp_path, seed=0):
    keras.utils.set_random_seed(seed)
    return modellib.MaskRCNN("inference", TinyConfig(), tmp_path)


def _values(keras_model):
    """{(layer, key): ndarray} of every weight."""
    return {(layer, key): keras.ops.convert_to_numpy(variable)
            for layer, variables in weights_io.model_weight_groups(keras_model).items()
            for key, variable in variables.items()}


# ----------------------------------------------------------------------------
# a Keras-2 file written with h5py only
# ----------------------------------------------------------------------------

def _keras2_layers(keras_model, rng, head_classes=None):
    """[(layer name, [(weight name, array)])] as Keras 2 saved them (nested rpn_model included).

    Each layer's weights in the layer's weight order (Keras 2 assigned them by position).
    ``head_classes`` gives the heads matterport's COCO shapes instead of the model's.
    """
    layers = [("input_image", [])]  # weightless layers are listed too
    for layer in keras_model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.Model):
            weights = [(f"{inner.name}/{v.name}:0", v.shape) for inner in layer.layers for v in inner.weights]
        else:
            weights = [(f"{layer.name}/{v.name}:0", v.shape) for v in layer.weights]
        if head_classes and layer.name in HEADS:
            weights = [(name, _head_shape(layer.name, shape, head_classes)) for name, shape in weights]
        layers.append((layer.name, [(name, rng.normal(size=shape).astype(np.float32)) for name, shape in weights]))
    layers.append(("coco_only_layer", [("coco_only_layer/kernel:0", np.ones((2, 2), np.float32))]))
    return layers


def _head_shape(layer_name, shape, classes):
    if layer_name == "mrcnn_bbox_fc":
        return tuple(shape[:-1]) + (4 * classes,)
    return tuple(shape[:-1]) + (classes,)


def _write_keras2(path, layers, full_model=False, chunked=False):
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if full_model else handle
        names = np.array([name.encode() for name, _ in layers])
        if chunked:
            root.attrs["layer_names0"] = names[: len(names) // 2]
            root.attrs["layer_names1"] = names[len(names) // 2:]
        else:
            root.attrs["layer_names"] = names
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.0.8"
        for name, weights in layers:
            group = root.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights], dtype="S64")
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=value)
    return path


def _expected_after_load(layers, skip):
    """{(layer, key): array} the file should put into the model."""
    expected = {}
    for layer, weights in layers:
        if layer in skip or layer == "coco_only_layer":
            continue
        for name, value in weights:
            parts = name[:-2].split("/")
            key = "/".join(parts[-2:]) if layer == "rpn_model" else parts[-1]
            expected[(layer, key)] = value
    return expected


class TestKeras2Files:
    def test_loads_by_name_with_exclude_and_holds_the_file_values(self, tmp_path, caplog):
        model = _tiny_model(tmp_path)
        before = _values(model.keras_model)
        layers = _keras2_layers(model.keras_model, np.random.default_rng(0), head_classes=COCO_CLASSES)
        path = _write_keras2(tmp_path / "matterport_like.h5", layers)
        with caplog.at_level(logging.DEBUG, logger="rsna_detector.weights.keras2_model"):
            model.load_weights(str(path), by_name=True, exclude=HEADS)
        assert "coco_only_layer" in caplog.text
        after = _values(model.keras_model)
        expected = _expected_after_load(layers, HEADS)
        assert ("rpn_model", "rpn_conv_shared/kernel") in expected and ("mrcnn_class_bn1", "moving_variance") in expected
        assert set(after) == set(expected) | {k for k in before if k[0] in HEADS}
        for key, value in expected.items():
            np.testing.assert_array_equal(after[key], value, err_msg=str(key))
        for key in before:
            if key[0] in HEADS:
                np.testing.assert_array_equal(after[key], before[key])  # excluded: untouched

    def test_shape_mismatch_names_every_layer(self, tmp_path):
        model = _tiny_model(tmp_path)
        before = _values(model.keras_model)
        layers = _keras2_layers(model.keras_model, np.random.default_rng(1), head_classes=COCO_CLASSES)
        path = _write_keras2(tmp_path / "coco_heads.h5", layers)
        with pytest.raises(WeightsMismatchError) as error:
            model.load_weights(str(path), by_name=True)
        assert error.value.layers == sorted(HEADS)
        message = str(error.value)
        assert "mrcnn_class_logits: kernel: file shape (32, 81) vs model shape (32, 2)" in message
        assert "mrcnn_bbox_fc: kernel: file shape (32, 324) vs model shape (32, 8)" in message
        assert "mrcnn_mask: kernel: file shape (1, 1, 256, 81) vs model shape (1, 1, 256, 2)" in message
        assert "exclude=" in message and isinstance(error.value, ValueError)
        after = _values(model.keras_model)
        assert all(np.array_equal(after[k], before[k]) for k in before)  # nothing assigned

    def test_prefixed_and_uniquified_weight_names(self, tmp_path):
        # Keras 2 sometimes saved 'rpn_model/rpn_conv_shared_1/kernel:0' for a nested model's weights
        model = _tiny_model(tmp_path)
        layers = dict(_keras2_layers(model.keras_model, np.random.default_rng(6)))
        layers["rpn_model"] = [("rpn_model/" + name.replace("/", "_1/", 1), value) for name, value in layers["rpn_model"]]
        path = _write_keras2(tmp_path / "renamed.h5", list(layers.items()))
        model.load_weights(str(path), by_name=True)
        got = _values(model.keras_model)[("rpn_model", "rpn_conv_shared/kernel")]
        np.testing.assert_array_equal(got, dict(layers["rpn_model"])["rpn_model/rpn_conv_shared_1/kernel:0"])

    def test_full_model_file_with_chunked_layer_names(self, tmp_path):
        model = _tiny_model(tmp_path)
        layers = _keras2_layers(model.keras_model, np.random.default_rng(2))
        path = _write_keras2(tmp_path / "full_model.h5", layers, full_model=True, chunked=True)
        model.load_weights(str(path), by_name=True)
        after = _values(model.keras_model)
        for key, value in _expected_after_load(layers, ()).items():
            np.testing.assert_array_equal(after[key], value)

    def test_weight_count_and_order_mismatches_are_reported(self, tmp_path):
        model = _tiny_model(tmp_path)
        before = _values(model.keras_model)
        layers = dict(_keras2_layers(model.keras_model, np.random.default_rng(3)))
        layers["fpn_p2"].pop()  # the file lacks fpn_p2's bias
        layers["tiny_bn2"] = layers["tiny_bn2"][::-1]  # Keras-2 names in another order than the layer's
        path = _write_keras2(tmp_path / "odd.h5", list(layers.items()))
        with pytest.raises(WeightsMismatchError) as error:
            model.load_weights(str(path), by_name=True)
        message = str(error.value)
        assert "fpn_p2: the model layer has 2 weight(s) ['kernel', 'bias'], the file 1 ['fpn_p2/kernel:0']" in message
        assert ("tiny_bn2: the file lists the weights ['tiny_bn2/moving_variance:0', 'tiny_bn2/moving_mean:0', "
                "'tiny_bn2/beta:0', 'tiny_bn2/gamma:0'] in another order") in message
        assert error.value.layers == ["fpn_p2", "tiny_bn2"] and "odd.h5" in message
        after = _values(model.keras_model)
        assert all(np.array_equal(after[k], before[k]) for k in before)  # nothing assigned

    def test_other_weight_names_load_by_position(self, tmp_path):
        # Keras 2 never matched weight names inside a layer: any names load in the layer's order
        model = _tiny_model(tmp_path)
        layers = dict(_keras2_layers(model.keras_model, np.random.default_rng(7)))
        layers["fpn_p2"] = [(f"param_{i}", value) for i, (_, value) in enumerate(layers["fpn_p2"])]
        layers["tiny_bn2"] = [(f"tiny_bn2_{old}:0", value) for old, (_, value)
                              in zip(("gamma", "beta", "running_mean", "running_std"), layers["tiny_bn2"])]
        path = _write_keras2(tmp_path / "renamed.h5", list(layers.items()))
        model.load_weights(str(path), by_name=True)
        after = _values(model.keras_model)
        np.testing.assert_array_equal(after[("fpn_p2", "bias")], layers["fpn_p2"][1][1])
        np.testing.assert_array_equal(after[("tiny_bn2", "moving_variance")], layers["tiny_bn2"][3][1])

    def test_not_a_keras2_file_and_missing_file(self, tmp_path):
        model = _tiny_model(tmp_path)
        with h5py.File(tmp_path / "other.h5", "w") as handle:
            handle.create_dataset("x", data=np.zeros(3))
        with pytest.raises(WeightsFileError, match="other.h5: not a Keras-2 HDF5 weights file"):
            model.load_weights(str(tmp_path / "other.h5"), by_name=True)
        (tmp_path / "text.h5").write_text("not hdf5")
        with pytest.raises(WeightsFileError, match="text.h5: not a readable HDF5 file"):
            model.load_weights(str(tmp_path / "text.h5"))
        with pytest.raises(FileNotFoundError, match="absent.h5"):
            model.load_weights(str(tmp_path / "absent.h5"))


class TestSaving:
    def test_round_trip_with_config_and_epoch(self, tmp_path):
        source = _tiny_model(tmp_path, seed=0)
        source.epoch = 7
        path = source.save_weights(str(tmp_path / "out" / "weights.h5"))
        assert os.listdir(tmp_path / "out") == ["weights.h5"]  # no temporary file left
        with h5py.File(path, "r") as handle:
            assert json.loads(handle.attrs["config"])["NAME"] == "tinyweights"
            assert int(handle.attrs["epoch"]) == 7
            assert handle["rpn_model"].attrs["weight_names"][0].decode() == "rpn_conv_shared/kernel:0"
            assert handle["fpn_c5p5"].attrs["weight_names"][0].decode() == "fpn_c5p5/kernel:0"
        for by_name in (True, False):
            target = _tiny_model(tmp_path, seed=1)
            assert not np.array_equal(_values(target.keras_model)[("fpn_p2", "kernel")],
                                      _values(source.keras_model)[("fpn_p2", "kernel")])
            target.load_weights(path, by_name=by_name)
            expected, got = _values(source.keras_model), _values(target.keras_model)
            assert set(got) == set(expected)
            for key in expected:
                np.testing.assert_array_equal(got[key], expected[key])

    def test_failed_save_keeps_the_old_file(self, tmp_path, monkeypatch):
        model = _tiny_model(tmp_path)
        path = tmp_path / "weights.h5"
        path.write_bytes(b"old checkpoint")

        def broken(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(h5py.Group, "create_dataset", broken)
        with pytest.raises(OSError, match="disk full"):
            model.save_weights(str(path))
        assert path.read_bytes() == b"old checkpoint"
        assert os.listdir(tmp_path) == ["weights.h5"]

    def test_by_order_needs_the_same_layer_count(self, tmp_path):
        model = _tiny_model(tmp_path)
        layers = _keras2_layers(model.keras_model, np.random.default_rng(4))
        path = _write_keras2(tmp_path / "extra.h5", layers)  # has coco_only_layer too
        with pytest.raises(WeightsMismatchError, match="use by_name=True"):
            model.load_weights(str(path), by_name=False)


class TestCheckpoints:
    def test_log_dir_naming(self, tmp_path):
        model = _tiny_model(tmp_path)
        folder = os.path.basename(model.log_dir)
        assert folder.startswith("tinyweights") and len(folder) == len("tinyweights") + 15 and folder[-7] == "T"
        assert model.checkpoint_path == os.path.join(model.log_dir, "mask_rcnn_tinyweights_{epoch:04d}.h5")
        assert model.checkpoint_path.format(epoch=3).endswith("mask_rcnn_tinyweights_0003.h5")
        assert model.epoch == 0

    def test_find_last_and_resume_epoch(self, tmp_path):
        model = _tiny_model(tmp_path)
        with pytest.raises(FileNotFoundError, match=r"no run folder 'tinyweights\*'"):
            model.find_last()
        old, new, empty = (tmp_path / d for d in ("tinyweights20240101T1200", "tinyweights20240305T0910",
                                                  "tinyweights20250101T0000"))
        for folder, epochs in ((old, (1, 2)), (new, (4, 5))):
            for epoch in epochs:
                model.save_weights(str(folder / f"mask_rcnn_tinyweights_{epoch:04d}.h5"))
        empty.mkdir()
        (tmp_path / "other20990101T0000").mkdir()
        with pytest.warns(modellib.UnreadableCheckpointWarning, match="tinyweights20250101T0000 holds no mask_rcnn"):
            last = model.find_last()  # matterport raises on the empty last folder; ours looks in the one before
        assert last == str(new / "mask_rcnn_tinyweights_0005.h5")
        model.load_weights(last, by_name=True)
        assert model.epoch == 5
        assert model.log_dir == str(new)
        assert model.checkpoint_path.format(epoch=6) == str(new / "mask_rcnn_tinyweights_0006.h5")

    def test_find_last_with_run_folders_but_no_checkpoint(self, tmp_path):
        model = _tiny_model(tmp_path)
        (tmp_path / "tinyweights20240101T1200").mkdir()
        with pytest.raises(FileNotFoundError, match="no mask_rcnn_"):
            model.find_last()

    def test_other_weights_keep_a_new_log_dir(self, tmp_path):
        model = _tiny_model(tmp_path)
        path = model.save_weights(str(tmp_path / "final_weights.h5"))
        model.epoch = 3
        model.load_weights(path, by_name=True)
        assert model.epoch == 0


# ----------------------------------------------------------------------------
# ResNet-50: every matterport layer, with matterport's shapes
# ----------------------------------------------------------------------------

def matterport_weight_layers(stage4_blocks=6):
    """Names of the layers that own weights in matterport's ResNet-50 Mask R-CNN."""
    names = ["conv1", "bn_conv1"]
    for stage, blocks in ((2, 3), (3, 4), (4, stage4_blocks), (5, 3)):
        for block in "abcdefghijklmnopqrstuvw"[:blocks]:
            branches = ("2a", "2b", "2c", "1") if block == "a" else ("2a", "2b", "2c")
            for branch in branches:
                names += [f"res{stage}{block}_branch{branch}", f"bn{stage}{block}_branch{branch}"]
    names += ["fpn_c5p5", "fpn_c4p4", "fpn_c3p3", "fpn_c2p2", "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "rpn_model"]
    names += ["mrcnn_class_conv1", "mrcnn_class_bn1", "mrcnn_class_conv2", "mrcnn_class_bn2",
              "mrcnn_class_logits", "mrcnn_bbox_fc"]
    for i in range(1, 5):
        names += [f"mrcnn_mask_conv{i}", f"mrcnn_mask_bn{i}"]
    return names + ["mrcnn_mask_deconv", "mrcnn_mask"]


@pytest.fixture(scope="module")
def resnet50_model(tmp_path_factory):
    keras.utils.set_random_seed(0)
    return modellib.MaskRCNN("inference", Resnet50Config(), tmp_path_factory.mktemp("r50"))


def test_resnet50_has_exactly_matterports_weight_layers(resnet50_model):
    groups = weights_io.model_weight_groups(resnet50_model.keras_model)
    expected = matterport_weight_layers()
    # ResNet-50: conv1 + 16 blocks x 3 convs + 4 shortcuts, each with its BN; FPN 8; rpn_model; heads 16
    assert len(expected) == len(set(expected)) == 2 * (1 + 16 * 3 + 4) + 8 + 1 + 16
    assert sorted(groups) == sorted(expected)
    for name in ("fpn_p6", "mrcnn_bbox", "mrcnn_class", "ROI", "mrcnn_detection", "roi_align_classifier",
                 "roi_align_mask", "fpn_p5upsampled", "fpn_p4add"):
        resnet50_model.keras_model.get_layer(name)  # weightless matterport layers exist too
    assert sorted(groups["rpn_model"]) == sorted(
        f"{layer}/{var}" for layer in ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred") for var in ("kernel", "bias"))
    assert sorted(groups["bn2a_branch2a"]) == ["beta", "gamma", "moving_mean", "moving_variance"]


@pytest.mark.parametrize("layer, key, shape", [
    ("conv1", "kernel", (7, 7, 3, 64)),
    ("bn_conv1", "gamma", (64,)),
    ("res2a_branch2a", "kernel", (1, 1, 64, 64)),
    ("res2a_branch1", "kernel", (1, 1, 64, 256)),
    ("res3a_branch2a", "kernel", (1, 1, 256, 128)),
    ("res4f_branch2b", "kernel", (3, 3, 256, 256)),
    ("res5c_branch2c", "kernel", (1, 1, 512, 2048)),
    ("fpn_c5p5", "kernel", (1, 1, 2048, 256)),
    ("fpn_p2", "kernel", (3, 3, 256, 256)),
    ("rpn_model", "rpn_conv_shared/kernel", (3, 3, 256, 512)),
    ("rpn_model", "rpn_class_raw/kernel", (1, 1, 512, 6)),
    ("rpn_model", "rpn_bbox_pred/kernel", (1, 1, 512, 12)),
    ("mrcnn_class_conv1", "kernel", (7, 7, 256, 1024)),
    ("mrcnn_class_conv2", "kernel", (1, 1, 1024, 1024)),
    ("mrcnn_class_logits", "kernel", (1024, 2)),
    ("mrcnn_bbox_fc", "kernel", (1024, 8)),
    ("mrcnn_mask_conv1", "kernel", (3, 3, 256, 256)),
    ("mrcnn_mask_deconv", "kernel", (2, 2, 256, 256)),
    ("mrcnn_mask", "kernel", (1, 1, 256, 2)),
])
def test_resnet50_weight_shapes_are_matterports(resnet50_model, layer, key, shape):
    assert tuple(weights_io.model_weight_groups(resnet50_model.keras_model)[layer][key].shape) == shape


def test_resnet50_loads_a_matterport_style_file(resnet50_model, tmp_path):
    keras_model = resnet50_model.keras_model
    rng = np.random.default_rng(5)
    wanted = {"conv1", "bn_conv1", "res4f_branch2b", "fpn_c5p5", "rpn_model", "mrcnn_mask_deconv"} | set(HEADS)
    layers = [(name, weights) for name, weights in _keras2_layers(keras_model, rng, head_classes=COCO_CLASSES)
              if name in wanted]
    path = _write_keras2(tmp_path / "mask_rcnn_coco_like.h5", layers)
    with pytest.raises(WeightsMismatchError) as error:
        resnet50_model.load_weights(str(path), by_name=True)
    assert error.value.layers == sorted(HEADS)
    with pytest.warns(weights_io.WeightsLoadWarning, match="122 layer.s. of the model are not in the file"):
        result = resnet50_model.load_weights(str(path), by_name=True, exclude=HEADS + ["mrcnn_bbox"])
    assert sorted(result.loaded) == sorted(wanted - set(HEADS)) and len(result.missing_from_file) == 122
    after = _values(keras_model)
    for key, value in _expected_after_load(layers, HEADS).items():
        np.testing.assert_array_equal(after[key], value)


# ----------------------------------------------------------------------------
# what was not loaded (issue 14 item 7) and matterport's exclude => by_name
# ----------------------------------------------------------------------------

class TestWhatWasNotLoaded:
    def test_layers_the_file_lacks_are_warned_about_and_reported(self, tmp_path):
        model = _tiny_model(tmp_path)
        before = _values(model.keras_model)
        layers = [(name, weights) for name, weights in _keras2_layers(model.keras_model, np.random.default_rng(8))
                  if name not in ("fpn_p3", "rpn_model", "mrcnn_mask")]
        path = _write_keras2(tmp_path / "partial.h5", layers)
        with pytest.warns(weights_io.WeightsLoadWarning) as record:
            result = model.load_weights(str(path), by_name=True, exclude=["mrcnn_mask"])
        assert len(record) == 1
        assert str(record[0].message) == (f"{path}: 2 layer(s) of the model are not in the file and keep their "
                                          "current weights: fpn_p3, rpn_model")
        weighted = [layer.name for layer in model.keras_model.layers if layer.weights]
        assert result == weights_io.WeightsLoadResult(
            filepath=str(path), by_name=True,
            loaded=tuple(n for n in weighted if n not in ("fpn_p3", "rpn_model", "mrcnn_mask")),
            missing_from_file=("fpn_p3", "rpn_model"), excluded=("mrcnn_mask",), unused_in_file=("coco_only_layer",))
        after = _values(model.keras_model)
        for key in before:
            if key[0] in ("fpn_p3", "rpn_model", "mrcnn_mask"):
                np.testing.assert_array_equal(after[key], before[key])

    def test_exclude_names_that_match_no_layer_are_warned_about(self, tmp_path):
        model = _tiny_model(tmp_path)
        path = _write_keras2(tmp_path / "all.h5", _keras2_layers(model.keras_model, np.random.default_rng(9)))
        exclude = ["mrcnn_mask", "mrcnn_maskk", "rpn_class_raw", "fpn_p7"]
        with pytest.warns(weights_io.WeightsLoadWarning) as record:
            result = model.load_weights(str(path), by_name=True, exclude=exclude)
        assert [str(w.message) for w in record] == [
            f"{path}: exclude names ['fpn_p7', 'mrcnn_maskk'] match no layer of the model (nothing excluded for them)"]
        assert result.unknown_exclude == ("fpn_p7", "mrcnn_maskk")
        assert result.excluded == ("rpn_class_raw", "mrcnn_mask") and result.missing_from_file == ()

    def test_an_inner_layer_of_the_nested_model_can_be_excluded(self, tmp_path):
        model = _tiny_model(tmp_path)
        before = _values(model.keras_model)
        layers = _keras2_layers(model.keras_model, np.random.default_rng(10))
        path = _write_keras2(tmp_path / "all.h5", layers)
        model.load_weights(str(path), by_name=True, exclude=["rpn_class_raw"])
        after, file_rpn = _values(model.keras_model), dict(dict(layers)["rpn_model"])
        for key in ("rpn_class_raw/kernel", "rpn_class_raw/bias"):
            np.testing.assert_array_equal(after[("rpn_model", key)], before[("rpn_model", key)])
        for key in ("rpn_conv_shared/kernel", "rpn_bbox_pred/bias"):  # the positions after it still line up
            np.testing.assert_array_equal(after[("rpn_model", key)], file_rpn[key + ":0"])

    def test_exclude_forces_by_name_as_in_matterport(self, tmp_path):
        model = _tiny_model(tmp_path)
        layers = _keras2_layers(model.keras_model, np.random.default_rng(11))  # with coco_only_layer: by order fails
        path = _write_keras2(tmp_path / "extra.h5", layers)
        result = model.load_weights(str(path), exclude=["mrcnn_mask"])  # by_name left at False
        assert result.by_name and result.excluded == ("mrcnn_mask",) and result.unused_in_file == ("coco_only_layer",)
        result = weights_io.load_hdf5_weights(model.keras_model, path, by_name=False, exclude=["mrcnn_mask"])
        assert result.by_name

    def test_by_order_ignores_layer_names(self, tmp_path):
        model = _tiny_model(tmp_path)
        original = dict(_keras2_layers(model.keras_model, np.random.default_rng(12)))
        del original["coco_only_layer"]
        layers = [(f"other_name_{i}", weights) for i, weights in enumerate(original.values())]
        path = _write_keras2(tmp_path / "renamed_layers.h5", layers)
        with warnings.catch_warnings():
            warnings.simplefilter("error", weights_io.WeightsLoadWarning)
            result = model.load_weights(str(path), by_name=False)
        assert not result.by_name and result.missing_from_file == () and len(result.loaded) == len(layers) - 1
        np.testing.assert_array_equal(_values(model.keras_model)[("fpn_p2", "kernel")],
                                      dict(original["fpn_p2"])["fpn_p2/kernel:0"])

    def test_own_checkpoints_load_without_warnings(self, tmp_path):
        source = _tiny_model(tmp_path, seed=0)
        path = source.save_weights(str(tmp_path / "weights.h5"))
        target = _tiny_model(tmp_path, seed=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", weights_io.WeightsLoadWarning)
            for by_name in (True, False):
                result = target.load_weights(path, by_name=by_name)
                assert result.missing_from_file == result.unused_in_file == result.excluded == ()
                assert len(result.loaded) == len(weights_io.model_weight_groups(target.keras_model))
