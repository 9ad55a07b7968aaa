"""errors: every error and warning class of the library derives from the common bases (issue 13).

The walk imports every module of the package, whatever it holds (``baselines/`` and ``cli/``
included once they exist), and checks each exception class *defined* there.
"""
import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

import rsna_detector
from rsna_detector.errors import RsnaDetectorError, RsnaDetectorWarning

PACKAGE_ROOT = Path(rsna_detector.__file__).parent

def _walked_modules():
    names = ["rsna_detector"]
    names += [info.name for info in pkgutil.walk_packages(rsna_detector.__path__, "rsna_detector.")]
    return sorted(names)


def _defined_exception_classes():
    found = []
    for name in _walked_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == name:
                found.append(value)
    return found


EXCEPTION_CLASSES = _defined_exception_classes()


def test_the_walk_finds_the_library_s_exceptions():
    names = {cls.__name__ for cls in EXCEPTION_CLASSES}
    assert {"LabelError", "LayoutError", "WeightsError", "ConfigError", "DatasetKeyError", "SubmissionWarning",
            "CheckpointWriteError", "RsnaDetectorError"} <= names
    assert len(names) >= 40  # 41 when this test was written


@pytest.mark.parametrize("cls", [c for c in EXCEPTION_CLASSES if c not in (RsnaDetectorError, RsnaDetectorWarning)],
                         ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_every_error_and_warning_derives_from_the_library_bases(cls):
    if issubclass(cls, Warning):
        assert issubclass(cls, RsnaDetectorWarning) and issubclass(cls, UserWarning)
    else:
        assert issubclass(cls, RsnaDetectorError), f"{cls.__module__}.{cls.__name__}: {cls.__mro__}"


def test_the_built_in_bases_are_kept():
    from rsna_detector.data.labels import LabelError
    from rsna_detector.data.layout import LayoutError
    from rsna_detector.mrcnn.train.loop import CheckpointWriteError, NonFiniteLossError
    from rsna_detector.mrcnn.utils import DatasetKeyError, NoGroundTruthError
    from rsna_detector.weights import UnknownWeightsError, WeightsError

    assert issubclass(LabelError, ValueError) and issubclass(LayoutError, FileNotFoundError)
    assert issubclass(WeightsError, RuntimeError) and issubclass(UnknownWeightsError, WeightsError)
    assert issubclass(CheckpointWriteError, OSError) and issubclass(NonFiniteLossError, FloatingPointError)
    assert issubclass(DatasetKeyError, KeyError) and issubclass(NoGroundTruthError, ZeroDivisionError)
    error = CheckpointWriteError(28, "No space left on device", "/tmp/x.h5")  # OSError's fields still work
    assert error.errno == 28 and error.filename == "/tmp/x.h5" and isinstance(error, RsnaDetectorError)


def test_an_error_raised_while_handling_another_keeps_it_as_its_cause(tmp_path):
    from rsna_detector.detector.results import read_results_file
    from rsna_detector.detector.submission import SubmissionError

    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(SubmissionError, match="invalid JSON") as caught:
        read_results_file(path)
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


def test_no_cause_is_hidden_without_saying_why():
    """``raise ... from None`` only with a comment on the line saying why the cause is hidden."""
    hidden = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bfrom None\b", line) and "# cause hidden:" not in line:
                hidden.append(f"{path.relative_to(PACKAGE_ROOT)}:{number}")
    assert hidden == []
