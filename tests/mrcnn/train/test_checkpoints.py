"""checkpoints: run-folder and checkpoint naming, claiming a run folder, the newest-first order.

(``MaskRCNN.set_log_dir`` / ``make_log_dir`` / ``find_last`` on top of these are exercised in
test_weights_io.py and tests/test_reliability_training.py.)
"""
import os

import pytest

from rsna_detector.mrcnn.train import checkpoints


@pytest.mark.parametrize("path, expected", [
    ("/logs/shapes20240305T0910/mask_rcnn_shapes_0007.h5", ("shapes20240305T0910", 7)),
    ("/logs/rsna20240305T091011_2/mask_rcnn_rsna_0012.h5", ("rsna20240305T091011_2", 12)),
    ("C:\\logs\\rsna20240305T091011\\mask_rcnn_rsna_0001.h5", ("rsna20240305T091011", 1)),
    # NAME may hold '.' (Config._validate_name): such a run must resume, not start a new folder
    ("/logs/pneumonia.v220240305T091011/mask_rcnn_pneumonia.v2_0004.h5", ("pneumonia.v220240305T091011", 4)),
    ("/weights/mask_rcnn_coco.h5", None),
    ("/logs/rsna20240305T091011/mask_rcnn_rsna_12.h5", None),  # epochs have four digits
    ("", None),
    (None, None),
])
def test_run_of_checkpoint(path, expected):
    assert checkpoints.run_of_checkpoint(path) == expected


def test_checkpoint_path_in_is_a_template_for_the_epoch():
    template = checkpoints.checkpoint_path_in(os.path.join("logs", "rsna20240305T091011"), "rsna")
    assert template.format(epoch=3) == os.path.join("logs", "rsna20240305T091011", "mask_rcnn_rsna_0003.h5")
    assert os.path.basename(template.format(epoch=3)) == checkpoints.CHECKPOINT_PATTERN.format(name="rsna", epoch=3)
    assert checkpoints.run_of_checkpoint(template.format(epoch=3)) == ("rsna20240305T091011", 3)


@pytest.mark.parametrize(("name", "epoch", "file_name"), [
    ("rsna", 7, "mask_rcnn_rsna_0007.h5"),
    ("pneumonia.v2", 12, "mask_rcnn_pneumonia.v2_0012.h5"),
    ("shapes_small", 1234, "mask_rcnn_shapes_small_1234.h5"),
])
def test_checkpoint_name_is_written_and_parsed_by_one_rule(name, epoch, file_name):
    assert checkpoints.checkpoint_name(name, epoch) == file_name
    assert checkpoints.parse_checkpoint_name(file_name) == (name, epoch)
    assert checkpoints.is_checkpoint_file(file_name)


@pytest.mark.parametrize("file_name", ["mask_rcnn_coco.h5", "mask_rcnn_rsna_12.h5", "mask_rcnn_rsna_0001.keras",
                                       "model_rsna_0001.h5", "logs/mask_rcnn_rsna_0001.h5"])
def test_other_file_names_do_not_parse_as_checkpoints(file_name):
    assert checkpoints.parse_checkpoint_name(file_name) is None


def test_checkpoint_files_lists_matterports_pattern_in_epoch_order(tmp_path):
    for file_name in ("mask_rcnn_rsna_0010.h5", "mask_rcnn_rsna_0002.h5", "mask_rcnn_coco.h5", "notes.txt",
                      "mask_rcnn_rsna_0003.h5.tmp"):
        (tmp_path / file_name).write_bytes(b"")
    assert checkpoints.checkpoint_files(tmp_path) == ["mask_rcnn_coco.h5", "mask_rcnn_rsna_0002.h5",
                                                     "mask_rcnn_rsna_0010.h5"]
    assert checkpoints.checkpoint_files(tmp_path / "missing") == []


def test_checkpoint_file_fills_either_placeholder():
    assert checkpoints.checkpoint_file("/logs/run/mask_rcnn_rsna_{epoch:04d}.h5", 5) == "/logs/run/mask_rcnn_rsna_0005.h5"
    assert checkpoints.checkpoint_file("/logs/run/mask_rcnn_rsna_*epoch*.h5", 5) == "/logs/run/mask_rcnn_rsna_0005.h5"
    assert checkpoints.checkpoint_file(checkpoints.checkpoint_path_in("/logs/a{b}", "x{y}"), 2) == \
        os.path.join("/logs/a{b}", "mask_rcnn_x{y}_0002.h5")


def test_find_last_without_runs_is_a_library_error_and_a_file_not_found_error(tmp_path):
    from rsna_detector.errors import RsnaDetectorError

    with pytest.raises(checkpoints.CheckpointNotFoundError, match="no run folder 'rsna\\*'") as caught:
        checkpoints.find_last_checkpoint(str(tmp_path), "rsna")
    assert isinstance(caught.value, RsnaDetectorError) and isinstance(caught.value, FileNotFoundError)


def test_claim_run_folder_takes_the_next_free_suffix(tmp_path):
    model_dir = tmp_path / "logs"  # created on the first claim
    base = str(model_dir / "rsna20240305T091011")
    assert checkpoints.claim_run_folder(str(model_dir), base) == base
    assert checkpoints.claim_run_folder(str(model_dir), base) == base + "_2"
    assert checkpoints.claim_run_folder(str(model_dir), base) == base + "_3"
    assert sorted(os.listdir(model_dir)) == ["rsna20240305T091011", "rsna20240305T091011_2", "rsna20240305T091011_3"]


def test_run_folders_are_last_first_in_matterports_order(tmp_path):
    for folder in ("rsna20240101T0000", "rsna20240101T000030", "rsna20240101T000030_2", "rsna20231231T235959",
                   "other20250101T000000", "rsna20240101T000030_x", "rsna20240101T000030_10", "rsna_finetune",
                   "Rsna20990101T0000"):
        (tmp_path / folder).mkdir()
    (tmp_path / "rsna20250101T000000").write_text("a file, not a run")
    # matterport's string order over every folder starting with the name (a renamed one too; a
    # minute stamp before the seconds of its minute), except that a run suffix compares as a number
    assert checkpoints.run_folders(str(tmp_path), "rsna") == [
        "rsna_finetune", "rsna20240101T000030_x", "rsna20240101T000030_10", "rsna20240101T000030_2",
        "rsna20240101T000030", "rsna20240101T0000", "rsna20231231T235959"]
    assert checkpoints.run_folders(str(tmp_path / "missing"), "rsna") == []


def test_find_last_checkpoint_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no run folder 'rsna\*'"):
        checkpoints.find_last_checkpoint(str(tmp_path), "rsna")
    (tmp_path / "rsna20240101T000000").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no mask_rcnn_\*\.h5 checkpoint in the run folders"):
        checkpoints.find_last_checkpoint(str(tmp_path), "rsna")


def test_an_empty_file_is_an_unreadable_checkpoint(tmp_path):
    run = tmp_path / "rsna20240101T000000"
    run.mkdir()
    (run / "mask_rcnn_rsna_0001.h5").write_bytes(b"")
    assert checkpoints.checkpoint_problem(str(run / "mask_rcnn_rsna_0001.h5")) is not None
    with pytest.warns(checkpoints.UnreadableCheckpointWarning, match="mask_rcnn_rsna_0001.h5"), \
            pytest.raises(FileNotFoundError, match="no readable"):
        checkpoints.find_last_checkpoint(str(tmp_path), "rsna")
