"""The baselines' packages: every public name resolves from its module, importing them loads no Keras, and
their errors are the library's (RsnaDetectorError) while keeping ValueError."""
import subprocess
import sys
from pathlib import Path

import pytest

from rsna_detector import baselines
from rsna_detector.baselines import classifier, retinanet
from rsna_detector.errors import RsnaDetectorError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", [baselines, classifier, retinanet], ids=lambda p: p.__name__)
def test_every_public_name_resolves_and_is_listed(package):
    for name in package.__all__:
        value = getattr(package, name)
        if isinstance(value, type) or callable(value):
            # defined in one of the package's own modules, not re-exported from elsewhere
            assert value.__module__.startswith(package.__name__), (name, value.__module__)
    assert set(package.__all__) <= set(dir(package))


@pytest.mark.parametrize("package", [classifier, retinanet], ids=lambda p: p.__name__)
def test_an_unknown_name_is_an_attribute_error(package):
    with pytest.raises(AttributeError, match=f"module '{package.__name__}' has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_importing_the_packages_and_their_settings_loads_no_keras():
    code = ("import sys, rsna_detector.baselines, rsna_detector.baselines.classifier.settings, "
            "rsna_detector.baselines.retinanet.settings; "
            "print(sorted(m for m in ('keras', 'keras_hub', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(ROOT),
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("error", [classifier.ClassifierError, retinanet.RetinaNetError, baselines.GatingError])
def test_errors_derive_from_the_library_base_and_keep_value_error(error):
    assert issubclass(error, RsnaDetectorError) and issubclass(error, ValueError)


def test_a_lazily_imported_name_is_the_modules_own_object():
    from rsna_detector.baselines.classifier.sequence import ClassifierSequence
    from rsna_detector.baselines.retinanet.models import build_retinanet

    assert classifier.ClassifierSequence is ClassifierSequence and retinanet.build_retinanet is build_retinanet
    assert classifier.BinaryF1Score.__qualname__ == "BinaryF1Score"  # a plain module-level class
