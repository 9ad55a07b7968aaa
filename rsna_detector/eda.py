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
    "HEADER_COVERAGE_FOR_CHECKS",
    "AGE_RULE",
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
    "plot_distribution",
    "plot_class_imbalance",
    "plot_boxes_per_patient",
    "plot_centroids",
    "plot_aspect_vs_area",
    "plot_age",
    "plot_age_by_sex_and_target",
    "plot_sample_grid",
    "run_eda",
    "render_report",
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
#: Header-based statements are judged only when this share of the patients has a DICOM header.
HEADER_COVERAGE_FOR_CHECKS = 0.95
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
    within = f" +- {_format_number(check['tolerance'])}" if check["relation"] == "~" else ""
    said = (f"The report says \"{check['claim']}\" ({check['label']} {word} "
            f"{_format_number(check['report_value'])}{within})")
    data = f"{check['label']} = {_format_number(check['data_value'])}"
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


# =========================================================================== figures
# Figures are built on matplotlib.figure.Figure (no pyplot): no global state, no GUI backend needed.
_GRID_POINTS = 256
_KDE_CHUNK = 32
_COLOURS = {"0": "tab:blue", "1": "tab:red", "M": "tab:blue", "F": "tab:orange"}


def _new_figure(width=7.0, height=4.5, ncols=1, nrows=1, sharex=False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)


def _gaussian_density(values, grid):
    """Gaussian kernel density of ``values`` [N] on ``grid`` [G] (Scott's bandwidth std * N ** -0.2), or None."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size < 2 or values.std() == 0:
        return None
    bandwidth = values.std(ddof=1) * values.size ** -0.2
    density = np.empty(grid.size)
    for start in range(0, grid.size, _KDE_CHUNK):
        z = (grid[start:start + _KDE_CHUNK, None] - values[None, :]) / bandwidth
        density[start:start + _KDE_CHUNK] = np.exp(-0.5 * z * z).sum(axis=1)
    return density / (values.size * bandwidth * math.sqrt(2 * math.pi))


def _histogram_with_density(ax, values, colour="tab:blue", label=None, bins=50):
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        return
    ax.hist(values, bins=bins, density=True, alpha=0.35, color=colour, label=label)
    grid = np.linspace(values.min(), values.max(), _GRID_POINTS)
    density = _gaussian_density(values, grid)
    if density is not None:
        ax.plot(grid, density, color=colour, linewidth=1.6)
    ax.set_ylabel("density")


def _stats_text(stats):
    keys = ("min", *(f"p{p}" for p in PERCENTILES), "max", "iqr")
    return "\n".join(f"{k:>4}: {_format_number(stats[k])}" for k in keys)


def plot_distribution(values, stats, description):
    """Histogram (density) with a Gaussian density curve, percentile lines and the statistics.

    Parameters
    ----------
    values : array-like of float [N]
    stats : dict
        ``describe_distribution(values)``.
    description : str
        What the values are (x-axis label).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _new_figure()
    ax = axes[0, 0]
    _histogram_with_density(ax, values)
    if stats["count"]:
        for p in PERCENTILES:
            ax.axvline(stats[f"p{p}"], color="grey", linestyle=":" if p in (1, 99) else "--", linewidth=1)
        ax.text(0.99, 0.97, _stats_text(stats), transform=ax.transAxes, ha="right", va="top", family="monospace",
                fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_xlabel(description)
    ax.set_title(f"{description} (n = {stats['count']:,}); dashed: Q1, median, Q3; dotted: p1, p99", fontsize=9)
    return fig


def _bar(ax, counts, title, colours=None):
    names = list(counts)
    bars = ax.bar(range(len(names)), [counts[n] for n in names],
                  color=[(colours or {}).get(n, "tab:grey") for n in names])
    ax.bar_label(bars, labels=[f"{counts[n]:,}" for n in names], fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace(" / ", " /\n") for n in names], fontsize=8)
    ax.set_title(title, fontsize=9)


def plot_class_imbalance(label_stats):
    """Bars of Target and of the detailed class, per label row and per patient (``compute_label_statistics``)."""
    has_classes = label_stats["classes"]["rows"] is not None
    fig, axes = _new_figure(9, 7 if has_classes else 3.6, ncols=2, nrows=2 if has_classes else 1)
    targets = label_stats["targets"]
    _bar(axes[0, 0], targets["rows"], "Target per label row", _COLOURS)
    _bar(axes[0, 1], targets["patients"], "Target per patient", _COLOURS)
    if has_classes:
        _bar(axes[1, 0], label_stats["classes"]["rows"], "Class per label row")
        _bar(axes[1, 1], label_stats["classes"]["patients"], "Class per patient")
    return fig


def plot_boxes_per_patient(label_stats):
    """Bars of the number of patients per box count (0 = negative patients)."""
    fig, axes = _new_figure(6, 4)
    _bar(axes[0, 0], label_stats["boxes_per_patient"]["counts"], "Patients per number of boxes (0: negative)")
    axes[0, 0].set_xlabel("boxes per patient")
    return fig


def plot_centroids(features, outlier, fences, image_size=1024):
    """Box centroids over the image (y down, as in the image), outliers as red crosses, fences dashed.

    Parameters
    ----------
    features : pandas.DataFrame
        ``box_features``: ``centroid_x``, ``centroid_y`` [N], pixels.
    outlier : bool ndarray [N]
    fences : dict
        ``{'x': (low, high), 'y': (low, high)}`` (``centroid_outliers``).
    image_size : int
        Side of the image the boxes refer to.
    """
    fig, axes = _new_figure(6.5, 6.5)
    ax = axes[0, 0]
    cx, cy = features["centroid_x"].to_numpy(), features["centroid_y"].to_numpy()
    ax.scatter(cx[~outlier], cy[~outlier], s=3, alpha=0.25, color="tab:blue", label="centroid")
    ax.scatter(cx[outlier], cy[outlier], s=18, marker="x", color="red", label=f"outlier ({int(outlier.sum())})")
    for axis, bounds in fences.items():
        line = ax.axvline if axis == "x" else ax.axhline
        for value in bounds or ():
            if 0 <= value <= image_size:  # fences outside the image are not drawn
                line(value, color="red", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, image_size)
    ax.set_ylim(image_size, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("centroid x (pixels)")
    ax.set_ylabel("centroid y (pixels)")
    ax.set_title("Box centroids; outlier: x or y outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR]", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_aspect_vs_area(features, correlation):
    """Scatter of aspect ratio (width / height) against area, with the rank correlation in the title."""
    fig, axes = _new_figure(7, 5)
    ax = axes[0, 0]
    ax.scatter(features["area"], features["aspect_ratio"], s=3, alpha=0.25)
    ax.set_xlabel("area = width * height (square pixels)")
    ax.set_ylabel("aspect ratio = width / height")
    rho = correlation.get("spearman")
    ax.set_title(f"Aspect ratio against area (n = {correlation['n']:,}; Spearman rho = {_format_number(rho)})",
                 fontsize=9)
    return fig


def plot_age(ages, implausible_ages, stats):
    """Plausible ages (histogram + density) and, in a second panel, the implausible ages (> 120)."""
    fig, axes = _new_figure(10, 4.2, ncols=2)
    left, right = axes[0]
    _histogram_with_density(left, ages, bins=40)
    left.set_xlabel("age (years)")
    left.set_title(f"Plausible ages (n = {stats['count']:,}; median {_format_number(stats['p50'])}, "
                   f"IQR {_format_number(stats['p25'])}-{_format_number(stats['p75'])})", fontsize=9)
    if len(implausible_ages):
        values, counts = np.unique(np.asarray(implausible_ages, np.float64), return_counts=True)
        right.bar([_format_number(v) for v in values], counts, color="red")
        right.set_ylabel("patients")
    else:
        right.text(0.5, 0.5, "no implausible age", ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    right.set_title(f"Implausible ages (> 120): {len(implausible_ages)} patient(s), not in the left panel",
                    fontsize=9)
    right.set_xlabel("age (years)")
    return fig


def plot_age_by_sex_and_target(rows):
    """Age densities per sex, one panel per target (``rows``: ``target``, ``sex``, ``age`` of plausible ages).

    Every histogram uses the same 30 bins over the range of all the ages, so that panels compare.
    """
    fig, axes = _new_figure(10, 4.2, ncols=2, sharex=True)
    ages = rows["age"].to_numpy(np.float64)
    bins = np.linspace(ages.min(), max(ages.max(), ages.min() + 1), 31) if ages.size else 30
    for ax, target in zip(axes[0], (0, 1)):
        subset = rows[rows["target"] == target]
        for sex, group in subset.groupby("sex"):
            _histogram_with_density(ax, group["age"], colour=_COLOURS.get(str(sex), "tab:green"),
                                    label=f"{sex} (n = {len(group):,})", bins=bins)
        ax.set_title(f"Target {target}", fontsize=9)
        ax.set_xlabel("age (years)")
        if len(subset):
            ax.legend(fontsize=8)
    return fig


def plot_sample_grid(samples):
    """Grid of images with their boxes.

    Parameters
    ----------
    samples : list of dict
        ``image`` (uint8 [H, W]), ``boxes`` (float [N, (y1, x1, y2, x2)] in the
        image's pixels), ``title`` (str).
    """
    ncols = max(1, math.ceil(math.sqrt(len(samples))))
    nrows = max(1, math.ceil(len(samples) / ncols))
    fig, axes = _new_figure(3 * ncols, 3.2 * nrows, ncols=ncols, nrows=nrows)
    from matplotlib.patches import Rectangle

    for ax in axes.ravel():
        ax.axis("off")
    for ax, sample in zip(axes.ravel(), samples):
        ax.imshow(sample["image"], cmap="gray", vmin=0, vmax=255)
        for y1, x1, y2, x2 in np.asarray(sample["boxes"], np.float64).reshape(-1, 4):
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="red", linewidth=1.5))
        ax.set_title(sample["title"], fontsize=8)
    return fig


def _save_figure(fig, path):
    fig.savefig(path, dpi=100)
    return path


# =========================================================================== images: sample grid, header dump
_THUMBNAIL = 256


def _choose_samples(patients, n, seed):
    """Up to ``n`` patients with an image: about two thirds positive, the rest negative (seeded)."""
    with_image = patients[patients["has_image"].astype(bool)] if "has_image" in patients.columns else patients[:0]
    rng = np.random.default_rng(seed)
    positive = with_image[with_image["target"] == 1]
    negative = with_image[with_image["target"] == 0]
    n_positive = min(len(positive), n - n // 3)
    n_negative = min(len(negative), n - n_positive)
    n_positive = min(len(positive), n - n_negative)
    picks = [frame.iloc[np.sort(rng.choice(len(frame), size=k, replace=False))]
             for frame, k in ((positive, n_positive), (negative, n_negative)) if k]
    return pd.concat(picks) if picks else with_image[:0]


def _sample_title(row):
    age = row.get("age")
    sex = row.get("sex")
    parts = [str(row["patientId"])[:8], f"T={int(row['target'])}"]
    parts += [f"{sex}" if sex is not None and not pd.isna(sex) else "?",
              f"{int(age)}y" if age is not None and not pd.isna(age) else "?"]
    return " ".join(parts)


def _load_samples(chosen, boxes_df, image_dir, notes):
    """Thumbnails and boxes (scaled to the thumbnail) of the chosen patients; unreadable files noted."""
    from .data.dicom import DicomReadError, read_dicom
    from .data.labels import scale_boxes

    samples = []
    for _, row in chosen.iterrows():
        path = Path(image_dir) / f"{row['patientId']}.dcm"
        try:
            image, meta = read_dicom(path, size=_THUMBNAIL)
        except DicomReadError as error:
            notes.append(f"sample grid: {error}; patient left out")
            continue
        rows = boxes_df[(boxes_df["patientId"] == row["patientId"]) & (boxes_df["Target"] == 1)]
        yxyx = rows[["y1", "x1", "y2", "x2"]].dropna().to_numpy(np.float64)
        source = (meta.rows or _THUMBNAIL, meta.columns or _THUMBNAIL)
        samples.append({"patientId": str(row["patientId"]), "target": int(row["target"]), "n_boxes": len(yxyx),
                        "image": image, "boxes": scale_boxes(yxyx, source, _THUMBNAIL, "yxyx"),
                        "title": _sample_title(row)})
    return samples


def _header_dump(patients, image_dir):
    """(patientId, full pydicom text dump) of the first patient in file order with an image, or None."""
    import pydicom

    with_image = patients[patients["has_image"].astype(bool)]
    for patient_id in with_image["patientId"]:
        path = Path(image_dir) / f"{patient_id}.dcm"
        try:
            return str(patient_id), f"{path.name}\n\n{pydicom.dcmread(path)}\n"
        except Exception:  # noqa: BLE001 - an unreadable file: try the next patient (read_dicom notes it)
            continue
    return None


# =========================================================================== run_eda
def _log(progress, message):
    if progress:
        print(f"eda: {message}", file=sys.stderr, flush=True)


def _jsonable(value):
    """Plain JSON types: numpy scalars to Python, NaN to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _image_availability(layout, table, with_images):
    """None when the image-dependent parts can run, else the reason they are skipped."""
    if not with_images:
        return "images not read (--no-images / with_images=False)"
    if layout.train_images is None:
        return f"{layout.root}: no training image folder (stage_2_train_images/ or images/): labels only"
    if not table.patients["has_image"].astype(bool).any():
        return f"{layout.train_images}: no DICOM file of a labelled patient"
    return None


def _build_table(layout, with_images, cache_path, progress):
    from .data.table import PatientTableWarning, build_patient_table

    table_layout = layout if with_images else dataclasses.replace(layout, train_images=None)
    with warnings.catch_warnings():
        # the table's missing-image warning lists ids; run_eda reports counts in its notes instead
        warnings.simplefilter("ignore", PatientTableWarning)
        return build_patient_table(table_layout, cache_path=cache_path, progress=progress)


def _table_notes(table):
    notes = list(table.notes)
    n = len(table.patients)
    if table.image_dir is not None and table.missing_images:
        notes.append(f"{len(table.missing_images):,} of {n:,} patients have no DICOM file in {table.image_dir}; "
                     f"header statistics cover the {n - len(table.missing_images) - len(table.unreadable):,} "
                     "patients with a readable file")
    if table.unreadable:
        shown = "; ".join(f"{k}: {v}" for k, v in list(table.unreadable.items())[:5])
        notes.append(f"{len(table.unreadable)} DICOM header(s) unreadable: {shown}")
    return notes


def _image_size(patients):
    """Side of the images the boxes refer to: the largest header Rows/Columns, else 1024."""
    sizes = [pd.to_numeric(patients[c], errors="coerce").max() for c in ("rows", "columns") if c in patients]
    sizes = [s for s in sizes if s is not None and not pd.isna(s) and s > 0]
    return int(max(sizes)) if sizes else 1024


def _write_label_figures(figure_dir, label_stats, features, image_size):
    written = {"class_imbalance": _save_figure(plot_class_imbalance(label_stats), figure_dir / "class_imbalance.png"),
               "boxes_per_patient": _save_figure(plot_boxes_per_patient(label_stats),
                                                 figure_dir / "boxes_per_patient.png")}
    for name in _HISTOGRAM_QUANTITIES:
        fig = plot_distribution(features[name], label_stats["distributions"][name], BOX_QUANTITIES[name])
        written[f"distribution_{name}"] = _save_figure(fig, figure_dir / FIGURES[f"distribution_{name}"][0])
    outlier, fences = centroid_outliers(features["centroid_x"], features["centroid_y"])
    written["centroids"] = _save_figure(plot_centroids(features, outlier, fences, image_size),
                                        figure_dir / "centroids.png")
    written["aspect_vs_area"] = _save_figure(plot_aspect_vs_area(features, label_stats["aspect_vs_area"]),
                                             figure_dir / "aspect_vs_area.png")
    return written


def _write_age_figures(figure_dir, patients, header_stats):
    rows = _header_rows(patients)
    plausible = rows[~rows["implausible"] & rows["age"].notna()]
    implausible = rows.loc[rows["implausible"], "age"].to_numpy()
    return {"age": _save_figure(plot_age(plausible["age"], implausible, header_stats["age"]),
                                figure_dir / "age.png"),
            "age_by_sex_and_target": _save_figure(plot_age_by_sex_and_target(plausible),
                                                  figure_dir / "age_by_sex_and_target.png")}


def _image_parts(out, table, sample_grid, seed, notes):
    """Sample grid and header dump; returns (figures, sample list or None, dump path or None, skipped)."""
    figures, skipped, listed, dump_path = {}, [], None, None
    if sample_grid > 0:
        chosen = _choose_samples(table.patients, sample_grid, seed)
        samples = _load_samples(chosen, table.boxes, table.image_dir, notes)
        if samples:
            figures["sample_grid"] = _save_figure(plot_sample_grid(samples), out / "figures" / "sample_grid.png")
            listed = [{k: s[k] for k in ("patientId", "target", "n_boxes")} for s in samples]
        else:
            skipped.append({"part": "sample_grid", "reason": "no readable DICOM file"})
    else:
        skipped.append({"part": "sample_grid", "reason": "sample grid size 0 (--sample-grid 0)"})
    dump = _header_dump(table.patients, table.image_dir)
    if dump is not None:
        dump_path = out / "header_dump.txt"
        dump_path.write_text(dump[1], encoding="utf-8")
    else:
        skipped.append({"part": "header_dump", "reason": "no readable DICOM file"})
    return figures, listed, dump_path, skipped


def run_eda(data_dir, out_dir, *, with_images=True, sample_grid=9, progress=True, cache_path=None, seed=0) -> dict:
    """Run the report's exploratory analysis on an RSNA data directory; write figures, JSON and Markdown.

    Parameters
    ----------
    data_dir : path or KaggleLayout
        A Kaggle download, the sample layout (``labels/``, ``images/``) or a
        folder holding only the label CSVs.
    out_dir : path
        Created if needed; receives ``figures/*.png``, ``summary.json``,
        ``report.md`` and (with images) ``header_dump.txt``.
    with_images : bool
        Read the DICOM headers and images (age, sex, view position, sample grid,
        header dump). False, or no image folder: those parts are skipped and
        ``summary['skipped']`` and the report say so.
    sample_grid : int
        Number of images in the sample grid (about two thirds positive); 0 skips it.
    progress : bool
        Print progress lines to stderr (and the header-reading progress bar).
    cache_path : path, False or None
        DICOM header cache of ``build_patient_table`` (None: its default; False: none).
    seed : int
        Seed of the sample-grid choice.

    Returns
    -------
    dict
        The summary written to ``summary.json`` (keys: ``SUMMARY_KEYS``).

    Raises
    ------
    LayoutError
        ``data_dir`` is not a directory or holds no labels file.
    LabelError
        Invalid label rows.
    """
    from .data.layout import KaggleLayout

    start = time.perf_counter()
    layout = KaggleLayout.from_dir(data_dir)
    layout.require_labels()
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    reading_headers = with_images and layout.train_images is not None
    _log(progress, f"reading labels{' and DICOM headers' if reading_headers else ''} from {layout.root}")
    table = _build_table(layout, with_images, cache_path, progress)
    notes = _table_notes(table)
    no_images = _image_availability(layout, table, with_images)

    _log(progress, "computing statistics")
    label_stats = compute_label_statistics(table.boxes)
    header_stats = (compute_header_statistics(table.patients) if no_images is None else
                    {"available": False, "reason": no_images, "n_patients": int(len(table.patients)),
                     "n_with_header": 0})
    _log(progress, "drawing figures")
    features = box_features(table.boxes)
    figures = _write_label_figures(out / "figures", label_stats, features, _image_size(table.patients))
    skipped, listed, dump_path = [], None, None
    if no_images is None and header_stats["available"]:
        figures.update(_write_age_figures(out / "figures", table.patients, header_stats))
    if no_images is None:
        image_figures, listed, dump_path, skipped = _image_parts(out, table, sample_grid, seed, notes)
        figures.update(image_figures)
    else:
        skipped = [{"part": part, "reason": no_images} for part in ("age", "age_by_sex_and_target", "sex",
                                                                     "view_position", "sample_grid", "header_dump")]
    summary = {
        "schema": 1,
        "data": {"root": layout.root, "labels_csv": layout.train_labels, "class_csv": layout.class_info,
                 "train_images": layout.train_images if with_images else None,
                 "n_dicom_files": int(table.patients["has_image"].astype(bool).sum()), "with_images": with_images},
        "definitions": {"percentiles": list(PERCENTILES), "percentile_method": f"numpy.percentile method="
                        f"'{PERCENTILE_METHOD}' (type 7: position p/100 * (n - 1), linear interpolation)",
                        "aspect_ratio": ASPECT_RATIO_DEFINITION, "outlier_rule": OUTLIER_RULE, "age_rule": AGE_RULE,
                        "box_statistics_over": "positive label rows (one per box), pixels of the original image",
                        "std_ddof": 1},
        "labels": label_stats,
        "headers": header_stats,
        "figures": {key: str(path.relative_to(out)) for key, path in figures.items()},
        "sample_grid": listed,
        "header_dump": str(dump_path.relative_to(out)) if dump_path else None,
        "skipped": skipped,
        "notes": notes,
    }
    summary["report_statements"] = check_report_statements(summary)
    summary["runtime_s"] = round(time.perf_counter() - start, 3)
    summary = _jsonable(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False), encoding="utf-8")
    (out / "report.md").write_text(render_report(summary, out), encoding="utf-8")
    _log(progress, f"wrote {out / 'report.md'} and {out / 'summary.json'} in {summary['runtime_s']:.1f} s")
    return summary


# =========================================================================== report.md
_SECTION_TITLES = {"x": "3.2 Box x (left edge)", "y": "3.3 Box y (top edge)", "width": "3.4 Box width",
                   "height": "3.5 Box height", "area": "3.6 Box area", "aspect_ratio": "3.7 Box aspect ratio"}


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _figure_block(summary, key):
    path = summary["figures"].get(key)
    if path:
        return f"![{FIGURES[key][1]}]({path})"
    reasons = [s["reason"] for s in summary["skipped"] if s["part"] == key]
    return f"*Figure not produced: {reasons[0] if reasons else 'no data'}.*"


def _statement_lines(summary, figure):
    lines = []
    for check in summary["report_statements"]:
        if check["figure"] != figure:
            continue
        verdict = {True: "Agrees.", False: "**Disagrees.**", None: "Not checked."}[check["agrees"]]
        note = f" *(Read as: {check['note']}.)*" if check["note"] else ""
        lines.append(f"- {verdict} {check['sentence']}{note}")
    return lines


def _distribution_table(named_stats):
    header = ["", "n", "min", "p1", "p25", "median", "p75", "p99", "max", "IQR", "mean", "std", "below / above fences"]
    rows = [[name, _format_number(s["count"]), *(_format_number(s[k]) for k in
                                                  ("min", "p1", "p25", "p50", "p75", "p99", "max", "iqr", "mean",
                                                   "std")),
             f"{_format_number(s['n_below_fence'])} / {_format_number(s['n_above_fence'])}"]
            for name, s in named_stats]
    return _md_table(header, rows)


def _counts_table(first_column, rows_counts, patient_counts):
    names = sorted(set(rows_counts) | set(patient_counts or {}))
    return _md_table([first_column, "label rows", "patients"],
                     [[n, _format_number(rows_counts.get(n, 0)), _format_number((patient_counts or {}).get(n, 0))]
                      for n in names])


def _section_overview(summary):
    labels = summary["labels"]
    lines = ["## 1 Data", "", _md_table(["quantity", "value"], [
        ["label rows", _format_number(labels["n_rows"])], ["patients", _format_number(labels["n_patients"])],
        ["positive patients", _format_number(labels["targets"]["patients"].get("1", 0))],
        ["boxes", _format_number(labels["distributions"]["x"]["count"])],
        ["DICOM files read", _format_number(summary["data"]["n_dicom_files"])]]), ""]
    lines += _statement_lines(summary, None) + ["", "## 2 Data overview", "", "### 2.1 DICOM header of one file", ""]
    if summary["header_dump"]:
        dump = (Path(summary["_out"]) / summary["header_dump"]).read_text(encoding="utf-8")
        lines += [f"Full text: [{summary['header_dump']}]({summary['header_dump']})", "", "```text", dump.rstrip(),
                  "```"]
    else:
        lines.append(f"*Header dump not produced: {_skip_reason(summary, 'header_dump')}.*")
    lines += ["", "### 2.3 Sample images with their boxes", "", _figure_block(summary, "sample_grid"), ""]
    if summary["sample_grid"]:
        lines.append("Shown: " + ", ".join(f"{s['patientId']} (Target {s['target']}, {s['n_boxes']} box(es))"
                                           for s in summary["sample_grid"]))
    return lines + [""]


def _skip_reason(summary, part):
    reasons = [s["reason"] for s in summary["skipped"] if s["part"] == part]
    return reasons[0] if reasons else "no data"


def _section_imbalance(summary):
    labels = summary["labels"]
    targets = labels["targets"]
    lines = ["## 3 Univariate analysis", "", "### 3.1 Class imbalance", "", _figure_block(summary, "class_imbalance"),
             "", _counts_table("Target", targets["rows"], targets["patients"]), ""]
    if labels["classes"]["rows"] is not None:
        lines += [_counts_table("class", labels["classes"]["rows"], labels["classes"]["patients"]), ""]
    lines += [f"Negative patients per positive patient: {_format_number(targets['negatives_per_positive_patient'])}.",
              ""]
    lines += _statement_lines(summary, "class_imbalance")
    per_patient = labels["boxes_per_patient"]
    lines += ["", "### Boxes per patient", "", _figure_block(summary, "boxes_per_patient"), "",
              _md_table(["boxes", "patients"], [[k, _format_number(v)] for k, v in per_patient["counts"].items()]),
              ""]
    return lines + _statement_lines(summary, "boxes_per_patient")


def _section_distributions(summary):
    lines = []
    distributions = summary["labels"]["distributions"]
    for name in _HISTOGRAM_QUANTITIES:
        lines += ["", f"### {_SECTION_TITLES[name]}", "", f"{BOX_QUANTITIES[name]}, over the boxes.", "",
                  _figure_block(summary, f"distribution_{name}"), "",
                  _distribution_table([(name, distributions[name])]), ""]
        lines += _statement_lines(summary, f"distribution_{name}")
    lines += ["", "Box edges (x + width and y + height; both must stay within the image):", "",
              _distribution_table([(n, distributions[n]) for n in ("right", "bottom")])]
    return lines


def _section_age(summary):
    headers = summary["headers"]
    lines = ["", "### 3.8 Patient age", ""]
    if not headers["available"]:
        return lines + [f"*Not produced: {headers['reason']}.*", ""] + _statement_lines(summary, "age") + [
            "", "### 3.9 Age by sex and target", "", f"*Not produced: {headers['reason']}.*"]
    implausible = headers["age_implausible"]
    lines += [_figure_block(summary, "age"), "",
              f"Ages from the DICOM headers of {headers['n_with_header']:,} of {headers['n_patients']:,} patients; "
              f"{implausible['count']} implausible age(s) (> 120), shown apart and left out of the statistics: "
              f"{', '.join(_format_number(v) for v in implausible['values']) or 'none'}; "
              f"{headers['age_missing']} missing.", "",
              _distribution_table([("age (plausible)", headers["age"])]), ""]
    lines += _statement_lines(summary, "age")
    by = [(f"sex {sex}, Target {target}", stats) for sex, targets in headers["age_by_sex_and_target"].items()
          for target, stats in targets.items()]
    by += [(f"sex {sex}", stats) for sex, stats in headers["age_by_sex"].items()]
    by += [(f"Target {target}", stats) for target, stats in headers["age_by_target"].items()]
    lines += ["", "### 3.9 Age by sex and target", "", _figure_block(summary, "age_by_sex_and_target"), "",
              _distribution_table(by), ""]
    for field in ("sex", "view_position"):
        stats = headers[field]
        lines += [_md_table([field, "patients", "share positive"],
                            [[k, _format_number(v), _format_number(stats["positive_share"].get(k))]
                             for k, v in stats["counts"].items()]), ""]
    return lines + _statement_lines(summary, "age_by_sex_and_target")


def _section_bivariate(summary):
    labels = summary["labels"]
    outliers = labels["centroid_outliers"]
    fences = outliers["fences"]
    fence_text = ("; ".join(f"{axis}: [{_format_number(v[0])}, {_format_number(v[1])}]"
                            for axis, v in fences.items()) if fences["x"] else "none (no box)")
    lines = ["", "## 4 Bivariate analysis", "", "### 4.1 Box centroids", "", _figure_block(summary, "centroids"), "",
             f"Outlier rule: {outliers['rule']}. Fences: {fence_text}. Outliers: {outliers['n_outliers']:,} of "
             f"{outliers['n_boxes']:,} boxes ({_format_number(100 * (outliers['share'] or 0))} %).", ""]
    lines += _statement_lines(summary, "centroids")
    correlation = labels["aspect_vs_area"]
    lines += ["", "### 4.2 Aspect ratio against area", "", _figure_block(summary, "aspect_vs_area"), "",
              f"Spearman rank correlation {_format_number(correlation['spearman'])}, Pearson "
              f"{_format_number(correlation['pearson'])} (n = {correlation['n']:,}).", ""]
    return lines + _statement_lines(summary, "aspect_vs_area")


def _report_value_text(check):
    text = f"{check['relation']} {_format_number(check['report_value'])}"
    return f"{text} +- {_format_number(check['tolerance'])}" if check["relation"] == "~" else text


def _section_statements(summary):
    checks = summary["report_statements"]
    tally = {verdict: sum(c["agrees"] is verdict for c in checks) for verdict in (True, False, None)}
    verdicts = {True: "agrees", False: "**disagrees**", None: "not checked"}
    rows = [[c["section"], c["claim"].replace("|", "/"), c["label"], _report_value_text(c),
             _format_number(c["data_value"]), verdicts[c["agrees"]]] for c in checks]
    return ["", "## The report's numeric statements against the data", "",
            f"{len(checks)} statements: {tally[True]} agree, {tally[False]} disagree, {tally[None]} not checked. "
            "'~' means within the tolerance: half of the rounding step the report reads its plots at "
            "(25 px for 50 px steps, 12,500 for area, 0.125 for aspect ratio, 2.5 years for age) or 10 % for "
            "'almost N'.", "",
            _md_table(["section", "the report says", "quantity", "report", "data", "verdict"], rows)]


def _section_skipped(summary):
    lines = ["", "## Skipped parts and notes", ""]
    lines += [f"- Skipped {s['part']}: {s['reason']}." for s in summary["skipped"]] or ["- Nothing skipped."]
    lines += [f"- Note: {n}" for n in summary["notes"]]
    return lines


def render_report(summary, out_dir) -> str:
    """The Markdown report of a ``run_eda`` summary; figure links relative to ``out_dir``.

    Parameters
    ----------
    summary : dict
        ``run_eda``'s summary (as written to ``summary.json``).
    out_dir : path
        The output folder (where ``header_dump.txt`` is read from).

    Returns
    -------
    str
    """
    summary = {**summary, "_out": str(out_dir)}
    definitions = summary["definitions"]
    data = summary["data"]
    lines = ["# RSNA Pneumonia Detection: exploratory data analysis", "",
             f"Data: `{data['root']}` (labels `{data['labels_csv']}`, classes `{data['class_csv']}`, training "
             f"images `{data['train_images']}`). Written by `rsna_detector.eda.run_eda` in {summary['runtime_s']} s; "
             "every number is in `summary.json`.", "", "Definitions:", "",
             f"- Box statistics are over the {definitions['box_statistics_over']}.",
             f"- {definitions['aspect_ratio']}.",
             f"- Percentiles: {definitions['percentile_method']}; std with ddof = {definitions['std_ddof']}.",
             f"- Outliers: {definitions['outlier_rule']}.",
             f"- Age: {definitions['age_rule']}.", ""]
    for section in (_section_overview, _section_imbalance, _section_distributions, _section_age, _section_bivariate,
                    _section_statements, _section_skipped):
        lines += section(summary)
    return "\n".join(lines).rstrip() + "\n"


# =========================================================================== command line
def add_eda_subcommand(subparsers):
    """Register ``eda --data DIR --out DIR [--no-images] [--sample-grid N] [--quiet]`` on an argparse subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        ``parser.add_subparsers(...)``'s result.

    Returns
    -------
    argparse.ArgumentParser
        The ``eda`` parser (its default ``func`` is ``run_eda_cli``).
    """
    parser = subparsers.add_parser(
        "eda", help="exploratory data analysis of a data directory: figures, summary.json, report.md",
        description="Compute the interim report's EDA from the data (class balance, box distributions, age, "
                    "centroids, aspect ratio against area, sample images, DICOM header) and check the report's "
                    "numbers against it. A labels-only directory gives every label statistic.")
    parser.add_argument("--data", required=True, help="RSNA data directory (Kaggle layout, labels/ + images/, "
                                                      "or a folder with the label CSVs only)")
    parser.add_argument("--out", required=True, help="output folder (figures/, summary.json, report.md)")
    parser.add_argument("--no-images", action="store_true", help="do not read DICOM files (label statistics only)")
    parser.add_argument("--sample-grid", type=int, default=9, metavar="N", help="images in the sample grid (0: none)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run_eda_cli)
    return parser


def run_eda_cli(args) -> int:
    """Run ``run_eda`` from parsed ``eda`` arguments; print where the report went; return the exit status (0)."""
    if args.sample_grid < 0:
        raise ValueError(f"--sample-grid: expected a number >= 0, got {args.sample_grid}")
    summary = run_eda(args.data, args.out, with_images=not args.no_images, sample_grid=args.sample_grid,
                      progress=not args.quiet)
    out = Path(args.out)
    disagreements = sum(c["agrees"] is False for c in summary["report_statements"])
    print(f"wrote {out / 'report.md'} ({len(summary['figures'])} figures in {out / 'figures'}, "
          f"summary {out / 'summary.json'}; {disagreements} of the report's statements disagree with the data; "
          f"{summary['runtime_s']:.1f} s)")
    return 0
