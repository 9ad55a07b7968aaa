"""Shared fixtures. Real RSNA samples are found through RSNA_DATA_DIR
(``make test`` and ``.ci/run`` point it at ``../shared/rsna``)."""
import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def rsna_dir() -> Path:
    """The real-sample directory (``labels/``, ``images/``, ``MANIFEST.csv``)."""
    value = os.environ.get("RSNA_DATA_DIR")
    if not value:
        pytest.skip("RSNA_DATA_DIR is not set: real RSNA sample tests skipped")
    path = Path(value)
    if not (path / "labels").is_dir():
        pytest.skip(f"RSNA_DATA_DIR={value} has no labels/ folder: real RSNA sample tests skipped")
    return path


@pytest.fixture
def cli(monkeypatch):
    """``rsna-detector`` in this process, its console set-up undone afterwards."""
    from rsna_detector.cli import main

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    monkeypatch.setenv("TQDM_MININTERVAL", os.environ.get("TQDM_MININTERVAL", "0.1"))
    library_logger = logging.getLogger("rsna_detector")
    saved = (list(library_logger.handlers), library_logger.level, library_logger.propagate)
    yield main
    library_logger.handlers[:] = saved[0]
    library_logger.setLevel(saved[1])
    library_logger.propagate = saved[2]


@pytest.fixture(scope="session")
def exported_detector(tmp_path_factory):
    """``helpers.seeded_detector`` exported once (issue 21) as SavedModel, float32 TFLite and ONNX, each checked.

    A namespace: ``model`` (the ``MaskRCNN``), ``folder``, ``version`` (the SavedModel's version folder),
    ``tflite``, ``onnx`` (the files), ``summary`` (``export.json``). Shared by the export and serving tests.
    """
    from types import SimpleNamespace

    from rsna_detector.detector.export import export_detector
    from tests.helpers import seeded_detector

    folder = tmp_path_factory.mktemp("exported_detector")
    model = seeded_detector(folder)
    summary = export_detector(model, folder / "export", formats=["saved_model", "tflite", "onnx"])
    paths = {name: Path(entry["path"]) for name, entry in summary["formats"].items()}
    return SimpleNamespace(model=model, folder=folder, version=paths["saved_model"], tflite=paths["tflite"],
                           onnx=paths["onnx"], summary=summary)
