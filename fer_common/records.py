"""Result records: one JSON file per run under `results/<id>/`, written atomically, never overwritten.

File name: `<profile>-<UTC yyyymmddTHHMMSSZ>-<short commit>.json` (a `-2`, `-3`, ... suffix if that name
is taken). A record is published by `atomic.write_new_file` (a hard link of a complete, fsynced temporary
file), so a run interrupted half-way leaves no record; a leftover `.*.tmp` from a killed process is ignored
by the loaders.

Shape (schema_version 2; the pydantic models in `fer_common.schema` are the exact definition):
    {"schema_version", "replication", "profile", "data",
     "settings": {setting: {"seeds": {"<seed>": {"metrics", "report", "history", "scored_set", "denominators",
                                                  "notes", "details", "wall_time_s", "predictions"}},
                            "summary": {metric: {"mean", "sd", "values", "n"}}}},
     "rows": [{"metric", "setting", "kind", "mean", "sd", "values", "ci", "chance", "majority", "reported",
               "claim", "reading", "n_test", "where", "band", "verdict", "position", "note", "interval",
               "margin", "judgement"}],
     "missing": str | null,
     "provenance": {"git_commit", "git_dirty", "packages", "python", "platform", "cpu", "created_utc",
                    "command", "metadata_hash", "code_hash", "config_hash", "config", "dataset_checksum", "seeds",
                    "wall_time_s", ... (optional keys later runs added: `schema.Provenance`)}}
In memory a record is a `schema.Record` (frozen; derived values are `model_copy`s); a loaded record's `path`
says where it was read from and is never written. A record is written with the keys it holds, in the models'
order: one loaded and written again gives the same bytes. Schema version 1 (seed entries with `extras`) is no
longer read: no committed record used it (the two `results/bench` files of schema_version 1 are measurements).
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
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from . import paths
from .atomic import write_new_file
from .errors import RecordError
from .metadata import FULL_PROFILE, ReplicationMetadata
from .rows import derive_rows, missing_text, summarize_seeds
from .schema import CREATED_FORMAT, SCHEMA_VERSION, Provenance, Record, SeedEntry, Setting, first_problem

# Folders of results/ that hold other outputs than records (the benchmark's measurements).
NOT_RECORD_FOLDERS = ("bench", "audits", "cross-dataset")
BENCH_FOLDER = "bench"  # measurements: benchmarks, parity checks, the detector benchmark, cost estimates


def build_record(
    meta: ReplicationMetadata,
    profile: str,
    data: str,
    seeds: Mapping[str, Mapping[str | int, SeedEntry]],
    provenance: Mapping[str, Any],
    *,
    missing: str | None = None,
) -> Record:
    """A complete, validated record.

    seeds: {setting: {seed: entry}}; each setting's summary is computed from its seeds. provenance: as
    `provenance.collect_provenance` gives it and the runner completes it. Its rows are `rows.derive_rows` of
    the per-seed results (with the provenance's `run_notes`): the verdicts as the run prints them; the report
    derives its own. data "missing" (nothing could be run): `missing`, else the metadata's `missing` text,
    says what to supply.
    """
    meta.resolve(profile)  # MetadataError for a profile the metadata does not define
    unknown = sorted(set(seeds) - set(meta.settings))
    if unknown:
        raise ValueError(f"{meta.id}: settings {unknown} are not declared in metadata (known: {list(meta.settings)})")
    settings = {}
    for name, by_seed in seeds.items():
        entries = {str(seed): entry for seed, entry in by_seed.items()}
        settings[name] = Setting(seeds=entries, summary=summarize_seeds(entries))
    made_by = _validated(Provenance, json_types(provenance))
    return _validated(
        Record,
        {
            "schema_version": SCHEMA_VERSION,
            "replication": meta.id,
            "profile": profile,
            "data": data,
            "settings": settings,
            "rows": derive_rows(meta, data, settings, made_by.run_notes or []),
            "missing": missing_text(meta, missing) if data == "missing" else None,
            "provenance": made_by,
        },
    )


Model = TypeVar("Model", bound=BaseModel)


def _validated(model: type[Model], content: Any) -> Model:
    """`model` of `content`, or RecordError naming the offending field."""
    try:
        return model.model_validate(content)
    except ValidationError as error:
        where, problem = first_problem(error, model)
        raise RecordError(f"{where}: {problem}") from None


def validate_record(record: Any) -> Record:
    """The record of parsed JSON, or RecordError (naming the offending field) unless it follows the schema."""
    if not isinstance(record, dict):
        raise RecordError(f"record: must be an object, got {type(record).__name__}")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"schema_version: must be {SCHEMA_VERSION}, got {version!r}")
    return _validated(Record, record)


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


def record_stem(record: Record) -> str:
    """`<profile>-<yyyymmddTHHMMSSZ>-<short commit>` for a record."""
    created = datetime.strptime(record.provenance.created_utc, CREATED_FORMAT)
    commit = record.provenance.git_commit
    short = commit[:7] if re.fullmatch(r"[0-9a-f]{7,40}", commit) else "nogit"
    return f"{record.profile}-{created.strftime('%Y%m%dT%H%M%SZ')}-{short}"


def is_full_record(path: str | Path) -> bool:
    """Whether a record's file name (`record_stem`) says a full run made it."""
    return Path(path).name.startswith(f"{FULL_PROFILE}-")


def record_name(record: Record | None) -> str:
    """The name of the file a loaded record was read from ("" for none)."""
    return record.path.name if record is not None and record.path is not None else ""


def record_content(record: Record) -> dict[str, Any]:
    """A record as its file holds it: the keys it was made or loaded with (an older record lacks the optional
    ones later runs added), without `path`."""
    return record.model_dump(exclude_unset=True)


def write_record(record: Record, results_dir: Path | None = None) -> Path:
    """Validate and write a record under `<results_dir>/<replication>/`; returns the new file's path."""
    content = record_content(record)
    validate_record(json_types(content))  # `model_copy` does not validate what it changes
    folder = Path(results_dir or paths.results_dir()) / record.replication
    return write_new_json(folder, record_stem(record), content)


def load_record(path: Path | str) -> Record:
    """Read and validate one record; RecordError names the file. The record's `path` is set."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: cannot read record: {error}") from error
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not valid JSON ({error}); delete or restore this file") from error
    try:
        record = validate_record(content)
    except RecordError as error:
        raise RecordError(f"{path}: does not follow the record schema: {error}") from error
    return record.model_copy(update={"path": path})


def _sort_key(record: Record) -> tuple[str, int, str]:
    # Same second: `stem.json` was written before `stem-2.json`, which sorts before it by name alone.
    name = record.path.name if record.path else ""
    return record.provenance.created_utc, len(name), name


def load_records(results_dir: Path | None = None, replication: str | None = None) -> list[Record]:
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


def latest_record(replication: str, profile: str = "full", results_dir: Path | None = None) -> Record | None:
    """The newest record of a replication and profile, or None."""
    matching = [r for r in load_records(results_dir, replication) if r.profile == profile]
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
