"""Regression checks: do the latest full records still give what a reviewed run gave (`expected:`), and
does a fresh run of a short profile (e.g. `ci`) land in the bands its own seeds gave (`regression:`)?

Problems (failures): a verdict changed, or a mean left its regression band (our mean ± max(2·sd, floor)),
or an expected row is absent. Warnings (not failures): no full record yet, or a record that is stale
because the metadata or the code changed since it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .bands import regression_band
from .errors import MetadataError
from .metadata import ReplicationMetadata, list_replications, load_metadata
from .provenance import stale_reasons
from .records import latest_record


class CheckReport(NamedTuple):
    problems: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_one(meta: ReplicationMetadata, record: dict) -> list[str]:
    problems = []
    rows = {(row["metric"], row["setting"]): row for row in record["rows"]}
    where = f"{meta.id} ({Path(record['_path']).name})"
    for expected in meta.expected:
        label = f"{where}: {expected.metric} [{expected.setting}]"
        row = rows.get((expected.metric, expected.setting))
        if row is None:
            problems.append(f"{label}: no such row in the record")
            continue
        if row["verdict"] != expected.verdict:
            problems.append(f"{label}: verdict {row['verdict']!r}, expected {expected.verdict!r}")
        if expected.mean is None:
            continue
        if row["mean"] is None:
            problems.append(f"{label}: no mean in the record, expected {expected.mean:.4f}")
            continue
        low, high = regression_band(expected.mean, expected.sd, expected.floor)
        if not low <= row["mean"] <= high:
            problems.append(f"{label}: mean {row['mean']:.4f} outside regression band [{low:.4f}, {high:.4f}]")
    return problems


def check_records(results_dir: Path | None = None, *, root: Path | None = None) -> CheckReport:
    """Compare every replication that has `expected:` entries with its latest full record."""
    problems: list[str] = []
    warnings: list[str] = []
    for replication_id in list_replications(root):
        meta = load_metadata(replication_id, root)
        if not meta.expected:
            continue
        record = latest_record(replication_id, "full", results_dir)
        if record is None:
            warnings.append(f"{replication_id}: no full record yet — run `make replicate-{replication_id}`")
            continue
        reasons = stale_reasons(meta, record)
        if reasons:
            warnings.append(f"{replication_id}: latest full record is stale ({', '.join(reasons)}); re-run it")
        problems.extend(_check_one(meta, record))
    return CheckReport(problems, warnings)


def check_value_in_regression_band(
    meta: ReplicationMetadata, metric: str, setting: str, value: float
) -> tuple[bool, float, float]:
    """(ok, low, high) for one freshly computed value (e.g. a one-seed CI run) against `expected:`."""
    expected = meta.expected_for(metric, setting)
    if expected is None or expected.mean is None:
        known = ", ".join(f"{e.metric} [{e.setting}]" for e in meta.expected if e.mean is not None) or "none"
        raise MetadataError(f"{meta.path}: no expected mean for {metric} [{setting}] (expected entries: {known})")
    low, high = regression_band(expected.mean, expected.sd, expected.floor)
    return low <= value <= high, low, high


def check_regression_run(meta: ReplicationMetadata, profile: str, record: dict) -> list[str]:
    """Problems of a fresh run of `profile` (a record, e.g. from `run_replication(..., write=False)`) against
    the metadata's `regression:` bands of that profile: each metric's mean over the run's seeds must lie in
    the band's mean ± max(2·sd, floor). MetadataError when the metadata has no band for the profile."""
    bands = [entry for entry in meta.regression if entry.profile == profile]
    if not bands:
        raise MetadataError(f"{meta.path}: no regression bands for profile {profile!r}")
    problems = []
    for band in bands:
        label = f"{meta.id} {profile}: {band.metric} [{band.setting}]"
        summary = record["settings"].get(band.setting, {}).get("summary", {}).get(band.metric)
        if summary is None or summary["mean"] is None:
            problems.append(f"{label}: the run has no such value")
            continue
        low, high = regression_band(band.mean, band.sd, band.floor)
        if not low <= summary["mean"] <= high:
            problems.append(
                f"{label}: {summary['mean']:.4f} outside the band [{low:.4f}, {high:.4f}] of seeds {band.seeds} "
                f"({band.record})"
            )
    return problems
