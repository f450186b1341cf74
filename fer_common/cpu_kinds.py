"""How far the CPU kind moves a replication's numbers, for a reader asking whether a record made on one kind of
machine speaks for the others.

Two experiments the records already hold: the `ci` regression runs (one short profile, the same seeds, run on
several CPU kinds; `regression_runs` in the metadata), and full runs repeated on another machine with the
committed record's command (`results/<id>/repeats/*.json`, records the report never takes a verdict from).
Both are paired by seed: each seed's difference between two CPU kinds, their mean and a 95% t interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy import stats

from .metadata import ReplicationMetadata
from .pages import md_table
from .records import latest_record, load_record
from .schema import Record

REPEATS_FOLDER = "repeats"


@dataclass(frozen=True)
class PairedShift:
    """Per-seed differences `kind − reference` of one metric, on the seeds both ran."""

    metric: str
    setting: str
    kind: str
    reference: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    proportion: bool = True  # False: a value in its own units (e.g. a loss), shown as it is

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences)

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% t interval of the mean difference; None below 3 seeds (two give a useless interval)."""
        if len(self.differences) < 3:
            return None
        half = stats.t.ppf(0.975, len(self.differences) - 1) * statistics.stdev(self.differences)
        half /= math.sqrt(len(self.differences))
        return self.mean - half, self.mean + half


@dataclass(frozen=True)
class KindValues:
    """One banded metric's values by CPU kind and seed, in the order the metadata lists the runs."""

    metric: str
    setting: str
    by_kind: dict[str, dict[int, float]]
    proportion: bool = True

    def shifts(self) -> list[PairedShift]:
        """Every other kind against the kind with the most seeds (the first listed on a tie)."""
        reference = max(self.by_kind, key=lambda kind: len(self.by_kind[kind]))
        base = self.by_kind[reference]
        found = []
        for kind, values in self.by_kind.items():
            shared = tuple(seed for seed in values if seed in base)
            if kind != reference and shared:
                differences = tuple(values[seed] - base[seed] for seed in shared)
                shift = PairedShift(self.metric, self.setting, kind, reference, shared, differences, self.proportion)
                found.append(shift)
        return found


def ci_values_by_kind(meta: ReplicationMetadata, profile: str = "ci") -> list[KindValues]:
    """The regression bands' values of `profile` regrouped by CPU kind and seed."""
    order = meta.regression_seeds(profile)
    grouped = []
    for entry in meta.regression:
        if entry.profile != profile:
            continue
        by_kind: dict[str, dict[int, float]] = {}
        for (run, seed), value in zip(order, entry.values, strict=True):
            by_kind.setdefault(run.cpu, {})[seed] = value
        grouped.append(KindValues(entry.metric, entry.setting, by_kind, entry.kind != "value"))
    return grouped


def repeated_full_runs(meta: ReplicationMetadata, results_dir: Path) -> list[Record]:
    """Full runs of this replication repeated on another machine, oldest first."""
    folder = results_dir / meta.id / REPEATS_FOLDER
    repeats = [load_record(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(repeats, key=lambda record: record.provenance.created_utc)


def repeat_shifts(meta: ReplicationMetadata, committed: Record, repeat: Record) -> list[PairedShift]:
    """Each reported metric of the repeat minus the committed record's, paired by seed."""
    shifts = []
    seen = set()
    for figure in meta.reported:
        key = (figure.metric, figure.setting)
        if key in seen:
            continue
        seen.add(key)
        ours = _seed_values(committed, *key)
        theirs = _seed_values(repeat, *key)
        shared = tuple(seed for seed in theirs if seed in ours)
        if shared:
            differences = tuple(theirs[seed] - ours[seed] for seed in shared)
            proportion = figure.kind == "proportion"
            shifts.append(PairedShift(*key, _machine(repeat), _machine(committed), shared, differences, proportion))
    return shifts


def _seed_values(record: Record, metric: str, setting: str) -> dict[int, float]:
    seeds = record.seeds_of(setting)
    return {int(seed): entry.metrics[metric] for seed, entry in seeds.items() if entry.metrics.get(metric) is not None}


def _machine(record: Record) -> str:
    return record.provenance.cpu_kind or record.provenance.cpu


# --- words ----------------------------------------------------------------------------------------------


def _signed(value: float, proportion: bool) -> str:
    digits = 1 if proportion else 3
    shown = round(100 * value if proportion else value, digits) + 0.0  # + 0.0: no "-0.0"
    return f"{shown:+.{digits}f}"


def _shift_cell(shift: PairedShift, *, named: bool = True) -> str:
    seeds = ", ".join(_signed(d, shift.proportion) for d in shift.differences)
    interval = shift.interval
    tail = f" [{_signed(interval[0], shift.proportion)}, {_signed(interval[1], shift.proportion)}]" if interval else ""
    listed = ", ".join(map(str, shift.seeds))
    which = f"{shift.kind} − {shift.reference}: " if named else ""
    return f"{which}{_signed(shift.mean, shift.proportion)}{tail} (seeds {listed}: {seeds})"


def _kind_cell(values: Mapping[int, float], proportion: bool) -> str:
    scale, digits = (100, 1) if proportion else (1, 3)
    mean = scale * statistics.fmean(values.values())
    spread = f" ± {scale * statistics.stdev(values.values()):.{digits}f}" if len(values) > 1 else ""
    return f"{mean:.{digits}f}{spread} (n={len(values)})"


def cpu_kinds_markdown(metas: Sequence[ReplicationMetadata], results_dir: Path) -> list[str]:
    """The audits page's section: per replication, its ci values by CPU kind with the paired shifts, then any
    full run repeated on another machine against the committed record."""
    lines = [
        "## How far the CPU kind moves a run",
        "",
        "The same profile and seeds run on several CPU kinds (float32 throughout; the kinds differ in the "
        "kernels TensorFlow picks). Values in percent, a loss as it is (mean ± sd over seeds, n seeds); a "
        "shift is the per-seed difference from the kind with the most seeds (points for a percentage), "
        "with its 95% t interval from 3 shared seeds up. The `ci` profiles are short (a few epochs on "
        "subsets): they show how far kernels move a short run, which the CI bands allow for. A full run "
        "repeated on another kind shows whether a full record speaks for it.",
        "",
    ]
    one_kind = []
    for meta in metas:
        grouped = [values for values in ci_values_by_kind(meta) if len(values.by_kind) > 1]
        committed = latest_record(meta.id, results_dir=results_dir)
        repeats = repeated_full_runs(meta, results_dir) if committed else []
        if not grouped and not repeats:
            if meta.regression_runs:
                one_kind.append(f"`{meta.id}` ({', '.join(dict.fromkeys(run.cpu for run in meta.regression_runs))})")
            continue
        lines += [f"### {meta.id}", ""]
        if grouped:
            kinds = list(dict.fromkeys(kind for values in grouped for kind in values.by_kind))
            rows = []
            for values in grouped:
                cells = [
                    _kind_cell(values.by_kind[kind], values.proportion) if kind in values.by_kind else "—"
                    for kind in kinds
                ]
                shifts = "; ".join(_shift_cell(shift) for shift in values.shifts())
                rows.append([f"{values.metric} [{values.setting}]", *cells, shifts])
            lines += ["`ci` profile:", "", *md_table(["metric [setting]", *kinds, "shift"], rows), ""]
        for repeat in repeats:
            name = repeat.path.relative_to(results_dir).as_posix()
            ours = committed.path.relative_to(results_dir).as_posix()
            rows = [
                [f"{s.metric} [{s.setting}]", _shift_cell(s, named=False)]
                for s in repeat_shifts(meta, committed, repeat)
            ]
            lines += [
                f"Full run repeated on {_machine(repeat)} ([`{name}`]({name}), `{repeat.provenance.command}`) "
                f"minus the committed record made on {_machine(committed)} ([`{ours}`]({ours})):",
                "",
                *md_table(["metric [setting]", "repeat − committed"], rows),
                "",
            ]
    if one_kind:
        lines += [f"Recorded on one CPU kind only, so far: {', '.join(one_kind)}.", ""]
    return lines
