"""A record's rows: per-metric summaries over seeds, their confidence intervals, bands and verdicts.

One row per `reported` figure of the metadata (with its paper band and verdict) and one per `beyond_paper`
entry; the numbers come from the per-seed entries `execution.evaluate_outcome` writes. Rows are derived, never
read back: the report builds them from a record's per-seed values and the metadata as they are now
(`record_rows`), so a new band rule or verdict wording re-renders every page without a rerun. A record keeps
the rows its run printed, as a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .bands import BEYOND_PAPER, DATA_KINDS, NOT_RUN, claim_band, paper_band
from .metadata import ReplicationMetadata
from .metrics import summarize, wilson_interval
from .paired import PairedTests, paired_note, with_comparisons
from .schema import Record, Row, SeedEntry, Setting, Summary
from .verdicts import judge

Seeds = Mapping[str, SeedEntry]  # {seed: entry} of one setting


def summarize_seeds(seeds: Seeds) -> dict[str, Summary]:
    """Per-metric summary over seeds: values in seed order, a metric a seed lacks counted as None."""
    keys: list[str] = []
    for entry in seeds.values():
        keys.extend(key for key in entry.metrics if key not in keys)
    return {
        key: Summary.model_validate(summarize([entry.metrics.get(key) for entry in seeds.values()])) for key in keys
    }


def metric_denominator(metric: str, seed_entry: SeedEntry) -> int | None:
    """How many test cases a proportion metric of one seed is a fraction of, when that is known."""
    if metric in seed_entry.denominators:
        return int(seed_entry.denominators[metric])
    report = seed_entry.report
    if report is None:
        return None
    head, _, tail = metric.partition("/")
    if metric == "accuracy":
        return report.n
    if head == "recall" and tail in report.per_class:
        return report.per_class[tail].support
    if head == "precision" and tail in report.predicted:
        return report.predicted[tail]
    if head == "confusion":
        true_name = tail.split("->", 1)[0]
        if true_name in report.per_class:
            return report.per_class[true_name].support
    return None


def seed_wilson_ci(metric: str, seeds: Seeds) -> list[float] | None:
    """95% CI of a proportion over seeds: the mean of each seed's Wilson interval bounds.

    Not a Wilson interval on counts pooled across seeds: every seed is scored on the same (or an equally
    sized) test set, so pooling would count k·n test cases where there are only n and shrink the interval
    by √k. Averaging the per-seed bounds keeps the width of one test set. Seeds whose value or denominator
    is unknown are left out; None when no seed has both.
    """
    lows, highs = [], []
    for entry in seeds.values():
        value = entry.metrics.get(metric)
        n = metric_denominator(metric, entry)
        if value is None or not n:
            continue
        low, high = wilson_interval(min(n, max(0, round(value * n))), n)
        lows.append(low)
        highs.append(high)
    if not lows:
        return None
    return [float(np.mean(lows)), float(np.mean(highs))]


def baselines(metric: str, seeds: Seeds | None) -> tuple[float | None, float | None]:
    """(chance, majority) on our test set: what uniform guessing scores (1/k of k classes; accuracy and recall
    rows), and, for accuracy, what always predicting the test set's largest class scores, averaged over
    seeds (their test sets may differ). A recall row has no majority figure: that predictor's recall is 1 for
    one class and 0 for the rest. (None, None) for other metrics, or without per-class supports."""
    if metric != "accuracy" and not metric.startswith("recall/"):
        return None, None
    supports = [
        [scores.support for scores in entry.report.per_class.values()] if entry.report else []
        for entry in (seeds or {}).values()
    ]
    supports = [counts for counts in supports if counts and sum(counts)]
    if not supports:
        return None, None
    chance = 1.0 / len(supports[0])
    majority = float(np.mean([max(counts) / sum(counts) for counts in supports])) if metric == "accuracy" else None
    return chance, majority


def mean_denominator(metric: str, seeds: Seeds | None) -> float | None:
    """Our test images per seed for a metric (their mean: seeds' test sets may differ), None when unknown."""
    counts = [metric_denominator(metric, entry) for entry in (seeds or {}).values()]
    counts = [count for count in counts if count]
    return float(np.mean(counts)) if counts else None


def missing_text(meta: ReplicationMetadata, note: str | None) -> str:
    """What a reader must supply for a replication that could not run."""
    return note or meta.missing or f"dataset {meta.dataset.name!r} not available here"


def _observed_row(metric: str, setting: str, kind: str, summary: Summary | None, seeds: Seeds | None) -> dict[str, Any]:
    """The observed part of a row: mean, sd, per-seed values and (for proportions) the CI."""
    has_ci = summary is not None and kind == "proportion" and seeds is not None
    chance, majority = baselines(metric, seeds) if summary is not None else (None, None)
    return {
        "metric": metric,
        "setting": setting,
        "kind": kind,
        "mean": summary.mean if summary else None,
        "sd": summary.sd if summary else None,
        "values": summary.values if summary else [],
        "ci": seed_wilson_ci(metric, seeds) if has_ci else None,
        "chance": chance,
        "majority": majority,
    }


def build_rows(
    meta: ReplicationMetadata,
    settings_summaries: Mapping[str, Mapping[str, Summary]],
    data: str,
    *,
    seeds: Mapping[str, Seeds] | None = None,
    missing_note: str | None = None,
) -> list[Row]:
    """One row per `reported` figure (band and verdict) and one per `beyond_paper` entry.

    A reported row carries its `claim` (about / at_least / at_most: a threshold claim's band is one-sided,
    see `bands.claim_band`) and its `reading` (primary, or an alternative reading of an ambiguous sentence).

    settings_summaries: {setting: {metric: summary}} (`summarize_seeds`). seeds: {setting: {seed: seed entry}}, the
    per-seed results the CI of a proportion is computed from (see `seed_wilson_ci`); without it `ci` is
    None. With data "missing" every row has mean None, verdict
    "not run" and the `missing` text as note; paper rows still carry their band (no seeds term), so a
    reader sees what a run would have to hit.
    """
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    seeds = seeds or {}

    def observed(metric: str, setting: str) -> Summary | None:
        summary = None if data == "missing" else settings_summaries.get(setting, {}).get(metric)
        return summary if summary is not None and summary.mean is not None else None

    def note(given: str, summary: Summary | None, metric: str, setting: str) -> str:
        if summary:
            return given
        if data == "missing":
            return missing_text(meta, missing_note)
        return f"no value for {metric!r} in setting {setting!r} in this run"

    rows = []
    for figure in meta.reported:
        summary = observed(figure.metric, figure.setting)
        row = _observed_row(figure.metric, figure.setting, figure.kind, summary, seeds.get(figure.setting))
        band = claim_band(
            paper_band(figure.value, figure.n_test, row["sd"], kind=figure.kind, floor=figure.floor),
            figure.claim,
            figure.kind,
        )
        judgement = judge(
            row["values"],
            figure.value,
            claim=figure.claim,
            kind=figure.kind,
            margin=meta.margin(figure.metric, figure.setting, figure.claim, figure.kind, figure.floor),
            n_ours=mean_denominator(figure.metric, seeds.get(figure.setting)),
            n_paper=figure.n_test,
            data=data if summary else "missing",
        )
        row.update(
            reported=figure.value,
            claim=figure.claim,
            reading=figure.reading,
            n_test=figure.n_test,
            where=figure.where,
            band=band.to_dict(),
            verdict=judgement.verdict,
            position=band.position(row["mean"]) if summary else None,
            note=note(figure.note, summary, figure.metric, figure.setting),
            interval=None if judgement.low is None else [judgement.low, judgement.high],
            margin=judgement.margin,
            judgement=judgement.reason if summary else (None if data == "missing" else _no_value(seeds, figure)),
        )
        if summary and _untested(figure, seeds.get(figure.setting, {})):
            row.update(
                verdict=NOT_RUN,
                position=None,
                interval=None,
                judgement=f"it needs {figure.needs}",
            )
        rows.append(row)
    for extra in meta.beyond_paper:
        summary = observed(extra.metric, extra.setting)
        row = _observed_row(extra.metric, extra.setting, extra.kind, summary, seeds.get(extra.setting))
        row.update(
            reported=None,
            n_test=None,
            where=None,
            band=None,
            verdict=BEYOND_PAPER if summary else NOT_RUN,
            position=None,
            note=note(extra.note, summary, extra.metric, extra.setting),
        )
        rows.append(row)
    return [Row.model_validate(row) for row in rows]


def _untested(figure, seeds: Seeds) -> bool:
    """Whether a seed of the claim's setting says it lacked what the claim needs (`untested_when` in its notes)."""
    return bool(figure.untested_when) and any(
        figure.untested_when in note for entry in seeds.values() for note in entry.notes
    )


def _no_value(seeds: Mapping[str, Seeds], figure) -> str:
    """Why a claim has no value, counting the seeds: a metric such as the epoch a threshold is first reached has
    none where a seed never reached it."""
    ran = len(seeds.get(figure.setting, {}))
    return f"none of the {ran} seeds gave a value" if ran else "no seed gave a value"


def _noted(row: Row, *notes: str) -> Row:
    """`row` with `notes` added to its note."""
    if not any(notes):
        return row
    return row.model_copy(update={"note": "; ".join(filter(None, [row.note, *notes]))})


def add_row_notes(rows: list[Row], settings: Mapping[str, Setting], run_notes: list[str]) -> list[Row]:
    """A job can qualify its setting's rows (e.g. "ResNet18 from scratch: no ImageNet weights"); `run_notes`
    qualify every row (e.g. the data differs from its SHA256SUMS)."""
    noted = []
    for row in rows:
        setting = settings.get(row.setting)
        notes = sorted({note for result in setting.seeds.values() for note in result.notes}) if setting else []
        noted.append(_noted(row, *notes, *run_notes))
    return noted


def _derived(meta: ReplicationMetadata, settings: Mapping[str, Setting]) -> tuple[dict[str, Setting], PairedTests]:
    """`with_derived`'s settings and the paired tests of the comparisons."""
    compared, paired = with_comparisons(meta, settings)
    return with_history_gaps(meta, with_orders(meta, compared)), paired


def with_derived(meta: ReplicationMetadata, settings: Mapping[str, Setting]) -> dict[str, Setting]:
    """A record's settings with the metrics the metadata derives from them at report time: paired comparisons
    (`comparisons`), rank agreements (`orders`) and gaps between training curves (`history_gaps`)."""
    return _derived(meta, settings)[0]


def with_history_gaps(meta: ReplicationMetadata, settings: Mapping[str, Setting]) -> dict[str, Setting]:
    """`settings` with every `history_gaps` metric added to the seeds of its setting: one curve minus another at
    the last epoch of the seed's training history; a seed without both curves gets none."""
    settings = dict(settings)
    for gap in meta.history_gaps:

        def last_gap(result: SeedEntry, gap=gap) -> float | None:
            history = result.history
            if not (history.get(gap.minuend) and history.get(gap.subtrahend)):
                return None
            return history[gap.minuend][-1] - history[gap.subtrahend][-1]

        _add_metric(settings, gap.setting, gap.metric, last_gap)
    return settings


def with_orders(meta: ReplicationMetadata, settings: Mapping[str, Setting]) -> dict[str, Setting]:
    """`settings` with every `orders` metric added to the seeds of its setting (see `metadata.Order`): the share
    of cross-tier pairs in the paper's order, ties counting half. A seed lacking one of the tiers' metrics gets
    none. The record's own settings are not changed."""
    settings = dict(settings)
    for order in meta.orders:
        pairs = [
            (higher, lower)
            for i, tier in enumerate(order.tiers)
            for later in order.tiers[i + 1 :]
            for higher in tier
            for lower in later
        ]

        def agreement(result: SeedEntry, pairs=pairs) -> float | None:
            metrics = result.metrics
            if any(metrics.get(name) is None for pair in pairs for name in pair):
                return None
            agree = sum(1.0 if metrics[a] > metrics[b] else 0.5 if metrics[a] == metrics[b] else 0.0 for a, b in pairs)
            return agree / len(pairs)

        _add_metric(settings, order.setting, order.metric, agreement)
    return settings


def _add_metric(
    settings: dict[str, Setting], setting: str, metric: str, value_of: Callable[[SeedEntry], float | None]
) -> None:
    """Replace `settings[setting]` by a copy whose seeds hold `metric` = value_of(seed entry) where not None."""
    entry = settings.get(setting)
    if entry is None:
        return
    seeds = {}
    for seed, result in entry.seeds.items():
        value = value_of(result)
        seeds[seed] = (
            result if value is None else result.model_copy(update={"metrics": {**result.metrics, metric: value}})
        )
    settings[setting] = entry.model_copy(update={"seeds": seeds})


def derive_rows(
    meta: ReplicationMetadata, data: str, settings: Mapping[str, Setting], run_notes: list[str]
) -> list[Row]:
    """Rows from per-seed results: paired comparisons, summaries, CIs, bands, verdicts and notes, by the metadata
    and the rules as they are now."""
    derived, paired = _derived(meta, settings)
    seeds = {name: entry.seeds for name, entry in derived.items()}
    summaries = {name: summarize_seeds(by_seed) for name, by_seed in seeds.items()}
    rows = add_row_notes(build_rows(meta, summaries, data, seeds=seeds), derived, run_notes)
    return [_noted(row, paired_note(row.metric, paired.get(row.setting, {}))) for row in rows]


def derived_summaries(meta: ReplicationMetadata, settings: Mapping[str, Setting]) -> dict[str, dict[str, Summary]]:
    """{setting: {metric: summary}} of a record's settings, the paired comparisons' metrics included."""
    return {name: summarize_seeds(entry.seeds) for name, entry in with_derived(meta, settings).items()}


def record_rows(meta: ReplicationMetadata, record: Record) -> list[Row]:
    """A record's rows as the report reads it now (see the module docstring)."""
    return derive_rows(meta, record.data, record.settings, record.provenance.run_notes or [])
