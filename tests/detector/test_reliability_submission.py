"""Impossible submission values (issue 14, item 10) and the --allow-missing hint (item 13)."""
import warnings

import numpy as np
import pytest

from rsna_detector.detector.submission import (
    SUBMISSION_HEADER,
    ImagePrediction,
    SubmissionError,
    SubmissionWarning,
    format_prediction_string,
    parse_submission,
    write_submission,
)

ID = "0004cfab-14fd-4e49-80ba-63a80b6bddd6"


# --------------------------------------------------------------------------- boxes outside the image
def test_boxes_reaching_out_are_clipped_with_one_warning_and_a_count(tmp_path):
    predictions = [
        ImagePrediction("a", [[-20, 1000, 100, 1100],      # y1 < 0 and x2 > 1024: clipped to 0 1000 100 1024
                              [10, 10, 50, 50]], [0.9, 0.8]),  # inside: untouched
        ImagePrediction("b", [[1000, -5, 1030, 40]], [0.7]),  # y2 > 1024, x1 < 0: clipped to 1000 0 1024 40
        ImagePrediction("c", [[1100, 1100, 1200, 1200], [5, 5, 9, 9]], [0.95, 0.5]),  # first wholly outside
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_submission(predictions, tmp_path / "s.csv")
    messages = [str(w.message) for w in caught if issubclass(w.category, SubmissionWarning)]
    assert len(messages) == 1
    assert "clipped 2 box(es) of 2 patient(s) to the 1024x1024 image" in messages[0]
    assert "dropped 1 box(es) wholly outside it (patient c)" in messages[0]
    assert path.read_text() == (f"{SUBMISSION_HEADER}\n"
                                "a,0.9000 1000 0 24 100 0.8000 10 10 40 40\n"
                                "b,0.7000 0 1000 40 24\n"
                                "c,0.5000 5 5 4 4\n")
    for prediction in parse_submission(path).values():  # what was written lies inside the image
        assert prediction.boxes.min() >= 0 and prediction.boxes.max() <= 1024


def test_clipping_uses_the_given_image_size(tmp_path):
    with pytest.warns(SubmissionWarning, match="to the 256x128 image"):
        path = write_submission([ImagePrediction("a", [[0, 0, 300, 300]], [0.5])], tmp_path / "s.csv",
                                image_size=(256, 128))
    assert path.read_text().splitlines()[1] == "a,0.5000 0 0 128 256"


def test_boxes_inside_give_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_submission([ImagePrediction("a", [[0, 0, 1024, 1024]], [1.0])], tmp_path / "s.csv")


# --------------------------------------------------------------------------- scores and named patients
@pytest.mark.parametrize("score", [1.5, -0.1])
def test_scores_outside_0_1_are_refused_naming_the_patient(tmp_path, score):
    predictions = {"fine": ([[0, 0, 5, 5]], [0.5]), ID: ([[0, 0, 5, 5], [1, 1, 6, 6]], [0.5, score])}
    with pytest.raises(SubmissionError, match=rf"patient {ID}: .*score.*{score}.*expected .*\[0, 1\]"):
        write_submission(predictions, tmp_path / "s.csv")
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("boxes, scores, message", [
    ([[0, 0, 10, 10]], [0.5, 0.6], "1 boxes but 2 scores"),
    ([[0, 0, np.nan, 10]], [0.5], "finite"),
    ([[10, 0, 5, 10]], [0.5], "y2 >= y1"),
    ([[0, 0, 5, 5]], [2.0], "score"),
])
def test_every_write_error_names_the_patient_not_a_placeholder(tmp_path, boxes, scores, message):
    with pytest.raises(SubmissionError) as caught:
        write_submission({ID: (boxes, scores)}, tmp_path / "s.csv")
    assert f"patient {ID}" in str(caught.value) and message in str(caught.value)
    assert "patient ?" not in str(caught.value)


def test_format_prediction_string_names_the_patient_when_given():
    with pytest.raises(SubmissionError, match=rf"patient {ID}: .*finite"):
        format_prediction_string([[0, 0, np.inf, 1]], [0.5], patient_id=ID)
    with pytest.raises(SubmissionError, match=r"^boxes and scores must be finite"):
        format_prediction_string([[0, 0, np.inf, 1]], [0.5])


@pytest.mark.parametrize("row, message", [
    (f"{ID},1.5 10 20 30 40", rf"bad.csv:3: box 1 has confidence 1.5; expected a value in \[0, 1\] \(patient {ID}\)"),
    (f"{ID},0.9 10 20 30", rf"bad.csv:3: expected groups of 5 numbers.*patient {ID}"),
    (f"{ID},0.9 10 20 -30 40", rf"bad.csv:3: box 1 has a negative width.*patient {ID}"),
])
def test_parse_errors_name_the_line_and_the_patient(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"{SUBMISSION_HEADER}\np0,0.5 1 2 3 4\n{row}\n")
    with pytest.raises(SubmissionError, match=message):
        parse_submission(path)


# --------------------------------------------------------------------------- item 13: the hint
def _sample(tmp_path, ids):
    path = tmp_path / "sample.csv"
    path.write_text(SUBMISSION_HEADER + "\n" + "".join(f"{i},0.5 0 0 100 100\n" for i in ids))
    return path


def test_python_callers_get_the_python_argument_in_the_hint(tmp_path):
    sample = _sample(tmp_path, ["a", "b"])
    with pytest.raises(SubmissionError, match=r"1 of 2 .*\(first: b\); pass missing='empty'") as caught:
        write_submission([ImagePrediction("a", [], [])], tmp_path / "s.csv", sample_submission=sample)
    assert "--allow-missing" not in str(caught.value)
