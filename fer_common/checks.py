"""Regression checks: do the latest full records still give what a reviewed run gave (`expected:`)?

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
from .tables import generated_files


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
    problems.extend(check_generated_files(results_dir, root=root))
    return CheckReport(problems, warnings)


def check_generated_files(results_dir: Path | None = None, *, root: Path | None = None) -> list[str]:
    """Committed tables, replication pages and README status that differ from what the records give now."""
    problems = []
    for path, text in generated_files(results_dir, root=root).items():
        if not path.is_file():
            problems.append(f"{path}: missing; run `fer-replicate tables` (make all-tables) and commit it")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what the records give; run `fer-replicate tables` and commit it")
    return problems


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
