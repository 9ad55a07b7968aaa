"""The interim report's numeric EDA statements, and their check against a summary."""
from __future__ import annotations

import dataclasses

from ..data.labels import NORMAL_CLASS, NOT_NORMAL_CLASS, POSITIVE_CLASS
from ._format import format_number

#: Header-based statements are judged only when this share of the patients has a DICOM header.
HEADER_COVERAGE_FOR_CHECKS = 0.95


@dataclasses.dataclass(frozen=True)
class ReportStatement:
    """One numeric statement of the interim report's EDA, and how to check it.

    Attributes
    ----------
    section : str
        The report's section ('3.2', ...).
    figure : str or None
        ``FIGURES`` key the statement belongs to (None: the data overview).
    claim : str
        The report's sentence, quoted.
    quantity : tuple of str
        Path of the checked number in ``summary.json``.
    label : str
        What the number is, in words.
    relation : str
        '=' (exactly), '~' (within ``tolerance``), '<=', '>=', '<', '>' (data
        value relation report value).
    value : float
        The report's number.
    tolerance : float
        For '~': half of the rounding step the report's numbers are read off its
        plots at (25 px for steps of 50 px, ...), or 10 % of N for "almost N".
    note : str
        How the sentence was read, where that is not obvious.
    """

    section: str
    figure: str | None
    claim: str
    quantity: tuple
    label: str
    relation: str
    value: float
    tolerance: float = 0.0
    note: str = ""


def _dist(name, key):
    return ("labels", "distributions", name, key)


_WHISKER_NOTE = ("the report adds 'with certain outliers above' this maximum, so it is read as the end of the "
                 "box plot's upper whisker (largest value inside the upper Tukey fence)")


def _box_statements(section, name, label, claims, step):
    """Statements of one box-quantity section: ``claims`` = [(claim, stat key, relation, value, note)]."""
    figure = f"distribution_{name}"
    return [ReportStatement(section, figure, claim, _dist(name, key), f"{_STAT_WORDS[key]} of {label}", relation,
                            value, step / 2 if relation == "~" else 0.0, note)
            for claim, key, relation, value, note in claims]


_STAT_WORDS = {"min": "minimum", "max": "maximum", "p1": "1st percentile", "p25": "25th percentile (Q1)",
               "p50": "median", "p75": "75th percentile (Q3)", "p99": "99th percentile",
               "whisker_high": "upper whisker end"}

_X_CLAIM = "The range that we got for x-coordinates is from 0 to 800."
_Y_RANGE = "The minimum & maximum value that we got is 0 and 800, respectively."
_W_RANGE = "The minimum & maximum values that we got is 50 & 400 with certain outliers above 400."
_H_RANGE = "The minimum & maximum values that we got is 0 & 800 with certain outliers above 800."
_A_RANGE = "The general minimum & maximum values that we got is 0 & 200000px (pixels) respectively."
_R_RANGE = "The general minimum & maximum values that we got is 0 & 2, respectively."

#: The interim report's numeric EDA statements (section, claim, checked quantity, report value).
REPORT_STATEMENTS = tuple([
    ReportStatement("1", None, "There is Data available of 26684 Patient.", ("labels", "n_patients"),
                    "number of patients", "=", 26684),
    ReportStatement("1", None, "Shape of train data: - (30227, 10)", ("labels", "n_rows"), "number of label rows",
                    "=", 30227),
    *[ReportStatement("1", "class_imbalance", f"(class counts) {name}: {count}", ("labels", "classes", "rows", name),
                      f"label rows of class {name!r}", "=", count)
      for name, count in ((NOT_NORMAL_CLASS, 11821), (POSITIVE_CLASS, 9555), (NORMAL_CLASS, 8851))],
    ReportStatement("2.3", "boxes_per_patient", "The minimum number of opacities is 1.",
                    ("labels", "boxes_per_patient", "positive", "min"), "fewest boxes of a positive patient", "=", 1),
    ReportStatement("2.3", "boxes_per_patient", "the maximum number of opacities is 4.",
                    ("labels", "boxes_per_patient", "positive", "max"), "most boxes of a positive patient", "=", 4),
    ReportStatement("3.1", "class_imbalance", "There is almost 5000 positive & 20000 negative points.",
                    ("labels", "targets", "patients", "1"), "positive patients", "~", 5000, 500,
                    "'points' read as patients (per label row there are 9,555 positive rows)"),
    ReportStatement("3.1", "class_imbalance", "There is almost 5000 positive & 20000 negative points.",
                    ("labels", "targets", "patients", "0"), "negative patients", "~", 20000, 2000),
    ReportStatement("3.1", "class_imbalance", "The imbalance ratio is almost 4:1 (negative: positive)",
                    ("labels", "targets", "negatives_per_positive_patient"), "negative patients per positive patient",
                    "~", 4, 0.4),
    ReportStatement("3.1", "class_imbalance", "there are almost 11000 data points which are classified as "
                    "No Lung Opacity / Not Normal", ("labels", "classes", "rows", NOT_NORMAL_CLASS),
                    f"label rows of class {NOT_NORMAL_CLASS!r}", "~", 11000, 1100),
    *_box_statements("3.2", "x", "box x", [
        (_X_CLAIM, "min", "~", 0, ""),
        (_X_CLAIM, "max", "~", 800, ""),
        ("Almost 99% of the x-coordinate values are less than 750.", "p99", "<=", 750, ""),
        ("The IQR (interquartile range) that we got is from 200 (25th percentile) & 600(75th percentile).",
         "p25", "~", 200, ""),
        ("The IQR (interquartile range) that we got is from 200 (25th percentile) & 600(75th percentile).",
         "p75", "~", 600, ""),
        ("The median value that we got is 300(approx.)", "p50", "~", 300, ""),
    ], step=50),
    *_box_statements("3.3", "y", "box y", [
        (_Y_RANGE, "min", "~", 0, ""),
        (_Y_RANGE, "whisker_high", "~", 800, _WHISKER_NOTE),
        ("There are certain outlier values also above 800.", "max", ">", 800, ""),
        ("Almost 99% values are between 100 & 700.", "p1", ">=", 100, ""),
        ("Almost 99% values are between 100 & 700.", "p99", "<=", 700, ""),
        ("The IQR (interquartile range) we got is from 250 (25th percentile) & 500 (75th percentile).",
         "p25", "~", 250, ""),
        ("The IQR (interquartile range) we got is from 250 (25th percentile) & 500 (75th percentile).",
         "p75", "~", 500, ""),
        ("The median value that we got is 350 (approx.).", "p50", "~", 350, ""),
    ], step=50),
    *_box_statements("3.4", "width", "box width", [
        (_W_RANGE, "min", "~", 50, ""),
        (_W_RANGE, "whisker_high", "~", 400, _WHISKER_NOTE),
        (_W_RANGE, "max", ">", 400, ""),
        ("Almost 99% values are less than 350.", "p99", "<=", 350, ""),
        ("The IQR (interquartile range) that we got is from 175 to 275, respectively.", "p25", "~", 175, ""),
        ("The IQR (interquartile range) that we got is from 175 to 275, respectively.", "p75", "~", 275, ""),
        ("The median value that we got is 225 (approx.)", "p50", "~", 225, ""),
    ], step=50),
    *_box_statements("3.5", "height", "box height", [
        (_H_RANGE, "min", "~", 0, ""),
        (_H_RANGE, "whisker_high", "~", 800, _WHISKER_NOTE),
        (_H_RANGE, "max", ">", 800, ""),
        ("Almost 99% values are less than 700.", "p99", "<=", 700, ""),
        ("The IQR (interquartile range) that we got is from 200 to 450, respectively.", "p25", "~", 200, ""),
        ("The IQR (interquartile range) that we got is from 200 to 450, respectively.", "p75", "~", 450, ""),
        ("The median value that we got is 300 (approx.).", "p50", "~", 300, ""),
    ], step=50),
    *_box_statements("3.6", "area", "box area", [
        (_A_RANGE, "min", "~", 0, ""),
        (_A_RANGE, "whisker_high", "~", 200000, "'general' maximum with 'certain outliers above 200000': " +
         _WHISKER_NOTE),
        ("There are certain outliers above 200000.", "max", ">", 200000, ""),
        ("Almost 99% values are less than 250000.", "p99", "<=", 250000, ""),
        ("The IQR (interquartile range) that we got is from 25000 to 100000, respectively.", "p25", "~", 25000, ""),
        ("The IQR (interquartile range) that we got is from 25000 to 100000, respectively.", "p75", "~", 100000, ""),
    ], step=25000),
    *_box_statements("3.7", "aspect_ratio", "box aspect ratio (width / height)", [
        (_R_RANGE, "min", "~", 0, ""),
        (_R_RANGE, "whisker_high", "~", 2, "'general' maximum with 'certain outliers above 1.75': " + _WHISKER_NOTE),
        ("There are certain outliers above 1.75.", "max", ">", 1.75, ""),
        ("Almost 99% values are less than 2.", "p99", "<=", 2, ""),
        ("The IQR (interquartile range) that we got is from 0.5 to 1, respectively.", "p25", "~", 0.5, ""),
        ("The IQR (interquartile range) that we got is from 0.5 to 1, respectively.", "p75", "~", 1, ""),
    ], step=0.25),
    ReportStatement("3.8", "age", "The range of patient's age is from 15 to 95 years.", ("headers", "age", "min"),
                    "youngest plausible age (years)", "~", 15, 2.5),
    ReportStatement("3.8", "age", "The range of patient's age is from 15 to 95 years.", ("headers", "age", "max"),
                    "oldest plausible age (years)", "~", 95, 2.5),
    ReportStatement("3.8", "age", "There are certain values between 140 and 160 years which are certainly outliers.",
                    ("headers", "age_implausible", "count"), "number of implausible ages (> 120)", ">", 0),
    ReportStatement("3.8", "age", "There are certain values between 140 and 160 years which are certainly outliers.",
                    ("headers", "age_implausible", "values", 0), "smallest implausible age", ">=", 140),
    ReportStatement("3.8", "age", "There are certain values between 140 and 160 years which are certainly outliers.",
                    ("headers", "age_implausible", "values", -1), "largest implausible age", "<=", 160),
    ReportStatement("3.8", "age", "The IQR range is from 30 to 60 years, respectively.", ("headers", "age", "p25"),
                    "25th percentile of age", "~", 30, 2.5),
    ReportStatement("3.8", "age", "The IQR range is from 30 to 60 years, respectively.", ("headers", "age", "p75"),
                    "75th percentile of age", "~", 60, 2.5),
    ReportStatement("3.8", "age", "The median age of the patients is 50 years.", ("headers", "age", "p50"),
                    "median age", "~", 50, 2.5),
    ReportStatement("4.2", "aspect_vs_area", "The plot depicts an inversely proportional relation between the "
                    "bounding aspect ratio and area.", ("labels", "aspect_vs_area", "spearman"),
                    "Spearman rank correlation of aspect ratio and area", "<", 0,
                    note="'inversely proportional' read as a negative rank correlation"),
])

_RELATIONS = {
    "=": (lambda a, b, tol: a == b, "="),
    "~": (lambda a, b, tol: abs(a - b) <= tol, "about"),
    "<=": (lambda a, b, tol: a <= b, "at most"),
    ">=": (lambda a, b, tol: a >= b, "at least"),
    "<": (lambda a, b, tol: a < b, "below"),
    ">": (lambda a, b, tol: a > b, "above"),
}


def _lookup(summary, path):
    """The value at ``path`` (keys and list indices) in ``summary``, or None when any step is absent."""
    node = summary
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def statement_sentence(check) -> str:
    """One sentence for a checked statement (an entry of ``check_report_statements``)."""
    word = _RELATIONS[check["relation"]][1]
    within = f" +- {format_number(check['tolerance'])}" if check["relation"] == "~" else ""
    said = (f"The report says \"{check['claim']}\" ({check['label']} {word} "
            f"{format_number(check['report_value'])}{within})")
    data = f"{check['label']} = {format_number(check['data_value'])}"
    if check["agrees"] is None:
        seen = f" (the data read gives {data})" if check["data_value"] is not None else ""
        return f"{said}; not checked: {check['unavailable']}{seen}."
    if check["agrees"]:
        return f"{said}; the data agrees: {data}."
    return f"{said}; the data says {data}."


def _why_unchecked(summary, statement, data_value):
    """Why a statement cannot be judged on this summary, or None when it can."""
    if statement.quantity[0] == "headers":
        headers = summary.get("headers") or {}
        if not headers.get("available"):
            return "needs DICOM headers, which were not read"
        covered, total = headers["n_with_header"], headers["n_patients"]
        if covered < HEADER_COVERAGE_FOR_CHECKS * total:
            return (f"DICOM headers of only {covered:,} of {total:,} patients were read (at least "
                    f"{HEADER_COVERAGE_FOR_CHECKS:.0%} are needed to judge a statement on all patients)")
    if data_value is None:
        return "the data has no such value (an empty selection)"
    return None


def check_report_statements(summary, statements=REPORT_STATEMENTS) -> list:
    """Check the report's statements against a summary (``run_eda``'s, or any dict with the same paths).

    Parameters
    ----------
    summary : dict
        At least ``labels`` (``compute_label_statistics``) and ``headers``
        (``compute_header_statistics``).
    statements : sequence of ReportStatement

    Returns
    -------
    list of dict
        Per statement: its fields (``quantity`` as a list), ``report_value``,
        ``data_value`` (None when the summary lacks it), ``agrees`` (bool, or
        None when not checkable: a missing value, or DICOM headers of fewer than
        ``HEADER_COVERAGE_FOR_CHECKS`` of the patients), ``unavailable`` (why not checkable, else None)
        and ``sentence`` ("The report says X; the data says Y").
    """
    checks = []
    for statement in statements:
        data_value = _lookup(summary, statement.quantity)
        unavailable = _why_unchecked(summary, statement, data_value)
        agrees = None if unavailable else bool(
            _RELATIONS[statement.relation][0](float(data_value), statement.value, statement.tolerance))
        check = {"section": statement.section, "figure": statement.figure, "claim": statement.claim,
                 "quantity": list(statement.quantity), "label": statement.label, "relation": statement.relation,
                 "report_value": statement.value, "tolerance": statement.tolerance, "data_value": data_value,
                 "agrees": agrees, "unavailable": unavailable, "note": statement.note}
        check["sentence"] = statement_sentence(check)
        checks.append(check)
    return checks
