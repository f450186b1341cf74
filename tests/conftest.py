"""Test-session defaults: real data from the shared folder when FER_DATA_DIR is unset; records and
models never land in the repository's results/ or the user's model folder."""

import os
import shutil
from pathlib import Path

import pytest

from .helpers import REPO_ROOT, git, shared_data_dir

os.environ.setdefault("FER_DATA_DIR", str(shared_data_dir()))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `fer-replicate` runs (fer_common/cli.py)


@pytest.fixture(autouse=True, scope="session")
def _results_outside_the_repository(tmp_path_factory):
    if "FER_RESULTS_DIR" not in os.environ:
        os.environ["FER_RESULTS_DIR"] = str(tmp_path_factory.mktemp("results"))
    if "FER_MODELS_DIR" not in os.environ:
        os.environ["FER_MODELS_DIR"] = str(tmp_path_factory.mktemp("models"))
    yield


@pytest.fixture
def repository(tmp_path) -> Path:
    """A committed copy of the library's tracked files with the sixth replication under replications/: the
    runner and the checks read its files and git state (`repo_root`), so a test edits "the repository" there."""
    from fer_common.provenance import CODE_MOVES_FILE

    copy = tmp_path / "repository"
    for name in git(REPO_ROOT, "ls-files", "fer_common", "replications/__init__.py").splitlines():
        if name == CODE_MOVES_FILE:  # moves from this repository's history, which the copy does not have
            continue
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, copy / name)
    shutil.copytree(
        REPO_ROOT / "tests" / "sixth_replication",
        copy / "replications" / "sixth_replication",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    git(copy, "init", "-q")
    git(copy, "add", ".")
    git(copy, "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "copy")
    return copy
