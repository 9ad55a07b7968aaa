"""The real label distribution's summary (recomputed from the real CSV) and boxes drawn from it."""
import numpy as np
import pandas as pd
import pytest

from rsna_detector.data.box_distribution import QUANTILES, REAL_BOX_STATISTICS, box_statistics, sample_real_boxes
from rsna_detector.data.labels import read_labels


def test_embedded_summary_is_the_real_labels_summary(rsna_dir):
    recomputed = box_statistics(read_labels(rsna_dir / "labels" / "stage_2_train_labels.csv"))
    assert recomputed == REAL_BOX_STATISTICS, (
        "regenerate REAL_BOX_STATISTICS (its comment says how):\n" + repr(recomputed))


def test_summary_of_a_hand_made_table():
    # three patients: one negative, one with a box in the left half, one with a box in each half
    labels = pd.DataFrame({
        "patientId": ["n", "a", "b", "b"],
        "x": [np.nan, 100.0, 200.0, 700.0], "y": [np.nan, 300.0, 400.0, 500.0],
        "width": [np.nan, 200.0, 100.0, 150.0], "height": [np.nan, 300.0, 200.0, 250.0],
        "Target": [0, 1, 1, 1]})
    summary = box_statistics(labels)
    assert summary["left_boxes"] == {1: [0, 1], 2: [0, 1, 0]}
    left, right = summary["sides"]["left"], summary["sides"]["right"]
    assert left["boxes"] == 2 and right["boxes"] == 1
    assert left["x"][0] == 100.5 and left["x"][-1] == 199.5  # linear quantiles of (100, 200) at 0.5 % / 99.5 %
    assert right["width"] == [150.0] * len(QUANTILES)
    assert left["correlation"][0][1] == 1.0  # x and y rise together in the two left boxes
    assert right["correlation"] == np.eye(4).tolist()  # one box: no dependence to measure
    with pytest.raises(ValueError, match="no box in the image's right half"):
        box_statistics(labels.iloc[:2])


def test_drawn_boxes_follow_the_real_quantiles_and_halves():
    # the real figures (docs/DATA_AND_SETTINGS.md): width 124/177/217/259/317, height 121/203/298/438/623,
    # x 122/207/324/594/681, y 136/249/365/478/614 at 5/25/50/75/95 %; 53.5 % of centres in the left half
    rng = np.random.default_rng(0)
    counts = {1: 2614, 2: 3266, 3: 119, 4: 13}
    boxes = np.concatenate([sample_real_boxes(rng, n, 1024) for n, c in counts.items() for _ in range(c // 4)])
    targets = {0: (122, 207, 324, 594, 681), 1: (136, 249, 365, 478, 614), 2: (124, 177, 217, 259, 317),
               3: (121, 203, 298, 438, 623)}
    for column, expected in targets.items():
        drawn = np.quantile(boxes[:, column], [0.05, 0.25, 0.5, 0.75, 0.95])
        np.testing.assert_allclose(drawn, expected, rtol=0.06, err_msg=f"column {column}")
    assert abs(np.mean(boxes[:, 0] + boxes[:, 2] / 2 < 512) - 0.535) < 0.025
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, :2] + boxes[:, 2:] <= 1024)
    assert np.all(boxes == np.round(boxes))


def test_boxes_scale_with_the_image_and_bad_counts():
    big = sample_real_boxes(np.random.default_rng(3), 2, 1024)
    small = sample_real_boxes(np.random.default_rng(3), 2, 256)
    np.testing.assert_allclose(small, np.round(big / 4), atol=1)
    assert sample_real_boxes(np.random.default_rng(0), 0, 256).shape == (0, 4)
    with pytest.raises(ValueError, match="n_boxes must be one of 0, 1, 2, 3, 4; got 5"):
        sample_real_boxes(np.random.default_rng(0), 5, 256)
