"""Hostile weights files (issue 22, case 4 and the inference bullet): shapes and dtypes are checked
from the HDF5 metadata before any dataset is read, nothing is assigned unless everything fits,
``find_last`` does not pick a file whose datasets cannot be right (not numeric, never written), and
inference refuses a file that leaves a layer with weights unloaded."""
import warnings

import h5py
import keras
import numpy as np
import pytest

from rsna_detector.mrcnn.train.checkpoints import UnreadableCheckpointWarning, find_last_checkpoint
from rsna_detector.weights.keras2_model import WeightsMismatchError, load_hdf5_weights, save_hdf5_weights


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="second")(keras.layers.Dense(3, name="first")(inputs))
    return keras.Model(inputs, outputs)


def _values(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def _replace(path, dataset_path, **create):
    """Replace one dataset of a weights file (same name) by ``create_dataset(**create)``."""
    with h5py.File(path, "r+") as handle:
        del handle[dataset_path]
        handle.create_dataset(dataset_path, **create)
    return path


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "weights.h5"
    save_hdf5_weights(_model(seed=1), path)
    return path


@pytest.fixture
def dataset_reads(monkeypatch):
    """Every h5py dataset read (``dataset[...]``), recorded."""
    reads = []
    original = h5py.Dataset.__getitem__

    def recording(self, key):
        reads.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    return reads


def test_a_dataset_declaring_a_terabyte_is_refused_from_its_metadata(saved, dataset_reads):
    # chunked and never written: the file stays small, reading it would allocate 3.6 TiB
    _replace(saved, "second/second/kernel:0", shape=(1_000_000, 1_000_000), dtype="float32", chunks=(1000, 1000))
    assert saved.stat().st_size < 100_000
    model = _model()
    before = _values(model)
    with pytest.raises(WeightsMismatchError, match=r"second: kernel: file shape \(1000000, 1000000\)") as caught:
        load_hdf5_weights(model, saved)
    assert str(saved) in str(caught.value) and caught.value.layers == ["second"]
    assert dataset_reads == []  # no dataset of the file was read, the good ones neither
    assert all(np.array_equal(a, b) for a, b in zip(before, _values(model), strict=True))


def test_a_string_dataset_of_the_right_shape_assigns_nothing(saved):
    _replace(saved, "second/second/bias:0", data=np.array([b"ab", b"cd"]))
    model = _model()
    before = _values(model)
    with pytest.raises(WeightsMismatchError, match=r"second: bias: file dtype \|S2 is not numeric") as caught:
        load_hdf5_weights(model, saved)
    assert str(saved) in str(caught.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, _values(model), strict=True))  # not 2 of 4 assigned


def test_a_whole_file_still_loads_exactly(saved):
    model = _model()
    load_hdf5_weights(model, saved)
    assert all(np.array_equal(a, b) for a, b in zip(_values(_model(seed=1)), _values(model), strict=True))


def test_find_last_skips_a_checkpoint_whose_dataset_was_never_written(tmp_path):
    run = tmp_path / "blobs20240101T000000"
    run.mkdir()
    good = save_hdf5_weights(_model(), run / "mask_rcnn_blobs_0001.h5")
    bad = save_hdf5_weights(_model(), run / "mask_rcnn_blobs_0002.h5")
    _replace(bad, "first/first/kernel:0", shape=(1_000_000, 1_000_000), dtype="float32", chunks=(1000, 1000))
    with pytest.warns(UnreadableCheckpointWarning, match=r"mask_rcnn_blobs_0002\.h5.*never written"):
        assert find_last_checkpoint(str(tmp_path), "blobs") == good


def test_inference_loading_refuses_a_file_that_leaves_a_layer_unloaded(tmp_path):
    from rsna_detector.weights.keras2_model import IncompleteWeightsError

    inputs = keras.Input((4,))
    unrelated = keras.Model(inputs, keras.layers.Dense(3, name="other")(inputs))
    path = save_hdf5_weights(unrelated, tmp_path / "unrelated.h5")
    model = _model()
    before = _values(model)
    with pytest.raises(IncompleteWeightsError, match=r"unrelated\.h5: 2 of the model's layers .*first, second"):
        load_hdf5_weights(model, path, by_name=True, require_complete=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, _values(model), strict=True))
    with warnings.catch_warnings(record=True) as caught:  # training from a partial file: a warning, as before
        warnings.simplefilter("always")
        result = load_hdf5_weights(model, path, by_name=True)
    assert result.missing_from_file == ("first", "second") and caught
