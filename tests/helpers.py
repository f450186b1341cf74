"""Shared test helpers: where the real datasets are, and skipping cleanly when they are not."""

import os
import subprocess
from pathlib import Path

import pytest

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
