"""The curated public API: every exported name resolves, and importing is cheap."""
import subprocess
import sys

import pytest

import rsna_detector
from rsna_detector._moved import MOVED_MODULES


def test_every_exported_name_resolves():
    missing = [name for name in rsna_detector.__all__ if not hasattr(rsna_detector, name)]
    assert missing == []


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rsna_detector.nope  # noqa: B018


def test_importing_the_package_and_the_data_layer_does_not_import_tensorflow():
    code = ("import sys, rsna_detector, rsna_detector.data.labels, rsna_detector.data.dicom, rsna_detector.cli; "
            "rsna_detector.cli.build_parser(); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_and_predict_stay_functions_after_their_modules_are_imported():
    import importlib

    importlib.import_module("rsna_detector.detector.schedule")
    importlib.import_module("rsna_detector.detector.inference")
    from rsna_detector import predict, train

    assert callable(train) and train.__name__ == "train"
    assert callable(predict) and predict.__name__ == "predict"


def test_the_schedule_module_is_a_module_and_train_a_function():
    import importlib

    schedule = importlib.import_module("rsna_detector.detector.schedule")
    import rsna_detector.detector.schedule as t

    assert t is schedule and callable(t.default_schedule)
    from rsna_detector import train

    assert train is t.train


@pytest.mark.parametrize("old, new", sorted(MOVED_MODULES.items()))
def test_an_old_module_path_names_the_new_one(old, new):
    import importlib

    with pytest.raises(ModuleNotFoundError, match=f"{old} moved to {new}"):
        importlib.import_module(old)
    assert importlib.util.find_spec(new) is not None
