"""Results files of (sharded) prediction runs, and the submission merged from them.

``rsna-detector predict --shard I/N`` writes one results file per shard (JSON, atomically;
format :data:`RESULTS_FORMAT`); ``rsna-detector submit --results ...`` merges them
(:func:`merge_results_files`: overlaps refused naming the patient, every gap named) and writes
the Kaggle file through :func:`rsna_detector.detector.submission.write_submission`. Boxes are
the engine's ``(y1, x1, y2, x2)`` in original pixels, float32, as in
:class:`~rsna_detector.detector.submission.ImagePrediction`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..errors import InputFileNotFoundError
from .submission import (
    ImagePrediction,
    SubmissionError,
    as_prediction_list,
    first_ids,
    read_sample_submission_ids,
    write_submission,
)

__all__ = [
    "RESULTS_FORMAT",
    "ResultsFile",
    "MergedResults",
    "write_results_file",
    "read_results_file",
    "expand_results_paths",
    "merge_results_files",
    "write_submission_from_results",
]

#: The ``format`` field of a results file.
RESULTS_FORMAT = "rsna_detector.results/1"


@dataclass
class ResultsFile:
    """One results file, as :func:`read_results_file` returns it.

    Attributes
    ----------
    path : Path
    shard : (int, int) or None
        ``(i, n)``, 1-based, for shard ``i`` of ``n``; None for an unsharded run.
    total_files : int or None
        Files in the whole, unsharded list.
    files : list of str
        patientIds of every file the run was given (read or not), in order.
    predictions : dict str -> ImagePrediction
        Boxes ``(y1, x1, y2, x2)`` float32 in original pixels, scores float32.
    failed : dict str -> str
        patientId -> why its file could not be read.
    postprocessing : dict or None
        The post-processing the run applied (``postprocess.PostProcessing.to_dict()``); None in
        files that do not say.
    threshold : float or None
        The minimum confidence in effect.
    """

    path: Path
    shard: tuple | None
    total_files: int | None
    files: list
    predictions: dict
    failed: dict
    postprocessing: dict | None = None
    threshold: float | None = None


def write_results_file(predictions, path, *, files=None, failed=None, shard=None, total_files=None,
                       postprocessing=None, threshold=None):
    """Write the predictions of one (sharded) prediction run as JSON, atomically.

    Format (``format`` = :data:`RESULTS_FORMAT`)::

        {"format": "rsna_detector.results/1", "shard": [i, n] or null, "total_files": 3000,
         "files": [patientId, ...], "failed": {patientId: message},
         "postprocessing": {...} or null, "threshold": 0.86 or null,
         "predictions": {patientId: [{"y1": .., "x1": .., "y2": .., "x2": .., "score": ..}, ...]}}

    Boxes are engine boxes in the file's own pixels; numbers are written exactly
    (float32 values survive the round trip).

    Parameters
    ----------
    predictions : iterable of ImagePrediction, or mapping (as for :func:`write_submission`)
    path : str or Path
        Written through a temporary file in the same folder and renamed: a job
        killed mid-write leaves no partial file.
    files : list of str, optional
        patientIds of every input file (default: the predicted ones and the failed ones).
    failed : dict str -> str, optional
    shard : (int, int), optional
    total_files : int, optional
    postprocessing : dict, optional
        The post-processing applied (``PostProcessing.to_dict()``).
    threshold : float, optional
        The minimum confidence in effect.

    Returns
    -------
    Path
    """
    import json

    items = as_prediction_list(predictions)
    failed = {str(k): str(v) for k, v in (failed or {}).items()}
    if files is None:
        predicted = {item.patient_id for item in items}
        files = [item.patient_id for item in items] + [pid for pid in failed if pid not in predicted]
    payload = {
        "format": RESULTS_FORMAT,
        "shard": None if shard is None else [int(shard[0]), int(shard[1])],
        "total_files": None if total_files is None else int(total_files),
        "files": [str(f) for f in files],
        "failed": failed,
        "postprocessing": postprocessing,
        "threshold": None if threshold is None else float(threshold),
        "predictions": {
            item.patient_id: [dict(zip(("y1", "x1", "y2", "x2"), map(float, box), strict=True), score=float(score))
                              for box, score in zip(item.boxes, item.scores, strict=True)]
            for item in items},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(payload, indent=1) + "\n")
    return path


def read_results_file(path):
    """Read a results file written by :func:`write_results_file` (``rsna-detector predict``).

    Returns
    -------
    ResultsFile

    Raises
    ------
    FileNotFoundError
    SubmissionError
        Not JSON (or nested deeper than a results file ever is), a key given twice in
        one object, another format, or a malformed field (a coordinate that is not a
        finite number, a list where a name belongs, ...), named with the file and
        the patient.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: results file not found")
    payload = _load_json(path)
    if not isinstance(payload, dict) or payload.get("format") != RESULTS_FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise SubmissionError(f"{path}: expected a results file of format {RESULTS_FORMAT!r} "
                              f"(written by `rsna-detector predict`), got format {got!r}")
    shard = payload.get("shard")
    if shard is not None and not (isinstance(shard, list) and len(shard) == 2 and all(map(_is_int, shard))
                                  and 1 <= shard[0] <= shard[1]):
        raise SubmissionError(f"{path}: shard: expected [i, n], two whole numbers with 1 <= i <= n, got {shard!r}")
    total = payload.get("total_files")
    if total is not None and not (_is_int(total) and total >= 0):
        raise SubmissionError(f"{path}: total_files: expected a whole number or null, got {total!r}")
    predictions = {str(pid): _prediction(path, pid, boxes)
                   for pid, boxes in _object(path, payload, "predictions").items()}
    failed = _object(path, payload, "failed")
    for patient_id, reason in failed.items():
        if not isinstance(reason, str):
            raise SubmissionError(f"{path}: failed: patient {patient_id}: expected the reason as text, got {reason!r}")
    files = payload.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise SubmissionError(f"{path}: files: expected a list of patientIds (text), got {_short(files)}")
    listed = set(files)
    for patient_id in list(predictions) + list(failed):  # a file always covers what it predicted
        if patient_id not in listed:
            files.append(patient_id)
            listed.add(patient_id)
    postprocessing, threshold = _applied_postprocessing(path, payload)
    return ResultsFile(path, None if shard is None else tuple(shard), total, files, predictions, dict(failed),
                       postprocessing, threshold)


def _applied_postprocessing(path, payload):
    """The file's ``postprocessing`` (an object or null) and ``threshold`` (a number or null), checked."""
    postprocessing, threshold = payload.get("postprocessing"), payload.get("threshold")
    if postprocessing is not None and not isinstance(postprocessing, dict):
        raise SubmissionError(f"{path}: postprocessing: expected an object or null, got {_short(postprocessing)}")
    if threshold is not None and not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
                                      and np.isfinite(threshold)):
        raise SubmissionError(f"{path}: threshold: expected a number or null, got {_short(threshold)}")
    return postprocessing, None if threshold is None else float(threshold)


def _unique_keys(pairs):
    """``json.loads``' object hook: a dict, or SubmissionError when a key is given twice (JSON keeps the last)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise SubmissionError(f"the key {key!r} is given twice in one object (a patient or a field repeated): "
                                  "refused rather than keeping one of them")
        seen.add(key)
    return dict(pairs)


def _load_json(path):
    """The JSON of ``path``; SubmissionError naming the file for anything that is not one plain JSON document."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except SubmissionError as error:
        raise SubmissionError(f"{path}: {error}") from error
    except RecursionError as error:
        raise SubmissionError(f"{path}: not a results file (JSON nested too deeply)") from error
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, an integer of over 4300 digits
        raise SubmissionError(f"{path}: not a results file (invalid JSON: {error})") from error


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _object(path, payload, field):
    value = payload.get(field, {})
    if not isinstance(value, dict):
        raise SubmissionError(f"{path}: {field}: expected an object keyed by patientId, got {_short(value)}")
    return value


def _number(path, patient_id, index, key, value):
    """A box field as a float; SubmissionError naming file, patient and box when it is not a finite number."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            if np.isfinite(number) and abs(number) < 1e30:
                return number
    except OverflowError:  # an integer of hundreds of digits
        pass
    raise SubmissionError(f"{path}: patient {patient_id}: box {index + 1}: {key}: expected a finite number, "
                          f"got {_short(value)}")


def _prediction(path, patient_id, boxes):
    if not isinstance(boxes, list):
        raise SubmissionError(f"{path}: patient {patient_id}: expected a list of boxes, got {_short(boxes)}")
    coords, scores = [], []
    for index, box in enumerate(boxes):
        keys = ("y1", "x1", "y2", "x2", "score")
        if not isinstance(box, dict) or not all(k in box for k in keys):
            raise SubmissionError(f"{path}: patient {patient_id}: box {index + 1}: expected an object with "
                                  f"{', '.join(keys)}, got {_short(box)}")
        values = [_number(path, patient_id, index, key, box[key]) for key in keys]
        coords.append(values[:4])
        scores.append(values[4])
    return ImagePrediction(patient_id, coords, scores)


@dataclass
class MergedResults:
    """Several results files merged (:func:`merge_results_files`).

    Attributes
    ----------
    predictions : list of ImagePrediction
        Every prediction, in file order then patient order.
    gaps : dict str -> str
        patientId -> why it has no prediction (its file failed to read, or it is
        an expected id that no results file covers).
    missing_shards : list of str
        One description per shard without a results file (its neighbours' patients).
    """

    predictions: list
    gaps: dict
    missing_shards: list

    def describe_gaps(self):
        """One message naming the missing shards and the patients without a prediction ('' when none)."""
        parts = list(self.missing_shards)
        by_reason = {}
        for patient_id, reason in self.gaps.items():
            by_reason.setdefault(reason, []).append(patient_id)
        parts += [f"{len(ids)} patient(s) {reason}: {first_ids(ids)}" for reason, ids in by_reason.items()]
        return "; ".join(parts)


def expand_results_paths(paths):
    """Results files named or matched by patterns: ``['preds_*.json']`` -> the files it matches, sorted.

    A name that is an existing file is taken as it is (even with ``*``, ``?`` or
    ``[`` in it); one with those characters is expanded as a shell would
    (:mod:`glob`), so a pattern quoted on the command line works too.

    Returns
    -------
    list of Path
        In the order given; each pattern's matches sorted.

    Raises
    ------
    InputFileNotFoundError
        (a ``FileNotFoundError``) Naming a pattern that matches no file.
    """
    import glob

    expanded = []
    for path in paths:
        text = str(path)
        if Path(text).is_file() or not any(c in text for c in "*?["):
            expanded.append(Path(text))
            continue
        matches = sorted(glob.glob(text))
        if not matches:
            raise InputFileNotFoundError(f"{text}: no results file matches this pattern")
        expanded += [Path(match) for match in matches]
    return expanded


def merge_results_files(paths, expected_ids=None):
    """Merge the results files of a sharded prediction, refusing overlaps and finding gaps.

    Parameters
    ----------
    paths : sequence of str or Path
        Results files (:func:`write_results_file`), e.g. one per shard, or
        patterns such as ``'preds_*.json'`` (:func:`expand_results_paths`).
    expected_ids : iterable of str, optional
        The patientIds a complete run covers (a sample submission's ids, a
        folder's file names): any of them no file covers is a gap.

    Returns
    -------
    MergedResults

    Raises
    ------
    SubmissionError
        A patient covered by two files (the first such patient and both files
        named), the same file given twice, shards of different counts, or files
        whose post-processing differs (both named).
    """
    results = [read_results_file(path) for path in expand_results_paths(paths)]
    if not results:
        raise SubmissionError("no results file given")
    _same_postprocessing(results)
    owner = {}
    predictions, gaps = [], {}
    for result in results:
        for patient_id in result.files:
            if patient_id in owner:
                raise SubmissionError(
                    f"patient {patient_id} is in both {owner[patient_id].path} ({_shard_name(owner[patient_id])}) "
                    f"and {result.path} ({_shard_name(result)}): overlapping results files; give each shard once")
            owner[patient_id] = result
        predictions += [result.predictions[pid] for pid in result.files if pid in result.predictions]
        for patient_id in result.files:
            if patient_id not in result.predictions:
                reason = (f"unreadable: {result.failed[patient_id]}" if patient_id in result.failed
                          else "not predicted")
                gaps[patient_id] = f"without a prediction in {result.path} ({reason})"
    missing_shards = _missing_shards(results)
    for patient_id in expected_ids or ():
        if patient_id not in owner:
            gaps.setdefault(str(patient_id), "covered by no results file")
    return MergedResults(predictions, gaps, missing_shards)


def _applied(result):
    """What decides a file's boxes: its post-processing without the provenance, and its threshold."""
    settings = {k: v for k, v in (result.postprocessing or {}).items() if k != "validation"}
    return settings, result.threshold


def _same_postprocessing(results):
    """Refuse results files (that say) whose post-processing or threshold differ: one submission, one setting."""
    described = [r for r in results if r.postprocessing is not None or r.threshold is not None]
    for other in described[1:]:
        if _applied(other) != _applied(described[0]):
            raise SubmissionError(
                f"{described[0].path} and {other.path} were predicted with different post-processing "
                f"({_applied(described[0])} and {_applied(other)}): predict every shard with the same model "
                "and --threshold")


def _shard_name(result):
    return "unsharded" if result.shard is None else f"shard {result.shard[0]}/{result.shard[1]}"


def _missing_shards(results):
    """Descriptions of the shards of ``1..n`` with no results file (sharded files only)."""
    sharded = [r for r in results if r.shard is not None]
    if not sharded:
        return []
    counts = sorted({r.shard[1] for r in sharded})
    if len(counts) > 1 or len(sharded) < len(results):
        names = ", ".join(f"{r.path} ({_shard_name(r)})" for r in results)
        raise SubmissionError(f"results files of different shardings cannot be merged: {names}")
    totals = {r.total_files for r in sharded}
    if len(totals) > 1:
        names = ", ".join(f"{r.path}: {r.total_files}" for r in sharded)
        raise SubmissionError(f"the shards were cut from file lists of different lengths ({names}): the folder "
                              "changed between shards; run every shard on the same folder")
    count = counts[0]
    by_index = {r.shard[0]: r for r in sharded}
    missing = []
    for index in range(1, count + 1):
        if index in by_index:
            continue
        before = next((by_index[i].files[-1] for i in range(index - 1, 0, -1) if by_index.get(i) and
                       by_index[i].files), None)
        after = next((by_index[i].files[0] for i in range(index + 1, count + 1) if by_index.get(i) and
                      by_index[i].files), None)
        where = " and ".join(filter(None, [before and f"after patient {before}", after and f"before patient {after}"]))
        missing.append(f"shard {index}/{count} has no results file (its patients sort {where or 'anywhere'})")
    return missing


def write_submission_from_results(results_paths, path, *, sample_submission=None, expected_ids=None,
                                  missing="error"):
    """Merge results files (one per shard) into one Kaggle submission CSV.

    Parameters
    ----------
    results_paths : sequence of str or Path
        Results files of ``rsna-detector predict`` (:func:`write_results_file`).
    path : str or Path
        The submission CSV (written atomically).
    sample_submission : str or Path, optional
        Kaggle's sample submission: rows in its order, and its ids are the ones
        a complete run covers.
    expected_ids : iterable of str, optional
        The ids a complete run covers when there is no sample submission (for
        example the file names of the image folder).
    missing : {'error', 'empty'}
        Patients without a prediction (unreadable files, missing shards, expected
        ids no file covers): raise naming them, or write them without boxes.

    Returns
    -------
    (Path, MergedResults)

    Raises
    ------
    SubmissionError
        Overlapping results files (the patient named); gaps when
        ``missing='error'`` (missing shards and patients named); a missing shard
        even with ``missing='empty'`` when neither ``sample_submission`` nor
        ``expected_ids`` says which patients it held.
    """
    if missing not in ("error", "empty"):
        raise SubmissionError(f"missing: expected 'error' or 'empty', got {missing!r}")
    if sample_submission is not None:
        expected_ids = read_sample_submission_ids(sample_submission)
    merged = merge_results_files(results_paths, expected_ids=expected_ids)
    unknown_patients = merged.missing_shards and expected_ids is None
    if (merged.gaps or merged.missing_shards) and (missing == "error" or unknown_patients):
        advice = ("give the sample submission or the image folder so that its patients are known"
                  if unknown_patients else "write them without boxes with missing='empty' (--allow-missing)")
        raise SubmissionError(f"{path}: not written, the results have gaps: {merged.describe_gaps()}; {advice}")
    empty = [ImagePrediction(pid, np.zeros((0, 4)), np.zeros(0)) for pid in merged.gaps]
    written = write_submission(merged.predictions + empty, path, sample_submission=sample_submission, missing=missing)
    return written, merged
