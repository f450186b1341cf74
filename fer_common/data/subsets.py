"""Fixed subsets of a split for the shorter profiles (quick, ci) and for benchmarks: the same images for every
training seed, drawn with the split's class proportions."""

from __future__ import annotations

import numpy as np

SUBSET_SEED = 0  # train_limit / eval_limit subsets are the same for every seed, so seeds stay comparable


def stratified_subset(labels: np.ndarray, limit: int | None, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of `limit` images drawn with the class proportions of `labels`; all when limit is None."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(np.arange(len(labels)), train_size=int(limit), stratify=labels, random_state=seed)
    return np.sort(chosen)
