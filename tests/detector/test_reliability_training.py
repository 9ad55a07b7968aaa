"""Training under faults (issue 14, items 3, 4, 5 and 9): two runs in the same minute, a truncated
newest checkpoint, a full disk while saving, a loss that diverges without reaching inf."""
import datetime
import errno
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import pytest

from rsna_detector.detector.schedule import Stage, train
from rsna_detector.mrcnn import model as modellib
from rsna_detector.mrcnn.train import loop
from tests.helpers import BlobDataset, tiny_config


class _FrozenClock(datetime.datetime):
    """``datetime.now()`` always 2024-03-05 09:10:11: every run starts in the same second."""

    @classmethod
    def now(cls, tz=None):
        return cls(2024, 3, 5, 9, 10, 11)


@pytest.fixture
def same_second(monkeypatch):
    monkeypatch.setattr(modellib, "datetime", SimpleNamespace(datetime=_FrozenClock))


def _train(model_dir, epochs=1, resume=False, **kwargs):
    dataset = BlobDataset(2, 1)
    config = tiny_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
    return train((dataset, dataset), config, weights=None, model_dir=model_dir, epochs=epochs,
                 schedule=[Stage("heads", 1.0, epochs, False)], augmentation=None, resume=resume,
                 **kwargs)


def test_train_leaves_the_callers_config_unchanged(tmp_path):
    dataset = BlobDataset(2, 1)
    config = tiny_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
    before = config.to_dict()
    model, _ = train((dataset, dataset), config, weights=None, model_dir=tmp_path, epochs=1, seed=5,
                     schedule=[Stage("heads", 1.0, 1, False)], augmentation=None)
    assert config.to_dict() == before and before["SEED"] != 5
    assert model.config.SEED == 5 and model.config is not config  # the seed went into the run's own copy


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run of two epochs made by ``train()``: run.json, training_log.csv and two checkpoints."""
    model, _ = _train(tmp_path_factory.mktemp("trained"), epochs=2)
    return Path(model.log_dir)


def _copy_run(run, model_dir, folder_name=None):
    target = Path(model_dir) / (folder_name or run.name)
    shutil.copytree(run, target)
    return target


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def _truncate(path):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


# --------------------------------------------------------------------------- item 3: run folders
def test_two_runs_started_in_the_same_second_never_share_a_folder(trained_run, tmp_path, same_second):
    first = _copy_run(trained_run, tmp_path, "blobs20240305T091011")  # a run that started in this second
    before = _snapshot(first)
    second, _ = _train(tmp_path)
    assert Path(second.log_dir).name == "blobs20240305T091011_2"
    assert _snapshot(first) == before  # its checkpoints, run.json and log byte-identical
    assert sorted(p.name for p in Path(second.log_dir).glob("*.h5")) == ["mask_rcnn_blobs_0001.h5"]
    third = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    assert third.make_log_dir() == str(tmp_path / "blobs20240305T091011_3")
    assert Path(third.log_dir).is_dir() and third.checkpoint_path.startswith(third.log_dir)
    assert third.make_log_dir() == str(tmp_path / "blobs20240305T091011_3")  # claimed once


def test_a_new_model_creates_no_folder_until_it_trains(tmp_path, same_second):
    model = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    assert Path(model.log_dir).name == "blobs20240305T091011" and list(tmp_path.iterdir()) == []


def test_find_last_and_resume_understand_seconds_and_suffixes(trained_run, tmp_path):
    for name in ("blobs20240305T0910", "blobs20240305T091011", "blobs20240305T091011_2",
                 "blobs20240305T091011_10", "blobs20240305T0909"):
        _copy_run(trained_run, tmp_path, name)
    model = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    last = model.find_last()
    assert Path(last) == tmp_path / "blobs20240305T091011_10" / "mask_rcnn_blobs_0002.h5"  # _10 after _2
    model.load_weights(last, by_name=True)
    assert model.epoch == 2 and model.log_dir == str(tmp_path / "blobs20240305T091011_10")
    assert model.make_log_dir() == model.log_dir  # a resumed run keeps its folder


# --------------------------------------------------------------------------- item 4: unreadable checkpoints
def test_find_last_skips_a_truncated_checkpoint_with_a_warning_naming_it(trained_run, tmp_path):
    folder = _copy_run(trained_run, tmp_path)
    _truncate(folder / "mask_rcnn_blobs_0002.h5")
    (folder / "mask_rcnn_blobs_0003.h5").write_bytes(b"")  # and an empty one
    model = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    with pytest.warns(modellib.UnreadableCheckpointWarning) as caught:
        last = model.find_last()
    assert last == str(folder / "mask_rcnn_blobs_0001.h5")
    text = "\n".join(str(w.message) for w in caught)
    assert str(folder / "mask_rcnn_blobs_0002.h5") in text and str(folder / "mask_rcnn_blobs_0003.h5") in text


def test_no_readable_checkpoint_is_a_named_error(trained_run, tmp_path):
    folder = _copy_run(trained_run, tmp_path)
    for checkpoint in folder.glob("*.h5"):
        _truncate(checkpoint)
    model = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    with pytest.warns(modellib.UnreadableCheckpointWarning), \
            pytest.raises(FileNotFoundError, match="no readable mask_rcnn_.*checkpoint"):
        model.find_last()


def test_resume_continues_from_the_newest_readable_checkpoint_and_keeps_the_history(trained_run, tmp_path):
    folder = _copy_run(trained_run, tmp_path)
    first_checkpoint = (folder / "mask_rcnn_blobs_0001.h5").read_bytes()
    first_start = json.loads((folder / "run.json").read_text())["starts"]
    assert [(s["start_epoch"], s["resumed"]) for s in first_start] == [(0, False)]
    _truncate(folder / "mask_rcnn_blobs_0002.h5")
    with pytest.warns(modellib.UnreadableCheckpointWarning, match="mask_rcnn_blobs_0002.h5"):
        resumed, history = _train(tmp_path, epochs=2, resume=True)
    assert resumed.log_dir == str(folder) and resumed.epoch == 2 and len(history["loss"]) == 1
    assert (folder / "mask_rcnn_blobs_0001.h5").read_bytes() == first_checkpoint
    with h5py.File(folder / "mask_rcnn_blobs_0002.h5") as handle:  # rewritten whole
        assert int(handle.attrs["epoch"]) == 2
    record = json.loads((folder / "run.json").read_text())
    assert record["starts"][0] == first_start[0]  # the first start is kept as it was
    assert [(s["start_epoch"], s["resumed"]) for s in record["starts"]] == [(0, False), (1, True)]
    assert record["starts"][1]["checkpoint"] == str(folder / "mask_rcnn_blobs_0001.h5")
    assert record["resumed"] is True and record["start_epoch"] == 1


# --------------------------------------------------------------------------- item 5: disk full
class _FullDisk(h5py.File):
    """The checkpoint of epoch 2 hits a full disk while it is written."""

    def create_group(self, name, *args, **kwargs):
        if "_0002.h5" in self.filename:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().create_group(name, *args, **kwargs)


def test_disk_full_while_saving_is_a_named_error_and_keeps_earlier_checkpoints(trained_run, tmp_path, monkeypatch):
    folder = _copy_run(trained_run, tmp_path)
    (folder / "mask_rcnn_blobs_0002.h5").unlink()
    model = modellib.MaskRCNN("training", tiny_config(), str(tmp_path))
    model.load_weights(model.find_last(), by_name=True)
    kept = _snapshot(folder)
    monkeypatch.setattr(h5py, "File", _FullDisk)
    saver = loop.CheckpointSaver(model)  # the callback train() runs at the end of epoch 2
    with pytest.raises(loop.CheckpointWriteError) as caught:
        saver.on_epoch_end(1)
    message = str(caught.value)
    target = folder / "mask_rcnn_blobs_0002.h5"
    assert message.startswith(f"{target}: checkpoint not written: No space left on device; epoch 2: ")
    assert f"MB free on {folder}" in message and "the checkpoint needs about" in message
    assert "earlier checkpoints kept: mask_rcnn_blobs_0001.h5" in message
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert isinstance(caught.value, OSError)
    assert _snapshot(folder) == kept  # nothing lost, no temporary file left
    assert model.epoch == 1


# --------------------------------------------------------------------------- item 9: divergence
def test_the_divergence_stop_compares_with_the_first_loss():
    stop = loop.LossDivergenceStop(factor=1e4)
    stop.on_epoch_begin(0)
    stop.on_train_batch_begin(0)
    stop.on_train_batch_end(0, {"loss": 2.5})
    stop.on_epoch_begin(1)
    stop.on_train_batch_end(0, {"loss": 2.4e4})  # below 1e4 x 2.5: trains on
    with pytest.raises(loop.LossDivergenceError) as caught:
        stop.on_train_batch_end(1, {"loss": 1e34})
    assert str(caught.value) == ("training stopped at epoch 2, step 2: loss 1e+34 grew beyond 10000 x its first "
                                 "value 2.5 (the divergence factor); lower the learning rate")
    assert isinstance(caught.value, FloatingPointError)


def test_the_divergence_stop_can_be_turned_off():
    assert loop.divergence_callbacks(None) == []
    (stop,) = loop.divergence_callbacks(50.0)
    assert stop.factor == 50.0
    with pytest.raises(ValueError, match="divergence_factor: expected a number > 1"):
        loop.divergence_callbacks(0.5)


def test_a_learning_rate_that_diverges_without_reaching_inf_stops_before_any_checkpoint(tmp_path):
    """LR 100 on the tiny model: loss 2.07, then about 1e12, 1e15, 1e23 ... (finite), which trained on and
    wrote three checkpoints before the divergence stop."""
    config = tiny_config(STEPS_PER_EPOCH=4, VALIDATION_STEPS=0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with pytest.raises(loop.LossDivergenceError, match=r"epoch 1, step \d: loss .* grew beyond 10000 x"):
        loop.train(model, BlobDataset(2, 1), None, 100.0, 3, "all", verbose=0)
    assert model.epoch == 0 and not list(Path(model.log_dir).glob("*.h5"))
