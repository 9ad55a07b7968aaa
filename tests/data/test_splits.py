"""Patient-level stratified splits."""
import collections

import pytest

from rsna_detector.data.labels import read_labels
from rsna_detector.data.splits import SplitError, split_patients


def make_patients(n_negative, n_positive):
    ids = [f"n{i:04d}" for i in range(n_negative)] + [f"p{i:04d}" for i in range(n_positive)]
    return ids, [0] * n_negative + [1] * n_positive


def test_no_overlap_union_is_all_and_sizes():
    ids, targets = make_patients(77, 23)
    train, val = split_patients(ids, targets, val_fraction=0.3)
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(ids)
    assert (len(train), len(val)) == (70, 30)
    # exact shares 30 * 23/100 = 6.9 positives, 23.1 negatives -> 7 and 23
    assert sum(pid.startswith("p") for pid in val) == 7
    assert train == [pid for pid in ids if pid in set(train)]  # first-appearance order kept


def test_duplicates_are_one_patient():
    ids = ["a", "a", "b", "c", "c", "c", "d"]
    targets = [1, 1, 0, 1, 1, 1, 0]
    train, val = split_patients(ids, targets, val_count=2)
    assert sorted(train + val) == ["a", "b", "c", "d"]
    assert len(val) == 2
    # stratified: one positive (a or c) and one negative (b or d) in validation
    assert sum(pid in ("a", "c") for pid in val) == 1


@pytest.mark.parametrize("n_neg, n_pos, fraction", [(50, 7, 0.3), (3, 1, 0.5), (1000, 333, 0.1), (9, 0, 0.25)])
def test_stratification_within_one_patient(n_neg, n_pos, fraction):
    ids, targets = make_patients(n_neg, n_pos)
    _, val = split_patients(ids, targets, val_fraction=fraction, seed=7)
    n_val = round(fraction * (n_neg + n_pos))
    assert len(val) == n_val
    positives = sum(pid.startswith("p") for pid in val)
    assert abs(positives - n_val * n_pos / (n_neg + n_pos)) < 1


def test_deterministic_for_a_seed_and_differs_between_seeds():
    ids, targets = make_patients(200, 60)
    first = split_patients(ids, targets, val_fraction=0.3, seed=3)
    assert first == split_patients(ids, targets, val_fraction=0.3, seed=3)
    assert first != split_patients(ids, targets, val_fraction=0.3, seed=4)


def test_without_targets():
    ids = [f"x{i}" for i in range(10)]
    train, val = split_patients(ids + ids, val_count=4)
    assert len(val) == 4 and len(train) == 6 and sorted(train + val) == sorted(ids)


@pytest.mark.parametrize("kwargs, message", [
    (dict(val_fraction=0.0), r"val_fraction: 0.0 is not in \(0, 1\)"),
    (dict(val_fraction=1.0), r"not in \(0, 1\)"),
    (dict(val_fraction=0.01), "gives 0 validation patients"),
    (dict(val_count=10), r"val_count: 10; expected an integer in \[1, 9\]"),
    (dict(val_count=0), "val_count: 0"),
    (dict(val_count=2.5), "val_count: 2.5"),
    (dict(), "exactly one of val_fraction and val_count"),
    (dict(val_fraction=0.3, val_count=3), "exactly one"),
])
def test_invalid_sizes(kwargs, message):
    ids, targets = make_patients(6, 4)
    with pytest.raises(SplitError, match=message):
        split_patients(ids, targets, **kwargs)


def test_inconsistent_targets_for_one_patient():
    with pytest.raises(SplitError, match=r"1 patient\(s\) have more than one target: a \(\['0', '1'\]\)"):
        split_patients(["a", "a", "b", "c"], [0, 1, 0, 1], val_count=1)
    with pytest.raises(SplitError, match="3 values for 4 patient ids"):
        split_patients(["a", "b", "c", "d"], [0, 1, 0], val_count=1)
    assert isinstance(SplitError("x"), ValueError)


def test_real_labels_notebook_and_report_splits(rsna_dir):
    df = read_labels(rsna_dir / "labels" / "stage_2_train_labels.csv")
    train, val = split_patients(df["patientId"], df["Target"], val_count=1500)
    assert (len(train), len(val)) == (26684 - 1500, 1500)
    target_of = dict(zip(df["patientId"], df["Target"]))
    positives = collections.Counter(target_of[pid] for pid in val)[1]
    assert abs(positives - 1500 * 6012 / 26684) < 1  # exact share 337.96
    train, val = split_patients(df["patientId"], df["Target"], val_fraction=0.3)
    assert len(val) == round(0.3 * 26684) == 8005
    assert not set(train) & set(val)
