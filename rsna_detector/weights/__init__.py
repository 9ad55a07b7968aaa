"""Weight files: where they come from, and the Keras-1/Keras-2 HDF5 layout they are in.

The package is the lowest layer of the library: of the rest it imports only ``errors`` and
``_io`` (the error bases and the atomic writes).

* :mod:`.registry`: the downloadable files (``weights_registry.json``), the local
  cache, checksums and offline errors. Its public names are re-exported here
  (``from rsna_detector.weights import fetch_weights``).
* :mod:`.keras2_hdf5`: the one reader and writer of the Keras-1/Keras-2 HDF5 weights
  layout (h5py and numpy).
* :mod:`.keras2_model`: a Keras model's weights to and from that layout, as Keras 2
  loaded and saved them (used by the Mask R-CNN engine, the classifier baselines and
  RetinaNet).

The two HDF5 modules are not imported here (they need h5py, and Keras); import them
by name, e.g. ``from rsna_detector.weights.keras2_model import load_hdf5_weights``.
"""
from . import registry
from .registry import *  # noqa: F403  (the registry's public names, importable from here as before)

__all__ = list(registry.__all__)
