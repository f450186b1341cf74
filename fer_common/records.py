"""Result records: one JSON file per run under `results/<id>/`, written atomically, never overwritten.

File name: `<profile>-<UTC yyyymmddTHHMMSSZ>-<short commit>.json` (a `-2`, `-3`, ... suffix if that name
is taken). A record is published by `atomic.write_new_file` (a hard link of a complete, fsynced temporary
file), so a run interrupted half-way leaves no record; a leftover `.*.tmp` from a killed process is ignored
by the loaders.

Shape (schema_version 2; the pydantic models in `fer_common.schema` are the exact definition):
    {"schema_version", "replication", "profile", "data",
     "settings": {setting: {"seeds": {"<seed>": {"metrics", "report", "history", "scored_set", "denominators",
                                                  "notes", "details", "wall_time_s"}},
                            "summary": {metric: {"mean", "sd", "values", "n"}}}},
     "rows": [{"metric", "setting", "kind", "reported", "n_test", "where", "mean", "sd", "values", "ci",
               "band", "verdict", "position", "note"}],
     "missing": str | null,
     "provenance": {"git_commit", "git_dirty", "metadata_hash", "code_hash", "config_hash", "config",
                    "dataset_checksum", "seeds", "packages", "python", "platform", "cpu", "wall_time_s",
                    "created_utc", "command", "runtime" (speed switches; optional)}}
Schema version 1 (seed entries with `extras`) is no longer read: no committed record used it (the two
`results/bench` files of schema_version 1 are measurements).
Loaded records carry an extra `_path` key (where they were read from); it is never written.
Every `*.json` directly in `results/<id>/` is taken to be a record: keep other outputs (figures, predictions)
in sub-folders. `results/bench/`, `results/audits/` and `results/cross-dataset/` (NOT_RECORD_FOLDERS) hold
measurements and audits, not replication records.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from . import paths
from .atomic import write_new_file
from .errors import RecordError
from .metadata import FULL_PROFILE, ReplicationMetadata
from .rows import derive_rows, missing_text, summarize_seeds
from .schema import CREATED_FORMAT, SCHEMA_VERSION, Record, first_problem

# Folders of results/ that hold other outputs than records (the benchmark's measurements).
NOT_RECORD_FOLDERS = ("bench", "audits", "cross-dataset")
BENCH_FOLDER = "bench"  # measurements: benchmarks, parity checks, the detector benchmark, cost estimates


def build_record(
    meta: ReplicationMetadata,
    profile: str,
    data: str,
    settings: Mapping[str, Mapping],
    provenance: dict,
    *,
    missing: str | None = None,
) -> dict:
    """A complete, validated record.

    settings: {setting: {"seeds": {seed: seed entry}, "summary": {...}}}; a missing "summary" is computed
    from the seeds. Its rows are `rows.derive_rows` of the per-seed results (with the provenance's
    `run_notes`): the verdicts as the run prints them; the report derives its own. data "missing" (nothing
    could be run): `missing`, else the metadata's `missing` text, says what to supply.
    """
    meta.resolve(profile)  # MetadataError for a profile the metadata does not define
    unknown = sorted(set(settings) - set(meta.settings))
    if unknown:
        raise ValueError(f"{meta.id}: settings {unknown} are not declared in metadata (known: {list(meta.settings)})")
    complete = {}
    for name, entry in settings.items():
        by_seed = {str(seed): value for seed, value in entry.get("seeds", {}).items()}
        complete[name] = {"seeds": by_seed, "summary": entry.get("summary") or summarize_seeds(by_seed)}
    record = json_types(
        {
            "schema_version": SCHEMA_VERSION,
            "replication": meta.id,
            "profile": profile,
            "data": data,
            "settings": complete,
            "rows": derive_rows(meta, data, complete, provenance.get("run_notes", [])),
            "missing": missing_text(meta, missing) if data == "missing" else None,
            "provenance": provenance,
        }
    )
    validate_record(record)
    return record


def validate_record(record: Any) -> None:
    """Raise RecordError (naming the offending field) unless `record` follows the schema."""
    if not isinstance(record, dict):
        raise RecordError(f"record: must be an object, got {type(record).__name__}")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"schema_version: must be {SCHEMA_VERSION}, got {version!r}")
    try:
        Record.model_validate(record)
    except ValidationError as error:
        where, problem = first_problem(error, Record)
        raise RecordError(f"{where}: {problem}") from None


# --- files ------------------------------------------------------------------------------------------


def json_types(value: Any, finite_only: bool = True) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, tuples as lists, paths as strings; NaN/inf become
    null unless finite_only=False (a job file keeps NaN, so a reused job equals a fresh one)."""
    if isinstance(value, Mapping):
        return {str(k): json_types(v, finite_only) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_types(v, finite_only) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if finite_only and isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_new_json(folder: Path, stem: str, content: Mapping) -> Path:
    """Write `content` as `<folder>/<stem>.json` (`-2`, `-3`, ... if taken) atomically; never overwrites. Paths
    of this machine are written portably (`paths.portable`): the file is committed and read elsewhere."""
    text = json.dumps(paths.portable_json(json_types(content)), indent=1, allow_nan=False) + "\n"
    return write_new_file(folder, stem, ".json", text.encode("utf-8"))


def record_stem(record: Mapping) -> str:
    """`<profile>-<yyyymmddTHHMMSSZ>-<short commit>` for a record."""
    created = datetime.strptime(record["provenance"]["created_utc"], CREATED_FORMAT)
    commit = str(record["provenance"].get("git_commit") or "")
    short = commit[:7] if re.fullmatch(r"[0-9a-f]{7,40}", commit) else "nogit"
    return f"{record['profile']}-{created.strftime('%Y%m%dT%H%M%SZ')}-{short}"


def is_full_record(path: str | Path) -> bool:
    """Whether a record's file name (`record_stem`) says a full run made it."""
    return Path(path).name.startswith(f"{FULL_PROFILE}-")


def write_record(record: dict, results_dir: Path | None = None) -> Path:
    """Validate and write a record under `<results_dir>/<replication>/`; returns the new file's path."""
    record = {key: value for key, value in record.items() if key != "_path"}
    validate_record(record)
    folder = Path(results_dir or paths.results_dir()) / record["replication"]
    return write_new_json(folder, record_stem(record), record)


def load_record(path: Path | str) -> dict:
    """Read and validate one record; RecordError names the file. The result has `_path` set."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: cannot read record: {error}") from error
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not valid JSON ({error}); delete or restore this file") from error
    try:
        validate_record(record)
    except RecordError as error:
        raise RecordError(f"{path}: does not follow the record schema: {error}") from error
    record["_path"] = str(path)
    return record


def _sort_key(record: dict) -> tuple[str, int, str]:
    # Same second: `stem.json` was written before `stem-2.json`, which sorts before it by name alone.
    name = Path(record["_path"]).name
    return record["provenance"]["created_utc"], len(name), name


def load_records(results_dir: Path | None = None, replication: str | None = None) -> list[dict]:
    """All records (of one replication, if given), oldest first; temp files are skipped."""
    base = Path(results_dir or paths.results_dir())
    folders = (
        [base / replication]
        if replication
        else sorted(p for p in base.glob("*") if p.is_dir() and p.name not in NOT_RECORD_FOLDERS)
    )
    records = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            if not path.name.startswith("."):
                records.append(load_record(path))
    return sorted(records, key=_sort_key)


def latest_record(replication: str, profile: str = "full", results_dir: Path | None = None) -> dict | None:
    """The newest record of a replication and profile, or None."""
    matching = [r for r in load_records(results_dir, replication) if r["profile"] == profile]
    return matching[-1] if matching else None


# --- measurement files (beyond the records) -----------------------------------------------------------


def write_measurement(content: dict, prefix: str, output_dir: str | Path | None = None) -> Path:
    """Write a benchmark or parity result as `<prefix>-<UTC time>-<commit>.json` in results/bench (or
    `output_dir`); never overwrites. Returns its path."""
    folder = Path(output_dir) if output_dir else paths.results_dir() / BENCH_FOLDER
    return write_new_json(folder, bench_stem(content, prefix), content)


def bench_stem(record: dict, prefix: str = "bench") -> str:
    made_by = record["provenance"]
    created = made_by["created_utc"].replace("-", "").replace(":", "")
    commit = str(made_by.get("git_commit") or "")
    short = commit[:7] if len(commit) >= 7 and commit != "unknown" else "nogit"
    return f"{prefix}-{created}-{short}"
