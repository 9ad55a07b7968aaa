"""The curated public API: every exported name resolves, and importing is cheap."""
import subprocess
import sys

import rsna_detector


def test_every_exported_name_resolves():
    missing = [name for name in rsna_detector.__all__ if not hasattr(rsna_detector, name)]
    assert missing == []


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rsna_detector.nope  # noqa: B018


def test_importing_the_package_and_the_data_layer_does_not_import_tensorflow():
    code = ("import sys, rsna_detector, rsna_detector.data.labels, rsna_detector.data.dicom, rsna_detector.cli; "
            "rsna_detector.cli.build_parser(); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_and_predict_stay_functions_after_their_modules_are_imported():
    import importlib

    importlib.import_module("rsna_detector.train")
    importlib.import_module("rsna_detector.predict")
    from rsna_detector import predict, train

    assert callable(train) and train.__name__ == "train"
    assert callable(predict) and predict.__name__ == "predict"
