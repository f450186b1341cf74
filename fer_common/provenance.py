"""Where an output came from: the machine part (code version, packages, machine) for any measurement, and
the replication part (metadata, code, config and data hashes, seeds) that a record adds on top of it."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

from . import paths
from .metadata import ReplicationMetadata, canonical_json, code_hash, metadata_hash
from .schema import CREATED_FORMAT

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
    return datetime.now(UTC).strftime(CREATED_FORMAT)


def config_hash(config: Mapping) -> str:
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def machine_provenance(command: str | None = None) -> dict:
    """Where any measurement came from: code version, packages and machine (e.g. the benchmark's)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": None if status is None else bool(status),
        "packages": _package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_description(),
        "created_utc": utc_now(),
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
    }


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
    """A record's provenance: the machine part plus what tells whether the record is still current.

    options: the run's speed switches (a dataclass such as `train.RuntimeOptions`), kept as `runtime`.
    """
    root = meta.folder.parent if meta.folder else None
    return {
        **machine_provenance(command),
        "metadata_hash": metadata_hash(meta),
        "code_hash": code_hash(meta.id, root),
        "config_hash": config_hash(config),
        "config": copy.deepcopy(dict(config)),
        "dataset_checksum": dataset_checksum,
        "seeds": list(seeds),
        "wall_time_s": float(wall_time_s),
        "runtime": asdict(options) if is_dataclass(options) else options,
    }


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
