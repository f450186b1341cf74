"""Reproducible splits: stratified holdout and k-fold, and their subject-disjoint (group) versions.

Every function returns sorted int64 index arrays and gives the same split for the same seed.
Group splits keep every group (subject, person) wholly on one side, because near-duplicate frames of
one subject on both sides inflate test accuracy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

Split = tuple[np.ndarray, np.ndarray]

_GROUP_HOLDOUT_TRIALS = 200  # random group orders tried; the best-balanced cut wins


def stratified_holdout(labels: ArrayLike, test_fraction: float, seed: int) -> Split:
    """(train, test) indices with each class split in proportion `1 - test_fraction : test_fraction`."""
    labels = _labels(labels)
    _check_fraction(test_fraction)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ValueError(
            f"stratified holdout needs at least 2 images per class; class {classes[counts.argmin()]} has 1"
        )
    test_size = int(np.ceil(test_fraction * len(labels)))
    if test_size < len(classes) or len(labels) - test_size < len(classes):
        raise ValueError(
            f"test_fraction={test_fraction} of {len(labels)} images gives a {test_size}-image test set and a "
            f"{len(labels) - test_size}-image train set; each must hold at least one image of each of the "
            f"{len(classes)} classes"
        )
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(labels)), labels))
    return _sorted(train), _sorted(test)


def per_class_sample(labels: ArrayLike, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `per_class` images of each class, drawn at random without replacement.

    A class with fewer images keeps all of them. The classes are drawn in ascending label order from one
    generator, so the same labels and seed give the same sample.
    """
    labels = _labels(labels)
    if isinstance(per_class, bool) or not isinstance(per_class, int | np.integer) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    generator = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > per_class:
            members = generator.choice(members, size=per_class, replace=False)
        chosen.append(members)
    return _sorted(np.concatenate(chosen))


def stratified_kfold(labels: ArrayLike, n_splits: int, seed: int) -> list[Split]:
    """`n_splits` (train, validation) pairs; each image is in exactly one validation fold."""
    labels = _labels(labels)
    _check_n_splits(n_splits)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < n_splits:
        raise ValueError(
            f"stratified {n_splits}-fold needs at least {n_splits} images per class so that every validation "
            f"fold holds each class; class {classes[counts.argmin()]} has {counts.min()}"
        )
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(_sorted(train), _sorted(val)) for train, val in splitter.split(np.zeros(len(labels)), labels)]


def group_holdout(labels: ArrayLike, groups: ArrayLike, test_fraction: float, seed: int) -> Split:
    """(train, test) indices with no group on both sides, approximately stratified.

    Tries many random orders of the groups and, for each, every cut into test/train; keeps the cut
    closest to `test_fraction` of the images and to the overall class proportions (summed errors).
    """
    labels = _labels(labels)
    group_index = _group_index(groups, len(labels))
    _check_fraction(test_fraction)
    group_count = group_index.max() + 1
    if group_count < 2:
        raise ValueError("a group holdout needs at least 2 distinct groups; all images share one group")
    _, label_index = np.unique(labels, return_inverse=True)
    per_group = np.zeros((group_count, label_index.max() + 1))
    np.add.at(per_group, (group_index, label_index), 1)
    overall = per_group.sum(axis=0) / len(labels)
    target = test_fraction * len(labels)

    random = np.random.default_rng(seed)
    best_score, best_groups = np.inf, np.empty(0, dtype=np.int64)
    for _ in range(_GROUP_HOLDOUT_TRIALS):
        order = random.permutation(group_count)
        cumulative = np.cumsum(per_group[order], axis=0)[:-1]  # test = first k groups, k < group_count
        sizes = cumulative.sum(axis=1)
        size_error = np.abs(sizes - target) / len(labels)
        scores = size_error + np.abs(cumulative / sizes[:, None] - overall).sum(axis=1)
        cut = int(scores.argmin())
        if scores[cut] < best_score:
            best_score, best_groups = scores[cut], order[: cut + 1]
    in_test = np.isin(group_index, best_groups)
    return _sorted(np.flatnonzero(~in_test)), _sorted(np.flatnonzero(in_test))


def group_kfold(labels: ArrayLike, groups: ArrayLike, n_splits: int, seed: int) -> list[Split]:
    """`n_splits` (train, validation) pairs with no group on both sides, approximately stratified."""
    labels = _labels(labels)
    group_index = _group_index(groups, len(labels))
    _check_n_splits(n_splits)
    group_count = group_index.max() + 1
    if group_count < n_splits:
        raise ValueError(f"group {n_splits}-fold needs {n_splits} or more distinct groups, got {group_count}")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    split = splitter.split(np.zeros(len(labels)), labels, group_index)
    folds = [(_sorted(train), _sorted(val)) for train, val in split]
    if any(len(val) == 0 for _, val in folds):
        raise ValueError(f"group {n_splits}-fold left a validation fold empty; use fewer folds")
    return folds


def _labels(labels: ArrayLike) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) < 2:
        raise ValueError(f"labels must be a 1-D array of at least 2 class indices, got shape {labels.shape}")
    return labels


def _group_index(groups: ArrayLike, count: int) -> np.ndarray:
    """Groups of any type as 0..G-1 integers."""
    groups = np.asarray(groups)
    if groups.shape != (count,):
        raise ValueError(f"groups must have one entry per image ({count}), got shape {groups.shape}")
    return np.unique(groups, return_inverse=True)[1].astype(np.int64)


def _check_fraction(test_fraction: float) -> None:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")


def _check_n_splits(n_splits: int) -> None:
    if int(n_splits) != n_splits or n_splits < 2:
        raise ValueError(f"n_splits must be an integer of at least 2, got {n_splits}")


def _sorted(index: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(index, dtype=np.int64))
