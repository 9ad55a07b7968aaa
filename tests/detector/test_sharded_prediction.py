"""Sharded prediction: `predict --shard I/N` cuts the sorted file list into N stable blocks, each shard
writes its own results file, and `submit --results` merges them (overlaps refused, gaps named by patient).
Three shards give exactly the boxes, scores and submission of one unsharded run."""
import os
import random

import numpy as np
import pytest

from rsna_detector.detector.inference import ShardError, parse_shard, shard_files
from rsna_detector.detector.results import (
    merge_results_files,
    read_results_file,
    write_results_file,
    write_submission_from_results,
)
from rsna_detector.detector.submission import ImagePrediction, SubmissionError


# --------------------------------------------------------------------------- the split
def test_parse_shard_is_one_based_and_validated():
    assert parse_shard("1/3") == (1, 3) and parse_shard(" 3/3 ") == (3, 3) and parse_shard((2, 5)) == (2, 5)
    for bad, expected in [("0/3", "numbered from 1"), ("4/3", "1 <= I <= N"), ("1/0", "N >= 1"),
                          ("a/3", "two whole numbers"), ("3", "expected I/N"), ("1/2/3", "two whole numbers")]:
        with pytest.raises(ShardError, match=expected):
            parse_shard(bad)


def test_shards_are_contiguous_blocks_of_the_sorted_list_covering_every_file_once():
    files = [f"/data/p{k:02d}.dcm" for k in range(10)]
    shuffled = random.Random(0).sample(files, len(files))
    shards = [[p.name for p in shard_files(shuffled, (i, 3))] for i in (1, 2, 3)]
    assert shards == [["p00.dcm", "p01.dcm", "p02.dcm", "p03.dcm"],  # 10 = 4 + 3 + 3
                      ["p04.dcm", "p05.dcm", "p06.dcm"],
                      ["p07.dcm", "p08.dcm", "p09.dcm"]]
    assert [len(shard_files(files, (i, 12))) for i in range(1, 13)] == [1] * 10 + [0, 0]


# --------------------------------------------------------------------------- a model and images
@pytest.fixture(scope="module")
def detector_files(tmp_path_factory):
    """A random tiny detector (every box kept, the opacity class favoured), its weights and config files, 7 test DICOMs
    and one unreadable file."""
    from tests.helpers import random_detector_files

    root = tmp_path_factory.mktemp("sharding")
    model = random_detector_files(root, n_train=0, n_test=7, image_size=256)
    return root, model


def _images(root):
    return root / "data" / "stage_2_test_images"


# --------------------------------------------------------------------------- three shards = one run
def test_three_shards_equal_one_unsharded_run(detector_files, cli, tmp_path, capsys):
    from rsna_detector.detector.inference import predict
    from rsna_detector.detector.submission import write_submission

    root, model = detector_files
    whole = predict(model, _images(root), flip_tta=True, progress=False)
    assert len(whole.predictions) == 7 and not whole.failed
    assert sum(len(p.boxes) for p in whole.predictions) > 0  # a comparison of something
    write_submission(whole.predictions, tmp_path / "whole.csv")

    shards = []
    for index in (1, 2, 3):
        out = tmp_path / f"shard{index}.json"
        code = cli(["predict", "--model", str(root / "weights.h5"), "--config", str(root / "config.json"),
                    "--images", str(_images(root)), "--flip-tta", "--shard", f"{index}/3", "--out", str(out),
                    "--quiet"])
        assert code == 0
        shards.append(out)
    assert [len(read_results_file(p).files) for p in shards] == [3, 2, 2]
    assert "(shard 3/3: 2 of 7 files)" in capsys.readouterr().out

    merged = merge_results_files(reversed(shards))
    assert not merged.gaps and not merged.missing_shards
    got = {p.patient_id: p for p in merged.predictions}
    assert sorted(got) == sorted(p.patient_id for p in whole.predictions)
    for expected in whole.predictions:  # detection is per image: batch boundaries change nothing
        assert np.array_equal(got[expected.patient_id].boxes, expected.boxes), expected.patient_id
        assert np.array_equal(got[expected.patient_id].scores, expected.scores), expected.patient_id

    code = cli(["submit", "--results", *map(str, shards), "--out", str(tmp_path / "merged.csv"),
                "--images", str(_images(root))])
    assert code == 0
    assert (tmp_path / "merged.csv").read_text().splitlines()[1:] == sorted(
        (tmp_path / "whole.csv").read_text().splitlines()[1:])


def test_results_file_round_trips_exactly(tmp_path):
    boxes = np.array([[10.123456, 20.5, 300.25, 410.0]], np.float32)
    scores = np.array([0.987654321], np.float32)
    path = write_results_file([ImagePrediction("a", boxes, scores), ImagePrediction("b", np.zeros((0, 4)), [])],
                              tmp_path / "r.json", failed={"c": "truncated"}, shard=(2, 4), total_files=12)
    result = read_results_file(path)
    assert result.shard == (2, 4) and result.total_files == 12 and result.files == ["a", "b", "c"]
    assert np.array_equal(result.predictions["a"].boxes, boxes) and np.array_equal(result.predictions["a"].scores,
                                                                                   scores)
    assert result.failed == {"c": "truncated"} and sorted(os.listdir(tmp_path)) == ["r.json"]  # no temporary left


def test_a_file_of_another_format_is_refused_by_name(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"patient": []}')
    with pytest.raises(SubmissionError, match=r"old\.json: expected a results file of format"):
        read_results_file(path)


# --------------------------------------------------------------------------- overlaps and gaps
def _shard_file(folder, index, count, ids, total, failed=()):
    predictions = [ImagePrediction(pid, [[1, 2, 30, 40]], [0.9]) for pid in ids if pid not in failed]
    return write_results_file(predictions, folder / f"s{index}.json", files=list(ids),
                              failed={pid: "not a DICOM file" for pid in failed}, shard=(index, count),
                              total_files=total)


def test_overlapping_results_files_are_refused_naming_the_patient(tmp_path):
    first = _shard_file(tmp_path, 1, 2, ["p1", "p2"], 4)
    second = write_results_file([ImagePrediction("p2", [[1, 2, 3, 4]], [0.5])], tmp_path / "again.json",
                                shard=(2, 2), total_files=4)
    with pytest.raises(SubmissionError, match=r"patient p2 is in both .*s1\.json \(shard 1/2\) and .*again\.json"):
        merge_results_files([first, second])
    with pytest.raises(SubmissionError, match="patient p1 is in both"):
        merge_results_files([first, first])


def test_a_missing_shard_and_an_unreadable_file_are_named(tmp_path):
    one = _shard_file(tmp_path, 1, 3, ["p1", "p2"], 6)
    three = _shard_file(tmp_path, 3, 3, ["p5", "p6"], 6, failed=["p6"])
    out = tmp_path / "sub.csv"
    with pytest.raises(SubmissionError) as error:
        write_submission_from_results([one, three], out, missing="empty")
    message = str(error.value)
    assert "shard 2/3 has no results file (its patients sort after patient p2 and before patient p5)" in message
    assert "1 patient(s) without a prediction in" in message and "unreadable: not a DICOM file): p6" in message
    assert "give the sample submission or the image folder" in message and not out.exists()

    expected = ["p1", "p2", "p3", "p4", "p5", "p6"]
    with pytest.raises(SubmissionError, match=r"2 patient\(s\) covered by no results file: p3, p4"):
        write_submission_from_results([one, three], out, expected_ids=expected)
    path, merged = write_submission_from_results([one, three], out, expected_ids=expected, missing="empty")
    rows = dict(line.split(",") for line in path.read_text().splitlines()[1:])
    assert sorted(rows) == expected and rows["p3"] == rows["p4"] == rows["p6"] == ""
    assert rows["p1"] == "0.9000 2 1 38 29"


def test_shards_cut_from_different_listings_are_refused(tmp_path):
    one = _shard_file(tmp_path, 1, 2, ["p1", "p2"], 4)
    two = _shard_file(tmp_path, 2, 2, ["p3", "p4", "p5"], 5)
    with pytest.raises(SubmissionError, match="different lengths .* the folder changed between shards"):
        merge_results_files([one, two])


def test_submit_needs_results_or_a_model(cli, tmp_path, capsys):
    assert cli(["submit", "--out", str(tmp_path / "x.csv")]) == 2
    assert "give --results FILE" in capsys.readouterr().err
