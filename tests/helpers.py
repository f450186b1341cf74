"""Shared test helpers: where the real datasets are, and skipping cleanly when they are not."""

import os
import subprocess
from pathlib import Path

import pytest

from fer_common.schema import JobOrigin, Provenance, Record, SeedEntry, Setting

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    return Path(os.environ.get("FER_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")).resolve()


def requires_dataset(name: str):
    """Mark a test as needing one real dataset; it skips, saying so, when FER_DATA_DIR lacks it."""
    present = (shared_data_dir() / name).is_dir()
    return pytest.mark.skipif(
        not present, reason=f"needs the real {name} dataset in FER_DATA_DIR ({shared_data_dir()})"
    )


def git(repository: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repository), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def seed_entry(**fields) -> SeedEntry:
    """A record's seed entry with only the fields a test gives (no report; empty history, notes and details)."""
    empty = {"metrics": {}, "report": None, "history": {}, "scored_set": "test split", "denominators": {}}
    return SeedEntry(**{**empty, "notes": [], "details": {}, **fields})


def with_provenance(record: Record, **changes) -> Record:
    """`record` with `changes` to its provenance, as another run would have recorded it."""
    return record.model_copy(update={"provenance": record.provenance.model_copy(update=changes)})


# The provenance fields a record needs, with stand-in values (no git, no machine): `made_record`'s.
STAND_IN_PROVENANCE = {
    "git_commit": "0" * 40,
    "git_dirty": False,
    "packages": {},
    "python": "3.11",
    "platform": "test",
    "cpu": "test CPU",
    "created_utc": "2026-01-01T00:00:00Z",
    "command": "test",
    "metadata_hash": "m",
    "code_hash": "c",
    "config_hash": "h",
    "config": {},
    "dataset_checksum": None,
    "seeds": [0],
    "wall_time_s": 0.0,
}


def made_record(
    replication: str = "toy", profile: str = "full", settings: dict[str, Setting] | None = None, **provenance
) -> Record:
    """A valid record without rows: its `settings` and the `provenance` fields a test reads, the rest stand-ins."""
    return Record(
        schema_version=2,
        replication=replication,
        profile=profile,
        data="real",
        settings=settings or {},
        rows=[],
        missing=None,
        provenance=Provenance.model_validate({**STAND_IN_PROVENANCE, **provenance}),
    )


def job_origin(setting: str, seed: int, file: str) -> JobOrigin:
    """A record's line for one job result file, made on a stand-in machine."""
    return JobOrigin(
        setting=setting,
        seed=seed,
        file=file,
        git_commit="0" * 40,
        cpu="test CPU",
        cpu_kind="avx2",
        policy="float32",
        threads=1,
        wall_time_s=1.0,
        finished_utc="2026-01-01T00:00:00Z",
    )
