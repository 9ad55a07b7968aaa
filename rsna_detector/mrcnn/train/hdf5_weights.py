"""The engine's Keras-1/Keras-2 HDF5 weights (matterport's ``load_weights`` / ``save_weights`` rules).

The reader and writer are the library's one implementation in
:mod:`rsna_detector.weights.keras2_model` (a model and the file, Keras 2's rules) and
:mod:`rsna_detector.weights.keras2_hdf5` (the file layout); this module keeps the
names the engine, its notebooks and its tests import from here.
"""
from rsna_detector.weights.keras2_hdf5 import WeightsFileError, read_weight_file_layers
from rsna_detector.weights.keras2_model import (
    WeightsLoadResult,
    WeightsLoadWarning,
    WeightsMismatchError,
    load_hdf5_weights,
    model_weight_groups,
    save_hdf5_weights,
)

__all__ = ["WeightsMismatchError", "WeightsFileError", "WeightsLoadWarning", "WeightsLoadResult",
           "load_hdf5_weights", "save_hdf5_weights", "model_weight_groups", "read_weight_file_layers"]
