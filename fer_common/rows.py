"""A record's rows: per-metric summaries over seeds, their confidence intervals, bands and verdicts.

One row per `reported` figure of the metadata (with its paper band and verdict) and one per `beyond_paper`
entry; the numbers come from the per-seed entries `execution.evaluate_outcome` writes. Rows are derived, never
read back: the report builds them from a record's per-seed values and the metadata as they are now
(`record_rows`), so a new band rule or verdict wording re-renders every page without a rerun. A record keeps
the rows its run printed, as a snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .bands import BEYOND_PAPER, DATA_KINDS, NOT_RUN, claim_band, paper_band
from .metadata import ReplicationMetadata
from .metrics import summarize, wilson_interval
from .paired import paired_note, with_comparisons
from .verdicts import judge


def summarize_seeds(seeds: Mapping[str, Mapping]) -> dict[str, dict]:
    """Per-metric summary over seeds: values in seed order, a metric a seed lacks counted as None."""
    keys: list[str] = []
    for entry in seeds.values():
        keys.extend(key for key in entry["metrics"] if key not in keys)
    return {key: summarize([entry["metrics"].get(key) for entry in seeds.values()]) for key in keys}


def metric_denominator(metric: str, seed_entry: Mapping) -> int | None:
    """How many test cases a proportion metric of one seed is a fraction of, when that is known."""
    custom = seed_entry.get("denominators", {})
    if metric in custom:
        return int(custom[metric])
    report = seed_entry.get("report") or {}
    if not report:
        return None
    head, _, tail = metric.partition("/")
    per_class = report.get("per_class", {})
    if metric == "accuracy":
        return report.get("n")
    if head == "recall" and tail in per_class:
        return per_class[tail]["support"]
    if head == "precision" and tail in report.get("predicted", {}):
        return report["predicted"][tail]
    if head == "confusion":
        true_name = tail.split("->", 1)[0]
        if true_name in per_class:
            return per_class[true_name]["support"]
    return None


def seed_wilson_ci(metric: str, seeds: Mapping[str, Mapping]) -> list[float] | None:
    """95% CI of a proportion over seeds: the mean of each seed's Wilson interval bounds.

    Not a Wilson interval on counts pooled across seeds: every seed is scored on the same (or an equally
    sized) test set, so pooling would count k·n test cases where there are only n and shrink the interval
    by √k. Averaging the per-seed bounds keeps the width of one test set. Seeds whose value or denominator
    is unknown are left out; None when no seed has both.
    """
    lows, highs = [], []
    for entry in seeds.values():
        value = entry["metrics"].get(metric)
        n = metric_denominator(metric, entry)
        if value is None or not n:
            continue
        low, high = wilson_interval(min(n, max(0, round(value * n))), n)
        lows.append(low)
        highs.append(high)
    if not lows:
        return None
    return [float(np.mean(lows)), float(np.mean(highs))]


def baselines(metric: str, seeds: Mapping[str, Mapping] | None) -> tuple[float | None, float | None]:
    """(chance, majority) on our test set: what uniform guessing scores (1/k of k classes; accuracy and recall
    rows), and, for accuracy, what always predicting the test set's largest class scores, averaged over
    seeds (their test sets may differ). A recall row has no majority figure: that predictor's recall is 1 for
    one class and 0 for the rest. (None, None) for other metrics, or without per-class supports."""
    if metric != "accuracy" and not metric.startswith("recall/"):
        return None, None
    supports = [
        [values["support"] for values in ((entry.get("report") or {}).get("per_class") or {}).values()]
        for entry in (seeds or {}).values()
    ]
    supports = [counts for counts in supports if counts and sum(counts)]
    if not supports:
        return None, None
    chance = 1.0 / len(supports[0])
    majority = float(np.mean([max(counts) / sum(counts) for counts in supports])) if metric == "accuracy" else None
    return chance, majority


def mean_denominator(metric: str, seeds: Mapping[str, Mapping] | None) -> float | None:
    """Our test images per seed for a metric (their mean: seeds' test sets may differ), None when unknown."""
    counts = [metric_denominator(metric, entry) for entry in (seeds or {}).values()]
    counts = [count for count in counts if count]
    return float(np.mean(counts)) if counts else None


def missing_text(meta: ReplicationMetadata, note: str | None) -> str:
    """What a reader must supply for a replication that could not run."""
    return note or meta.missing or f"dataset {meta.dataset.name!r} not available here"


def _observed_row(metric: str, setting: str, kind: str, summary: dict | None, seeds: Mapping | None) -> dict:
    """The observed part of a row: mean, sd, per-seed values and (for proportions) the CI."""
    has_ci = summary is not None and kind == "proportion" and seeds is not None
    chance, majority = baselines(metric, seeds) if summary is not None else (None, None)
    return {
        "metric": metric,
        "setting": setting,
        "kind": kind,
        "mean": summary["mean"] if summary else None,
        "sd": summary["sd"] if summary else None,
        "values": summary["values"] if summary else [],
        "ci": seed_wilson_ci(metric, seeds) if has_ci else None,
        "chance": chance,
        "majority": majority,
    }


def build_rows(
    meta: ReplicationMetadata,
    settings_summaries: Mapping[str, Mapping[str, dict]],
    data: str,
    *,
    seeds: Mapping[str, Mapping[str, Mapping]] | None = None,
    missing_note: str | None = None,
) -> list[dict]:
    """One row per `reported` figure (band and verdict) and one per `beyond_paper` entry.

    A reported row carries its `claim` (about / at_least / at_most: a threshold claim's band is one-sided,
    see `bands.claim_band`) and its `reading` (primary, or an alternative reading of an ambiguous sentence).

    settings_summaries: {setting: {metric: summarize(...)}}. seeds: {setting: {seed: seed entry}}, the
    per-seed results the CI of a proportion is computed from (see `seed_wilson_ci`); without it `ci` is
    None. With data "missing" every row has mean None, verdict
    "not run" and the `missing` text as note; paper rows still carry their band (no seeds term), so a
    reader sees what a run would have to hit.
    """
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    seeds = seeds or {}

    def observed(metric: str, setting: str) -> dict | None:
        summary = None if data == "missing" else settings_summaries.get(setting, {}).get(metric)
        return summary if summary and summary["mean"] is not None else None

    def note(given: str, summary: dict | None, metric: str, setting: str) -> str:
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
    return rows


def _untested(figure, seeds: Mapping[str, Mapping]) -> bool:
    """Whether a seed of the claim's setting says it lacked what the claim needs (`untested_when` in its notes)."""
    return bool(figure.untested_when) and any(
        figure.untested_when in note for entry in seeds.values() for note in entry.get("notes", [])
    )


def _no_value(seeds: Mapping[str, Mapping[str, Mapping]], figure) -> str:
    """Why a claim has no value, counting the seeds: a metric such as the epoch a threshold is first reached has
    none where a seed never reached it."""
    ran = len(seeds.get(figure.setting, {}))
    return f"none of the {ran} seeds gave a value" if ran else "no seed gave a value"


def add_row_notes(rows: list[dict], settings: Mapping[str, Mapping], run_notes: list[str]) -> None:
    """A job can qualify its setting's rows (e.g. "ResNet18 from scratch: no ImageNet weights"); `run_notes`
    qualify every row (e.g. the data differs from its SHA256SUMS)."""
    for row in rows:
        seeds = settings.get(row["setting"], {}).get("seeds", {})
        notes = sorted({note for result in seeds.values() for note in result.get("notes", [])})
        if notes or run_notes:
            row["note"] = "; ".join(filter(None, [row.get("note", ""), *notes, *run_notes]))


def with_derived(meta: ReplicationMetadata, settings: Mapping[str, Mapping]) -> dict[str, dict]:
    """A record's settings with the metrics the metadata derives from them at report time: paired comparisons
    (`comparisons`), rank agreements (`orders`) and gaps between training curves (`history_gaps`)."""
    return with_history_gaps(meta, with_orders(meta, with_comparisons(meta, settings)))


def with_history_gaps(meta: ReplicationMetadata, settings: Mapping[str, Mapping]) -> dict[str, dict]:
    """`settings` with every `history_gaps` metric added to the seeds of its setting: one curve minus another at
    the last epoch of the seed's training history; a seed without both curves gets none."""
    settings = dict(settings)
    for gap in meta.history_gaps:

        def last_gap(result: Mapping, gap=gap) -> float | None:
            history = result.get("history") or {}
            if not (history.get(gap.minuend) and history.get(gap.subtrahend)):
                return None
            return history[gap.minuend][-1] - history[gap.subtrahend][-1]

        _add_metric(settings, gap.setting, gap.metric, last_gap)
    return settings


def with_orders(meta: ReplicationMetadata, settings: Mapping[str, Mapping]) -> dict[str, dict]:
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

        def agreement(result: Mapping, pairs=pairs) -> float | None:
            metrics = result["metrics"]
            if any(metrics.get(name) is None for pair in pairs for name in pair):
                return None
            agree = sum(1.0 if metrics[a] > metrics[b] else 0.5 if metrics[a] == metrics[b] else 0.0 for a, b in pairs)
            return agree / len(pairs)

        _add_metric(settings, order.setting, order.metric, agreement)
    return settings


def _add_metric(settings: dict, setting: str, metric: str, value_of) -> None:
    """Replace `settings[setting]` by a copy whose seeds hold `metric` = value_of(seed entry) where not None."""
    entry = settings.get(setting)
    if not entry or "seeds" not in entry:
        return
    seeds = {}
    for seed, result in entry["seeds"].items():
        value = value_of(result)
        seeds[seed] = result if value is None else {**result, "metrics": {**result["metrics"], metric: value}}
    settings[setting] = {**entry, "seeds": seeds}


def derive_rows(
    meta: ReplicationMetadata, data: str, settings: Mapping[str, Mapping], run_notes: list[str]
) -> list[dict]:
    """Rows from per-seed results ({setting: {"seeds": {seed: entry}}}): paired comparisons, summaries, CIs,
    bands, verdicts and notes, by the metadata and the rules as they are now."""
    settings = with_derived(meta, settings)
    seeds = {name: entry["seeds"] for name, entry in settings.items()}
    summaries = {name: summarize_seeds(by_seed) for name, by_seed in seeds.items()}
    rows = build_rows(meta, summaries, data, seeds=seeds)
    add_row_notes(rows, settings, run_notes)
    for row in rows:
        note = paired_note(row["metric"], seeds.get(row["setting"], {}))
        if note:
            row["note"] = "; ".join(filter(None, [row.get("note", ""), note]))
    return rows


def derived_summaries(meta: ReplicationMetadata, settings: Mapping[str, Mapping]) -> dict[str, dict[str, dict]]:
    """{setting: {metric: summary}} of a record's settings, the paired comparisons' metrics included."""
    derived = with_derived(meta, settings)
    return {
        name: summarize_seeds(entry["seeds"]) if "seeds" in entry else dict(entry.get("summary", {}))
        for name, entry in derived.items()
    }


def record_rows(meta: ReplicationMetadata, record: Mapping) -> list[dict]:
    """A record's rows as the report reads it now (see the module docstring)."""
    return derive_rows(meta, record["data"], record["settings"], record["provenance"].get("run_notes", []))
