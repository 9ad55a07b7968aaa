"""mrcnn.config.Config: matterport defaults, derived values, validation, serialisation."""
import json

import numpy as np
import pytest

from rsna_detector.mrcnn.config import Config, ConfigError, ConfigWarning


class RsnaLike(Config):
    NAME = "rsna"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 8
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (16, 32, 64, 128)


class TestDefaults:
    def test_matterport_defaults(self):
        c = Config()
        expected = {
            "NAME": None, "GPU_COUNT": 1, "IMAGES_PER_GPU": 2, "STEPS_PER_EPOCH": 1000,
            "VALIDATION_STEPS": 50, "BACKBONE": "resnet101", "COMPUTE_BACKBONE_SHAPE": None,
            "BACKBONE_STRIDES": [4, 8, 16, 32, 64], "FPN_CLASSIF_FC_LAYERS_SIZE": 1024,
            "TOP_DOWN_PYRAMID_SIZE": 256, "NUM_CLASSES": 1,
            "RPN_ANCHOR_SCALES": (32, 64, 128, 256, 512), "RPN_ANCHOR_RATIOS": [0.5, 1, 2],
            "RPN_ANCHOR_STRIDE": 1, "RPN_NMS_THRESHOLD": 0.7, "RPN_TRAIN_ANCHORS_PER_IMAGE": 256,
            "PRE_NMS_LIMIT": 6000, "POST_NMS_ROIS_TRAINING": 2000, "POST_NMS_ROIS_INFERENCE": 1000,
            "USE_MINI_MASK": True, "MINI_MASK_SHAPE": (56, 56), "IMAGE_RESIZE_MODE": "square",
            "IMAGE_MIN_DIM": 800, "IMAGE_MAX_DIM": 1024, "IMAGE_MIN_SCALE": 0,
            "IMAGE_CHANNEL_COUNT": 3, "TRAIN_ROIS_PER_IMAGE": 200, "ROI_POSITIVE_RATIO": 0.33,
            "POOL_SIZE": 7, "MASK_POOL_SIZE": 14, "MASK_SHAPE": [28, 28], "MAX_GT_INSTANCES": 100,
            "DETECTION_MAX_INSTANCES": 100, "DETECTION_MIN_CONFIDENCE": 0.7,
            "DETECTION_NMS_THRESHOLD": 0.3, "LEARNING_RATE": 0.001, "LEARNING_MOMENTUM": 0.9,
            "WEIGHT_DECAY": 0.0001, "USE_RPN_ROIS": True, "TRAIN_BN": False,
            "GRADIENT_CLIP_NORM": 5.0,
            # extensions
            "SEED": None, "MIXED_PRECISION": False, "DATA_LOADER_WORKERS": 2,
        }
        for name, value in expected.items():
            assert getattr(c, name) == value, name
        np.testing.assert_allclose(c.MEAN_PIXEL, [123.7, 116.8, 103.9])
        np.testing.assert_allclose(c.RPN_BBOX_STD_DEV, [0.1, 0.1, 0.2, 0.2])
        np.testing.assert_allclose(c.BBOX_STD_DEV, [0.1, 0.1, 0.2, 0.2])
        assert c.LOSS_WEIGHTS == {"rpn_class_loss": 1.0, "rpn_bbox_loss": 1.0, "mrcnn_class_loss": 1.0,
                                  "mrcnn_bbox_loss": 1.0, "mrcnn_mask_loss": 1.0}

    def test_derived_values_of_the_defaults(self):
        c = Config()
        assert c.BATCH_SIZE == 2
        assert c.IMAGE_SHAPE.tolist() == [1024, 1024, 3]
        assert c.IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 1
        assert c.RPN_PYRAMID_LEVELS == 5

    def test_derived_values_of_a_subclass(self):
        c = RsnaLike()
        assert c.BATCH_SIZE == 8
        assert c.IMAGE_SHAPE.tolist() == [256, 256, 3]
        assert c.IMAGE_META_SIZE == 14

    def test_crop_mode_shape_uses_min_dim(self):
        class Crop(Config):
            IMAGE_RESIZE_MODE = "crop"
            IMAGE_MIN_DIM = 512
            GPU_COUNT = 2
        c = Crop()
        assert c.IMAGE_SHAPE.tolist() == [512, 512, 3]
        assert c.BATCH_SIZE == 4

    def test_display_prints_every_setting_and_returns_none(self, capsys):
        assert RsnaLike().display() is None  # as matterport's: a notebook cell shows it once
        text = RsnaLike().display_text()
        assert text in capsys.readouterr().out
        assert "Configurations:" in text
        line = next(row for row in text.splitlines() if row.startswith("LEARNING_RATE"))
        assert line == "{:30} {}".format("LEARNING_RATE", 0.001)
        assert "RPN_PYRAMID_LEVELS             4" in text  # how many levels get anchors (P2-P5)
        assert "pyramid levels only" not in text  # no line beyond matterport's (test_matterport_edges)


class TestPyramidLevels:
    def test_four_scales_on_five_strides_use_four_levels(self):
        assert RsnaLike().RPN_PYRAMID_LEVELS == 4

    def test_more_scales_than_strides_is_an_error(self):
        class Six(Config):
            RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128, 256)
        with pytest.raises(ConfigError, match="RPN_ANCHOR_SCALES: 6 scales for 5 pyramid levels"):
            Six()


class TestValidation:
    def test_misspelt_setting_on_a_subclass_warns_with_the_right_name(self):
        class Typo(Config):
            LEARNIG_RATE = 0.01
        with pytest.warns(ConfigWarning) as record:
            config = Typo()
        assert [str(w.message) for w in record] == [
            "Typo: LEARNIG_RATE: unknown setting; did you mean LEARNING_RATE? (ignored)"]
        assert record[0].filename == __file__  # points at the line that built the config
        assert config.LEARNING_RATE == 0.001  # ignored, as matterport ignores unknown names

    def test_unknown_setting_set_on_the_instance_before_validation(self):
        class Late(Config):
            def __init__(self):
                self.IMAGES_PER_GPUS = 4
                super().__init__()
        with pytest.warns(ConfigWarning, match="IMAGES_PER_GPUS: unknown setting; did you mean IMAGES_PER_GPU"):
            Late()

    def test_validate_after_changing_an_instance(self):
        c = Config()
        c.IMAGES_PER_GPU = 3
        assert c.validate().BATCH_SIZE == 3
        c.DETECTON_MIN_CONFIDENCE = 0.5
        with pytest.warns(ConfigWarning, match="did you mean DETECTION_MIN_CONFIDENCE"):
            c.validate()

    def test_declared_extra_settings_are_accepted(self):
        class Extra(Config):
            EXTRA_SETTINGS = ("MY_THRESHOLD",)
            MY_THRESHOLD = 0.25
        c = Extra()
        assert c.MY_THRESHOLD == 0.25
        assert c.to_dict()["MY_THRESHOLD"] == 0.25

    def test_lower_case_attributes_are_not_settings(self):
        class Helper(Config):
            note = "anything"
        assert Helper().note == "anything"

    @pytest.mark.parametrize("attrs, message", [
        ({"IMAGE_MAX_DIM": 1000}, "IMAGE_MAX_DIM: expected a multiple of 64 in 'square' mode"),
        ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 300}, "IMAGE_MIN_DIM: expected a multiple of 64"),
        ({"IMAGE_RESIZE_MODE": "stretch"}, "IMAGE_RESIZE_MODE: expected one of"),
        # the side of IMAGE_SHAPE is needed; the other limits may be 0 or None (test_matterport_edges.py)
        ({"IMAGE_MAX_DIM": None}, r"IMAGE_MAX_DIM: expected an integer >= 1 in 'square' mode \(the side of IMAGE_SHAPE"),
        ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": None}, "IMAGE_MIN_DIM: expected an integer >= 1 in 'crop' mode"),
        ({"IMAGE_MIN_DIM": -64}, "IMAGE_MIN_DIM: expected None or an integer >= 0 in 'square' mode, got -64"),
        ({"IMAGE_MIN_SCALE": "2"}, "IMAGE_MIN_SCALE: expected None or a number, got '2'"),
        ({"NUM_CLASSES": 0}, "NUM_CLASSES: expected an integer >= 1"),
        ({"BACKBONE": "vgg16"}, r"BACKBONE: expected one of \('resnet50', 'resnet101', 'tiny'\) or a callable, got 'vgg16'"),
        ({"BACKBONE": len}, "COMPUTE_BACKBONE_SHAPE: expected a callable"),
        ({"MASK_SHAPE": [28, 28], "MASK_POOL_SIZE": 7}, r"MASK_SHAPE: expected \[14, 14\]"),
        ({"MEAN_PIXEL": np.array([120.0])}, "MEAN_PIXEL: expected a flat sequence of 3 numbers"),
        ({"GPU_COUNT": 0}, "GPU_COUNT: expected an integer >= 1"),
        ({"IMAGES_PER_GPU": 2.5}, "IMAGES_PER_GPU: expected an integer"),
        ({"DETECTION_MIN_CONFIDENCE": 1.5}, "DETECTION_MIN_CONFIDENCE: expected a number >= 0 and <= 1, got 1.5"),
        ({"LEARNING_RATE": 0}, "LEARNING_RATE: expected a number > 0"),
        ({"LOSS_WEIGHTS": {"rpn_class_loss": -1.0}}, r"LOSS_WEIGHTS\['rpn_class_loss'\]: expected a number >= 0"),
        ({"USE_MINI_MASK": 2}, "USE_MINI_MASK: expected True or False, got 2"),
        ({"TRAIN_BN": "yes"}, "TRAIN_BN: expected None, True or False"),
        ({"GRADIENT_CLIP_NORM": -1.0}, "GRADIENT_CLIP_NORM: expected a number >= 0"),
        ({"BBOX_STD_DEV": [0.1, 0.1, 0.2]}, "BBOX_STD_DEV: expected a flat sequence of 4"),
        ({"SEED": -1}, "SEED: expected an integer >= 0"),
        ({"DATA_LOADER_WORKERS": -1}, "DATA_LOADER_WORKERS: expected an integer >= 0"),
        ({"EXTRA_SETTINGS": "MY_SETTING"}, "EXTRA_SETTINGS: expected a tuple of setting names"),
    ])
    def test_invalid_values_name_the_setting(self, attrs, message):
        bad = type("Bad", (Config,), attrs)
        with pytest.raises(ConfigError, match=message):
            bad()

    def test_config_error_is_a_value_error(self):
        assert issubclass(ConfigError, ValueError)

    def test_pad64_and_none_modes_do_not_need_max_dim_multiple_of_64(self):
        class Pad(Config):
            IMAGE_RESIZE_MODE = "pad64"
            IMAGE_MIN_DIM = 640
            IMAGE_MAX_DIM = 1000
        assert Pad().IMAGE_SHAPE.tolist() == [1000, 1000, 3]


def _backbone(image, config):
    return image


def _backbone_shapes(image_shape):
    return np.array([[image_shape[0] // 4, image_shape[1] // 4]])


class TestSerialisation:
    def test_round_trip_of_a_subclass(self):
        c = RsnaLike()
        d = c.to_dict()
        json.dumps(d)  # serialisable
        again = Config.from_dict(d)
        assert again.to_dict() == d
        assert isinstance(again.RPN_ANCHOR_SCALES, tuple)
        assert isinstance(again.MEAN_PIXEL, np.ndarray)
        assert again.RPN_PYRAMID_LEVELS == 4 and again.BATCH_SIZE == 8

    def test_from_dict_returns_an_instance_of_the_calling_class(self):
        c = RsnaLike.from_dict({"LEARNING_RATE": 0.02})
        assert isinstance(c, RsnaLike)
        assert c.LEARNING_RATE == 0.02 and c.NAME == "rsna"
        assert RsnaLike.LEARNING_RATE == 0.001  # the class itself is untouched

    def test_to_dict_converts_numpy_and_tuples(self):
        d = Config().to_dict()
        assert d["MEAN_PIXEL"] == [123.7, 116.8, 103.9]
        assert d["RPN_ANCHOR_SCALES"] == [32, 64, 128, 256, 512]
        assert d["IMAGE_SHAPE"] == [1024, 1024, 3]

    def test_callables_are_named_but_never_imported_back(self):
        class Custom(Config):
            BACKBONE = _backbone
            COMPUTE_BACKBONE_SHAPE = _backbone_shapes
        c = Custom()
        assert c.BACKBONE is _backbone  # not a bound method
        d = c.to_dict()
        assert d["BACKBONE"] == f"{__name__}._backbone"
        with pytest.raises(ConfigError, match="BACKBONE: .* imports nothing"):
            Config.from_dict(d)  # loading settings runs no code (issue 14)
        again = Config.from_dict({**d, "BACKBONE": _backbone, "COMPUTE_BACKBONE_SHAPE": _backbone_shapes})
        assert again.BACKBONE is _backbone
        assert again.COMPUTE_BACKBONE_SHAPE is _backbone_shapes
        assert again.to_dict() == d

    def test_from_dict_result_pickles(self):
        import pickle

        c = RsnaLike.from_dict({"LEARNING_RATE": 0.02, "EXTRA_SETTINGS": ["MY_FLAG"], "MY_FLAG": True})
        again = pickle.loads(pickle.dumps(c))
        assert type(again) is RsnaLike
        assert again.to_dict() == c.to_dict()
        assert again.LEARNING_RATE == 0.02 and again.MY_FLAG is True

    def test_unknown_key_names_the_key(self):
        with pytest.raises(ConfigError, match="IMAGE_MAX_DIMS: unknown setting; did you mean IMAGE_MAX_DIM"):
            Config.from_dict({"IMAGE_MAX_DIMS": 512})

    def test_extra_settings_round_trip(self):
        class Extra(Config):
            EXTRA_SETTINGS = ("MY_THRESHOLD",)
            MY_THRESHOLD = 0.25
        d = Extra().to_dict()
        assert Config.from_dict(d).MY_THRESHOLD == 0.25

    def test_json_file_round_trip(self, tmp_path):
        path = RsnaLike().to_json(tmp_path / "config.json")
        assert Config.from_json(path).to_dict() == RsnaLike().to_dict()

    def test_json_error_names_the_file(self, tmp_path):
        path = tmp_path / "bad.json"
        path.write_text('{"NAME": "x", "LEARNING_RATE": -1}')
        with pytest.raises(ConfigError, match="bad.json: LEARNING_RATE"):
            Config.from_json(path)
