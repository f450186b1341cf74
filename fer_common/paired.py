"""Paired comparisons: two settings scored on the same images of a seed (the metadata's `comparisons`).

The difference of their accuracies comes from the per-image predictions the record keeps, with McNemar's
exact test on the images one setting gets right and the other wrong (a two-sided binomial test of the
discordant pairs at 1/2; McNemar 1947, as in Dietterich 1998 for comparing classifiers on one test set)
and a 95% Wald interval of the paired difference (Agresti & Min 2004's simple form). Intervals of two models
that overlap say nothing about their difference on the same images; this does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from fer_common.metadata import Comparison, ReplicationMetadata
from fer_common.per_image import decode_labels
from fer_common.schema import SeedEntry, Setting

Z95 = 1.959963984540054


@dataclass(frozen=True)
class PairedResult:
    """One seed's comparison: `difference` = accuracy(setting) - accuracy(against) on `n` shared images."""

    n: int
    difference: float
    only_setting: int  # images the setting gets right and the other wrong
    only_against: int
    p_value: float  # McNemar's exact test
    ci: tuple[float, float]

    def difference_text(self) -> str:
        """`+2.0 points [+0.1, +3.9]`."""
        low, high = self.ci
        return f"{100 * self.difference:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]"

    def describe(self) -> str:
        return (
            f"{self.difference_text()}, McNemar p={self.p_value:.2g} "
            f"({self.only_setting} vs {self.only_against} of {self.n} images)"
        )


def paired_accuracy(true: np.ndarray, setting: np.ndarray, against: np.ndarray) -> PairedResult:
    """The paired comparison of two predictions of the same labelled images."""
    if not (len(true) == len(setting) == len(against)) or not len(true):
        raise ValueError(f"paired predictions must cover the same images: {len(true)}, {len(setting)}, {len(against)}")
    return paired_correct(setting == true, against == true)


def paired_correct(right: np.ndarray, right_against: np.ndarray) -> PairedResult:
    """The paired comparison of two models from which images each got right (the same images, in order)."""
    right, right_against = np.asarray(right, dtype=bool), np.asarray(right_against, dtype=bool)
    if right.shape != right_against.shape or not right.size:
        raise ValueError(f"paired results must cover the same images: {right.shape}, {right_against.shape}")
    n = right.size
    only_setting = int(np.sum(right & ~right_against))
    only_against = int(np.sum(~right & right_against))
    discordant = only_setting + only_against
    difference = (only_setting - only_against) / n
    p_value = 1.0 if discordant == 0 else float(binomtest(only_setting, discordant, 0.5).pvalue)
    spread = math.sqrt(max(discordant - (only_setting - only_against) ** 2 / n, 0.0)) / n
    return PairedResult(
        n, difference, only_setting, only_against, p_value, (difference - Z95 * spread, difference + Z95 * spread)
    )


# {metric: its paired test} of one seed, and those of a record's settings: {setting: {seed: {metric: test}}}.
SeedTests = dict[str, PairedResult]
PairedTests = dict[str, dict[str, SeedTests]]


def _images(entry: SeedEntry, images: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, predicted classes) of a seed entry's `images`, None when the entry does not keep them."""
    held = entry.predictions if images == "scored" else entry.details.get(images)
    if not held:
        return None
    return decode_labels(held["true"]), decode_labels(held["predicted"])


def paired_against_model(seeds: Mapping[str, SeedEntry], other_right: np.ndarray) -> dict[str, PairedResult]:
    """Each seed's scored images against another model's right and wrong answers on the same images in the
    same order (e.g. the `fer` package's in the cross-dataset matrix); seeds without per-image predictions of
    as many images are left out."""
    paired = {}
    for seed, entry in seeds.items():
        mine = _images(entry, "scored")
        if mine is not None and len(mine[0]) == len(other_right):
            paired[seed] = paired_correct(mine[1] == mine[0], other_right)
    return paired


def compare_seed(comparison: Comparison, entry: SeedEntry, against: SeedEntry) -> PairedResult | None:
    """A comparison for one seed, None where either side lacks per-image predictions (older records)."""
    mine, theirs = _images(entry, comparison.images), _images(against, comparison.images)
    if mine is None or theirs is None:
        return None
    if not np.array_equal(mine[0], theirs[0]):
        raise ValueError(
            f"{comparison.metric}: {comparison.setting} and {comparison.against} were not scored on the same images"
        )
    return paired_accuracy(mine[0], mine[1], theirs[1])


def paired_runs(entries: Mapping[str, SeedEntry], against: Mapping[str, SeedEntry]) -> dict[str, PairedResult]:
    """Two runs of one setting seed by seed ({seed: entry} each, e.g. a hypothesis's record against the record
    as run): the seeds both have, scored on the same images (the same labels in the same order), with per-image
    predictions on both sides."""
    paired = {}
    for seed, entry in entries.items():
        if seed not in against:
            continue
        mine, theirs = _images(entry, "scored"), _images(against[seed], "scored")
        if mine is not None and theirs is not None and np.array_equal(mine[0], theirs[0]):
            paired[seed] = paired_accuracy(mine[0], mine[1], theirs[1])
    return paired


def with_comparisons(
    meta: ReplicationMetadata, settings: Mapping[str, Setting]
) -> tuple[dict[str, Setting], PairedTests]:
    """A record's settings with every comparison's value and its denominator added to the seeds of its setting
    (copies: the record is not changed), and the comparisons' paired tests. A value the record already holds
    (records made when jobs computed it) is kept."""
    settings = dict(settings)
    paired: PairedTests = {}
    for comparison in meta.comparisons:
        mine, theirs = settings.get(comparison.setting), settings.get(comparison.against)
        if mine is None or theirs is None:
            continue
        seeds = dict(mine.seeds)
        for seed, entry in mine.seeds.items():
            if seed not in theirs.seeds:
                continue
            result = compare_seed(comparison, entry, theirs.seeds[seed])
            if result is None:
                continue
            metrics, denominators = dict(entry.metrics), dict(entry.denominators)
            metrics.setdefault(comparison.metric, result.difference)
            denominators.setdefault(comparison.metric, result.n)
            seeds[seed] = entry.model_copy(update={"metrics": metrics, "denominators": denominators})
            paired.setdefault(comparison.setting, {}).setdefault(seed, {})[comparison.metric] = result
        settings[comparison.setting] = mine.model_copy(update={"seeds": seeds})
    # In each setting's seed order, however the comparisons added them.
    ordered = {
        name: {seed: tests[seed] for seed in settings[name].seeds if seed in tests} for name, tests in paired.items()
    }
    return settings, ordered


def paired_note(metric: str, seeds: Mapping[str, SeedTests]) -> str:
    """`paired, same images: seed 0 +2.1 points [...], McNemar p=...; ...` for a row (`seeds`: its setting's
    paired tests, {seed: {metric: test}}), or '' without tests."""
    parts = [f"seed {seed} {tests[metric].describe()}" for seed, tests in seeds.items() if metric in tests]
    return "paired, same images: " + "; ".join(parts) if parts else ""
