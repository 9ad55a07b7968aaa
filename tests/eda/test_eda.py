"""Tests of rsna_detector.eda: hand-computed statistics, the report's statements, and full runs
on the real labels (labels only), the real samples (16 DICOMs) and a small synthetic data set."""
import csv
import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from rsna_detector import eda
from rsna_detector.data.layout import LayoutError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- describe_distribution
def test_describe_distribution_hand_computed_linear_percentiles():
    # 1..10 and an outlier 100, plus a NaN. n = 11 finite values, sorted positions 0..10.
    # linear (type 7) percentile p is at position p/100 * 10:
    #   p1: 0.1 -> 1 + 0.1 * (2 - 1) = 1.1      p25: 2.5 -> 3.5      p50: 5 -> 6
    #   p75: 7.5 -> 8.5                          p99: 9.9 -> 10 + 0.9 * (100 - 10) = 91
    # IQR 5, fences 3.5 - 7.5 = -4 and 8.5 + 7.5 = 16: 100 is above, whiskers 1 and 10.
    values = [4, 1, 2, 3, 5, 100, 6, 7, float("nan"), 8, 9, 10]
    stats = eda.describe_distribution(values)
    assert stats["count"] == 11 and stats["n_missing"] == 1
    assert stats["min"] == 1 and stats["max"] == 100
    assert stats["p1"] == pytest.approx(1.1)
    assert stats["p25"] == pytest.approx(3.5)
    assert stats["p50"] == pytest.approx(6.0)
    assert stats["p75"] == pytest.approx(8.5)
    assert stats["p99"] == pytest.approx(91.0)
    assert stats["iqr"] == pytest.approx(5.0)
    assert (stats["lower_fence"], stats["upper_fence"]) == pytest.approx((-4.0, 16.0))
    assert (stats["whisker_low"], stats["whisker_high"]) == (1.0, 10.0)
    assert (stats["n_below_fence"], stats["n_above_fence"]) == (0, 1)
    # mean 155 / 11; sample variance (sum x^2 - n mean^2) / (n - 1) with sum x^2 = 385 + 10000
    assert stats["mean"] == pytest.approx(155 / 11)
    assert stats["std"] == pytest.approx(math.sqrt((10385 - 155 ** 2 / 11) / 10))
    assert all(isinstance(v, (int, float)) for v in stats.values())


def test_describe_distribution_two_values_and_empty_and_bad_input():
    stats = eda.describe_distribution(np.array([[0.0], [10.0]]))  # any shape is flattened
    # position p/100 * 1: p1 = 0.1, p25 = 2.5, p99 = 9.9
    assert (stats["p1"], stats["p25"], stats["p50"], stats["p75"], stats["p99"]) == pytest.approx(
        (0.1, 2.5, 5.0, 7.5, 9.9))
    single = eda.describe_distribution([7])
    assert single["std"] is None and single["p99"] == 7.0
    empty = eda.describe_distribution([float("nan")])
    assert empty["count"] == 0 and empty["n_missing"] == 1 and empty["max"] is None and empty["p50"] is None
    with pytest.raises(ValueError, match="infinite"):
        eda.describe_distribution([1.0, np.inf])
    with pytest.raises(ValueError, match="expected numbers"):
        eda.describe_distribution(["a", "b"])


def test_centroid_outliers_per_axis_fences():
    # x: Q1 20, Q3 40 -> fences [-10, 70], no outlier; y: same quartiles, 200 lies above 70.
    outlier, fences = eda.centroid_outliers([10, 20, 30, 40, 50], [10, 20, 30, 40, 200])
    assert outlier.tolist() == [False, False, False, False, True]
    assert fences["x"] == pytest.approx((-10.0, 70.0)) and fences["y"] == pytest.approx((-10.0, 70.0))
    with pytest.raises(ValueError, match="shapes"):
        eda.centroid_outliers([1, 2], [1])


# --------------------------------------------------------------------------- label statistics
def _hand_labels():
    """Patients A (2 boxes), B (negative), C (1 box), D (negative, Normal)."""
    nan = float("nan")
    return pd.DataFrame({
        "patientId": ["A", "A", "B", "C", "D"],
        "x": [100.0, 300.0, nan, 500.0, nan], "y": [200.0, 200.0, nan, 600.0, nan],
        "width": [50.0, 100.0, nan, 200.0, nan], "height": [100.0, 50.0, nan, 100.0, nan],
        "Target": [1, 1, 0, 1, 0],
        "class": ["Lung Opacity", "Lung Opacity", "No Lung Opacity / Not Normal", "Lung Opacity", "Normal"],
    })


def test_compute_label_statistics_on_a_hand_made_table():
    stats = eda.compute_label_statistics(_hand_labels())
    assert stats["n_rows"] == 5 and stats["n_patients"] == 4
    assert stats["targets"]["rows"] == {"0": 2, "1": 3}
    assert stats["targets"]["patients"] == {"0": 2, "1": 2}
    assert stats["targets"]["negatives_per_positive_patient"] == 1.0
    assert stats["classes"]["rows"] == {"Lung Opacity": 3, "No Lung Opacity / Not Normal": 1, "Normal": 1}
    assert stats["classes"]["patients"] == {"Lung Opacity": 2, "No Lung Opacity / Not Normal": 1, "Normal": 1}
    assert stats["boxes_per_patient"]["counts"] == {"0": 2, "1": 1, "2": 1}
    assert (stats["boxes_per_patient"]["positive"]["min"], stats["boxes_per_patient"]["positive"]["max"]) == (1, 2)
    dist = stats["distributions"]
    assert set(dist) == set(eda.BOX_QUANTITIES)
    # areas 5000, 5000, 20000; aspect ratios (width / height) 0.5, 2, 2; centroids x 125, 350, 600
    assert (dist["area"]["min"], dist["area"]["p50"], dist["area"]["max"]) == (5000, 5000, 20000)
    assert (dist["aspect_ratio"]["min"], dist["aspect_ratio"]["max"]) == (0.5, 2.0)
    assert (dist["centroid_x"]["min"], dist["centroid_x"]["p50"], dist["centroid_x"]["max"]) == (125, 350, 600)
    assert (dist["right"]["max"], dist["bottom"]["max"]) == (700, 700)
    assert dist["x"]["count"] == 3 and dist["x"]["n_missing"] == 0
    # ranks: aspect [1, 2.5, 2.5], area [1.5, 1.5, 3] -> Pearson of the ranks = 0.75 / 1.5
    assert stats["aspect_vs_area"]["spearman"] == pytest.approx(0.5)
    assert stats["centroid_outliers"]["n_boxes"] == 3


def test_compute_label_statistics_without_class_column_and_with_missing_column():
    stats = eda.compute_label_statistics(_hand_labels().drop(columns="class"))
    assert stats["classes"] == {"rows": None, "patients": None}
    with pytest.raises(ValueError, match="missing column.*height"):
        eda.compute_label_statistics(_hand_labels().drop(columns="height"))


def test_compute_header_statistics_flags_implausible_ages_apart():
    patients = pd.DataFrame({
        "patientId": ["A", "B", "C", "D", "E"],
        "target": [1, 0, 0, 0, 1],
        "age": pd.array([30, 50, 150, None, None], dtype="Int64"),
        "sex": ["M", "F", "M", "F", None],
        "view_position": ["AP", "PA", "PA", "PA", None],
    })
    stats = eda.compute_header_statistics(patients)
    assert stats["available"] and stats["n_patients"] == 5 and stats["n_with_header"] == 4  # E has no header
    assert stats["age_implausible"] == {"count": 1, "values": [150.0]}
    assert stats["age_missing"] == 1
    assert (stats["age"]["count"], stats["age"]["p50"], stats["age"]["max"]) == (2, 40.0, 50.0)
    assert stats["age_by_sex"]["M"]["max"] == 30.0 and stats["age_by_sex"]["F"]["max"] == 50.0
    assert stats["age_by_target"]["1"]["count"] == 1 and stats["age_by_target"]["0"]["count"] == 1
    assert stats["sex"]["counts"] == {"F": 2, "M": 2}
    assert stats["sex"]["positive_share"] == {"F": 0.0, "M": 0.5}
    assert stats["view_position"]["by_target"] == {"0": {"PA": 3}, "1": {"AP": 1}}
    no_headers = patients.assign(age=pd.array([None] * 5, dtype="Int64"), sex=None, view_position=None)
    assert eda.compute_header_statistics(no_headers)["available"] is False


# --------------------------------------------------------------------------- the report's statements
def test_check_report_statements_says_where_the_report_and_the_data_disagree():
    statements = [
        eda.ReportStatement("3.2", "distribution_x", "x ranges from 0 to 800", ("labels", "distributions", "x", "max"),
                            "maximum of box x", "~", 800, 25),
        eda.ReportStatement("3.2", "distribution_x", "99% of x below 750", ("labels", "distributions", "x", "p99"),
                            "99th percentile of box x", "<=", 750),
        eda.ReportStatement("3.8", "age", "median age 50", ("headers", "age", "p50"), "median age", "~", 50, 2.5),
    ]
    summary = {"labels": {"distributions": {"x": {"max": 835.0, "p99": 739.0}}},
               "headers": {"available": True, "n_patients": 100, "n_with_header": 100, "age": {"p50": 49.0}}}
    too_high, below, age = eda.check_report_statements(summary, statements)
    assert too_high["agrees"] is False and too_high["data_value"] == 835.0
    assert too_high["sentence"].startswith('The report says "x ranges from 0 to 800"')
    assert "the data says maximum of box x = 835" in too_high["sentence"]
    assert below["agrees"] is True and "the data agrees" in below["sentence"]
    assert age["agrees"] is True
    # headers of 16 of 100 patients: not judged, but the value read is shown
    partial = {**summary, "headers": {**summary["headers"], "n_with_header": 16}}
    age = eda.check_report_statements(partial, statements)[2]
    assert age["agrees"] is None and "16 of 100" in age["unavailable"] and "= 49" in age["sentence"]
    no_headers = {**summary, "headers": {"available": False}}
    assert eda.check_report_statements(no_headers, statements)[2]["unavailable"].startswith("needs DICOM headers")


def test_report_statements_cover_the_report_sections_with_known_relations():
    sections = {s.section for s in eda.REPORT_STATEMENTS}
    assert {"1", "2.3", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "4.2"} <= sections
    for statement in eda.REPORT_STATEMENTS:
        assert statement.relation in ("=", "~", "<=", ">=", "<", ">")
        assert statement.figure is None or statement.figure in eda.FIGURES
        assert (statement.tolerance > 0) == (statement.relation == "~")
    x_max = [s for s in eda.REPORT_STATEMENTS if s.quantity == ("labels", "distributions", "x", "max")]
    assert len(x_max) == 1 and x_max[0].value == 800


# --------------------------------------------------------------------------- full runs
def _assert_png(path):
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def _lookup_dotted(summary, dotted):
    node = summary
    for key in dotted.split("."):
        assert key in node, f"summary.json lacks {dotted}"
        node = node[key]
    return node


def test_real_labels_only(rsna_dir, tmp_path):
    summary = eda.run_eda(rsna_dir / "labels", tmp_path, progress=False, cache_path=False)
    labels = summary["labels"]
    assert labels["n_patients"] == 26684 and labels["n_rows"] == 30227
    assert labels["targets"]["rows"] == {"0": 20672, "1": 9555}
    assert labels["targets"]["patients"] == {"0": 20672, "1": 6012}
    assert labels["boxes_per_patient"]["counts"] == {"0": 20672, "1": 2614, "2": 3266, "3": 119, "4": 13}
    assert labels["classes"]["rows"] == {"Lung Opacity": 9555, "No Lung Opacity / Not Normal": 11821,
                                         "Normal": 8851}
    dist = labels["distributions"]
    for name in eda.BOX_QUANTITIES:
        stats = dist[name]
        assert stats["count"] == 9555 and stats["n_missing"] == 0
        ordered = [stats[k] for k in ("min", "p1", "p25", "p50", "p75", "p99", "max")]
        assert ordered == sorted(ordered), name
        assert stats["iqr"] == pytest.approx(stats["p75"] - stats["p25"])
    assert dist["x"]["max"] == 835  # docs/DATA_AND_SETTINGS.md; the report says 800
    assert dist["x"]["min"] >= 0 and dist["y"]["min"] >= 0
    assert dist["right"]["max"] <= 1024 and dist["bottom"]["max"] <= 1024
    assert dist["width"]["min"] > 0 and dist["aspect_ratio"]["min"] > 0
    x_max = next(c for c in summary["report_statements"] if c["quantity"] == ["labels", "distributions", "x", "max"])
    assert x_max["agrees"] is False
    # image-dependent parts skipped, with the reason in JSON and in the report
    assert summary["headers"]["available"] is False
    assert {s["part"] for s in summary["skipped"]} >= {"age", "sample_grid", "header_dump"}
    assert summary["header_dump"] is None and "sample_grid" not in summary["figures"]
    report = (tmp_path / "report.md").read_text()
    assert "The report says" in report and "the data says maximum of box x = 835" in report
    assert "no training image folder" in report
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["labels"]["n_rows"] == 30227
    for file in summary["figures"].values():
        _assert_png(tmp_path / file)


def test_real_samples_with_16_images(rsna_dir, tmp_path):
    summary = eda.run_eda(rsna_dir, tmp_path, progress=False, cache_path=False, sample_grid=4)
    headers = summary["headers"]
    assert headers["available"] and headers["n_with_header"] == 16 and headers["n_patients"] == 26684
    manifest = pd.read_csv(rsna_dir / "MANIFEST.csv")
    assert headers["sex"]["counts"] == {k: int(v) for k, v in manifest["PatientSex"].value_counts().items()}
    assert headers["age"]["max"] == manifest["PatientAge"].max()
    # 16 of 26,684 patients do not allow judging the report's age statements
    age_checks = [c for c in summary["report_statements"] if c["quantity"][0] == "headers"]
    assert age_checks and all(c["agrees"] is None for c in age_checks)
    assert len(summary["sample_grid"]) == 4 and sum(s["target"] for s in summary["sample_grid"]) == 3
    dump = (tmp_path / summary["header_dump"]).read_text()
    assert "Patient's Age" in dump and "JPEG Baseline" in dump
    assert any("26,668 of 26,684 patients have no DICOM file" in note for note in summary["notes"])


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, n_train=20, n_test=0, seed=3, image_size=256, workers=1, progress=False)
    return root


def test_synthetic_with_images_every_figure(synthetic_dir, tmp_path):
    summary = eda.run_eda(synthetic_dir, tmp_path, progress=False, cache_path=False, sample_grid=6)
    assert set(summary["figures"]) == set(eda.FIGURES)
    for key, (file, _, _) in eda.FIGURES.items():
        assert summary["figures"][key] == f"figures/{file}"
        _assert_png(tmp_path / "figures" / file)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for dotted in eda.SUMMARY_KEYS:
        _lookup_dotted(on_disk, dotted)
    report = (tmp_path / "report.md").read_text()
    for file in summary["figures"].values():
        assert f"]({file})" in report, file
    assert summary["skipped"] == []
    # counts against the CSV read independently
    with open(synthetic_dir / "stage_2_train_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert summary["labels"]["n_rows"] == len(rows)
    assert summary["labels"]["targets"]["rows"] == {k: v for k, v in sorted(Counter(r["Target"] for r in rows).items())}
    widths = sorted(float(r["width"]) for r in rows if r["Target"] == "1")
    assert summary["labels"]["distributions"]["width"]["max"] == widths[-1]
    headers = summary["headers"]
    assert headers["n_with_header"] == 20 and sum(headers["sex"]["counts"].values()) == 20
    assert (tmp_path / "header_dump.txt").read_text().count("Patient's Sex") == 1
    # with every header read, the report's age statements are judged
    assert all(c["agrees"] is not None for c in summary["report_statements"]
               if c["quantity"][0] == "headers" and c["data_value"] is not None)


def test_missing_data_directory_is_a_clear_error(tmp_path):
    with pytest.raises(LayoutError, match="not a directory"):
        eda.run_eda(tmp_path / "absent", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no training labels file"):
        eda.run_eda(tmp_path / "empty", tmp_path / "out", progress=False)
