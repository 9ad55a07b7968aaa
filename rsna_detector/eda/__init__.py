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
from .._lazy import lazy_exports as _lazy_exports

#: submodule -> its public names; each is imported when first used, so importing the package
#: does not import pandas or matplotlib
_EXPORTS = {
    "statistics": ["PERCENTILES", "PERCENTILE_METHOD", "ASPECT_RATIO_DEFINITION", "OUTLIER_RULE", "AGE_RULE",
                   "BOX_QUANTITIES", "describe_distribution", "tukey_fences", "box_features", "centroid_outliers",
                   "compute_label_statistics", "compute_header_statistics"],
    "statements": ["HEADER_COVERAGE_FOR_CHECKS", "ReportStatement", "REPORT_STATEMENTS", "check_report_statements",
                   "statement_sentence"],
    "figures": ["FIGURES", "plot_distribution", "plot_class_imbalance", "plot_boxes_per_patient", "plot_centroids",
                "plot_aspect_vs_area", "plot_age", "plot_age_by_sex_and_target", "plot_sample_grid"],
    "report": ["SUMMARY_KEYS", "run_eda", "render_report"],
}

__all__ = [name for names in _EXPORTS.values() for name in names]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
