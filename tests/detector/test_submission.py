"""Kaggle submission writing and parsing (rsna_detector.detector.submission)."""
import numpy as np
import pytest

from rsna_detector.detector.submission import (
    SUBMISSION_HEADER,
    ImagePrediction,
    SubmissionError,
    format_prediction_string,
    parse_prediction_string,
    parse_submission,
    write_submission,
)


def test_format_sorts_by_confidence_and_rounds_corners():
    boxes = [[10.0, 10.0, 20.0, 20.0],          # y1 x1 y2 x2
             [152.4, 264.6, 379.2, 477.5]]       # corners round to 152 265 379 478 (477.5 -> even 478)
    text = format_prediction_string(boxes, [0.81, 0.95123])
    assert text == "0.9512 265 152 213 227 0.8100 10 10 10 10"


def test_format_empty_and_degenerate_boxes():
    assert format_prediction_string(np.zeros((0, 4)), np.zeros(0)) == ""
    # a box thinner than half a pixel still has a one-pixel size
    assert format_prediction_string([[5.0, 5.0, 5.2, 9.0]], [0.5]) == "0.5000 5 5 4 1"


@pytest.mark.parametrize("boxes, scores, message", [
    ([[0, 0, 10, 10]], [0.5, 0.6], "1 boxes but 2 scores"),
    ([[0, 0, np.nan, 10]], [0.5], "finite"),
    ([[10, 0, 5, 10]], [0.5], "y2 >= y1"),
])
def test_format_rejects_bad_boxes(boxes, scores, message):
    with pytest.raises(SubmissionError, match=message):
        format_prediction_string(boxes, scores)


def test_round_trip_is_exact_up_to_the_documented_rounding(tmp_path):
    rng = np.random.default_rng(0)
    predictions = []
    for k in range(20):
        n = k % 4
        y1x1 = rng.uniform(0, 800, (n, 2))
        hw = rng.uniform(1, 200, (n, 2))
        boxes = np.concatenate([y1x1, y1x1 + hw], axis=1)
        predictions.append(ImagePrediction(f"patient-{k:02d}", boxes, rng.uniform(0, 1, n)))
    path = write_submission(predictions, tmp_path / "sub.csv")
    parsed = parse_submission(path)
    assert list(parsed) == [p.patient_id for p in predictions]
    for original in predictions:
        back = parsed[original.patient_id]
        order = np.argsort(-original.scores, kind="stable")
        np.testing.assert_array_equal(back.boxes, np.rint(original.boxes[order]))
        np.testing.assert_allclose(back.scores, original.scores[order], atol=5e-5)
        assert back.boxes.dtype == np.float32 and back.scores.dtype == np.float32


def test_written_file_layout(tmp_path):
    path = write_submission({"b": ([[0, 0, 10, 20]], [0.9]), "a": (np.zeros((0, 4)), [])}, tmp_path / "s.csv")
    assert path.read_text() == f"{SUBMISSION_HEADER}\nb,0.9000 0 0 20 10\na,\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temporary file left behind


def test_duplicate_ids_are_refused(tmp_path):
    items = [ImagePrediction("x", [], []), ImagePrediction("x", [], [])]
    with pytest.raises(SubmissionError, match="duplicated patient id.*x"):
        write_submission(items, tmp_path / "s.csv")


def _sample_ids(rsna_dir):
    lines = (rsna_dir / "labels" / "stage_2_sample_submission.csv").read_text().splitlines()
    return [line.split(",")[0] for line in lines[1:] if line.strip()]


def test_sample_submission_order_and_ids(rsna_dir, tmp_path):
    sample = rsna_dir / "labels" / "stage_2_sample_submission.csv"
    ids = _sample_ids(rsna_dir)
    assert len(ids) == 3000
    rng = np.random.default_rng(1)
    shuffled = list(rng.permutation(ids))
    predictions = [ImagePrediction(pid, [[100, 200, 300, 350]] if i % 3 == 0 else [], [0.9] if i % 3 == 0 else [])
                   for i, pid in enumerate(shuffled)]
    path = write_submission(predictions, tmp_path / "sub.csv", sample_submission=sample)
    lines = path.read_text().splitlines()
    assert lines[0] == SUBMISSION_HEADER
    assert [line.split(",")[0] for line in lines[1:]] == ids
    parsed = parse_submission(path)
    assert sum(len(p.boxes) for p in parsed.values()) == 1000
    assert parsed[shuffled[0]].boxes.tolist() == [[100.0, 200.0, 300.0, 350.0]]


def test_sample_submission_extra_and_missing_ids(rsna_dir, tmp_path):
    sample = rsna_dir / "labels" / "stage_2_sample_submission.csv"
    ids = _sample_ids(rsna_dir)
    extra = [ImagePrediction(pid, [], []) for pid in ids] + [ImagePrediction("not-a-test-id", [], [])]
    with pytest.raises(SubmissionError, match="1 predicted patient id.*not-a-test-id"):
        write_submission(extra, tmp_path / "a.csv", sample_submission=sample)
    partial = [ImagePrediction(pid, [], []) for pid in ids[10:]]
    with pytest.raises(SubmissionError, match=f"10 of 3000 .*{ids[0]}"):
        write_submission(partial, tmp_path / "b.csv", sample_submission=sample)
    assert not (tmp_path / "b.csv").exists()
    path = write_submission(partial, tmp_path / "c.csv", sample_submission=sample, missing="empty")
    lines = path.read_text().splitlines()
    assert len(lines) == 3001 and lines[1] == f"{ids[0]},"


def test_parse_the_real_sample_submission(rsna_dir):
    parsed = parse_submission(rsna_dir / "labels" / "stage_2_sample_submission.csv")  # CRLF line ends
    assert len(parsed) == 3000
    first = next(iter(parsed.values()))
    assert first.boxes.tolist() == [[0.0, 0.0, 100.0, 100.0]] and first.scores.tolist() == [0.5]


@pytest.mark.parametrize("row, message", [
    ("p1,0.9 10 20 30", r":3: expected groups of 5 numbers .* got 4"),
    ("p1,0.9 10 20 thirty 40", r":3: non-numeric value"),
    ("p1,0.9 10 20 -30 40", r":3: box 1 has a negative width or height"),
    ("p1 0.9 10 20 30 40", r":3: expected 'patientId,PredictionString'"),
    ("p0,", r":3: patient id p0 appears a second time"),
])
def test_parse_errors_name_the_line(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"{SUBMISSION_HEADER}\np0,0.5 1 2 3 4\n{row}\n")
    with pytest.raises(SubmissionError, match=message):
        parse_submission(path)


def test_parse_rejects_a_wrong_header(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,boxes\n")
    with pytest.raises(SubmissionError, match=r"bad.csv:1: expected the header"):
        parse_submission(path)


def test_parse_prediction_string_converts_to_engine_boxes():
    boxes, scores = parse_prediction_string("0.95 264 152 213 379 0.5 0 0 10 20")
    assert boxes.tolist() == [[152, 264, 531, 477], [0, 0, 20, 10]]
    np.testing.assert_allclose(scores, [0.95, 0.5])
