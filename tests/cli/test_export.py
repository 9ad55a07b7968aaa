"""``rsna-detector export`` (issue 21): the config from the checkpoint, ``--threshold auto``, the written folder."""
import json

import h5py
import numpy as np
import pytest

from rsna_detector import cli
from rsna_detector.cli.export import POSTPROCESSING_FILE, checkpoint_config, stored_min_confidence
from rsna_detector.cli.usage import CommandLineError


@pytest.fixture(scope="module")
def checkpoint(exported_detector, tmp_path_factory):
    """The seeded detector's weights as a training checkpoint (its config inside)."""
    path = tmp_path_factory.mktemp("run") / "mask_rcnn_blobs_0001.h5"
    exported_detector.model.save_weights(str(path))
    return path


def test_the_config_comes_from_the_checkpoint(exported_detector, checkpoint, tmp_path):
    config = checkpoint_config(checkpoint)
    assert config.to_dict() == exported_detector.model.config.to_dict()
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as handle:
        handle.attrs["layer_names"] = np.array([], "S1")
    with pytest.raises(CommandLineError, match="holds no config.*--config or --preset"):
        checkpoint_config(bare)


def test_the_stored_threshold_is_read_beside_the_checkpoint(tmp_path):
    checkpoint = tmp_path / "mask_rcnn_x_0004.h5"
    assert stored_min_confidence(checkpoint) is None
    (tmp_path / POSTPROCESSING_FILE).write_text(json.dumps({"min_confidence": 0.62, "flip_tta": True}))
    assert stored_min_confidence(checkpoint) == 0.62
    for bad in ('{"min_confidence": "high"}', '{"min_confidence": 1.5}', "[0.5]", "{not json"):
        (tmp_path / POSTPROCESSING_FILE).write_text(bad)
        with pytest.raises(CommandLineError, match=POSTPROCESSING_FILE):
            stored_min_confidence(checkpoint)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_a_bad_threshold_argument_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--model", "m.h5", "--out", "x", "--threshold", value])
    assert exit_info.value.code == 2 and "expected 'auto' or a number in [0, 1]" in capsys.readouterr().err


def test_export_writes_the_saved_model_with_the_stored_threshold(checkpoint, tmp_path, capsys):
    (checkpoint.parent / POSTPROCESSING_FILE).write_text(json.dumps({"min_confidence": 0.55}))
    out = tmp_path / "exported"
    code = cli.main(["export", "--model", str(checkpoint), "--out", str(out), "--formats", "saved_model",
                     "--no-masks"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads((out / "export.json").read_text())
    assert summary["min_confidence"] == 0.55 and summary["threshold_source"] == POSTPROCESSING_FILE
    assert summary["formats"]["saved_model"]["check"]["count_mismatches"] == 0
    assert (out / "1" / "saved_model.pb").is_file() and "from postprocessing.json" in printed
    code = cli.main(["export", "--model", str(checkpoint), "--out", str(out), "--formats", "saved_model"])
    assert code == 2 and "already exists" in capsys.readouterr().err  # one line, no trace
