"""Fixtures of the detector's tests."""
import logging
import os

import pytest


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
