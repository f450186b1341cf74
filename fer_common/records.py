"""Result records: one JSON file per run under `results/<id>/`, written atomically, never overwritten.

File name: `<profile>-<UTC yyyymmddTHHMMSSZ>-<short commit>.json` (a `-2`, `-3`, ... suffix if that name
is taken). A record is only ever published by a hard link (or rename) of a complete, fsynced temporary file
in the same folder, so a run interrupted half-way leaves no record; a leftover `.*.tmp` from a killed process
is ignored by the loaders.

Shape (schema_version 1):
    {"schema_version", "replication", "profile", "data",
     "settings": {setting: {"seeds": {"<seed>": {"metrics", "report", "history", "extras"}},
                            "summary": {metric: {"mean", "sd", "values", "n"}}}},
     "rows": [{"metric", "setting", "kind", "reported", "n_test", "where", "mean", "sd", "values", "ci",
               "band", "verdict", "position", "note"}],
     "missing": str | null,
     "provenance": {"git_commit", "git_dirty", "metadata_hash", "code_hash", "config_hash", "config",
                    "dataset_checksum", "seeds", "packages", "python", "platform", "cpu", "wall_time_s",
                    "created_utc", "command", "runtime" (speed switches; optional)}}
Seed entries may carry more keys (e.g. the runner's `wall_time_s`).
Loaded records carry an extra `_path` key (where they were read from); it is never written.
Every `*.json` directly in `results/<id>/` is taken to be a record: keep other outputs (figures, predictions)
in sub-folders. `results/bench/` (NOT_RECORD_FOLDERS) holds the benchmark's measurements, not records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import paths
from .bands import BEYOND_PAPER, DATA_KINDS, NOT_RUN, VERDICTS, paper_band, verdict
from .errors import RecordError
from .metadata import ReplicationMetadata, canonical_json, code_hash, metadata_hash
from .metrics import summarize, wilson_interval

SCHEMA_VERSION = 1
RECORD_KEYS = (
    "schema_version",
    "replication",
    "profile",
    "data",
    "settings",
    "rows",
    "missing",
    "provenance",
)
ROW_KEYS = (
    "metric",
    "setting",
    "reported",
    "n_test",
    "where",
    "mean",
    "sd",
    "values",
    "ci",
    "band",
    "verdict",
    "note",
)
BAND_KEYS = ("low", "high", "half_width", "terms", "binding")
SUMMARY_KEYS = ("mean", "sd", "values", "n")
PROVENANCE_KEYS = (
    "git_commit",
    "git_dirty",
    "metadata_hash",
    "code_hash",
    "config_hash",
    "config",
    "dataset_checksum",
    "seeds",
    "packages",
    "python",
    "platform",
    "cpu",
    "wall_time_s",
    "created_utc",
    "command",
)
# Recorded package -> the distributions that provide it (TensorFlow ships as tensorflow or tensorflow-cpu).
PACKAGES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "pandas": ("pandas",),
    "matplotlib": ("matplotlib",),
    "opencv": ("opencv-python-headless", "opencv-python"),
    "pyyaml": ("PyYAML",),
}
# Folders of results/ that hold other outputs than records (the benchmark's measurements).
NOT_RECORD_FOLDERS = ("bench",)
# No leading dot, no slash: these become folder and file names under results/.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*(?:-[A-Za-z0-9_.]+)*$")
_CREATED = "%Y-%m-%dT%H:%M:%SZ"


# --- provenance -------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            # --no-optional-locks: `status` must not touch the index of a tree others are working in.
            ["git", "--no-optional-locks", "-C", str(paths.REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name, distributions in PACKAGES.items():
        versions[name] = None
        for distribution in distributions:
            with contextlib.suppress(importlib_metadata.PackageNotFoundError):
                versions[name] = importlib_metadata.version(distribution)
                break
    return versions


def _cpu_description() -> str:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model or platform.machine()} ({os.cpu_count()} logical cores)"


def utc_now() -> str:
    return datetime.now(UTC).strftime(_CREATED)


def config_hash(config: Mapping) -> str:
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def collect_provenance(
    meta: ReplicationMetadata,
    config: Mapping,
    seeds: list[int],
    dataset_checksum: str | None,
    wall_time_s: float,
    *,
    options: object | None = None,
    command: str | None = None,
) -> dict:
    """Everything needed to tell where a record came from and whether it is still current.

    options: the run's speed switches (a dataclass such as `train.RuntimeOptions`), kept as `runtime`.
    """
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    root = meta.folder.parent if meta.folder else None
    return json_types(
        {
            "git_commit": commit or "unknown",
            "git_dirty": None if status is None else bool(status),
            "metadata_hash": metadata_hash(meta),
            "code_hash": code_hash(meta.id, root),
            "config_hash": config_hash(config),
            "config": dict(config),
            "dataset_checksum": dataset_checksum,
            "seeds": list(seeds),
            "packages": _package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu": _cpu_description(),
            "wall_time_s": float(wall_time_s),
            "created_utc": utc_now(),
            "command": command or " ".join(shlex.quote(a) for a in sys.argv),
            "runtime": asdict(options) if is_dataclass(options) else options,
        }
    )


def machine_provenance(command: str | None = None) -> dict:
    """Where a measurement (not a replication) came from: code version, packages and machine.

    For outputs that are not records, e.g. the benchmark's (see `fer_common.bench`)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return json_types(
        {
            "git_commit": commit or "unknown",
            "git_dirty": None if status is None else bool(status),
            "packages": _package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu": _cpu_description(),
            "created_utc": utc_now(),
            "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        }
    )


def stale_reasons(meta: ReplicationMetadata, record: Mapping) -> list[str]:
    """Why a record no longer matches the current metadata or code (empty list = current)."""
    provenance = record["provenance"]
    reasons = []
    if provenance.get("metadata_hash") != metadata_hash(meta):
        reasons.append("metadata changed")
    root = meta.folder.parent if meta.folder else None
    if provenance.get("code_hash") != code_hash(meta.id, root):
        reasons.append("code changed")
    return reasons


# --- settings and rows ------------------------------------------------------------------------------


def seed_result(
    metrics: Mapping[str, float | None],
    report: dict | None = None,
    history: Mapping[str, list] | None = None,
    extras: dict | None = None,
) -> dict:
    """One seed's entry in a setting: flat metrics, full report, training history, anything else.

    `extras` may hold `denominators` {metric: n} for a replication's own proportion metrics, so their
    rows get a confidence interval (built-in keys take n from the report).
    """
    return json_types(
        {
            "metrics": dict(metrics),
            "report": report or {},
            "history": dict(history or {}),
            "extras": extras or {},
        }
    )


def summarize_seeds(seeds: Mapping[str, Mapping]) -> dict[str, dict]:
    """Per-metric summary over seeds (values in seed order; a metric a seed lacks counts as None)."""
    keys: list[str] = []
    for entry in seeds.values():
        keys.extend(k for k in entry["metrics"] if k not in keys)
    return {key: summarize([entry["metrics"].get(key) for entry in seeds.values()]) for key in keys}


def setting_result(seeds: Mapping[int | str, Mapping]) -> dict:
    """A setting's record entry from {seed: seed_result(...)}: the seeds and their summary."""
    by_seed = {str(seed): entry for seed, entry in seeds.items()}
    return {"seeds": by_seed, "summary": summarize_seeds(by_seed)}


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


def _missing_text(meta: ReplicationMetadata, note: str | None) -> str:
    return note or meta.missing or f"dataset {meta.dataset.name!r} not available here"


def _row(metric: str, setting: str, kind: str, summary: dict | None, seeds: Mapping | None) -> dict:
    """The observed part of a row: mean, sd, per-seed values and (for proportions) the CI."""
    has_ci = summary is not None and kind == "proportion" and seeds is not None
    return {
        "metric": metric,
        "setting": setting,
        "kind": kind,
        "mean": summary["mean"] if summary else None,
        "sd": summary["sd"] if summary else None,
        "values": summary["values"] if summary else [],
        "ci": seed_wilson_ci(metric, seeds) if has_ci else None,
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

    settings_summaries: {setting: {metric: summarize(...)}}. seeds: {setting: {seed: seed entry}}, the
    per-seed results the CI of a proportion is computed from (see `seed_wilson_ci`); without it `ci` is
    None and `build_record` fills it in. With data "missing" every row has mean None, verdict "not run"
    and the `missing` text as note; paper rows still carry their band (no seeds term), so a reader sees
    what a run would have to hit.
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
            return _missing_text(meta, missing_note)
        return f"no value for {metric!r} in setting {setting!r} in this run"

    rows = []
    for figure in meta.reported:
        summary = observed(figure.metric, figure.setting)
        row = _row(figure.metric, figure.setting, figure.kind, summary, seeds.get(figure.setting))
        band = paper_band(figure.value, figure.n_test, row["sd"], kind=figure.kind, floor=figure.floor)
        row.update(
            reported=figure.value,
            n_test=figure.n_test,
            where=figure.where,
            band=band.to_dict(),
            verdict=verdict(row["mean"], band, data),
            position=band.position(row["mean"]) if summary else None,
            note=note(figure.note, summary, figure.metric, figure.setting),
        )
        rows.append(row)
    for extra in meta.beyond_paper:
        summary = observed(extra.metric, extra.setting)
        row = _row(extra.metric, extra.setting, extra.kind, summary, seeds.get(extra.setting))
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


def build_record(
    meta: ReplicationMetadata,
    profile: str,
    data: str,
    settings: Mapping[str, Mapping],
    rows: list[dict] | None,
    provenance: dict,
    *,
    missing: str | None = None,
) -> dict:
    """A complete, validated record.

    settings: {setting: {"seeds": {seed: seed entry}, "summary": {...}}}; a missing "summary" is computed
    from the seeds. rows: from `build_rows`, or None to build them here; rows without a CI get the one their
    per-seed results give. data "missing" (nothing could be run): `missing`, else the metadata's
    `missing` text, says what to supply.
    """
    meta.resolve(profile)  # MetadataError for a profile the metadata does not define
    unknown = sorted(set(settings) - set(meta.settings))
    if unknown:
        raise ValueError(f"{meta.id}: settings {unknown} are not declared in metadata (known: {list(meta.settings)})")
    complete = {}
    for name, entry in settings.items():
        by_seed = {str(seed): value for seed, value in entry.get("seeds", {}).items()}
        complete[name] = {"seeds": by_seed, "summary": entry.get("summary") or summarize_seeds(by_seed)}
    seeds = {name: entry["seeds"] for name, entry in complete.items()}
    missing_text = _missing_text(meta, missing) if data == "missing" else None
    if rows is None:
        summaries = {name: entry["summary"] for name, entry in complete.items()}
        rows = build_rows(meta, summaries, data, seeds=seeds, missing_note=missing_text)
    else:
        rows = [dict(row) for row in rows]
        for row in rows:
            if row.get("ci") is None and row.get("mean") is not None and row.get("kind") == "proportion":
                row["ci"] = seed_wilson_ci(row["metric"], seeds.get(row["setting"], {}))
    record = json_types(
        {
            "schema_version": SCHEMA_VERSION,
            "replication": meta.id,
            "profile": profile,
            "data": data,
            "settings": complete,
            "rows": rows,
            "missing": missing_text,
            "provenance": provenance,
        }
    )
    validate_record(record)
    return record


# --- schema -----------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require(condition: bool, where: str, problem: str) -> None:
    if not condition:
        raise RecordError(f"{where}: {problem}")


def _check_keys(value: Any, keys: tuple[str, ...], where: str) -> None:
    _require(isinstance(value, dict), where, f"must be an object, got {type(value).__name__}")
    missing = [key for key in keys if key not in value]
    _require(not missing, where, f"missing field(s) {missing}")


def _check_number_or_none(value: Any, where: str) -> None:
    _require(value is None or _is_number(value), where, f"must be a number or null, got {value!r}")


def validate_record(record: Any) -> None:
    """Raise RecordError (naming the offending field) unless `record` follows schema_version 1."""
    _check_keys(record, RECORD_KEYS, "record")
    _require(
        record["schema_version"] == SCHEMA_VERSION,
        "schema_version",
        f"must be {SCHEMA_VERSION}, got {record['schema_version']!r}",
    )
    for key in ("replication", "profile"):
        _require(
            isinstance(record[key], str) and bool(_SAFE_NAME.match(record[key])),
            key,
            f"must be a simple name (letters, digits, _ . -), got {record[key]!r}",
        )
    _require(record["data"] in DATA_KINDS, "data", f"must be one of {DATA_KINDS}, got {record['data']!r}")
    _require(record["missing"] is None or isinstance(record["missing"], str), "missing", "must be text or null")
    _require(
        record["data"] != "missing" or isinstance(record["missing"], str),
        "missing",
        "must say what is missing when data is 'missing'",
    )

    _require(isinstance(record["settings"], dict), "settings", "must be an object")
    for name, entry in record["settings"].items():
        where = f"settings.{name}"
        _check_keys(entry, ("seeds", "summary"), where)
        _require(isinstance(entry["seeds"], dict), f"{where}.seeds", "must be an object")
        for seed, seed_entry in entry["seeds"].items():
            seed_where = f"{where}.seeds.{seed}"
            _check_keys(seed_entry, ("metrics",), seed_where)
            _require(isinstance(seed_entry["metrics"], dict), f"{seed_where}.metrics", "must be an object")
            for metric, value in seed_entry["metrics"].items():
                _check_number_or_none(value, f"{seed_where}.metrics.{metric}")
            for optional in ("report", "history", "extras"):
                _require(
                    isinstance(seed_entry.get(optional, {}), dict),
                    f"{seed_where}.{optional}",
                    "must be an object",
                )
        _require(isinstance(entry["summary"], dict), f"{where}.summary", "must be an object")
        for metric, summary in entry["summary"].items():
            summary_where = f"{where}.summary.{metric}"
            _check_keys(summary, SUMMARY_KEYS, summary_where)
            _check_number_or_none(summary["mean"], f"{summary_where}.mean")
            _check_number_or_none(summary["sd"], f"{summary_where}.sd")
            _require(isinstance(summary["values"], list), f"{summary_where}.values", "must be a list")

    _require(isinstance(record["rows"], list), "rows", "must be a list")
    for i, row in enumerate(record["rows"]):
        where = f"rows[{i}]"
        _check_keys(row, ROW_KEYS, where)
        for key in ("metric", "setting"):
            _require(isinstance(row[key], str) and bool(row[key]), f"{where}.{key}", "must be non-empty text")
        _require(
            row["verdict"] in VERDICTS,
            f"{where}.verdict",
            f"must be one of {VERDICTS}, got {row['verdict']!r}",
        )
        for key in ("reported", "mean", "sd"):
            _check_number_or_none(row[key], f"{where}.{key}")
        _require(isinstance(row["values"], list), f"{where}.values", "must be a list")
        ci = row["ci"]
        _require(
            ci is None or (isinstance(ci, list) and len(ci) == 2 and all(map(_is_number, ci))),
            f"{where}.ci",
            f"must be [low, high] or null, got {ci!r}",
        )
        if row["band"] is not None:
            _check_keys(row["band"], BAND_KEYS, f"{where}.band")
            _require(
                _is_number(row["band"]["low"]) and _is_number(row["band"]["high"]),
                f"{where}.band",
                "low and high must be numbers",
            )
        _require(
            row["verdict"] == BEYOND_PAPER or row["verdict"] == NOT_RUN or row["band"] is not None,
            f"{where}.band",
            "a paper row needs its band",
        )

    _check_keys(record["provenance"], PROVENANCE_KEYS, "provenance")
    created = record["provenance"]["created_utc"]
    try:
        datetime.strptime(created, _CREATED)
    except (TypeError, ValueError):
        raise RecordError(f"provenance.created_utc: must look like 2024-05-01T12:00:00Z, got {created!r}") from None


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


def _write_temp(folder: Path, prefix: str, text: str) -> Path:
    """A complete, fsynced temporary file in `folder` (same file system, so publishing it is atomic)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{prefix}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(name, 0o644)  # mkstemp makes 0600 files; records and tables are meant to be shared
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def atomic_write_text(path: Path, text: str) -> Path:
    """Replace `path` with `text` atomically (readers see the old or the new file, never half of one)."""
    path = Path(path)
    temp = _write_temp(path.parent, path.name, text)
    try:
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def _publish_new(temp: Path, folder: Path, stem: str) -> Path:
    """Give `temp` the first free name `stem.json`, `stem-2.json`, ...; never replaces an existing file."""
    for attempt in range(1, 1000):
        target = folder / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
        try:
            os.link(temp, target)  # fails if target exists: no check-then-write race
            return target
        except FileExistsError:
            continue
        except OSError:
            # File systems without hard links: the small race of exists()+replace is the best we can do.
            if target.exists():
                continue
            os.replace(temp, target)
            return target
    raise RecordError(f"{folder}: could not find a free name for {stem}.json")


def write_new_json(folder: Path, stem: str, content: Mapping) -> Path:
    """Write `content` as `<folder>/<stem>.json` (`-2`, `-3`, ... if taken) atomically; never overwrites."""
    folder = Path(folder)
    text = json.dumps(json_types(content), indent=1, allow_nan=False) + "\n"
    temp = _write_temp(folder, stem, text)
    try:
        return _publish_new(temp, folder, stem)
    finally:
        temp.unlink(missing_ok=True)


def record_stem(record: Mapping) -> str:
    """`<profile>-<yyyymmddTHHMMSSZ>-<short commit>` for a record."""
    created = datetime.strptime(record["provenance"]["created_utc"], _CREATED)
    commit = str(record["provenance"].get("git_commit") or "")
    short = commit[:7] if re.fullmatch(r"[0-9a-f]{7,40}", commit) else "nogit"
    return f"{record['profile']}-{created.strftime('%Y%m%dT%H%M%SZ')}-{short}"


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
