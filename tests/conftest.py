"""Test-session defaults: real data from the shared folder when FER_DATA_DIR is unset; records and
models never land in the repository's results/ or the user's model folder."""

import os

import pytest

from .helpers import shared_data_dir

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
