"""Where data, caches and results live; all overridable by environment variables."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Root folder holding one sub-folder per dataset (`FER_DATA_DIR`, default `./data`)."""
    return Path(os.environ.get("FER_DATA_DIR", "data")).expanduser().resolve()


def cache_dir() -> Path:
    """Decoded-array cache (`FER_CACHE_DIR`, default `~/.cache/fer-replicate`)."""
    default = Path.home() / ".cache" / "fer-replicate"
    return Path(os.environ.get("FER_CACHE_DIR", default)).expanduser().resolve()


def results_dir() -> Path:
    """Result records and tables (`FER_RESULTS_DIR`, default `results/` in the repository)."""
    return Path(os.environ.get("FER_RESULTS_DIR", REPO_ROOT / "results")).expanduser().resolve()


def weights_dir() -> Path:
    """Pretrained weight files (`FER_WEIGHTS_DIR`, default Keras' own cache `~/.keras/models`)."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return Path(os.environ.get("FER_WEIGHTS_DIR", keras_home / "models")).expanduser().resolve()
