"""What could explain the capstone's ~93% on 128 images (metadata `hypotheses:`), measured in every run.

- the epoch chosen on the test: the 128 images are scored after every epoch (`TestAccuracyByEpoch`);
- a lucky draw of 128: many stratified 32-per-class draws from the whole scored PrivateTest (`draw_accuracies`);
- test images with a near-duplicate among the training images (`near_duplicate_mask`): the same 64-bit
  pHash (imagehash) and Hamming threshold as the duplicate audit (`fer_common.audit_duplicates`), computed
  here so that the audit's module stays out of this replication's code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fer_common.bands import paper_band
from fer_common.metadata import load_metadata
from fer_common.resume import EpochCallback

HASH_BITS = 64


# --- the epoch chosen on the test -------------------------------------------------------------------------


class TestAccuracyByEpoch(EpochCallback):
    """Appends the model's accuracy on (inputs, labels) after every epoch to `accuracies` (checkpointed with
    the run). It only predicts: no weights, no random state and no `logs` entry change, so the training and
    its history are those of a run without it."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, accuracy_of: Callable) -> None:
        self.inputs, self.labels, self.accuracy_of = inputs, labels, accuracy_of
        self.accuracies: list[float] = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.accuracies.append(self.accuracy_of(self.model, self.inputs, self.labels))

    def resume_state(self) -> tuple[dict, list[np.ndarray]]:
        return {"accuracies": list(self.accuracies)}, []

    def restore_resume_state(self, info: dict, arrays: list[np.ndarray]) -> None:
        self.accuracies = list(info["accuracies"])


# --- a lucky draw of 128 ----------------------------------------------------------------------------------


def draw_accuracies(labels: np.ndarray, correct: np.ndarray, per_class: int, count: int, seed: int) -> np.ndarray:
    """Accuracy of `count` stratified draws of `per_class` images of each class (without replacement within a
    draw), all from one generator seeded with `seed`."""
    labels = np.asarray(labels)
    correct = np.asarray(correct, dtype=bool)
    if len(labels) != len(correct):
        raise ValueError(f"labels and correct differ in length: {len(labels)} and {len(correct)}")
    members = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    smallest = min(len(indices) for indices in members)
    if not 1 <= per_class <= smallest:
        raise ValueError(f"per_class must be 1..{smallest} (the smallest class), got {per_class}")
    generator = np.random.default_rng(seed)
    accuracies = np.empty(count)
    for draw in range(count):
        chosen = np.concatenate([generator.choice(indices, size=per_class, replace=False) for indices in members])
        accuracies[draw] = correct[chosen].mean()
    return accuracies


def draw_metrics(accuracies: np.ndarray, threshold: float) -> dict[str, float]:
    """Mean, 99th percentile and maximum of the draws' accuracies, and the share of draws at or above
    `threshold`."""
    return {
        "draw128_mean": float(accuracies.mean()),
        "draw128_p99": float(np.quantile(accuracies, 0.99)),
        "draw128_max": float(accuracies.max()),
        "draw128_share_at_least_band_low": float((accuracies >= threshold).mean()),
    }


def paper_band_low(metadata_file: Path, metric: str, setting: str) -> float:
    """The lower end of the band around a reported figure, from its value, n_test and floor: the paper's
    sampling interval (or floor). The seeds term is left out: a run cannot know its seeds' spread while it
    runs, and the draws are about the test's sampling, not our seeds."""
    meta = load_metadata(metadata_file)
    for figure in meta.reported:
        if (figure.metric, figure.setting) == (metric, setting):
            return paper_band(figure.value, figure.n_test, None, kind=figure.kind, floor=figure.floor).low
    raise ValueError(f"{metadata_file}: no reported figure {metric!r} in setting {setting!r}")


# --- near-duplicates in training --------------------------------------------------------------------------


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 1) grayscale images -> (N,) uint64 pHashes (imagehash's 8x8 DCT sign bits)."""
    import imagehash
    from PIL import Image

    if len(images) == 0:
        return np.zeros(0, dtype=np.uint64)
    bits = np.stack([imagehash.phash(Image.fromarray(image[..., 0])).hash.ravel() for image in images])
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def near_duplicate_mask(queries: np.ndarray, pool: np.ndarray, threshold: int) -> np.ndarray:
    """For each query hash: whether some pool hash lies within `threshold` bits (Hamming distance)."""
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be 0..{HASH_BITS - 1} bits, not {threshold}")
    if len(pool) == 0:
        return np.zeros(len(queries), dtype=bool)
    distances = np.bitwise_count(np.bitwise_xor(queries[:, None], pool[None, :]))
    return (distances <= threshold).any(axis=1)


def accuracy_by_duplicate(correct: np.ndarray, has_duplicate: np.ndarray) -> tuple[dict, dict]:
    """(metrics, denominators): accuracy on the images with and without a near-duplicate in training; a
    group with no image has no metric."""
    metrics, denominators = {}, {}
    for name, members in (("with", has_duplicate), ("without", ~has_duplicate)):
        if members.any():
            key = f"accuracy_test_{name}_training_duplicate"
            metrics[key] = float(correct[members].mean())
            denominators[key] = int(members.sum())
    return metrics, denominators
