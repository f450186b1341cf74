"""Checks of the committed records: can each runnable replication's latest full record be trusted, does it
still give what a reviewed run gave (`expected:`)? (Whether a fresh run of a short profile such as `ci` lands
in its `regression:` bands is `fer_common.regression`'s.)

Problems (failures): a record does not follow the schema; the latest full record was made from a dirty tree;
a verdict changed, a mean left its expected band (our mean ± max(2·sd, floor)) or an expected row is absent.
Warnings: a runnable replication (metadata `dataset.data` not `missing`) that has no full record yet, or a
record that is stale because the metadata or the code changed since it was made (both problems with
`strict`, as `fer-replicate check --strict` runs before a release), or a replication without data that has no
record. A full record names a clean commit of main, so a replication's code lands before its first full run
can exist: until then the report shows it as not run, with the command that runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .bands import regression_band
from .errors import MetadataError, RecordError
from .metadata import ReplicationMetadata, list_replications, load_metadata, recipes_dir
from .provenance import code_move_problems, stale_reasons
from .records import latest_record, record_name
from .rows import record_rows
from .schema import Record, Row
from .tables import generated_files


class CheckReport(NamedTuple):
    problems: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_one(meta: ReplicationMetadata, record: Record) -> list[str]:
    problems = []
    # A metric may have several paper rows (a value and a threshold claim, two readings): `expected`
    # describes the first, the one listed first in the metadata.
    rows: dict[tuple[str, str], Row] = {}
    for row in record_rows(meta, record):
        rows.setdefault((row.metric, row.setting), row)
    where = _record_label(meta, record)
    for expected in meta.expected:
        label = f"{where}: {expected.metric} [{expected.setting}]"
        row = rows.get((expected.metric, expected.setting))
        if row is None:
            problems.append(f"{label}: no such row in the record")
            continue
        if row.verdict != expected.verdict:
            problems.append(f"{label}: verdict {row.verdict!r}, expected {expected.verdict!r}")
        if expected.mean is None:
            continue
        if row.mean is None:
            problems.append(f"{label}: no mean in the record, expected {expected.mean:.4f}")
            continue
        low, high = regression_band(expected.mean, expected.sd, expected.floor)
        if not low <= row.mean <= high:
            problems.append(f"{label}: mean {row.mean:.4f} outside regression band [{low:.4f}, {high:.4f}]")
    return problems


def check_records(
    results_dir: Path | None = None,
    *,
    root: Path | None = None,
    repo_root: Path | None = None,
    strict: bool = False,
) -> CheckReport:
    """Check the latest full record of every replication and of every recipe beside them (our own models, whose
    records the shipped default comes from): present, valid, clean, current and as `expected:` says.

    root: the replications folder; repo_root: the repository whose code the records are compared with.
    strict: stale records are problems, not warnings."""
    problems: list[str] = []
    warnings: list[str] = []
    recipes = recipes_dir(root)
    entries = [load_metadata(name, root) for name in list_replications(root)]
    entries += [load_metadata(name, recipes) for name in list_replications(recipes)]
    for meta in entries:
        report = check_replication(meta, results_dir, repo_root=repo_root, strict=strict)
        problems.extend(report.problems)
        warnings.extend(report.warnings)
    move_problems, move_warnings = code_move_problems(repo_root)
    problems.extend(move_problems + check_generated_files(results_dir, root=root))
    return CheckReport(problems, warnings + move_warnings)


def check_replication(
    meta: ReplicationMetadata, results_dir: Path | None = None, *, repo_root: Path | None = None, strict: bool = False
) -> CheckReport:
    """One replication's latest full record (see `check_records`)."""
    try:
        record = latest_record(meta.id, "full", results_dir)
    except RecordError as error:  # it names the file and the field
        return CheckReport([f"{meta.id}: {error}"], [])
    if record is None:
        return _no_full_record(meta, strict)
    problems = _dirty_record(meta, record)
    stale = _stale_record(meta, record, repo_root)
    problems.extend(_check_one(meta, record))
    return CheckReport(problems + stale, []) if strict else CheckReport(problems, stale)


def _no_full_record(meta: ReplicationMetadata, strict: bool) -> CheckReport:
    message = f"{meta.id}: no full record yet — run `make replicate-{meta.id}`"
    if meta.dataset.data == "missing":  # nothing can be run here: its `not run` record is welcome, not required
        return CheckReport([], [message] if meta.expected else [])
    return CheckReport([message], []) if strict else CheckReport([], [message])


def _record_label(meta: ReplicationMetadata, record: Record) -> str:
    return f"{meta.id} ({record_name(record)})"


def _dirty_record(meta: ReplicationMetadata, record: Record) -> list[str]:
    """A record made from uncommitted code names no commit that rebuilds it."""
    if not record.provenance.git_dirty:
        return []
    commit = record.provenance.git_commit[:7]
    return [
        f"{_record_label(meta, record)}: made from a dirty tree (uncommitted changes on {commit}); "
        f"re-run `make replicate-{meta.id}` from a clean commit"
    ]


def _stale_record(meta: ReplicationMetadata, record: Record, repo_root: Path | None) -> list[str]:
    reasons = stale_reasons(meta, record, repo_root)
    if not reasons:
        return []
    return [f"{_record_label(meta, record)}: stale ({'; '.join(reasons)}); re-run `make replicate-{meta.id}`"]


def check_generated_files(results_dir: Path | None = None, *, root: Path | None = None) -> list[str]:
    """Committed tables, replication pages and README status that differ from what the records give now."""
    problems = []
    try:
        expected_files = generated_files(results_dir, root=root)
    except RecordError as error:  # reported by the record checks too; the tables cannot be rebuilt from it
        return [f"tables not regenerated: {error}"]
    for path, text in expected_files.items():
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
