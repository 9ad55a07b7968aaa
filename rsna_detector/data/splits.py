"""Patient-level train/validation splits and k folds, stratified.

A patient with several boxes has several label rows; splitting rows would put
one patient on both sides. ``split_patients`` takes ids with duplicates (one
per row is fine), splits the distinct patients and keeps every class's share
within one patient of exact. ``assign_folds`` / ``k_fold_patients`` cut the
distinct patients into k cross-validation folds, every patient in exactly one
validation fold, each stratum (e.g. the number of boxes: 0 for a negative
patient, 1-4 for a positive one) dealt evenly over the folds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import RsnaDetectorError

__all__ = ["SplitError", "split_patients", "assign_folds", "k_fold_patients", "DEFAULT_SPLIT_SEED"]

#: The seed of the library's default train/validation split (the detector's and the baselines').
DEFAULT_SPLIT_SEED = 42


class SplitError(RsnaDetectorError, ValueError):
    """Invalid split request (fraction or count out of range, inconsistent targets)."""


def _distinct_patients(patient_ids, targets, name="targets", noun="target"):
    """Distinct ids in first-appearance order and one target each (None without targets)."""
    ids = pd.Series([str(pid) for pid in patient_ids], dtype=object)
    if targets is None:
        return ids.drop_duplicates().tolist(), None
    targets = pd.Series(list(targets), dtype=object)
    if len(targets) != len(ids):
        raise SplitError(f"{name}: {len(targets)} values for {len(ids)} patient ids; expected one per id")
    per_patient = targets.groupby(ids, sort=False).agg(lambda values: set(values))
    inconsistent = per_patient[per_patient.map(len) > 1]
    if len(inconsistent):
        shown = ", ".join(f"{pid} ({sorted(map(str, values))})" for pid, values in inconsistent.head(5).items())
        raise SplitError(f"{name}: {len(inconsistent)} patient(s) have more than one {noun}: {shown}")
    return per_patient.index.tolist(), [next(iter(values)) for values in per_patient]


def _validation_size(n_patients, val_fraction, val_count):
    if (val_fraction is None) == (val_count is None):
        raise SplitError("give exactly one of val_fraction and val_count")
    if val_fraction is not None:
        if not 0 < val_fraction < 1:
            raise SplitError(f"val_fraction: {val_fraction!r} is not in (0, 1)")
        size = int(round(val_fraction * n_patients))
        if not 0 < size < n_patients:
            raise SplitError(f"val_fraction {val_fraction} of {n_patients} patients gives {size} validation "
                             "patients; both sides need at least one")
        return size
    if int(val_count) != val_count or not 0 < val_count < n_patients:
        raise SplitError(f"val_count: {val_count!r}; expected an integer in [1, {n_patients - 1}] "
                         f"for {n_patients} patients")
    return int(val_count)


def _stratum_quotas(stratum_sizes, n_val):
    """Validation patients per stratum: largest-remainder rounding of the exact shares."""
    sizes = np.asarray(stratum_sizes, dtype=np.int64)
    exact = n_val * sizes / sizes.sum()
    quotas = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - quotas), kind="stable")
    quotas[remainder_order[: n_val - quotas.sum()]] += 1
    return quotas


def split_patients(patient_ids, targets=None, *, val_fraction=None, val_count=None, seed=DEFAULT_SPLIT_SEED):
    """Split patients into training and validation sets.

    Parameters
    ----------
    patient_ids : sequence of str
        Patient ids; duplicates (e.g. one per box row) are merged.
    targets : sequence, optional
        One label per entry of ``patient_ids`` (e.g. Target 0/1), the same for
        every entry of a patient. When given, each target value's share of the
        validation set is within one patient of its share of all patients.
    val_fraction : float, optional
        Share of patients for validation, in (0, 1) (the report's 70:30 split is 0.3).
    val_count : int, optional
        Number of validation patients (the RSNA notebook used 1,500).
        Exactly one of ``val_fraction`` and ``val_count`` is given.
    seed : int
        The same seed and inputs give the same split.

    Returns
    -------
    (list of str, list of str)
        Training and validation patient ids, each in first-appearance order.

    Raises
    ------
    SplitError
        Both or neither of ``val_fraction``/``val_count``; a fraction outside
        (0, 1) or one that leaves a side empty; a count not in [1, n - 1];
        ``targets`` of another length or not the same for one patient.
    """
    ids, patient_targets = _distinct_patients(patient_ids, targets)
    n_val = _validation_size(len(ids), val_fraction, val_count)
    strata = [0] * len(ids) if patient_targets is None else patient_targets
    codes, _ = pd.factorize(pd.Series(strata, dtype=object), sort=True)
    quotas = _stratum_quotas(np.bincount(codes), n_val)
    rng = np.random.default_rng(seed)
    in_validation = np.zeros(len(ids), dtype=bool)
    for code, quota in enumerate(quotas):
        members = np.flatnonzero(codes == code)
        in_validation[rng.permutation(members)[:quota]] = True
    train = [pid for pid, val in zip(ids, in_validation, strict=True) if not val]
    validation = [pid for pid, val in zip(ids, in_validation, strict=True) if val]
    return train, validation


def assign_folds(patient_ids, strata=None, *, folds=5, seed=DEFAULT_SPLIT_SEED):
    """The cross-validation fold of every patient, stratified, seeded.

    The distinct patients are grouped by stratum (strata in sorted order), each
    group shuffled with ``seed``, and the groups, one after the other, dealt
    round-robin to folds 0, 1, ..., k-1, 0, 1, ... without restarting between
    groups. So every fold holds ``n // k`` or ``n // k + 1`` patients, and of each
    stratum every fold holds its share rounded down or up.

    Parameters
    ----------
    patient_ids : sequence of str
        Patient ids; duplicates (one per box row) are one patient.
    strata : sequence, optional
        One value per entry of ``patient_ids``, the same for every entry of a
        patient: what to stratify by, e.g. the patient's number of boxes (0 for
        a negative patient), or its Target. None: no stratification.
    folds : int
        Number of folds, 2 <= folds <= number of patients.
    seed : int
        The same seed and inputs give the same folds.

    Returns
    -------
    dict str -> int
        Fold index (0-based) of every distinct patient, in first-appearance order.

    Raises
    ------
    SplitError
        ``folds`` not an integer in [2, n]; ``strata`` of another length or not
        the same for one patient.
    """
    ids, patient_strata = _distinct_patients(patient_ids, strata, "strata", "stratum")
    if isinstance(folds, bool) or int(folds) != folds or not 2 <= folds <= len(ids):
        raise SplitError(f"folds: {folds!r}; expected an integer in [2, {len(ids)}] for {len(ids)} patients")
    folds = int(folds)
    codes, _ = pd.factorize(pd.Series([0] * len(ids) if patient_strata is None else patient_strata, dtype=object),
                            sort=True)
    rng = np.random.default_rng(seed)
    dealt = np.concatenate([rng.permutation(np.flatnonzero(codes == code)) for code in range(codes.max() + 1)])
    fold_of = np.empty(len(ids), dtype=np.int64)
    fold_of[dealt] = np.arange(len(ids)) % folds
    return {pid: int(fold) for pid, fold in zip(ids, fold_of, strict=True)}


def k_fold_patients(patient_ids, strata=None, *, folds=5, seed=DEFAULT_SPLIT_SEED):
    """k (training, validation) splits whose validation sides partition the patients.

    Parameters are those of :func:`assign_folds`.

    Returns
    -------
    list of (list of str, list of str)
        For fold ``i``: the patients of the other folds (training) and those of
        fold ``i`` (validation), each in first-appearance order. Every patient
        is in exactly one validation side and in the training side of every
        other fold.
    """
    fold_of = assign_folds(patient_ids, strata, folds=folds, seed=seed)
    return [([pid for pid, fold in fold_of.items() if fold != i], [pid for pid, fold in fold_of.items() if fold == i])
            for i in range(int(folds))]
