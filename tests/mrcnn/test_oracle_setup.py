"""The matterport oracle is the real matterport v2.1, reachable from the tests, and test-only."""
import re
import sys
from pathlib import Path

from tests import matterport_oracle as oracle

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "rsna_detector"


def test_oracle_is_matterport_v21_and_not_the_test_folder():
    folder = oracle.require_matterport()
    assert "site-packages" in folder.parts or "dist-packages" in folder.parts
    assert oracle.model_source_md5() == oracle.MATTERPORT_MODEL_MD5
    module = oracle.utils()
    assert Path(module.__file__).parent == folder
    assert module.COCO_MODEL_URL.endswith("/v2.0/mask_rcnn_coco.h5")


def test_test_folder_does_not_shadow_matterport():
    # tests/mrcnn is imported as tests.mrcnn (tests/ is a package), never as top-level mrcnn.
    assert __name__ == "tests.mrcnn.test_oracle_setup"
    oracle.utils()
    assert "tests" not in Path(sys.modules["mrcnn"].__file__).parts


def test_library_never_imports_matterport():
    pattern = re.compile(r"^\s*(import mrcnn\b|from mrcnn\b)", re.MULTILINE)
    offenders = [str(path) for path in PACKAGE_DIR.rglob("*.py") if pattern.search(path.read_text())]
    assert offenders == []


def test_oracle_model_functions_run_eagerly():
    import tensorflow as tf

    model = oracle.model()
    # smooth-L1 by hand: |d| < 1 -> 0.5 d^2, else |d| - 0.5
    loss = model.smooth_l1_loss(tf.constant([0.0, 2.0]), tf.constant([0.5, 0.0])).numpy()
    assert loss.tolist() == [0.125, 1.5]
