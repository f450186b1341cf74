"""Where a study's measurement goes: `results/bench/<name>-<created UTC>-<short commit>` (.json, and any data
file beside it under the same stem), never overwriting an earlier one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fer_common import paths
from fer_common.records import write_new_json


def measurement_stem(name: str, record: Mapping) -> str:
    """`<name>-<yyyymmddTHHMMSSZ>-<short commit>` from the record's provenance (`machine_provenance`)."""
    created = record["provenance"]["created_utc"].replace("-", "").replace(":", "")
    return f"{name}-{created}-{record['provenance']['git_commit'][:7]}"


def write_measurement(name: str, record: Mapping, folder: Path | None = None) -> Path:
    """Write the record as `<folder or results/bench>/<measurement_stem>.json`; returns its path."""
    return write_new_json(folder or paths.results_dir() / "bench", measurement_stem(name, record), record)
