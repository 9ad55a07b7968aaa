"""Statistics of the labels and DICOM headers: distributions, Tukey fences, box features, counts."""
import numpy as np
import pandas as pd

from ..data.labels import LABEL_COLUMNS
from ..errors import InvalidArgumentError

__all__ = [
    "PERCENTILES", "PERCENTILE_METHOD", "ASPECT_RATIO_DEFINITION", "OUTLIER_RULE", "AGE_RULE", "BOX_QUANTITIES",
    "describe_distribution", "tukey_fences", "box_features", "centroid_outliers", "compute_label_statistics",
    "header_rows", "compute_header_statistics",
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
        raise InvalidArgumentError(f"values: expected numbers, got {type(values).__name__} ({error})") from error
    if np.isinf(array).any():
        raise InvalidArgumentError(f"values: {int(np.isinf(array).sum())} infinite value(s); expected finite numbers "
                                   "or NaN")
    finite = array[~np.isnan(array)]
    result = {"count": int(finite.size), "n_missing": int(array.size - finite.size)}
    keys = ("min", "max", "mean", "std", *(f"p{p}" for p in PERCENTILES), "iqr", "lower_fence", "upper_fence",
            "whisker_low", "whisker_high", "n_below_fence", "n_above_fence")
    if finite.size == 0:
        return {**result, **dict.fromkeys(keys)}
    quantiles = np.percentile(finite, PERCENTILES, method=PERCENTILE_METHOD)
    result.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                  std=float(finite.std(ddof=1)) if finite.size > 1 else None)
    result.update({f"p{p}": float(q) for p, q in zip(PERCENTILES, quantiles, strict=True)})
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
        raise InvalidArgumentError("values: no finite value; fences are undefined")
    q1, q3 = np.percentile(array, (25, 75), method=PERCENTILE_METHOD)
    return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))


_REQUIRED_LABEL_COLUMNS = LABEL_COLUMNS


def _require_columns(frame, columns, what):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidArgumentError(f"{what}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)} "
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
        raise InvalidArgumentError(f"centroid_x and centroid_y: shapes {cx.shape} and {cy.shape} differ")
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


_HEADER_FIELDS = ("age", "sex", "view_position")


def header_rows(patients_df) -> pd.DataFrame:
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
    rows = header_rows(patients_df)
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
