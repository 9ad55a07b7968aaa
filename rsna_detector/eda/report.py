"""``run_eda``: the whole analysis of a data directory, ``summary.json`` and ``report.md``."""
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

from .._io import atomic_write
from ..data.labels import RSNA_IMAGE_SIZE
from ..data.layout import SAMPLE_IMAGES_FOLDER, TRAIN_IMAGES
from ._format import format_number
from .figures import (
    FIGURES,
    HISTOGRAM_QUANTITIES,
    plot_sample_grid,
    save_eda_figure,
    write_age_figures,
    write_label_figures,
)
from .images import choose_samples, dicom_header_dump, load_samples
from .statements import check_report_statements
from .statistics import (
    AGE_RULE,
    ASPECT_RATIO_DEFINITION,
    BOX_QUANTITIES,
    OUTLIER_RULE,
    PERCENTILE_METHOD,
    PERCENTILES,
    box_features,
    compute_header_statistics,
    compute_label_statistics,
)

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
        return f"{layout.root}: no training image folder ({TRAIN_IMAGES}/ or {SAMPLE_IMAGES_FOLDER}/): labels only"
    if not table.patients["has_image"].astype(bool).any():
        return f"{layout.train_images}: no DICOM file of a labelled patient"
    return None


def _build_table(layout, with_images, cache_path, progress):
    from ..data.table import PatientTableWarning, build_patient_table

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
    """Side of the images the boxes refer to: the largest header Rows/Columns, else RSNA's 1024."""
    sizes = [pd.to_numeric(patients[c], errors="coerce").max() for c in ("rows", "columns") if c in patients]
    sizes = [s for s in sizes if s is not None and not pd.isna(s) and s > 0]
    return int(max(sizes)) if sizes else RSNA_IMAGE_SIZE


def _image_parts(out, table, sample_grid, seed, notes):
    """Sample grid and header dump; returns (figures, sample list or None, dump path or None, skipped)."""
    figures, skipped, listed, dump_path = {}, [], None, None
    if sample_grid > 0:
        chosen = choose_samples(table.patients, sample_grid, seed)
        samples = load_samples(chosen, table.boxes, table.image_dir, notes)
        if samples:
            figures["sample_grid"] = save_eda_figure(plot_sample_grid(samples), out / "figures" / "sample_grid.png")
            listed = [{k: s[k] for k in ("patientId", "target", "n_boxes")} for s in samples]
        else:
            skipped.append({"part": "sample_grid", "reason": "no readable DICOM file"})
    else:
        skipped.append({"part": "sample_grid", "reason": "sample grid size 0 (--sample-grid 0)"})
    dump = dicom_header_dump(table.patients, table.image_dir)
    if dump is not None:
        dump_path = out / "header_dump.txt"
        atomic_write(dump_path, dump[1])
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
    from ..data.layout import KaggleLayout

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
    figures = write_label_figures(out / "figures", label_stats, features, _image_size(table.patients))
    skipped, listed, dump_path = [], None, None
    if no_images is None and header_stats["available"]:
        figures.update(write_age_figures(out / "figures", table.patients, header_stats))
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
    atomic_write(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False))
    atomic_write(out / "report.md", render_report(summary, out))
    _log(progress, f"wrote {out / 'report.md'} and {out / 'summary.json'} in {summary['runtime_s']:.1f} s")
    return summary


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
    rows = [[name, format_number(s["count"]), *(format_number(s[k]) for k in
                                                  ("min", "p1", "p25", "p50", "p75", "p99", "max", "iqr", "mean",
                                                   "std")),
             f"{format_number(s['n_below_fence'])} / {format_number(s['n_above_fence'])}"]
            for name, s in named_stats]
    return _md_table(header, rows)


def _counts_table(first_column, rows_counts, patient_counts):
    names = sorted(set(rows_counts) | set(patient_counts or {}))
    return _md_table([first_column, "label rows", "patients"],
                     [[n, format_number(rows_counts.get(n, 0)), format_number((patient_counts or {}).get(n, 0))]
                      for n in names])


def _section_overview(summary):
    labels = summary["labels"]
    lines = ["## 1 Data", "", _md_table(["quantity", "value"], [
        ["label rows", format_number(labels["n_rows"])], ["patients", format_number(labels["n_patients"])],
        ["positive patients", format_number(labels["targets"]["patients"].get("1", 0))],
        ["boxes", format_number(labels["distributions"]["x"]["count"])],
        ["DICOM files read", format_number(summary["data"]["n_dicom_files"])]]), ""]
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
    lines += [f"Negative patients per positive patient: {format_number(targets['negatives_per_positive_patient'])}.",
              ""]
    lines += _statement_lines(summary, "class_imbalance")
    per_patient = labels["boxes_per_patient"]
    lines += ["", "### Boxes per patient", "", _figure_block(summary, "boxes_per_patient"), "",
              _md_table(["boxes", "patients"], [[k, format_number(v)] for k, v in per_patient["counts"].items()]),
              ""]
    return lines + _statement_lines(summary, "boxes_per_patient")


def _section_distributions(summary):
    lines = []
    distributions = summary["labels"]["distributions"]
    for name in HISTOGRAM_QUANTITIES:
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
              f"{', '.join(format_number(v) for v in implausible['values']) or 'none'}; "
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
                            [[k, format_number(v), format_number(stats["positive_share"].get(k))]
                             for k, v in stats["counts"].items()]), ""]
    return lines + _statement_lines(summary, "age_by_sex_and_target")


def _section_bivariate(summary):
    labels = summary["labels"]
    outliers = labels["centroid_outliers"]
    fences = outliers["fences"]
    fence_text = ("; ".join(f"{axis}: [{format_number(v[0])}, {format_number(v[1])}]"
                            for axis, v in fences.items()) if fences["x"] else "none (no box)")
    lines = ["", "## 4 Bivariate analysis", "", "### 4.1 Box centroids", "", _figure_block(summary, "centroids"), "",
             f"Outlier rule: {outliers['rule']}. Fences: {fence_text}. Outliers: {outliers['n_outliers']:,} of "
             f"{outliers['n_boxes']:,} boxes ({format_number(100 * (outliers['share'] or 0))} %).", ""]
    lines += _statement_lines(summary, "centroids")
    correlation = labels["aspect_vs_area"]
    lines += ["", "### 4.2 Aspect ratio against area", "", _figure_block(summary, "aspect_vs_area"), "",
              f"Spearman rank correlation {format_number(correlation['spearman'])}, Pearson "
              f"{format_number(correlation['pearson'])} (n = {correlation['n']:,}).", ""]
    return lines + _statement_lines(summary, "aspect_vs_area")


def _report_value_text(check):
    text = f"{check['relation']} {format_number(check['report_value'])}"
    return f"{text} +- {format_number(check['tolerance'])}" if check["relation"] == "~" else text


def _section_statements(summary):
    checks = summary["report_statements"]
    tally = {verdict: sum(c["agrees"] is verdict for c in checks) for verdict in (True, False, None)}
    verdicts = {True: "agrees", False: "**disagrees**", None: "not checked"}
    rows = [[c["section"], c["claim"].replace("|", "/"), c["label"], _report_value_text(c),
             format_number(c["data_value"]), verdicts[c["agrees"]]] for c in checks]
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
