"""Splits: sorted int64 indices, every image once, deterministic by seed, groups never on both sides."""

from __future__ import annotations

import numpy as np
import pytest

from fer_common.data import load_dataset
from fer_common.data.splits import (
    group_holdout,
    group_kfold,
    per_class_sample,
    stratified_holdout,
    stratified_kfold,
)

from .fixtures_data import real_root

# Imbalanced synthetic labels: 7 classes of 20..140 images.
LABELS = np.repeat(np.arange(7), [20, 40, 60, 80, 100, 120, 140])
# 60 synthetic subjects with 3..17 images each, so group sizes vary.
GROUPS = np.random.default_rng(0).integers(0, 60, len(LABELS)).astype(str)


def assert_partition(train: np.ndarray, test: np.ndarray, total: int) -> None:
    for index in (train, test):
        assert index.dtype == np.int64 and (np.diff(index) > 0).all()
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == total


def assert_group_disjoint(train: np.ndarray, test: np.ndarray, groups: np.ndarray) -> None:
    assert not set(groups[train]) & set(groups[test])


def test_stratified_holdout_keeps_class_proportions():
    train, test = stratified_holdout(LABELS, 0.2, seed=0)
    assert_partition(train, test, len(LABELS))
    assert len(test) == 112
    np.testing.assert_allclose(np.bincount(LABELS[test]), np.bincount(LABELS) * 0.2, atol=1)


def test_stratified_holdout_is_deterministic_by_seed():
    first, again, other = (stratified_holdout(LABELS, 0.2, seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize(
    "labels, fraction, message",
    [
        (LABELS, 0.0, "between 0 and 1"),
        (LABELS, 1.0, "between 0 and 1"),
        (np.array([0, 0, 1]), 0.5, "class 1 has 1"),
        (np.array([0, 0, 1, 1, 2, 2]), 0.1, "at least one image of each"),
    ],
)
def test_stratified_holdout_impossible_requests(labels, fraction, message):
    with pytest.raises(ValueError, match=message):
        stratified_holdout(labels, fraction, seed=0)


def test_stratified_kfold_partitions_and_stratifies():
    folds = stratified_kfold(LABELS, 5, seed=0)
    assert len(folds) == 5
    validation = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(np.sort(validation), np.arange(len(LABELS)))
    for train, val in folds:
        assert_partition(train, val, len(LABELS))
        np.testing.assert_allclose(np.bincount(LABELS[val]), np.bincount(LABELS) / 5, atol=1)
    again = stratified_kfold(LABELS, 5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_stratified_kfold_impossible_requests():
    with pytest.raises(ValueError, match="at least 2"):
        stratified_kfold(LABELS, 1, seed=0)
    with pytest.raises(ValueError, match="class 0 has 20"):
        stratified_kfold(LABELS, 25, seed=0)


def test_group_holdout_is_subject_disjoint_and_balanced():
    train, test = group_holdout(LABELS, GROUPS, 0.25, seed=0)
    assert_partition(train, test, len(LABELS))
    assert_group_disjoint(train, test, GROUPS)
    assert abs(len(test) / len(LABELS) - 0.25) < 0.03
    proportions = np.bincount(LABELS[test], minlength=7) / len(test)
    np.testing.assert_allclose(proportions, np.bincount(LABELS) / len(LABELS), atol=0.04)


def test_group_holdout_is_deterministic_by_seed():
    first, again, other = (group_holdout(LABELS, GROUPS, 0.25, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_group_holdout_impossible_requests():
    with pytest.raises(ValueError, match="at least 2 distinct groups"):
        group_holdout(LABELS, np.zeros(len(LABELS)), 0.2, seed=0)
    with pytest.raises(ValueError, match="one entry per image"):
        group_holdout(LABELS, GROUPS[:-1], 0.2, seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        group_holdout(LABELS, GROUPS, 1.5, seed=0)


def test_group_kfold_partitions_without_crossing_groups():
    folds = group_kfold(LABELS, GROUPS, 5, seed=0)
    validation = np.concatenate([val for _, val in folds])
    np.testing.assert_array_equal(np.sort(validation), np.arange(len(LABELS)))
    for train, val in folds:
        assert_partition(train, val, len(LABELS))
        assert_group_disjoint(train, val, GROUPS)
    again = group_kfold(LABELS, GROUPS, 5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_group_kfold_impossible_requests():
    with pytest.raises(ValueError, match="5 or more distinct groups, got 3"):
        group_kfold(LABELS, np.arange(len(LABELS)) % 3, 5, seed=0)


@pytest.mark.real_data
def test_real_ckplus48_group_splits_keep_subjects_apart(tmp_path, monkeypatch):
    real_root("ckplus48")
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    dataset = load_dataset("ckplus48", progress=False)
    train, test = group_holdout(dataset.labels, dataset.groups, 0.2, seed=0)
    assert_partition(train, test, len(dataset))
    assert_group_disjoint(train, test, dataset.groups)
    assert set(dataset.labels[test]) == set(range(7))  # every emotion is tested
    folds = group_kfold(dataset.labels[train], dataset.groups[train], 10, seed=0)
    for fold_train, fold_val in folds:
        assert_partition(fold_train, fold_val, len(train))
        assert_group_disjoint(train[fold_train], train[fold_val], dataset.groups)
        assert not set(dataset.groups[train[fold_val]]) & set(dataset.groups[test])


def test_per_class_sample_caps_each_class_and_is_deterministic_by_seed():
    chosen = per_class_sample(LABELS, 50, seed=3)
    assert chosen.dtype == np.int64 and (np.diff(chosen) > 0).all()
    # Classes of 20 and 40 keep every image; the others give 50 each.
    assert np.bincount(LABELS[chosen]).tolist() == [20, 40, 50, 50, 50, 50, 50]
    assert np.array_equal(chosen, per_class_sample(LABELS, 50, seed=3))
    assert not np.array_equal(chosen, per_class_sample(LABELS, 50, seed=4))
    with pytest.raises(ValueError, match="positive integer"):
        per_class_sample(LABELS, 0, seed=3)
