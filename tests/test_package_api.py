"""The curated public API: every exported name resolves, and importing is cheap."""
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import rsna_detector


def test_every_exported_name_resolves():
    missing = [name for name in rsna_detector.__all__ if not hasattr(rsna_detector, name)]
    assert missing == []


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rsna_detector.nope  # noqa: B018


@pytest.mark.parametrize("package", ["rsna_detector", "rsna_detector.detector", "rsna_detector.eda",
                                     "rsna_detector.baselines.classifier", "rsna_detector.baselines.retinanet"])
def test_the_lazy_export_machinery_is_not_a_public_name(package):
    module = importlib.import_module(package)
    public = [name for name in dir(module) if not name.startswith("_")]
    assert "lazy_exports" not in public
    assert "lazy_exports" not in getattr(module, "__all__", [])


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


#: the module paths that moved in 0.2 (issue 13), as docs/ARCHITECTURE.md lists them
MOVED_IN_0_2 = {
    "rsna_detector.config": "rsna_detector.detector.config",
    "rsna_detector.augment": "rsna_detector.detector.augment",
    "rsna_detector.augmenters": "rsna_detector.detector.piecewise_affine",
    "rsna_detector.train": "rsna_detector.detector.schedule",
    "rsna_detector.predict": "rsna_detector.detector.inference",
    "rsna_detector.evaluate": "rsna_detector.detector.evaluate",
    "rsna_detector.competition": "rsna_detector.detector.competition",
    "rsna_detector.submission": "rsna_detector.detector.submission",
    "rsna_detector.figures": "rsna_detector.detector.figures",
    "rsna_detector.demo": "rsna_detector.detector.demo",
    "rsna_detector.data.dataset": "rsna_detector.detector.dataset",
}


@pytest.mark.parametrize("old, new", sorted(MOVED_IN_0_2.items()))
def test_a_moved_module_lives_only_at_its_new_path(old, new):
    assert importlib.util.find_spec(old) is None
    assert importlib.util.find_spec(new) is not None


def test_the_architecture_document_lists_every_move():
    text = (Path(rsna_detector.__file__).parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [f"{old} -> {new}" for old, new in MOVED_IN_0_2.items() if f"`{old}` | `{new}`" not in text]
    assert missing == []


#: module paths moved by issue 25 (the engine by role); matterport's four module paths stay
MOVED_IN_ISSUE_25 = {
    "rsna_detector.mrcnn.anchors": "rsna_detector.mrcnn.ops.anchors",
    "rsna_detector.mrcnn.boxes": "rsna_detector.mrcnn.ops.boxes",
    "rsna_detector.mrcnn.masks": "rsna_detector.mrcnn.ops.masks",
    "rsna_detector.mrcnn.molding": "rsna_detector.mrcnn.ops.molding",
    "rsna_detector.mrcnn.image_meta": "rsna_detector.mrcnn.ops.image_meta",
    "rsna_detector.mrcnn.matching": "rsna_detector.mrcnn.eval.matching",
    "rsna_detector.mrcnn.metrics": "rsna_detector.mrcnn.eval.metrics",
    "rsna_detector.mrcnn.base_dataset": "rsna_detector.mrcnn.input.base_dataset",
    "rsna_detector.mrcnn.data": "rsna_detector.mrcnn.input.ground_truth",
    "rsna_detector.mrcnn.head_targets": "rsna_detector.mrcnn.input.head_targets",
    "rsna_detector.mrcnn.generator": "rsna_detector.mrcnn.input.generator",
    "rsna_detector.mrcnn.input_pipeline": "rsna_detector.mrcnn.input.pipeline",
    "rsna_detector.mrcnn.parallel": "rsna_detector.mrcnn.input.workers",
    "rsna_detector.mrcnn.backbone": "rsna_detector.mrcnn.layers.backbone",
    "rsna_detector.mrcnn.fpn": "rsna_detector.mrcnn.layers.fpn",
    "rsna_detector.mrcnn.rpn": "rsna_detector.mrcnn.layers.rpn",
    "rsna_detector.mrcnn.sparse_conv": "rsna_detector.mrcnn.layers.sparse_conv",
    "rsna_detector.mrcnn.proposals": "rsna_detector.mrcnn.layers.proposals",
    "rsna_detector.mrcnn.roi_align": "rsna_detector.mrcnn.layers.roi_align",
    "rsna_detector.mrcnn.heads": "rsna_detector.mrcnn.layers.heads",
    "rsna_detector.mrcnn.detection": "rsna_detector.mrcnn.layers.detection",
    "rsna_detector.mrcnn.box_ops": "rsna_detector.mrcnn.layers.box_ops",
    "rsna_detector.mrcnn.losses": "rsna_detector.mrcnn.layers.losses",
    "rsna_detector.mrcnn.targets": "rsna_detector.mrcnn.layers.detection_targets",
    "rsna_detector.mrcnn.training": "rsna_detector.mrcnn.layers.training_graph",
    "rsna_detector.mrcnn.compat": "rsna_detector.mrcnn.layers.compat",
    "rsna_detector.mrcnn.inference": "rsna_detector.mrcnn.inference.detect",
    "rsna_detector.mrcnn.trainer": "rsna_detector.mrcnn.train.loop",
    "rsna_detector.mrcnn.checkpoints": "rsna_detector.mrcnn.train.checkpoints",
    "rsna_detector.mrcnn.progress": "rsna_detector.mrcnn.train.progress",
    "rsna_detector.mrcnn.weights": "rsna_detector.mrcnn.train.hdf5_weights",
    "rsna_detector.detector.augmenters": "rsna_detector.detector.piecewise_affine",
}


@pytest.mark.parametrize("old, new", sorted(MOVED_IN_ISSUE_25.items()))
def test_a_module_of_the_engine_lives_only_at_its_new_path(old, new):
    """No alias keeps an old path: it is gone, or (``mrcnn.inference``) the package of its new module."""
    old_spec = importlib.util.find_spec(old)
    assert old_spec is None or (old_spec.submodule_search_locations is not None and new.startswith(old + "."))
    assert importlib.util.find_spec(new) is not None


def test_the_architecture_document_lists_every_move_of_the_engine():
    text = (Path(rsna_detector.__file__).parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [f"{old} -> {new}" for old, new in MOVED_IN_ISSUE_25.items() if f"`{old}` | `{new}`" not in text]
    assert missing == []
