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


# --------------------------------------------------------------------------- k folds
from rsna_detector.data.splits import assign_folds, k_fold_patients  # noqa: E402


def test_folds_deal_strata_round_robin_by_hand():
    # 6 patients with 0 boxes, 3 with 1, 1 with 2; 3 folds. Dealt in stratum order without restarting:
    # stratum 0 -> folds 0,1,2,0,1,2; stratum 1 -> 0,1,2; stratum 2 -> 0. Whatever the shuffle:
    ids = list("abcdefghij")
    boxes = [0] * 6 + [1] * 3 + [2]
    for seed in range(5):
        fold_of = assign_folds(ids + ["g", "j"], boxes + [1, 2], folds=3, seed=seed)  # duplicate rows: one patient
        assert list(fold_of) == ids
        assert fold_of["j"] == 0
        for fold in range(3):
            assert sum(fold_of[p] == fold for p in "abcdef") == 2
            assert sum(fold_of[p] == fold for p in "ghi") == 1
        assert sorted(collections.Counter(fold_of.values()).values()) == [3, 3, 4]


def test_k_fold_validation_sides_partition_the_patients():
    ids = [f"p{i:03d}" for i in range(103)]
    strata = [i % 4 for i in range(103)]
    splits = k_fold_patients(ids, strata, folds=5, seed=1)
    assert len(splits) == 5
    validation = [pid for _, val in splits for pid in val]
    assert sorted(validation) == ids  # every patient in exactly one validation fold
    for train, val in splits:
        assert not set(train) & set(val) and sorted(train + val) == ids
        assert train == sorted(train) and val == sorted(val)  # first-appearance order
        assert len(val) in (20, 21)
        for stratum in range(4):
            share = sum(1 for pid in val if strata[int(pid[1:])] == stratum)
            assert share in (5, 6)  # 25 or 26 patients per stratum over 5 folds


def test_folds_deterministic_and_seeded():
    ids = [f"x{i}" for i in range(60)]
    strata = [0] * 45 + [1] * 15
    first = assign_folds(ids, strata, folds=4, seed=3)
    assert first == assign_folds(ids, strata, folds=4, seed=3)
    assert first != assign_folds(ids, strata, folds=4, seed=4)
    assert set(first.values()) == {0, 1, 2, 3}


def test_folds_without_strata_and_bad_requests():
    fold_of = assign_folds(["a", "b", "c", "d"], folds=2)
    assert sorted(collections.Counter(fold_of.values()).values()) == [2, 2]
    for folds in (1, 5, 2.5, True):
        with pytest.raises(SplitError, match=r"folds: .*expected an integer in \[2, 4\] for 4 patients"):
            assign_folds(["a", "b", "c", "d"], folds=folds)
    with pytest.raises(SplitError, match=r"strata: 1 patient\(s\) have more than one stratum: a"):
        assign_folds(["a", "a", "b"], [1, 2, 0], folds=2)


def test_real_labels_five_folds_stratified_by_box_count(rsna_dir):
    df = read_labels(rsna_dir / "labels" / "stage_2_train_labels.csv")
    boxes = df.groupby("patientId")["Target"].transform("sum")  # rows with Target 1 = boxes; negatives 0
    fold_of = assign_folds(df["patientId"], boxes, folds=5)
    assert len(fold_of) == 26684
    per_patient = dict(zip(df["patientId"], boxes))
    real = collections.Counter(per_patient.values())
    assert real == {0: 20672, 1: 2614, 2: 3266, 3: 119, 4: 13}
    for fold in range(5):
        counts = collections.Counter(per_patient[pid] for pid, f in fold_of.items() if f == fold)
        for n_boxes, total in real.items():
            assert abs(counts[n_boxes] - total / 5) < 1
