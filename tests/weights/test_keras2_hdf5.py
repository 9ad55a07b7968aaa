"""The one Keras-1/Keras-2 HDF5 reader and writer (rsna_detector.weights.keras2_hdf5), on hand-made files."""
import h5py
import numpy as np
import pytest

import rsna_detector.weights as weights_package
from rsna_detector.weights import keras2_hdf5, registry
from rsna_detector.weights.keras2_hdf5 import (
    Keras2WeightsFile,
    WeightsFileError,
    is_keras2_weights_file,
    read_hdf5_weights,
    read_weight_file_layers,
    write_hdf5_weights,
)

KERNEL = np.arange(6, dtype="float32").reshape(2, 3)
BIAS = np.array([0.5, -1.0, 2.0], dtype="float32")


def _write_layers(group, layers, *, chunks=1, version=True):
    """``layers``: ``[(layer name, [(weight name, array)])]``; ``chunks > 1`` splits the name lists as Keras 2 did."""
    def text_list(target, name, values):
        encoded = np.array([v.encode() for v in values]) if values else h5py.Empty("S1")
        if chunks == 1 or not values:
            target.attrs[name] = encoded
        else:
            for index, part in enumerate(np.array_split(encoded, chunks)):
                target.attrs[f"{name}{index}"] = part

    text_list(group, "layer_names", [name for name, _ in layers])
    if version:
        group.attrs["keras_version"] = b"2.2.4"
        group.attrs["backend"] = b"tensorflow"
    for name, weights in layers:
        layer_group = group.create_group(name)
        text_list(layer_group, "weight_names", [weight_name for weight_name, _ in weights])
        for weight_name, array in weights:
            layer_group.create_dataset(weight_name, data=array)


DENSE = ("conv1/dense", [("conv1/dense/kernel:0", KERNEL), ("conv1/dense/bias:0", BIAS)])
RELU = ("conv1/relu", [])


def test_chunked_names_and_null_dataspace_attributes_are_read(tmp_path):
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as handle:
        _write_layers(handle, [RELU, DENSE, ("pool", [])], chunks=2)
        assert "layer_names" not in handle.attrs and "layer_names1" in handle.attrs
    assert read_weight_file_layers(path) == {
        "conv1/relu": [], "conv1/dense": [("conv1/dense/kernel:0", (2, 3)), ("conv1/dense/bias:0", (3,))], "pool": []}
    stored = read_hdf5_weights(path, normalise_names=True)
    assert list(stored) == ["conv1_dense"]  # weightless layers left out, '/' read as '_'
    np.testing.assert_array_equal(stored["conv1_dense"][0], KERNEL)
    np.testing.assert_array_equal(stored["conv1_dense"][1], BIAS)


def test_root_layer_names_win_over_model_weights_and_model_weights_is_read_alone(tmp_path):
    both, alone = tmp_path / "both.h5", tmp_path / "model_save.h5"
    with h5py.File(both, "w") as handle:
        _write_layers(handle, [DENSE])
        _write_layers(handle.create_group("model_weights"), [("conv1/dense", [("k:0", KERNEL * 2), ("b:0", BIAS)])])
    with h5py.File(alone, "w") as handle:
        _write_layers(handle.create_group("model_weights"), [DENSE], version=False)
    np.testing.assert_array_equal(read_hdf5_weights(both)["conv1/dense"][0], KERNEL)
    with Keras2WeightsFile(alone) as weights_file:
        assert weights_file.layers == ["conv1/dense"]
        assert (weights_file.keras_version, weights_file.backend) == (keras2_hdf5.KERAS1_VERSION, None)
        np.testing.assert_array_equal(weights_file.datasets("conv1/dense")[0][1][()], KERNEL)


def test_which_files_are_keras2(tmp_path):
    keras2, keras3, text = tmp_path / "k2.h5", tmp_path / "k3.weights.h5", tmp_path / "notes.txt"
    with h5py.File(keras2, "w") as handle:
        _write_layers(handle.create_group("model_weights"), [DENSE])
    with h5py.File(keras3, "w") as handle:  # Keras 3's layout: groups 'layers' and 'vars', no layer_names
        handle.create_group("layers").create_group("dense").create_group("vars")
    text.write_text("not hdf5")
    assert is_keras2_weights_file(keras2) and not is_keras2_weights_file(keras3)
    assert not is_keras2_weights_file(text)
    with pytest.raises(FileNotFoundError, match="absent.h5: weights file not found"):
        is_keras2_weights_file(tmp_path / "absent.h5")
    with pytest.raises(WeightsFileError, match=r"k3.weights.h5: not a Keras-2 HDF5 weights file \(no 'layer_names'"):
        read_hdf5_weights(keras3)
    with pytest.raises(WeightsFileError, match="notes.txt: not a readable HDF5 file"):
        read_hdf5_weights(text)


def test_broken_layouts_name_the_file_and_the_layer(tmp_path):
    twice, no_group, no_dataset = tmp_path / "twice.h5", tmp_path / "no_group.h5", tmp_path / "no_dataset.h5"
    with h5py.File(twice, "w") as handle:
        _write_layers(handle, [DENSE, ("conv1_dense", [])])
    with h5py.File(no_group, "w") as handle:
        _write_layers(handle, [DENSE])
        handle.attrs["layer_names"] = [b"conv1/dense", b"ghost"]
    with h5py.File(no_dataset, "w") as handle:
        _write_layers(handle, [DENSE])
        handle["conv1/dense"].attrs["weight_names"] = [b"conv1/dense/kernel:0", b"conv1/dense/gamma:0"]
    assert list(read_weight_file_layers(twice)) == ["conv1/dense", "conv1_dense"]  # distinct as written
    with pytest.raises(WeightsFileError, match=r"twice.h5: the layer 'conv1_dense' is listed twice in 'layer_names' "
                                               r"\(as 'conv1/dense' and 'conv1_dense'\)"):
        read_hdf5_weights(twice, normalise_names=True)
    with pytest.raises(WeightsFileError,
                       match="no_group.h5: layer 'ghost' is listed in 'layer_names' but has no group"):
        read_weight_file_layers(no_group)
    with pytest.raises(WeightsFileError, match="no_dataset.h5: layer 'conv1/dense' lists the weight "
                                               "'conv1/dense/gamma:0', which is not a dataset of its group"):
        read_hdf5_weights(no_dataset)


def test_writer_round_trip_chunks_long_name_lists(tmp_path):
    layers = {f"layer_with_a_long_name_{i:05d}": [(f"layer_with_a_long_name_{i:05d}/bias:0", np.full(2, i, "f4"))]
              for i in range(3000)}  # 3000 names of 28 bytes: 84,000 bytes > 64,000, so two chunks
    path = tmp_path / "out" / "written.h5"
    assert write_hdf5_weights(path, layers, {"keras_version": b"3.0", "epoch": 7}) == str(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["written.h5"]  # no temporary file left
    with h5py.File(path, "r") as handle:
        assert sorted(k for k in handle.attrs if k.startswith("layer_names")) == ["layer_names0", "layer_names1"]
        assert handle.attrs["epoch"] == 7
    stored = read_hdf5_weights(path)
    assert list(stored) == list(layers)
    np.testing.assert_array_equal(stored["layer_with_a_long_name_02999"][0], [2999, 2999])


def test_the_package_keeps_the_registry_names():
    assert {"fetch_weights", "WeightsError", "REGISTRY_PATH", "ENV_WEIGHTS_DIR"} <= set(weights_package.__all__)
    for name in registry.__all__:
        assert getattr(weights_package, name) is getattr(registry, name)
    assert weights_package.REGISTRY_PATH.is_file()
    assert set(weights_package.load_registry()) == {"coco", "imagenet", "chexnet"}
