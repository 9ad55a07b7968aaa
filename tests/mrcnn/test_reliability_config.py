"""Loading a config never imports or runs anything (issue 14, item 2)."""
import json
import sys

import pytest

from rsna_detector.mrcnn.config import BACKBONE_NAMES, Config, ConfigError


@pytest.fixture
def planted_module(tmp_path, monkeypatch):
    """A module on sys.path whose top-level code leaves a marker file when it is imported."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "planted_backbone.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "def build(input_image, stage5=False, train_bn=True):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("planted_backbone", None)


@pytest.mark.parametrize("key, value", [
    ("BACKBONE", "planted_backbone.build"),
    ("COMPUTE_BACKBONE_SHAPE", "planted_backbone.build"),
])
def test_a_config_file_naming_a_module_is_refused_without_importing_it(tmp_path, planted_module, key, value):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({key: value}))
    with pytest.raises(ConfigError) as caught:
        Config.from_json(path)
    message = str(caught.value)
    assert str(path) in message and f"{key}: " in message and repr(value) in message
    assert "imports nothing" in message
    assert not planted_module.exists() and "planted_backbone" not in sys.modules


def test_from_dict_refuses_an_already_imported_callable_by_name():
    with pytest.raises(ConfigError, match=r"BACKBONE: 'os.system' .*built-in backbone names"):
        Config.from_dict({"BACKBONE": "os.system"})


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_built_in_backbone_names_load_from_files(tmp_path, name):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"BACKBONE": name, "COMPUTE_BACKBONE_SHAPE": None}))
    assert Config.from_json(path).BACKBONE == name


def test_python_callers_still_pass_callables_as_objects():
    def backbone(input_image, stage5=False, train_bn=True):
        return []

    def shapes(image_shape):
        return [[image_shape[0] // 4, image_shape[1] // 4]]

    config = Config.from_dict({"BACKBONE": backbone, "COMPUTE_BACKBONE_SHAPE": shapes})
    assert config.BACKBONE is backbone and config.COMPUTE_BACKBONE_SHAPE is shapes


# --------------------------------------------------------------------------- issue 22, cases 10 and 11
def test_a_config_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes('{\n  "NAME": "pneumon\u00eda"\n}\n'.encode("cp1252"))
    with pytest.raises(ConfigError, match=r"config\.json: line 2: not UTF-8 text: byte 0xed"):
        Config.from_json(path)


def test_a_deeply_nested_config_file_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"LOSS_WEIGHTS": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match=r"config\.json: not a config file \(RecursionError"):
        Config.from_json(path)


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/anywhere", "a/b", "a\\b", "..", ".hidden", "", "a b", 7])
def test_a_name_that_cannot_be_part_of_a_file_name_is_refused(tmp_path, name):
    """Before: NAME '../../escaped' made make_log_dir create the run folder outside model_dir."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"NAME": name}))
    with pytest.raises(ConfigError, match=r"config\.json: NAME: expected a name made of letters, digits"):
        Config.from_json(path)


@pytest.mark.parametrize("name", ["shapes", "coco", "balloon", "nucleus", "pneumonia", "my_data-v2.1", None])
def test_matterports_sample_names_are_accepted(name):
    assert Config.from_dict({"NAME": name}).NAME == name

