"""Tests of rsna_detector.data.synthetic: Kaggle layout round trip, determinism, proportions, visibility."""
import csv
import hashlib
import re

import numpy as np
import pydicom
import pytest

from rsna_detector.data.dicom import JPEG_BASELINE, read_dicom
from rsna_detector.data.labels import CLASS_NAMES, load_patient_records
from rsna_detector.data.layout import KaggleLayout
from rsna_detector.data.synthetic import (
    BOX_COUNT_PROBABILITIES,
    _plan,
    make_synthetic_dataset,
    sample_chest_geometry,
    sample_opacity_boxes,
    synthetic_chest_image,
)

SIZE = 256


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    summary = make_synthetic_dataset(out, n_train=30, n_test=5, seed=7, image_size=SIZE, workers=1, progress=False)
    return out, summary


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def tree_digest(folder):
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- layout and round trip
def test_layout_is_found_by_kaggle_layout(small_set):
    out, summary = small_set
    layout = KaggleLayout.from_dir(out)
    assert layout.train_labels == out / "stage_2_train_labels.csv" == summary.train_labels_csv
    assert layout.class_info == out / "stage_2_detailed_class_info.csv"
    assert layout.sample_submission == out / "stage_2_sample_submission.csv"
    assert layout.train_images == out / "stage_2_train_images"
    assert layout.test_images == out / "stage_2_test_images"
    assert len(list(layout.train_images.glob("*.dcm"))) == 30
    assert len(list(layout.test_images.glob("*.dcm"))) == 5
    assert not list(out.rglob(".*.partial"))


def test_csv_text_matches_the_kaggle_format(small_set):
    out, _ = small_set
    labels = read_rows(out / "stage_2_train_labels.csv")
    classes = read_rows(out / "stage_2_detailed_class_info.csv")
    assert labels[0] == ["patientId", "x", "y", "width", "height", "Target"]
    assert classes[0] == ["patientId", "class"]
    assert len(labels) == len(classes)
    for label, klass in zip(labels[1:], classes[1:]):
        assert label[0] == klass[0]  # row-aligned
        if label[5] == "1":
            assert klass[1] == "Lung Opacity"
            assert all(re.fullmatch(r"\d+\.0", value) for value in label[1:5]), label
        else:
            assert label[1:] == ["", "", "", "", "0"]
            assert klass[1] in ("No Lung Opacity / Not Normal", "Normal")
    submission = read_rows(out / "stage_2_sample_submission.csv")
    assert submission[0] == ["patientId", "PredictionString"]
    test_ids = sorted(p.stem for p in (out / "stage_2_test_images").glob("*.dcm"))
    assert sorted(row[0] for row in submission[1:]) == test_ids
    assert {row[1] for row in submission[1:]} == {"0.5 0 0 100 100"}


def test_labels_parse_with_the_label_reader(small_set):
    out, summary = small_set
    records = load_patient_records(out / "stage_2_train_labels.csv", out / "stage_2_detailed_class_info.csv",
                                   image_size=SIZE)
    assert len(records) == 30
    train_ids = {p.stem for p in (out / "stage_2_train_images").glob("*.dcm")}
    assert set(records) == train_ids
    positives = [r for r in records.values() if r.target == 1]
    assert len(positives) == round(0.225 * 30) == summary.n_positive
    assert sum(r.n_boxes for r in positives) == summary.n_boxes
    assert {r.class_name for r in records.values()} <= set(CLASS_NAMES)
    for record in positives:
        x, y, w, h = record.boxes_xywh.T
        assert (x >= 0).all() and (y >= 0).all() and (x + w <= SIZE).all() and (y + h <= SIZE).all()


def test_dicoms_decode_with_rsna_headers(small_set):
    out, _ = small_set
    for path in sorted(out.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE
        assert ds.PatientID == path.stem and ds.Modality == "CR"
        assert ds.BitsStored == 8 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", path.stem)
        image, meta = read_dicom(path)
        assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8
        assert meta.patient_id == path.stem
        assert meta.sex in ("M", "F") and meta.view_position in ("PA", "AP")
        assert meta.age is not None and isinstance(ds.PatientAge, str)
        assert meta.pixel_spacing is not None and meta.pixel_spacing[0] > 0
        assert ds.pixel_array.shape == (SIZE, SIZE)  # pydicom's own decoder reads it too


def test_boxes_are_brighter_than_their_surroundings(small_set):
    out, _ = small_set
    records = load_patient_records(out / "stage_2_train_labels.csv", image_size=SIZE)
    differences = []
    for record in records.values():
        if not record.target:
            continue
        image = read_dicom(out / "stage_2_train_images" / f"{record.patient_id}.dcm")[0].astype(float)
        for x, y, w, h in record.boxes_xywh.astype(int):
            centre = image[y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4].mean()
            margin = max(w, h) // 4
            ring = np.zeros(image.shape, bool)
            ring[max(y - margin, 0): y + h + margin, max(x - margin, 0): x + w + margin] = True
            ring[y: y + h, x: x + w] = False
            differences.append(centre - image[ring].mean())
    assert len(differences) >= 7
    assert np.mean(differences) > 20, differences


def test_summary_counts_and_text(small_set):
    out, summary = small_set
    assert (summary.n_train, summary.n_test, summary.image_size, summary.seed) == (30, 5, SIZE, 7)
    assert sum(summary.class_rows.values()) == len(read_rows(out / "stage_2_train_labels.csv")) - 1
    assert summary.class_rows["Lung Opacity"] == summary.n_boxes
    assert sum(k * v for k, v in summary.boxes_per_positive.items()) == summary.n_boxes
    text = str(summary)
    assert "30 patients" in text and f"{summary.n_positive} positive" in text and str(out) in text


# ---------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path):
    options = dict(n_train=6, n_test=2, image_size=128, progress=False)
    make_synthetic_dataset(tmp_path / "a", seed=11, workers=1, **options)
    make_synthetic_dataset(tmp_path / "b", seed=11, workers=2, **options)
    make_synthetic_dataset(tmp_path / "c", seed=12, workers=1, **options)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        make_synthetic_dataset(tmp_path, n_train=-1)
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic_dataset(tmp_path, image_size=16)
    with pytest.raises(ValueError, match="n_boxes"):
        sample_opacity_boxes(np.random.default_rng(0), sample_chest_geometry(np.random.default_rng(0), 256), 5)


# ---------------------------------------------------------------- proportions and geometry (plan only, no images)
def test_plan_follows_the_real_proportions():
    patients = _plan(seed=0, n_train=4000, n_test=0, image_size=1024)
    classes = [p.class_name for p in patients]
    assert classes.count("Lung Opacity") == 900  # 22.5 % exactly
    not_normal = classes.count("No Lung Opacity / Not Normal")
    assert not_normal == round(3100 * 11821 / 20672)  # 1773
    counts = np.bincount([len(p.boxes) for p in patients if p.boxes], minlength=5)[1:]
    for n_boxes, probability in BOX_COUNT_PROBABILITIES.items():
        expected = 900 * probability
        assert abs(counts[n_boxes - 1] - expected) <= 4 * np.sqrt(expected * (1 - probability)) + 1
    assert len({p.patient_id for p in patients}) == 4000


def test_planned_boxes_lie_in_the_lungs_and_do_not_overlap():
    patients = [p for p in _plan(seed=1, n_train=600, n_test=0, image_size=1024) if p.boxes]
    widths, heights = [], []
    for patient in patients:
        boxes = np.array(patient.boxes)
        geometry = patient.geometry
        for x, y, w, h in boxes:
            widths.append(w), heights.append(h)
            centre_levels = [geometry.lung_level(lung, x + w / 2, y + h / 2) for lung in (0, 1)]
            assert min(centre_levels) < 1
            assert 0 <= x and 0 <= y and x + w <= 1024 and y + h <= 1024
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[i], boxes[j]
                assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1
        if len(boxes) == 2:
            lungs = {int(np.argmin([geometry.lung_level(k, x + w / 2, y + h / 2) for k in (0, 1)]))
                     for x, y, w, h in boxes}
            assert lungs == {0, 1}
    assert 180 < np.median(widths) < 260 and 40 <= min(widths) and max(widths) <= 400
    assert 220 < np.median(heights) < 400 and max(heights) <= 600


def test_opacity_fills_exactly_its_box():
    size = 256
    geometry = sample_chest_geometry(np.random.default_rng(3), size)
    boxes = sample_opacity_boxes(np.random.default_rng(4), geometry, 2)
    with_boxes = synthetic_chest_image(np.random.default_rng(5), boxes, size, geometry=geometry)
    without = synthetic_chest_image(np.random.default_rng(5), np.zeros((0, 4)), size, geometry=geometry)
    difference = with_boxes.astype(int) - without
    inside = np.zeros((size, size), bool)
    for x, y, w, h in boxes.astype(int):
        inside[y: y + h, x: x + w] = True
        row = difference[y + h // 2, x: x + w]
        assert row.max() > 40  # clearly visible
        lit = np.flatnonzero(row > 0)
        assert lit[-1] - lit[0] + 1 >= 0.8 * w  # spans the box
    assert (difference[~inside] == 0).all()
    assert (difference >= 0).all()


@pytest.mark.slow
def test_thousand_patients_at_1024(tmp_path):
    """The real image size at scale, in worker processes (its speed: benchmarks/bench_fullscale.py)."""
    summary = make_synthetic_dataset(tmp_path, n_train=1000, n_test=100, seed=0, workers=2, progress=False)
    assert summary.n_train == 1000 and len(list(summary.train_images.glob("*.dcm"))) == 1000
    assert len(list(summary.test_images.glob("*.dcm"))) == 100


# ---------------------------------------------------------------- the realistic preset
def test_realistic_plan_follows_the_real_label_statistics():
    patients = _plan(seed=0, n_train=4000, n_test=0, image_size=1024, preset="realistic")
    positives = [p for p in patients if p.boxes]
    assert len(positives) == 900  # 22.5 % exactly
    counts = np.bincount([len(p.boxes) for p in positives], minlength=5)[1:]
    for n_boxes, probability in BOX_COUNT_PROBABILITIES.items():
        expected = 900 * probability
        assert abs(counts[n_boxes - 1] - expected) <= 4 * np.sqrt(expected * (1 - probability)) + 1
    boxes = np.array([box for p in positives for box in p.boxes])
    # the real quantiles (5/25/50/75/95 %) of x, y, width, height (docs/DATA_AND_SETTINGS.md)
    targets = [(122, 207, 324, 594, 681), (136, 249, 365, 478, 614), (124, 177, 217, 259, 317),
               (121, 203, 298, 438, 623)]
    for column, expected in enumerate(targets):
        np.testing.assert_allclose(np.quantile(boxes[:, column], [0.05, 0.25, 0.5, 0.75, 0.95]), expected,
                                   rtol=0.08, err_msg=f"column {column}")
    areas = np.quantile(boxes[:, 2] * boxes[:, 3] / 1024 ** 2, [0.05, 0.5, 0.95])
    np.testing.assert_allclose(areas, [0.016, 0.062, 0.17], rtol=0.15)
    assert abs(np.mean(boxes[:, 0] + boxes[:, 2] / 2 < 512) - 0.535) < 0.04
    assert {p.preset for p in patients} == {"realistic"}


def _opacity_contrast(preset, seeds):
    """Brightness an opacity adds inside its box's central half over the spread of the same region without it
    (same anatomy, boxes and random state): a contrast-to-clutter ratio."""
    size, ratios = 128, []
    for seed in seeds:
        geometry = sample_chest_geometry(np.random.default_rng(seed), size)
        boxes = sample_opacity_boxes(np.random.default_rng(seed + 100), geometry, 2)
        image = synthetic_chest_image(np.random.default_rng(seed), boxes, size, geometry=geometry, preset=preset)
        plain = synthetic_chest_image(np.random.default_rng(seed), np.zeros((0, 4)), size, geometry=geometry,
                                      preset=preset).astype(float)
        for x, y, w, h in boxes.astype(int):
            centre = np.s_[y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4]
            ratios.append((image[centre] - plain[centre]).mean() / plain[centre].std())
    return float(np.mean(ratios))


def test_realistic_preset_is_harder_than_the_easy_one():
    # measured 3.3 against 4.5: fainter opacities over busier lungs (a detector still learns it: RESULTS.md)
    easy, realistic = _opacity_contrast("easy", range(4)), _opacity_contrast("realistic", range(4))
    assert realistic < 0.8 * easy, (easy, realistic)
    # exposure varies from image to image: the mean brightness of the same anatomy spreads wider
    geometry = sample_chest_geometry(np.random.default_rng(0), 64)
    spread = {preset: np.std([synthetic_chest_image(np.random.default_rng(s), np.zeros((0, 4)), 64, geometry=geometry,
                                                    preset=preset).mean() for s in range(12)])
              for preset in ("easy", "realistic")}
    assert spread["realistic"] > 1.4 * spread["easy"], spread  # measured 14.0 against 8.2 grey levels
    with pytest.raises(ValueError, match="preset 'hard': expected one of easy, realistic"):
        synthetic_chest_image(np.random.default_rng(0), np.zeros((0, 4)), 64, preset="hard")


def test_synth_command_writes_the_realistic_preset(tmp_path, capsys):
    from rsna_detector import cli

    assert cli.main(["synth", str(tmp_path), "--preset", "realistic", "--n-train", "12", "--n-test", "2",
                     "--image-size", "64", "--workers", "1", "--quiet", "--seed", "2"]) == 0
    assert "realistic preset" in capsys.readouterr().out
    records = load_patient_records(tmp_path / "stage_2_train_labels.csv", image_size=64)
    assert len(records) == 12 and sum(r.target for r in records.values()) == 3  # round(0.225 * 12)
    assert len(list((tmp_path / "stage_2_train_images").glob("*.dcm"))) == 12
