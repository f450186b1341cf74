"""Where data, caches and results live; all overridable by environment variables."""

import os
import re
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


def portable(text: str) -> str:
    """`text` with this machine's folders written so that they mean something on another: the repository
    as relative paths, the data, cache and weights folders as their variables, the home folder as `~`.
    Committed files (records, shipped models' metadata) must not name one machine's layout."""
    return _portable(text, _roots())


def _roots() -> list[tuple[str, str]]:
    """(folder, its portable name), longest first, so that a folder inside another takes its own name."""
    roots = [
        (REPO_ROOT.resolve(), ""),
        (data_dir(), "$FER_DATA_DIR"),
        (cache_dir(), "$FER_CACHE_DIR"),
        (weights_dir(), "$FER_WEIGHTS_DIR"),
        (Path.home().resolve(), "~"),
    ]
    named = [(str(root), name) for root, name in roots if str(root) not in ("", "/")]
    return sorted(named, key=lambda pair: len(pair[0]), reverse=True)


def _portable(text: str, roots: list[tuple[str, str]]) -> str:
    for prefix, name in roots:
        text = _replace_root(text, prefix, name)
    return text


def _replace_root(text: str, prefix: str, name: str) -> str:
    """`prefix/x` -> `name/x` (`x` for the repository), and `prefix` alone -> `name` (`.`)."""
    inside, alone = (f"{name}/", name) if name else ("", ".")
    return re.sub(re.escape(prefix) + r"(/|(?![\w.-]))", lambda match: inside if match.group(1) else alone, text)


def portable_json(value: object) -> object:
    """`portable` applied to every string (and key) of a JSON-like value; the folders are read once."""
    roots = _roots()

    def convert(item: object) -> object:
        if isinstance(item, dict):
            return {_portable(str(key), roots): convert(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [convert(inner) for inner in item]
        return _portable(item, roots) if isinstance(item, str) else item

    return convert(value)
