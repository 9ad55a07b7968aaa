"""Exploratory data analysis of the RSNA training labels and DICOM headers (the report's EDA).

``run_eda(data_dir, out_dir)`` (command ``rsna-detector eda --data DIR --out DIR``)
computes every analysis of the interim report's EDA section from the data and
writes

* ``figures/*.png``: one figure per analysis (see ``FIGURES``);
* ``summary.json``: every number (keys documented in ``SUMMARY_KEYS``);
* ``report.md``: the figures with their numbers, and next to each figure the
  report's numeric statements (``REPORT_STATEMENTS``) checked against the
  data ("The report says X; the data says Y" where they disagree);
* ``header_dump.txt``: the full header of one DICOM file.

Definitions used throughout (also written to ``summary.json``):

* box statistics are over the positive label rows (one row per box), in
  pixels of the original image, ``(x, y)`` the top-left corner;
* ``area = width * height``; ``aspect_ratio = width / height`` (the report's
  merged table shows 0.562005 for width 213, height 379: width over height);
* centroid ``(x + width / 2, y + height / 2)``;
* percentiles: ``numpy.percentile`` with its default ``method='linear'``
  (Hyndman & Fan type 7: the p-th percentile of n sorted values is at the
  0-based position ``p / 100 * (n - 1)``, linearly interpolated);
* outliers (box plots, centroid plot): Tukey fences, a value is an outlier when
  it lies outside ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]``; a centroid is an outlier
  when its x or its y is an outlier of the centroid x or y distribution;
* ages above 120 years (or below 0) are implausible (``data.dicom``): they are
  counted and listed separately and left out of the age distributions, never
  silently dropped.

A data directory without training images (labels only) gives every label
statistic; the parts that need DICOM files (age, sex and view position from the
headers, the sample grid, the header dump) are skipped and ``report.md`` and
``summary.json`` (key ``skipped``) say so.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "PERCENTILES",
    "PERCENTILE_METHOD",
    "ASPECT_RATIO_DEFINITION",
    "OUTLIER_RULE",
    "BOX_QUANTITIES",
    "FIGURES",
    "SUMMARY_KEYS",
    "ReportStatement",
    "REPORT_STATEMENTS",
    "describe_distribution",
    "tukey_fences",
    "box_features",
    "centroid_outliers",
    "compute_label_statistics",
    "compute_header_statistics",
    "check_report_statements",
    "statement_sentence",
    "run_eda",
    "add_eda_subcommand",
    "run_eda_cli",
]

#: Percentiles reported for every distribution (keys ``p1``, ``p25``, ...).
PERCENTILES = (1, 25, 50, 75, 99)
#: ``numpy.percentile`` method (numpy's default, Hyndman & Fan type 7).
PERCENTILE_METHOD = "linear"
ASPECT_RATIO_DEFINITION = "aspect_ratio = width / height (box width over box height)"
OUTLIER_RULE = ("Tukey fences: a value is an outlier when it lies outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] of its "
                "distribution; a box centroid is an outlier when its x or its y lies outside the fences of the "
                "centroid x or centroid y distribution")
AGE_RULE = "ages above 120 years (or below 0) are implausible: counted and listed, left out of the age statistics"
_TUKEY_K = 1.5

#: Box quantities (columns of ``box_features``) and their descriptions.
BOX_QUANTITIES = {
    "x": "box x (left edge), pixels",
    "y": "box y (top edge), pixels",
    "width": "box width, pixels",
    "height": "box height, pixels",
    "area": "box area = width * height, square pixels",
    "aspect_ratio": "box aspect ratio = width / height",
    "centroid_x": "box centroid x = x + width / 2, pixels",
    "centroid_y": "box centroid y = y + height / 2, pixels",
    "right": "box right edge x + width, pixels",
    "bottom": "box bottom edge y + height, pixels",
}
#: The quantities with a histogram figure (the report's sections 3.2-3.7).
_HISTOGRAM_QUANTITIES = ("x", "y", "width", "height", "area", "aspect_ratio")

#: Figure key -> (file name under ``figures/``, title, needs DICOM files).
FIGURES = {
    "class_imbalance": ("class_imbalance.png", "Target and class, per label row and per patient", False),
    "boxes_per_patient": ("boxes_per_patient.png", "Boxes per patient", False),
    **{f"distribution_{name}": (f"distribution_{name}.png", f"Distribution of {BOX_QUANTITIES[name]}", False)
       for name in _HISTOGRAM_QUANTITIES},
    "age": ("age.png", "Patient age (DICOM header), implausible ages apart", True),
    "age_by_sex_and_target": ("age_by_sex_and_target.png", "Age by sex and by target", True),
    "centroids": ("centroids.png", "Box centroids over the image, outliers marked", False),
    "aspect_vs_area": ("aspect_vs_area.png", "Aspect ratio against area", False),
    "sample_grid": ("sample_grid.png", "Sample images with their boxes", True),
}

#: Keys of ``summary.json`` (dotted paths) and what they hold.
SUMMARY_KEYS = {
    "schema": "format version of this file (1)",
    "data": "where the data came from: root, labels_csv, class_csv, train_images (null without), "
            "n_dicom_files, with_images",
    "definitions": "percentiles, percentile_method, aspect_ratio, outlier_rule, age_rule, box_statistics_over, "
                   "std_ddof",
    "labels.n_rows": "label rows (one per box; one per negative patient)",
    "labels.n_patients": "distinct patientId",
    "labels.targets.rows": "label rows per Target value {'0': n, '1': n}",
    "labels.targets.patients": "patients per target {'0': n, '1': n} (target 1: at least one box)",
    "labels.targets.negatives_per_positive_patient": "negative patients / positive patients",
    "labels.classes.rows": "label rows per detailed class (null without a class file)",
    "labels.classes.patients": "patients per detailed class (null without a class file)",
    "labels.boxes_per_patient.counts": "patients per number of boxes {'0': negatives, '1': n, ...}",
    "labels.boxes_per_patient.positive": "describe_distribution of the box count of positive patients",
    "labels.distributions": "describe_distribution of each BOX_QUANTITIES entry over the positive rows: count, "
                            "n_missing, min, max, mean, std, p1, p25, p50, p75, p99, iqr, lower_fence, upper_fence, "
                            "whisker_low, whisker_high, n_below_fence, n_above_fence",
    "labels.centroid_outliers": "rule, fences {'x': [low, high], 'y': [low, high]}, n_boxes, n_outliers, share",
    "labels.aspect_vs_area": "n, spearman and pearson correlation of aspect ratio and area",
    "headers": "available (bool); reason when not; else n_patients, n_with_header, age (plausible ages: "
               "describe_distribution), age_implausible {count, values}, age_missing, age_by_sex, age_by_target, "
               "age_by_sex_and_target, sex {counts, by_target, positive_share}, view_position {counts, by_target, "
               "positive_share}",
    "report_statements": "each REPORT_STATEMENTS entry checked: section, figure, claim, quantity, label, relation, "
                         "report_value, tolerance, data_value, agrees (null when not checkable), sentence, note",
    "figures": "figure key -> PNG path relative to the output folder (figures produced only)",
    "sample_grid": "patients shown in the sample grid (patientId, target, n_boxes) or null",
    "header_dump": "path of the DICOM header dump relative to the output folder, or null",
    "skipped": "parts not produced, each {part, reason}",
    "notes": "remarks on the run (missing images, cache use)",
    "runtime_s": "seconds taken by run_eda",
}


# =========================================================================== statistics
def describe_distribution(values) -> dict:
    """Summary statistics of one numeric sample.

    Parameters
    ----------
    values : array-like of float, any shape
        Flattened; NaN values are counted in ``n_missing`` and left out.

    Returns
    -------
    dict
        ``count`` (finite values), ``n_missing`` (NaN), ``min``, ``max``,
        ``mean``, ``std`` (sample standard deviation, ddof=1; None when
        count < 2), ``p1``, ``p25``, ``p50``, ``p75``, ``p99`` (``numpy.percentile``,
        method 'linear': position ``p / 100 * (count - 1)`` in the sorted values,
        linearly interpolated), ``iqr`` (p75 - p25), ``lower_fence`` and
        ``upper_fence`` (p25 - 1.5 iqr, p75 + 1.5 iqr), ``whisker_low`` and
        ``whisker_high`` (smallest and largest value inside the fences: the ends
        of a box plot's whiskers), ``n_below_fence``, ``n_above_fence``. All
        Python floats/ints; every statistic is None when count is 0.

    Raises
    ------
    ValueError
        ``values`` holds an infinite value or is not numeric.
    """
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise ValueError(f"values: expected numbers, got {type(values).__name__} ({error})") from None
    if np.isinf(array).any():
        raise ValueError(f"values: {int(np.isinf(array).sum())} infinite value(s); expected finite numbers or NaN")
    finite = array[~np.isnan(array)]
    result = {"count": int(finite.size), "n_missing": int(array.size - finite.size)}
    keys = ("min", "max", "mean", "std", *(f"p{p}" for p in PERCENTILES), "iqr", "lower_fence", "upper_fence",
            "whisker_low", "whisker_high", "n_below_fence", "n_above_fence")
    if finite.size == 0:
        return {**result, **dict.fromkeys(keys)}
    quantiles = np.percentile(finite, PERCENTILES, method=PERCENTILE_METHOD)
    result.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                  std=float(finite.std(ddof=1)) if finite.size > 1 else None)
    result.update({f"p{p}": float(q) for p, q in zip(PERCENTILES, quantiles)})
    low, high = tukey_fences(finite)
    inside = finite[(finite >= low) & (finite <= high)]
    result.update(iqr=float(result["p75"] - result["p25"]), lower_fence=low, upper_fence=high,
                  whisker_low=float(inside.min()), whisker_high=float(inside.max()),
                  n_below_fence=int((finite < low).sum()), n_above_fence=int((finite > high).sum()))
    return result


def tukey_fences(values, k=_TUKEY_K) -> tuple:
    """``(Q1 - k IQR, Q3 + k IQR)`` of the non-NaN values (numpy's linear percentiles), as floats.

    Parameters
    ----------
    values : array-like of float
    k : float
        Fence multiplier (1.5: Tukey's inner fences).
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    if array.size == 0:
        raise ValueError("values: no finite value; fences are undefined")
    q1, q3 = np.percentile(array, (25, 75), method=PERCENTILE_METHOD)
    return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))


_REQUIRED_LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


def _require_columns(frame, columns, what):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)} "
                         f"(got {', '.join(map(str, frame.columns))})")


def box_features(boxes_df) -> pd.DataFrame:
    """One row per box (positive label row) with the columns of ``BOX_QUANTITIES`` and ``patientId``.

    Parameters
    ----------
    boxes_df : pandas.DataFrame
        Label rows with ``patientId, x, y, width, height, Target`` (``read_labels``
        or ``PatientTable.boxes``); RSNA boxes ``(x, y, width, height)``, pixels.

    Returns
    -------
    pandas.DataFrame
        float64 columns ``x, y, width, height, area, aspect_ratio, centroid_x,
        centroid_y, right, bottom`` for the rows with Target 1 and a complete box.
    """
    _require_columns(boxes_df, _REQUIRED_LABEL_COLUMNS, "boxes_df")
    xywh = boxes_df[["x", "y", "width", "height"]].astype(np.float64)
    rows = (boxes_df["Target"] == 1).to_numpy() & xywh.notna().all(axis=1).to_numpy()
    boxes = xywh[rows].reset_index(drop=True)
    x, y, w, h = (boxes[c].to_numpy() for c in ("x", "y", "width", "height"))
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(h > 0, w / h, np.nan)
    return pd.DataFrame({"patientId": boxes_df["patientId"][rows].to_numpy(), "x": x, "y": y, "width": w,
                         "height": h, "area": w * h, "aspect_ratio": aspect, "centroid_x": x + w / 2,
                         "centroid_y": y + h / 2, "right": x + w, "bottom": y + h})


def centroid_outliers(centroid_x, centroid_y) -> tuple:
    """Mark box centroids outside the per-axis Tukey fences (``OUTLIER_RULE``).

    Parameters
    ----------
    centroid_x, centroid_y : array-like of float [N]
        Centroid coordinates, pixels.

    Returns
    -------
    outlier : bool ndarray [N]
        True where x or y lies outside its axis's ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]``.
    fences : dict
        ``{'x': (low, high), 'y': (low, high)}``.
    """
    cx, cy = np.asarray(centroid_x, np.float64), np.asarray(centroid_y, np.float64)
    if cx.shape != cy.shape:
        raise ValueError(f"centroid_x and centroid_y: shapes {cx.shape} and {cy.shape} differ")
    if cx.size == 0:
        return np.zeros(0, dtype=bool), {"x": None, "y": None}
    fences = {"x": tukey_fences(cx), "y": tukey_fences(cy)}
    outlier = np.zeros(cx.shape, dtype=bool)
    for values, (low, high) in ((cx, fences["x"]), (cy, fences["y"])):
        outlier |= (values < low) | (values > high)
    return outlier, fences


def _counts(series) -> dict:
    """``{str(value): count}`` sorted by value; missing values left out."""
    counts = series.dropna().value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda item: item[0])}


def _per_patient(boxes_df) -> pd.DataFrame:
    """One row per patient: ``target`` (max Target), ``n_boxes``, ``class`` (first row's) when present."""
    complete = boxes_df[["x", "y", "width", "height"]].notna().all(axis=1)
    has_box = (boxes_df["Target"] == 1) & complete
    grouped = boxes_df.assign(_has_box=has_box).groupby("patientId", sort=False)
    patients = pd.DataFrame({"target": grouped["Target"].max().astype(np.int64),
                             "n_boxes": grouped["_has_box"].sum().astype(np.int64)})
    if "class" in boxes_df.columns:
        patients["class"] = grouped["class"].first()
    return patients


def _target_statistics(boxes_df, patients) -> dict:
    rows, per_patient = _counts(boxes_df["Target"]), _counts(patients["target"])
    n_pos, n_neg = per_patient.get("1", 0), per_patient.get("0", 0)
    return {"rows": rows, "patients": per_patient,
            "negatives_per_positive_patient": n_neg / n_pos if n_pos else None}


def _boxes_per_patient(patients) -> dict:
    counts = patients["n_boxes"].value_counts().sort_index()
    positive = patients.loc[patients["target"] == 1, "n_boxes"]
    return {"counts": {str(k): int(v) for k, v in counts.items()}, "positive": describe_distribution(positive)}


def _aspect_vs_area(features) -> dict:
    pair = features[["aspect_ratio", "area"]].dropna()
    if len(pair) < 2:
        return {"n": int(len(pair)), "spearman": None, "pearson": None}
    return {"n": int(len(pair)), "spearman": float(pair["aspect_ratio"].corr(pair["area"], method="spearman")),
            "pearson": float(pair["aspect_ratio"].corr(pair["area"], method="pearson"))}


def _centroid_summary(features) -> dict:
    outlier, fences = centroid_outliers(features["centroid_x"], features["centroid_y"])
    n = int(outlier.size)
    return {"rule": OUTLIER_RULE, "fences": {k: None if v is None else list(v) for k, v in fences.items()},
            "n_boxes": n, "n_outliers": int(outlier.sum()), "share": float(outlier.mean()) if n else None}


def compute_label_statistics(boxes_df) -> dict:
    """Every label statistic of the report's EDA, from a table of label rows.

    Parameters
    ----------
    boxes_df : pandas.DataFrame
        One row per label row with ``patientId, x, y, width, height, Target`` and
        optionally ``class`` (``read_labels`` or ``PatientTable.boxes``).

    Returns
    -------
    dict
        ``n_rows``, ``n_patients``, ``targets``, ``classes``, ``boxes_per_patient``,
        ``distributions`` (``describe_distribution`` of each ``BOX_QUANTITIES``
        entry over the boxes), ``centroid_outliers``, ``aspect_vs_area``; see
        ``SUMMARY_KEYS`` (``labels.*``). Count dictionaries have string keys.

    Raises
    ------
    ValueError
        A required column is missing.
    """
    _require_columns(boxes_df, _REQUIRED_LABEL_COLUMNS, "boxes_df")
    patients = _per_patient(boxes_df)
    features = box_features(boxes_df)
    has_class = "class" in boxes_df.columns
    return {
        "n_rows": int(len(boxes_df)),
        "n_patients": int(len(patients)),
        "targets": _target_statistics(boxes_df, patients),
        "classes": {"rows": _counts(boxes_df["class"]) if has_class else None,
                    "patients": _counts(patients["class"]) if has_class else None},
        "boxes_per_patient": _boxes_per_patient(patients),
        "distributions": {name: describe_distribution(features[name]) for name in BOX_QUANTITIES},
        "centroid_outliers": _centroid_summary(features),
        "aspect_vs_area": _aspect_vs_area(features),
    }


# --------------------------------------------------------------------------- header statistics
_HEADER_FIELDS = ("age", "sex", "view_position")


def _header_rows(patients_df) -> pd.DataFrame:
    """Patients with at least one header field, with float ``age`` and bool ``implausible``."""
    _require_columns(patients_df, ("target", *_HEADER_FIELDS), "patients_df")
    known = patients_df[list(_HEADER_FIELDS)].notna().any(axis=1)
    rows = patients_df[known]
    age = pd.to_numeric(rows["age"], errors="coerce").astype(np.float64)
    implausible = (age > 120) | (age < 0)
    return pd.DataFrame({"target": rows["target"].astype(np.int64).to_numpy(), "age": age.to_numpy(),
                         "implausible": implausible.to_numpy(),
                         "sex": rows["sex"].astype(object).to_numpy(),
                         "view_position": rows["view_position"].astype(object).to_numpy()})


def _category_statistics(rows, column) -> dict:
    by_target = {str(t): _counts(group[column]) for t, group in rows.groupby("target")}
    share = rows.dropna(subset=[column]).groupby(column)["target"].mean()
    return {"counts": _counts(rows[column]), "by_target": by_target,
            "positive_share": {str(k): float(v) for k, v in share.items()}}


def _age_by(rows, column) -> dict:
    return {str(key): describe_distribution(group["age"]) for key, group in rows.groupby(column)}


def compute_header_statistics(patients_df) -> dict:
    """Age, sex and view-position statistics from the DICOM header columns, per patient.

    Parameters
    ----------
    patients_df : pandas.DataFrame
        One row per patient with ``target`` (0/1) and the header columns ``age``
        (years, missing when unknown), ``sex``, ``view_position``
        (``PatientTable.patients``). Patients without any header field (no
        DICOM file) are left out.

    Returns
    -------
    dict
        ``available`` False with a ``reason`` when no patient has a header field;
        else ``n_patients``, ``n_with_header``, ``age`` (``describe_distribution``
        of the plausible ages, 0-120), ``age_implausible`` (``count`` and sorted
        ``values``), ``age_missing``, ``age_by_sex``, ``age_by_target``,
        ``age_by_sex_and_target`` (plausible ages), ``sex`` and
        ``view_position`` (``counts``, ``by_target``, ``positive_share``).
    """
    rows = _header_rows(patients_df)
    if rows.empty:
        return {"available": False, "reason": "no patient has a DICOM header (no training image read)",
                "n_patients": int(len(patients_df)), "n_with_header": 0}
    plausible = rows[~rows["implausible"] & rows["age"].notna()]
    by_sex_and_target = {str(sex): _age_by(group, "target") for sex, group in plausible.groupby("sex")}
    return {
        "available": True,
        "n_patients": int(len(patients_df)),
        "n_with_header": int(len(rows)),
        "age": describe_distribution(plausible["age"]),
        "age_implausible": {"count": int(rows["implausible"].sum()),
                            "values": sorted(float(a) for a in rows.loc[rows["implausible"], "age"])},
        "age_missing": int(rows["age"].isna().sum()),
        "age_by_sex": _age_by(plausible, "sex"),
        "age_by_target": _age_by(plausible, "target"),
        "age_by_sex_and_target": by_sex_and_target,
        "sex": _category_statistics(rows, "sex"),
        "view_position": _category_statistics(rows, "view_position"),
    }


# =========================================================================== the report's statements
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
      for name, count in (("No Lung Opacity / Not Normal", 11821), ("Lung Opacity", 9555), ("Normal", 8851))],
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
                    "No Lung Opacity / Not Normal", ("labels", "classes", "rows", "No Lung Opacity / Not Normal"),
                    "label rows of class 'No Lung Opacity / Not Normal'", "~", 11000, 1100),
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


def _format_number(value):
    if value is None:
        return "n/a"
    value = float(value)
    if value.is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"


def statement_sentence(check) -> str:
    """One sentence for a checked statement (an entry of ``check_report_statements``)."""
    word = _RELATIONS[check["relation"]][1]
    said = f"The report says \"{check['claim']}\" ({check['label']} {word} {_format_number(check['report_value'])})"
    if check["agrees"] is None:
        return f"{said}; not checked: {check['unavailable']}."
    data = f"{check['label']} = {_format_number(check['data_value'])}"
    if check["agrees"]:
        return f"{said}; the data agrees: {data}."
    return f"{said}; the data says {data}."


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
        None when not checkable), ``unavailable`` (why not checkable, else None)
        and ``sentence`` ("The report says X; the data says Y").
    """
    checks = []
    for statement in statements:
        data_value = _lookup(summary, statement.quantity)
        if data_value is None:
            unavailable = ("needs DICOM headers, which were not read" if statement.quantity[0] == "headers"
                           and not _lookup(summary, ("headers", "available")) else "quantity absent from the data")
            agrees = None
        else:
            unavailable = None
            agrees = bool(_RELATIONS[statement.relation][0](float(data_value), statement.value, statement.tolerance))
        check = {"section": statement.section, "figure": statement.figure, "claim": statement.claim,
                 "quantity": list(statement.quantity), "label": statement.label, "relation": statement.relation,
                 "report_value": statement.value, "tolerance": statement.tolerance, "data_value": data_value,
                 "agrees": agrees, "unavailable": unavailable, "note": statement.note}
        check["sentence"] = statement_sentence(check)
        checks.append(check)
    return checks
