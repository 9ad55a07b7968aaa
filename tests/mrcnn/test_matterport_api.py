"""matterport's public API on our engine, checked against matterport's own files (the oracle).

* Every public top-level name of matterport's ``mrcnn/model.py``, ``utils.py``, ``visualize.py``
  and ``config.py`` (enumerated with ``ast`` from the installed files, see
  ``tests/matterport_oracle.py``) and every public method of its classes exists in ours, and
  takes matterport's positional parameters in matterport's order with matterport's defaults,
  except the explicit, justified exclusions below.
* The behaviour notebooks rely on: the names and shapes of what ``run_graph`` evaluates,
  ``ancestor``, ``detect_molded``, ``compile``, ``log``, ``Config`` accepting matterport's
  values, ``USE_RPN_ROIS = False``, the visualize functions' returns and in-place drawing,
  the pydicom compatibility module.
"""
import ast
import inspect
import warnings

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import rsna_detector.mrcnn.model as modellib  # noqa: E402
from rsna_detector.mrcnn import config as config_module  # noqa: E402
from rsna_detector.mrcnn import utils, visualize  # noqa: E402
from rsna_detector.mrcnn.config import Config, ConfigError, ConfigWarning  # noqa: E402
from tests import matterport_oracle as oracle  # noqa: E402

OURS = {"model": modellib, "utils": utils, "visualize": visualize, "config": config_module}

# (module, name) -> why ours does not have it (test_exclusions_are_still_needed fails once
# an excluded name appears, so that this list stays exact).
EXCLUDED_NAMES = {
    # matterport's visualize.py sets ROOT_DIR = abspath("../") only to put its repository on
    # sys.path; it is not an API and a library must not change sys.path on import.
    ("visualize", "ROOT_DIR"): "matterport's sys.path hack, not an API",
}

def _matterport_tree(module):
    folder = oracle.require_matterport()
    return ast.parse((folder / f"{module}.py").read_text(encoding="utf-8"))


def _public_names(module):
    """Public top-level names (functions, classes, assignments) and public methods of classes."""
    names = []
    for node in _matterport_tree(module).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
        if isinstance(node, ast.ClassDef):
            names += [f"{node.name}.{item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef) and not item.name.startswith("_")]
    return [name for name in names if not name.startswith("_")]


def _resolve(module, qualified):
    obj = OURS[module]
    for part in qualified.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


@pytest.mark.parametrize("module", sorted(OURS))
def test_every_public_matterport_name_exists(module):
    names = _public_names(module)
    assert len(names) >= 2  # the oracle's file was read (config.py: Config, Config.display)
    missing = [name for name in names
               if (module, name) not in EXCLUDED_NAMES and _resolve(module, name) is None]
    assert missing == [], f"matterport's mrcnn.{module} names missing from ours: {missing}"


def test_matterport_classes_and_methods_are_covered():
    names = set(_public_names("model")) | set(_public_names("utils"))
    for method in ("ancestor", "detect_molded", "compile", "run_graph", "detect", "train", "load_weights",
                   "find_last", "set_trainable", "get_trainable_layers", "mold_inputs", "unmold_detections"):
        assert f"MaskRCNN.{method}" in names
    assert {"Dataset.add_class", "Dataset.prepare", "Dataset.load_mask"} <= names


def test_exclusions_are_still_needed():
    present = [key for key in EXCLUDED_NAMES if _resolve(*key) is not None]
    assert present == [], f"now provided, drop them from EXCLUDED_NAMES: {present}"


def _matterport_functions(module):
    """Qualified names of matterport's public functions, and of every public method (Keras-internal
    overrides such as ``compute_mask`` included) and ``__init__`` of its classes."""
    for node in _matterport_tree(module).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield node.name
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (item.name == "__init__" or not item.name.startswith("_")):
                    yield f"{node.name}.{item.name}"


def _matterport_module(module):
    """matterport's own module (``model.py`` through the oracle's namespace)."""
    import importlib

    return {"model": oracle.model, "utils": oracle.utils, "config": oracle.config_module,
            "visualize": lambda: (oracle.utils(), importlib.import_module("mrcnn.visualize"))[1]}[module]()


def _same_default(ours, theirs):
    try:
        return bool(np.array_equal(np.asarray(ours, object), np.asarray(theirs, object)))
    except (TypeError, ValueError):
        return ours is theirs


def signature_problems(ours, theirs):
    """Why a call written for matterport's ``theirs`` could bind differently to ``ours`` ([] if none).

    Each named parameter of matterport's is ours at the same position, with the same name, kind and
    default (ours may give a default where matterport has none); matterport's ``*args`` / ``**kwargs``
    are ours too; every parameter ours adds has a default (or is ``*args`` / ``**kwargs``).
    """
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    their_params = list(inspect.signature(theirs).parameters.values())
    our_params = list(inspect.signature(ours).parameters.values())
    named = [p for p in their_params if p.kind not in variadic]
    problems = []
    for index, theirs_p in enumerate(named):
        ours_p = our_params[index] if index < len(our_params) else None
        if ours_p is None or (ours_p.name, ours_p.kind) != (theirs_p.name, theirs_p.kind):
            problems.append(f"parameter {index} is {theirs_p.name!r} ({theirs_p.kind.description}), ours "
                            f"{ours_p and ours_p.name!r} ({ours_p and ours_p.kind.description})")
        elif theirs_p.default is not inspect.Parameter.empty and not _same_default(ours_p.default, theirs_p.default):
            problems.append(f"{theirs_p.name}: default {ours_p.default!r}, matterport {theirs_p.default!r}")
    for kind in variadic:
        if any(p.kind == kind for p in their_params) and not any(p.kind == kind for p in our_params):
            problems.append(f"no {kind.description} parameter (matterport has one)")
    problems += [f"added parameter {p.name!r} has no default" for p in our_params[len(named):]
                 if p.kind not in variadic and p.default is inspect.Parameter.empty]
    return problems


@pytest.mark.parametrize("module", sorted(OURS))
def test_signatures_take_matterports_arguments(module):
    problems = []
    for name in _matterport_functions(module):
        ours, theirs = _resolve(module, name), _matterport_module(module)
        for part in name.split("."):
            theirs = getattr(theirs, part)
        if ours is None or isinstance(ours, property) or isinstance(theirs, property):
            continue  # a missing name fails test_every_public_matterport_name_exists
        problems += [f"{name}: {problem}" for problem in signature_problems(ours, theirs)]
    assert problems == []


def test_signature_check_catches_what_a_matterport_call_would_trip_on():
    def theirs(self, inputs, mask=None, *args, **kwargs):
        pass

    def keras_style(self, inputs, previous_mask):
        pass

    def extended(self, inputs, mask=None, extra=1, *args, option=None, **kwargs):
        pass

    assert signature_problems(extended, theirs) == []
    assert signature_problems(keras_style, theirs) == [
        "parameter 2 is 'mask' (positional or keyword), ours 'previous_mask' (positional or keyword)",
        "no variadic positional parameter (matterport has one)", "no variadic keyword parameter (matterport has one)"]

    def other_default(self, inputs, mask=0, *args, **kwargs):
        pass

    def required_extra(self, inputs, mask=None, extra=None, more=..., *args, needed, **kwargs):
        pass

    assert signature_problems(other_default, theirs) == ["mask: default 0, matterport None"]
    assert signature_problems(required_extra, theirs) == ["added parameter 'needed' has no default"]


# ----------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------

# Settings of matterport's own sample configs (shapes, coco, balloon, nucleus): all must be
# accepted silently, with matterport's derived values.
SAMPLE_CONFIGS = {
    "shapes": dict(NAME="shapes", GPU_COUNT=1, IMAGES_PER_GPU=8, NUM_CLASSES=4, IMAGE_MIN_DIM=128,
                   IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), TRAIN_ROIS_PER_IMAGE=32,
                   STEPS_PER_EPOCH=100, VALIDATION_STEPS=5),
    "coco": dict(NAME="coco", IMAGES_PER_GPU=2, NUM_CLASSES=81),
    "balloon": dict(NAME="balloon", IMAGES_PER_GPU=2, NUM_CLASSES=2, STEPS_PER_EPOCH=100,
                    DETECTION_MIN_CONFIDENCE=0.9),
    "nucleus": dict(NAME="nucleus", IMAGES_PER_GPU=6, NUM_CLASSES=2, STEPS_PER_EPOCH=103, VALIDATION_STEPS=4,
                    DETECTION_MIN_CONFIDENCE=0, BACKBONE="resnet50", IMAGE_RESIZE_MODE="crop",
                    IMAGE_MIN_DIM=512, IMAGE_MAX_DIM=512, IMAGE_MIN_SCALE=2.0,
                    RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), POST_NMS_ROIS_TRAINING=1000,
                    POST_NMS_ROIS_INFERENCE=2000, RPN_NMS_THRESHOLD=0.9, RPN_TRAIN_ANCHORS_PER_IMAGE=64,
                    TRAIN_ROIS_PER_IMAGE=128, MAX_GT_INSTANCES=200, DETECTION_MAX_INSTANCES=400,
                    MEAN_PIXEL=np.array([43.53, 39.56, 48.22]), USE_MINI_MASK=True, MINI_MASK_SHAPE=(56, 56)),
    "nucleus_inference": dict(NAME="nucleus", GPU_COUNT=1, IMAGES_PER_GPU=1, NUM_CLASSES=2,
                              IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=512, IMAGE_MAX_DIM=512,
                              IMAGE_MIN_SCALE=2.0, RPN_NMS_THRESHOLD=0.7, BACKBONE="resnet50"),
    "rsna_kernel": dict(NAME="pneumonia", GPU_COUNT=1, IMAGES_PER_GPU=8, BACKBONE="resnet50", NUM_CLASSES=2,
                        IMAGE_MIN_DIM=256, IMAGE_MAX_DIM=256, RPN_ANCHOR_SCALES=(16, 32, 64, 128),
                        TRAIN_ROIS_PER_IMAGE=32, MAX_GT_INSTANCES=4, DETECTION_MAX_INSTANCES=3,
                        DETECTION_MIN_CONFIDENCE=0.78, DETECTION_NMS_THRESHOLD=0.01, STEPS_PER_EPOCH=200),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_CONFIGS))
def test_matterport_sample_configs_are_accepted_with_matterports_derived_values(name):
    settings = SAMPLE_CONFIGS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = type("Sample", (Config,), settings)()
    theirs = oracle.make_config(**settings)
    assert ours.BATCH_SIZE == theirs.BATCH_SIZE
    assert ours.IMAGE_SHAPE.tolist() == theirs.IMAGE_SHAPE.tolist()
    assert ours.IMAGE_META_SIZE == theirs.IMAGE_META_SIZE


def test_unknown_upper_case_names_warn_and_are_ignored():
    class OldStyle(Config):
        NAME = "old"
        IMAGE_PADDING = True  # matterport 2.0's setting, gone in 2.1
    with pytest.warns(ConfigWarning, match="IMAGE_PADDING: unknown setting.*ignored"):
        config = OldStyle()
    assert config.IMAGE_SHAPE.tolist() == [1024, 1024, 3]


def test_values_matterport_accepts_are_accepted():
    class Loose(Config):
        USE_MINI_MASK = 0  # matterport only tests truth
        TRAIN_BN = 1
        GRADIENT_CLIP_NORM = 0  # Keras: no clipping
    config = Loose()
    assert config.USE_MINI_MASK is False and config.TRAIN_BN is True and config.GRADIENT_CLIP_NORM == 0
    with pytest.warns(ConfigWarning, match="LOSS_WEIGHTS: unknown loss 'rpn_clas_loss'.*did you mean 'rpn_class_loss'"):
        type("Weights", (Config,), {"LOSS_WEIGHTS": {"rpn_clas_loss": 2.0}})()
    with pytest.warns(ConfigWarning, match="no positive ROI is kept per image"):
        type("FewRois", (Config,), {"TRAIN_ROIS_PER_IMAGE": 2, "ROI_POSITIVE_RATIO": 0.33})()


def test_values_that_cannot_work_still_raise_naming_the_setting():
    # matterport's build() raises for this side too; its pad64 resize asserts IMAGE_MIN_DIM % 64.
    with pytest.raises(ConfigError, match="IMAGE_MAX_DIM"):
        type("Odd", (Config,), {"IMAGE_MAX_DIM": 1000})()
    with pytest.raises(ConfigError, match="IMAGE_MIN_DIM"):
        type("Pad", (Config,), {"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 800})()


def test_display_prints_once_and_returns_none(capsys):
    config = type("Shapes", (Config,), SAMPLE_CONFIGS["shapes"])()
    assert config.display() is None
    printed = capsys.readouterr().out
    assert printed.strip() == config.display_text().strip()
    assert "{:30} {}".format("IMAGES_PER_GPU", 8) in printed.splitlines()


# ----------------------------------------------------------------------------
# log
# ----------------------------------------------------------------------------

def test_log_prints_matterports_line_and_returns_none(capsys):
    for text, array in [("rois", np.array([[1, 2], [3, 4]], np.int64)), ("empty", np.zeros((0, 4))),
                        ("plain", None)]:
        oracle.model().log(text, array)
        theirs = capsys.readouterr().out
        assert modellib.log(text, array) is None
        assert capsys.readouterr().out == theirs
        assert modellib.format_log(text, array) + "\n" == theirs
    assert modellib.format_log("rois", np.array([[1, 2], [3, 4]])).startswith("rois" + " " * 21 + "shape: (2, 2) ")


# ----------------------------------------------------------------------------
# graph-level names through modellib
# ----------------------------------------------------------------------------

def test_graph_helpers_compute_matterports_values():
    import tensorflow as tf

    x = tf.constant([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    np.testing.assert_array_equal(modellib.batch_pack_graph(x, [2, 1], 2).numpy(), [[1.0], [2.0], [4.0]])
    np.testing.assert_allclose(modellib.log2_graph(tf.constant([1.0, 8.0, 0.5])).numpy(), [0.0, 3.0, -1.0])
    np.testing.assert_allclose(modellib.smooth_l1_loss(tf.constant([0.0, 0.0]), tf.constant([0.5, 3.0])).numpy(),
                               [0.125, 2.5])
    theirs = oracle.model()
    counts = tf.constant([3, 0])
    np.testing.assert_array_equal(modellib.batch_pack_graph(x, counts, 2).numpy(),
                                  theirs.batch_pack_graph(x, counts, 2).numpy())


def test_refine_detections_graph_takes_matterports_config_argument():
    import tensorflow as tf

    config = type("Det", (Config,), {"NUM_CLASSES": 3, "DETECTION_MAX_INSTANCES": 4,
                                     "DETECTION_MIN_CONFIDENCE": 0.5})()
    rois = tf.constant([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.0, 0.0]])
    probs = tf.constant([[0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05]])
    deltas = tf.zeros([3, 3, 4])
    window = tf.constant([0.0, 0.0, 1.0, 1.0])
    detections = modellib.refine_detections_graph(rois, probs, deltas, window, config).numpy()
    assert detections.shape == (4, 6)
    np.testing.assert_allclose(detections[:2], [[0.1, 0.1, 0.4, 0.4, 1, 0.8], [0.5, 0.5, 0.9, 0.9, 2, 0.7]],
                               rtol=1e-6)
    assert not detections[2:].any()


def test_resnet_blocks_have_matterports_defaults_and_names():
    image = keras.Input((64, 64, 3))
    c1, c2, c3, c4, c5 = modellib.resnet_graph(image, "resnet50")
    assert c5 is None  # matterport's default stage5=False
    from rsna_detector.mrcnn.layers import backbone

    assert modellib.resnet_graph is backbone.resnet_graph  # one implementation, matterport's signature
    defaults = {name: p.default for name, p in inspect.signature(modellib.resnet_graph).parameters.items()}
    assert defaults == {"input_image": inspect.Parameter.empty, "architecture": inspect.Parameter.empty,
                        "stage5": False, "train_bn": True}
    assert tuple(c4.shape) == (None, 4, 4, 1024)
    x = keras.Input((16, 16, 8))
    y = modellib.conv_block(x, 3, (4, 4, 16), stage=9, block="a")
    z = modellib.identity_block(y, 3, (4, 4, 16), stage=9, block="b", use_bias=False)
    model = keras.Model(x, z)
    names = {layer.name for layer in model.layers}
    assert {"res9a_branch2a", "res9a_branch1", "bn9a_branch1", "res9b_branch2c", "res9b_out"} <= names
    assert tuple(z.shape) == (None, 8, 8, 16)
    assert len(model.get_layer("res9b_branch2b").weights) == 1  # use_bias=False: a kernel only


# ----------------------------------------------------------------------------
# the inference model as matterport's notebooks inspect it
# ----------------------------------------------------------------------------

class InspectConfig(Config):
    NAME = "inspect"
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 1
    NUM_CLASSES = 3
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_INFERENCE = 60
    DETECTION_MIN_CONFIDENCE = 0.0
    DETECTION_MAX_INSTANCES = 6


@pytest.fixture(scope="module")
def inspect_model(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = modellib.MaskRCNN("inference", InspectConfig(), tmp_path_factory.mktemp("logs"))
    # Random weights classify everything as background; favour class 1 so that there are detections.
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 0.01, np.array([0.0, 4.0, 0.0], np.float32)])
    return model


@pytest.fixture(scope="module")
def scene_image():
    image = np.full((100, 128, 3), 40, np.uint8)
    image[20:60, 30:90] = 210
    return image


def test_run_graph_gives_matterports_names_and_shapes(inspect_model, scene_image):
    model, config = inspect_model, inspect_model.config
    layer = model.keras_model.get_layer
    pillar = layer("ROI").output
    nms_node = model.ancestor(pillar, "ROI/rpn_non_max_suppression:0")
    rpn = model.run_graph([scene_image], [
        ("rpn_class", layer("rpn_class").output),
        ("pre_nms_anchors", model.ancestor(pillar, "ROI/pre_nms_anchors:0")),
        ("refined_anchors", model.ancestor(pillar, "ROI/refined_anchors:0")),
        ("refined_anchors_clipped", model.ancestor(pillar, "ROI/refined_anchors_clipped:0")),
        ("post_nms_anchor_ix", nms_node),
        ("proposals", pillar),
    ])
    anchors = model.get_anchors(config.IMAGE_SHAPE)
    count, top = len(anchors), config.PRE_NMS_LIMIT
    assert model.anchors.shape == (count, 4)  # pixel anchors kept for the notebooks
    assert rpn["rpn_class"].shape == (1, count, 2)
    for name in ("pre_nms_anchors", "refined_anchors", "refined_anchors_clipped"):
        assert rpn[name].shape == (1, top, 4)
    kept = rpn["post_nms_anchor_ix"]
    assert kept.ndim == 1 and kept.dtype == np.int32 and 0 < len(kept) <= config.POST_NMS_ROIS_INFERENCE
    assert rpn["proposals"].shape == (1, config.POST_NMS_ROIS_INFERENCE, 4)

    # The stages are the proposal layer's own: top-scored anchors, refined, clipped, NMS-kept.
    scores = rpn["rpn_class"][0, :, 1]
    order = np.argsort(-scores, kind="stable")[:top]
    np.testing.assert_allclose(rpn["pre_nms_anchors"][0], anchors[order], atol=1e-6)
    deltas = model.run_graph([scene_image], [("rpn_bbox", layer("rpn_bbox").output)])["rpn_bbox"][0, order]
    refined = oracle.utils().apply_box_deltas(anchors[order].astype(np.float32),
                                               deltas * config.RPN_BBOX_STD_DEV)
    np.testing.assert_allclose(rpn["refined_anchors"][0], refined, atol=1e-5)
    np.testing.assert_allclose(rpn["refined_anchors_clipped"][0], np.clip(refined, 0, 1), atol=1e-5)
    np.testing.assert_array_equal(rpn["refined_anchors_clipped"][0][kept], rpn["proposals"][0, :len(kept)])

    for spelling in ("ROI/rpn_non_max_suppression/NonMaxSuppressionV2:0",
                     "ROI/rpn_non_max_suppression/NonMaxSuppressionV3:0"):
        assert model.ancestor(pillar, spelling) is not None
    assert model.ancestor(pillar, "ROI/no_such_tensor:0") is None
    assert model.ancestor(pillar, "mrcnn_detection/pre_nms_anchors:0") is None


def test_run_graph_heads_have_matterports_shapes(inspect_model, scene_image):
    model, config = inspect_model, inspect_model.config
    layer = model.keras_model.get_layer
    mrcnn = model.run_graph([scene_image], [
        ("proposals", layer("ROI").output),
        ("probs", layer("mrcnn_class").output),
        ("logits", layer("mrcnn_class_logits").output),
        ("deltas", layer("mrcnn_bbox").output),
        ("bbox_fc", layer("mrcnn_bbox_fc").output),
        ("masks", layer("mrcnn_mask").output),
        ("detections", layer("mrcnn_detection").output),
        ("roi_align_mask", layer("roi_align_mask").output),
        ("fpn_p2", layer("fpn_p2").output),
        ("input_image", layer("input_image").output),
        ("res2c_out", layer("res2c_out").output),
        ("res3c_out", layer("res3c_out").output),
        ("res4f_out", layer("res4f_out").output),
    ])
    n, d, c = config.POST_NMS_ROIS_INFERENCE, config.DETECTION_MAX_INSTANCES, config.NUM_CLASSES
    assert mrcnn["probs"].shape == mrcnn["logits"].shape == (1, n, c)
    assert mrcnn["deltas"].shape == (1, n, c, 4) and mrcnn["bbox_fc"].shape == (1, n, 4 * c)
    assert mrcnn["detections"].shape == (1, d, 6)
    assert mrcnn["masks"].shape == (1, d, 28, 28, c)  # matterport's [batch, N, 28, 28, NUM_CLASSES]
    assert mrcnn["roi_align_mask"].shape == (1, d, 14, 14, 256)
    assert mrcnn["fpn_p2"].shape == (1, 32, 32, 256)
    assert mrcnn["input_image"].shape == (1, 128, 128, 3)
    assert mrcnn["res2c_out"].shape == (1, 32, 32, 256) and mrcnn["res3c_out"].shape == (1, 16, 16, 512)
    assert mrcnn["res4f_out"].shape == (1, 8, 8, 1024)

    # matterport's inspect_model: det_count, then each detection's mask of its own class,
    # unmolded into the image, is the mask detect() returns.
    det_class_ids = mrcnn["detections"][0, :, 4].astype(np.int32)
    det_count = int(np.sum(det_class_ids > 0))
    assert det_count > 0
    det_boxes = utils.denorm_boxes(mrcnn["detections"][0, :det_count, :4], scene_image.shape[:2])
    det_mask_specific = np.array([mrcnn["masks"][0, i, :, :, cls] for i, cls in enumerate(det_class_ids[:det_count])])
    assert det_mask_specific.shape == (det_count, 28, 28)
    molded_shape = tuple(config.IMAGE_SHAPE)
    detected = model.detect([np.asarray(scene_image)])[0]
    window = model.mold_inputs([scene_image])[2][0]
    rois, class_ids, _, masks = model.unmold_detections(mrcnn["detections"][0], mrcnn["masks"][0],
                                                        scene_image.shape, molded_shape, window)
    np.testing.assert_array_equal(detected["rois"], rois)
    np.testing.assert_array_equal(detected["class_ids"], class_ids)
    np.testing.assert_array_equal(detected["masks"], masks)
    assert det_boxes.shape == (det_count, 4)


def test_run_graph_with_image_metas_does_not_mold_again(inspect_model, scene_image, monkeypatch):
    model = inspect_model
    outputs = [("detections", model.keras_model.get_layer("mrcnn_detection").output)]
    molded, metas, _ = model.mold_inputs([scene_image])
    expected = model.run_graph([scene_image], outputs)["detections"]

    def no_molding(images):
        raise AssertionError("run_graph molded images that were already molded")

    monkeypatch.setattr(model, "mold_inputs", no_molding)
    got = model.run_graph(molded, outputs, image_metas=metas)["detections"]
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(modellib.ModelError, match=r"no tensor given for \['nothing'\]"):
        model.run_graph(molded, [("nothing", None)], image_metas=metas)


def test_detect_molded_matches_detect_in_molded_pixels(inspect_model, capsys):
    model, config = inspect_model, inspect_model.config
    image = np.full((128, 128, 3), 40, np.uint8)  # already the molded size: resizing is the identity
    image[30:90, 20:70] = 220
    expected = model.detect([image])[0]
    molded = modellib.mold_image(image.astype(np.float32), config)[np.newaxis]
    meta = modellib.compose_image_meta(0, image.shape, image.shape, (0, 0, 128, 128), 1.0,
                                       np.ones(config.NUM_CLASSES, np.int32))[np.newaxis]
    got = model.detect_molded(molded, meta, verbose=1)[0]
    assert "Processing 1 images" in capsys.readouterr().out
    for key in ("rois", "class_ids", "masks"):
        np.testing.assert_array_equal(got[key], expected[key])
    np.testing.assert_allclose(got["scores"], expected["scores"], rtol=1e-6)
    with pytest.raises(modellib.ModelError, match="BATCH_SIZE=1"):
        model.detect_molded(np.concatenate([molded, molded]), np.concatenate([meta, meta]))


def test_compile_sets_up_sgd_with_the_given_momentum(tmp_path):
    class Tiny(Config):
        NAME = "tiny"
        BACKBONE = "tiny"
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 64
        RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
        GRADIENT_CLIP_NORM = 3.0
    model = modellib.MaskRCNN("training", Tiny(), tmp_path)
    assert model.compile(0.02, 0.5) is None
    optimizer = model.keras_model.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(0.02)
    assert float(optimizer.momentum) == 0.5 and optimizer.global_clipnorm == 3.0  # Keras 2 clipped the global norm
    assert model.config.LEARNING_MOMENTUM == 0.9  # the config itself is left as it is
    with pytest.raises(modellib.ModelError, match="mode='training'"):
        modellib.MaskRCNN.compile(type("M", (), {"mode": "inference"})(), 0.1, 0.9)


# ----------------------------------------------------------------------------
# USE_RPN_ROIS = False: training on ROIs given from outside (matterport's input_roi)
# ----------------------------------------------------------------------------

class GivenRoisConfig(Config):
    NAME = "given"
    BACKBONE = "tiny"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 16
    POST_NMS_ROIS_TRAINING = 40
    MAX_GT_INSTANCES = 3
    USE_RPN_ROIS = False


class OneSquare(utils.Dataset):
    def load(self, count):
        self.add_class("square", 1, "square")
        for i in range(count):
            self.add_image("square", i, None)

    def load_image(self, image_id):
        image = np.full((64, 64, 3), 30, np.uint8)
        image[10:30, 12:40] = 200
        return image

    def load_mask(self, image_id):
        mask = np.zeros((64, 64, 1), bool)
        mask[10:30, 12:40, 0] = True
        return mask, np.array([1], np.int32)


def _batches_with_given_rois(dataset, config, rois):
    generator = modellib.data_generator(dataset, config, batch_size=config.BATCH_SIZE)
    while True:
        inputs, outputs = next(generator)
        yield inputs + [rois], outputs


def test_use_rpn_rois_false_trains_on_the_given_rois(tmp_path):
    config = GivenRoisConfig()
    dataset = OneSquare()
    dataset.load(4)
    dataset.prepare()
    model = modellib.MaskRCNN("training", config, tmp_path)
    assert model.keras_model.inputs[-1].name == "input_roi"
    rng = np.random.default_rng(0)
    y1, x1 = rng.integers(0, 40, (2, 2, 30))
    rois = np.zeros((2, config.POST_NMS_ROIS_TRAINING, 4), np.int32)
    rois[:, :30] = np.stack([y1, x1, y1 + 20, x1 + 24], axis=-1)
    rois[:, 0] = [10, 12, 30, 40]  # the object's own box: a positive ROI

    # The detection targets are sampled from the given ROIs (normalized), not from the RPN's.
    inputs, _ = next(_batches_with_given_rois(dataset, config, rois))
    outputs = model.keras_model(inputs, training=False)
    names = [t.name.split("/")[0] for t in model.keras_model.outputs]
    output_rois = keras.ops.convert_to_numpy(outputs[8])
    target = utils.norm_boxes(rois.reshape(-1, 4), (64, 64)).reshape(rois.shape)
    for b in range(2):
        real = output_rois[b][np.any(output_rois[b] != 0, axis=1)]
        assert len(real) > 0
        distances = np.abs(real[:, None, :] - target[b][None, :30, :]).sum(-1).min(axis=1)
        assert distances.max() < 1e-5, names
    positive = utils.norm_boxes(np.array([[10, 12, 30, 40]]), (64, 64))[0]
    assert np.abs(output_rois[:, 0] - positive).max() < 1e-5  # positives come first

    # matterport's way to train with given ROIs: compile, then fit on the generator's batches.
    model.compile(0.001, 0.9)
    history = model.keras_model.fit(_batches_with_given_rois(dataset, config, rois), steps_per_epoch=1,
                                    epochs=1, verbose=0)
    assert np.isfinite(history.history["mrcnn_class_loss"][0])
    with pytest.raises(modellib.ModelError, match="USE_RPN_ROIS is False"):
        model.train(dataset, dataset, 0.001, 1, "heads")


# ----------------------------------------------------------------------------
# visualize
# ----------------------------------------------------------------------------

@pytest.fixture
def matterport_visualize():
    oracle.require_matterport()
    import importlib

    oracle.utils()
    return importlib.import_module("mrcnn.visualize")


def test_apply_mask_and_draw_box_equal_matterports_in_place(matterport_visualize):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    mask = rng.integers(0, 2, (20, 24)).astype(bool)
    for dtype in (np.uint8, np.float64):
        ours, theirs = image.astype(dtype), image.astype(dtype)
        returned = visualize.apply_mask(ours, mask, (0.2, 0.5, 0.9), alpha=0.3)
        matterport_visualize.apply_mask(theirs, mask, (0.2, 0.5, 0.9), alpha=0.3)
        assert returned is ours
        np.testing.assert_array_equal(ours, theirs)
    ours, theirs = image.copy(), image.copy()
    for box in ([2, 3, 10, 12], [15, 18, 20, 24]):  # the second touches the border
        assert visualize.draw_box(ours, np.array(box), [255, 0, 0]) is ours
        matterport_visualize.draw_box(theirs, np.array(box), [255, 0, 0])
    np.testing.assert_array_equal(ours, theirs)
    assert ours[2, 3].tolist() == [255, 0, 0] and ours[10, 5].tolist() == [255, 0, 0]  # rows y1 and y2


def test_random_colors_follow_pythons_random_seed():
    import random

    random.seed(7)
    first = visualize.random_colors(6)
    random.seed(7)
    assert visualize.random_colors(6) == first


def test_draw_rois_prints_the_balance_and_returns_none(capsys):
    image = np.full((64, 64, 3), 50, np.uint8)
    rois = np.array([[5, 5, 30, 30], [20, 20, 60, 50], [0, 0, 10, 10]])
    masks = np.ones((3, 28, 28), np.float32)
    assert visualize.draw_rois(image, rois, rois + 1, masks, np.array([1, 0, 1]), ["BG", "a"]) is None
    out = capsys.readouterr().out
    assert "Positive ROIs:  2" in out and "Negative ROIs:  1" in out and "Positive Ratio: 0.67" in out
    ax = plt.gcf().axes[0]
    assert ax.get_title() == "3 ROIs"
    assert [t.get_text() for t in ax.texts] == ["a", "a"]
    assert len(ax.patches) == 5  # 3 ROIs + 2 refined boxes
    np.random.seed(0)
    visualize.draw_rois(image, np.repeat(rois, 5, axis=0), np.repeat(rois, 5, axis=0), np.ones((15, 28, 28)),
                        np.zeros(15, int), ["BG", "a"], limit=4)
    assert plt.gcf().axes[0].get_title() == "Showing 4 random ROIs out of 15"
    plt.close("all")


def test_display_table_html_and_text(capsys):
    table = [["WEIGHT NAME", "SHAPE"], ["a<b", (3, 3)]]
    html = visualize.table_html(table)
    assert html.startswith("<table><tr><td>WEIGHT NAME") and "a&lt;b" in html
    assert visualize.display_table(table) is None  # outside IPython: plain text
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["WEIGHT", "NAME", "SHAPE"] and lines[1].split() == ["a<b", "(3,", "3)"]


def test_display_weight_stats_flags_dead_weights_as_matterport(tmp_path, capsys):
    class Tiny(Config):
        NAME = "tiny"
        BACKBONE = "tiny"
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 64
        RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    model = modellib.MaskRCNN("inference", Tiny(), tmp_path)
    rows = visualize.weight_stats(model)
    assert rows[0] == ["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]
    by_name = {str(row[0]).split("<")[0]: row for row in rows[1:]}
    kernel = by_name["tiny_c2/kernel"]
    assert kernel[1] == "(3, 3, 16, 32)" and float(kernel[2]) < 0 < float(kernel[3])
    assert "dead?" not in str(by_name["tiny_c2/bias"][0])  # a convolution's bias is not flagged
    assert "*** dead?" in by_name["tiny_bn2/beta"][0]  # all zeros: flagged, as matterport
    assert isinstance(by_name["tiny_bn2/beta"][0], visualize.Markup)
    assert visualize.display_weight_stats(model) is None
    assert "tiny_c2/kernel" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# pydicom
# ----------------------------------------------------------------------------

def test_pydicom_compat_reads_as_dcmread(tmp_path):
    import pydicom

    from rsna_detector import pydicom_compat
    from rsna_detector.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(tmp_path, n_train=2, n_test=0, image_size=64, workers=1, progress=False)
    path = sorted((tmp_path / "stage_2_train_images").glob("*.dcm"))[0]
    if int(pydicom.__version__.split(".")[0]) >= 3:
        assert not hasattr(pydicom, "read_file")  # why the module exists
    ds = pydicom_compat.read_file(str(path))
    reference = pydicom.dcmread(str(path))
    assert ds.PatientID == reference.PatientID == path.stem
    np.testing.assert_array_equal(ds.pixel_array, reference.pixel_array)
    assert pydicom_compat.read_file(path, stop_before_pixels=True).get("PixelData") is None
    # every other name is pydicom's own
    assert pydicom_compat.dcmread is pydicom.dcmread and pydicom_compat.__version__ == pydicom.__version__
    assert "read_file" in dir(pydicom_compat) and "dcmread" in dir(pydicom_compat)
    out = tmp_path / "copy.dcm"
    pydicom_compat.write_file(str(out), ds)
    assert pydicom.dcmread(str(out)).PatientID == ds.PatientID
