"""``rsna-detector export`` (issue 21): the config from the checkpoint, ``--threshold auto``, the written folder."""
import json

import h5py
import numpy as np
import pytest

from rsna_detector import cli
from rsna_detector.cli.export import checkpoint_config
from rsna_detector.cli.usage import CommandLineError
from rsna_detector.detector.export import steps_not_exported
from rsna_detector.detector.postprocess import POSTPROCESSING_FILE, PostProcessing


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


def test_the_steps_the_graph_does_not_run_are_named():
    assert steps_not_exported(PostProcessing(min_confidence=0.6)) == []
    stored = PostProcessing(min_confidence=0.6, flip_tta=True, scales=(0.8, 1.0, 1.2), box_scale=0.875,
                            gate_threshold=0.3, gate_classifier="gate.json")
    assert steps_not_exported(stored) == ["flip TTA", "scale TTA 0.8/1/1.2", "box scale 0.875",
                                          "classifier gate 0.3"]


def test_an_ensemble_folder_is_refused(tmp_path, capsys):
    PostProcessing(min_confidence=0.5, members=("fold_1", "fold_2")).save(tmp_path / POSTPROCESSING_FILE)
    code = cli.main(["export", "--model", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2 and "an ensemble of 2 models" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_a_bad_threshold_argument_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--model", "m.h5", "--out", "x", "--threshold", value])
    assert exit_info.value.code == 2 and "expected 'auto' or a number in [0, 1]" in capsys.readouterr().err


def test_export_writes_the_saved_model_with_the_stored_threshold(checkpoint, tmp_path, capsys):
    PostProcessing(min_confidence=0.55, flip_tta=True).save(checkpoint.parent / POSTPROCESSING_FILE)
    out = tmp_path / "exported"
    code = cli.main(["export", "--model", str(checkpoint.parent), "--out", str(out), "--formats", "saved_model",
                     "--no-masks"])  # the run folder: its checkpoint
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads((out / "export.json").read_text())
    assert summary["min_confidence"] == 0.55 and summary["threshold_source"] == POSTPROCESSING_FILE
    assert summary["steps_not_exported"] == ["flip TTA"] and "flip TTA are not in the exported graph" in printed
    check = summary["formats"]["saved_model"]["check"]
    assert check["count_mismatches"] == 0
    assert (f"vs detect() on {check['detections']} detections" if check["detections"] else "nothing compared") \
        in printed  # an empty comparison is said, not passed off as a match
    assert (out / "1" / "saved_model.pb").is_file() and "from postprocessing.json" in printed
    code = cli.main(["export", "--model", str(checkpoint), "--out", str(out), "--formats", "saved_model"])
    assert code == 2 and "already exists" in capsys.readouterr().err  # one line, no trace
