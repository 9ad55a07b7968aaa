"""Malformed results files (issue 22, case 5): every field is checked, and what is wrong is a
``SubmissionError`` naming the file and the patient, never a traceback; a key given twice is refused."""
import json

import pytest

from rsna_detector.detector.results import RESULTS_FORMAT, read_results_file
from rsna_detector.detector.submission import SubmissionError

GOOD_BOX = {"y1": 1.0, "x1": 2.0, "y2": 30.0, "x2": 40.0, "score": 0.9}


def _write(tmp_path, text):
    path = tmp_path / "results.json"
    path.write_text(text)
    return path


def _payload(**fields):
    payload = {"format": RESULTS_FORMAT, "shard": None, "total_files": 1, "files": ["p1"], "failed": {},
               "predictions": {"p1": [dict(GOOD_BOX)]}}
    payload.update(fields)
    return json.dumps(payload)


@pytest.mark.parametrize("fields, expected", [
    ({"predictions": {"p1": [dict(GOOD_BOX, y1="abc")]}}, r"patient p1: box 1: y1: expected a finite number, got 'abc'"),
    ({"predictions": {"p1": [dict(GOOD_BOX, x2=[1, 2])]}}, r"patient p1: box 1: x2: expected a finite number, got \[1, 2\]"),
    ({"predictions": {"p1": [dict(GOOD_BOX, score=True)]}}, r"patient p1: box 1: score: expected a finite number"),
    ({"predictions": {"p1": [dict(GOOD_BOX, y2=10 ** 400)]}}, r"patient p1: box 1: y2: expected a finite number"),
    ({"predictions": {"p1": "0.9 1 2 3 4"}}, r"patient p1: expected a list of boxes"),
    ({"predictions": {"p1": [[1, 2, 3, 4]]}}, r"patient p1: box 1: expected an object with y1, x1, y2, x2, score"),
    ({"predictions": [["p1"]]}, r"predictions: expected an object keyed by patientId"),
    ({"failed": ["x"]}, r"failed: expected an object keyed by patientId, got \['x'\]"),
    ({"failed": {"p2": ["x"]}}, r"failed: patient p2: expected the reason as text"),
    ({"shard": [1, "2"]}, r"shard: expected \[i, n\], two whole numbers"),
    ({"shard": [1.5, 2]}, r"shard: expected \[i, n\], two whole numbers"),
    ({"total_files": "12"}, r"total_files: expected a whole number or null"),
    ({"files": [1, 2]}, r"files: expected a list of patientIds"),
])
def test_a_malformed_field_is_a_submission_error_naming_the_file(tmp_path, fields, expected):
    path = _write(tmp_path, _payload(**fields))
    with pytest.raises(SubmissionError, match=expected) as caught:
        read_results_file(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_deeply_nested_json_is_a_submission_error(tmp_path):
    path = _write(tmp_path, _payload().replace('"failed": {}', '"failed": {"x": ' + "[" * 100_000 + "]" * 100_000
                                                                   + "}"))
    with pytest.raises(SubmissionError, match=r"results\.json: not a results file \(JSON nested too deeply\)"):
        read_results_file(path)


@pytest.mark.parametrize("text, key", [
    (_payload().replace('"p1": [', '"p1": [], "p1": ['), "p1"),
    (_payload().replace('"y1": 1.0', '"y1": 1.0, "y1": 500.0'), "y1"),
])
def test_a_key_given_twice_is_refused_rather_than_the_last_kept(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(SubmissionError, match=rf"results\.json: the key '{key}' is given twice in one object"):
        read_results_file(path)


def test_a_well_formed_file_still_reads(tmp_path):
    result = read_results_file(_write(tmp_path, _payload(shard=[1, 2], total_files=4)))
    assert result.shard == (1, 2) and result.total_files == 4
    assert result.predictions["p1"].boxes.tolist() == [[1.0, 2.0, 30.0, 40.0]]
