"""Saving and reloading the baselines' whole Keras models (``.keras`` files)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

__all__ = ["save_trained_model", "load_model_for_prediction"]


def save_trained_model(model, history, path):
    """Save ``model`` to ``path`` (parent folders created) and describe its last epoch.

    Returns
    -------
    str
        ``"saved PATH; last epoch: {...}"`` with every history key's last value.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    last = {key: round(float(values[-1]), 4) for key, values in history.history.items()}
    return f"saved {path}; last epoch: {json.dumps(last)}"


def load_model_for_prediction(path):
    """Load a saved ``.keras`` model without its optimizer (not needed to predict)."""
    import keras

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return keras.saving.load_model(path, compile=False)
