"""Every Keras layer and metric of the library survives ``get_config`` -> ``from_config``.

One table gives each class constructor arguments other than its defaults; the round trip must
give back the same config, each argument must be in it with its value, and the rebuilt layer
must compute what the original does where the layer has no weights. A class added to the
library without a row here fails ``test_every_layer_class_is_in_the_table``.
"""
import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest

import rsna_detector
from rsna_detector.mrcnn.config import Config
from tests.helpers import tiny_config

#: classes that cannot round-trip, and why
NOT_SERIALISABLE = {
    # holds a Python function (often a closure over the Config): the training graph is rebuilt
    # from its Config, never loaded from a saved graph
    "rsna_detector.mrcnn.layers.training_graph.LossLayer",
}


def _config():
    return tiny_config(TRAIN_ROIS_PER_IMAGE=12, DETECTION_MAX_INSTANCES=5)


#: class -> keyword arguments (none of them a default)
CONSTRUCTORS = {
    "rsna_detector.baselines.classifier.models.BinaryF1Score": lambda: dict(threshold=0.3, name="f1_at_03"),
    "rsna_detector.mrcnn.layers.backbone.BatchNorm": lambda: dict(train_bn=False, momentum=0.9, epsilon=1e-3),
    "rsna_detector.mrcnn.layers.compat.ProposalStage": lambda: dict(
        stage="refined_anchors", proposal_count=17, nms_threshold=0.6, pre_nms_limit=123, rpn_bbox_std_dev=[0.2, 0.2, 0.1, 0.1]),
    "rsna_detector.mrcnn.layers.detection.DetectionLayer": lambda: dict(
        max_instances=5, min_confidence=0.6, nms_threshold=0.2, bbox_std_dev=[0.1, 0.1, 0.3, 0.3]),
    "rsna_detector.mrcnn.layers.heads.FoldRois": lambda: dict(name="fold"),
    "rsna_detector.mrcnn.layers.heads.GatherRealRois": lambda: dict(keep_zero_row=True),
    "rsna_detector.mrcnn.layers.heads.RoiConv2D": lambda: dict(filters=3, kernel_size=[2, 2], skip_padding=True),
    "rsna_detector.mrcnn.layers.heads.RoiDense": lambda: dict(units=5, skip_padding=True),
    "rsna_detector.mrcnn.layers.heads.ScatterRealRois": lambda: dict(target_shape=[2, 4]),
    "rsna_detector.mrcnn.layers.heads.UnfoldRois": lambda: dict(target_shape=[3, 4]),
    "rsna_detector.mrcnn.layers.heads.WindowDense": lambda: dict(filters=6, kernel_size=[7, 7]),
    "rsna_detector.mrcnn.layers.heads._RowsToRois": lambda: dict(target_shape=[4]),
    "rsna_detector.mrcnn.layers.proposals.ProposalLayer": lambda: dict(
        proposal_count=21, nms_threshold=0.5, pre_nms_limit=99, rpn_bbox_std_dev=[0.1, 0.1, 0.2, 0.2]),
    "rsna_detector.mrcnn.layers.roi_align.PyramidROIAlign": lambda: dict(pool_shape=[5, 3]),
    "rsna_detector.mrcnn.layers.bn_folding.BatchNormFoldingConv2D": lambda: dict(filters=4, kernel_size=[1, 3], strides=[2, 1]),
    "rsna_detector.mrcnn.layers.sparse_conv.SparseGradientConv2D": lambda: dict(filters=4, kernel_size=[3, 1], padding="same"),
    "rsna_detector.mrcnn.layers.detection_targets.DetectionTargetLayer": lambda: dict(config=_config()),
    "rsna_detector.mrcnn.layers.training_graph.ActiveClassIds": lambda: dict(name="active"),
    "rsna_detector.mrcnn.layers.training_graph.AnchorsLayer": lambda: dict(anchors=[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]),
    "rsna_detector.mrcnn.layers.training_graph.FiniteBoxes": lambda: dict(name="finite"),
    "rsna_detector.mrcnn.layers.training_graph.KeepPositiveRois": lambda: dict(name="keep"),
    "rsna_detector.mrcnn.layers.training_graph.NormBoxesLayer": lambda: dict(image_shape=[64, 32, 3]),
    "rsna_detector.mrcnn.layers.training_graph.RoiValid": lambda: dict(name="valid"),
    "rsna_detector.mrcnn.layers.training_graph.SliceRois": lambda: dict(count=3),
}


def _library_layer_classes():
    found = {}
    for module_info in pkgutil.walk_packages(rsna_detector.__path__, "rsna_detector."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (inspect.isclass(value) and value.__module__ == module.__name__
                    and issubclass(value, (keras.layers.Layer, keras.metrics.Metric))
                    and not issubclass(value, keras.Model)):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def _class(path):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _comparable(value):
    """Configs hold lists, tuples, numpy arrays and nested dicts: compare them as plain lists."""
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_comparable(item) for item in value]
    if isinstance(value, Config):
        return _comparable(value.to_dict())
    return value


def test_every_layer_class_is_in_the_table():
    assert set(_library_layer_classes()) == set(CONSTRUCTORS) | NOT_SERIALISABLE


@pytest.mark.parametrize("path", sorted(CONSTRUCTORS))
def test_get_config_round_trip(path):
    cls, arguments = _class(path), CONSTRUCTORS[path]()
    layer = cls(**arguments)
    config = layer.get_config()
    for name, value in arguments.items():
        assert name in config, f"{path}.get_config() drops {name}"
        assert _comparable(config[name]) == _comparable(value), f"{path}: {name}"
    rebuilt = cls.from_config(config)
    assert _comparable(rebuilt.get_config()) == _comparable(config)
    assert type(rebuilt) is cls


@pytest.mark.parametrize("path, inputs", [
    ("rsna_detector.mrcnn.layers.training_graph.NormBoxesLayer", lambda: np.array([[[0, 0, 32, 16], [0, 0, 0, 0]]], np.float32)),
    ("rsna_detector.mrcnn.layers.training_graph.SliceRois", lambda: np.arange(2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)),
    ("rsna_detector.mrcnn.layers.training_graph.AnchorsLayer", lambda: np.zeros((1, 8, 8, 3), np.float32)),
    ("rsna_detector.mrcnn.layers.training_graph.FiniteBoxes", lambda: np.array([[[np.nan, 0, 1, 1], [0, 0, 1, 1]]], np.float32)),
])
def test_a_rebuilt_layer_computes_what_the_original_does(path, inputs):
    cls = _class(path)
    layer = cls(**CONSTRUCTORS[path]())
    rebuilt = cls.from_config(layer.get_config())
    values = inputs()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rebuilt(values)),
                                  keras.ops.convert_to_numpy(layer(values)))
