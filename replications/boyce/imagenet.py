"""ImageNet weights for the transfer models: found the Keras way, checked before any training, never downloaded.

`weights` in the config (`fer-replicate run boyce --weights X`, `make replicate-boyce WEIGHTS=X`):

- `imagenet` (default): the keras.applications notop files under the names Keras caches them by, looked up in
  FER_WEIGHTS_DIR (default: Keras' own cache, `$KERAS_HOME/models`, else `~/.keras/models`), then in Keras'
  cache itself;
- a folder, or the path of one of those files: looked up there first, then as for `imagenet`;
- `none`: no ImageNet weights; the backbones keep their random initialisation and every table row of a
  transfer model says so.

A missing file stops the run in `prepare`, before anything trains, with a message naming each file, the folder
to put it in and where to download it. Here files are only checked as HDF5 and against the md5 Keras publishes
for them (no TensorFlow: `prepare` must not start it); their shapes are checked when each model loads them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import h5py

from fer_common.errors import WeightsError
from fer_common.paths import weights_dir
from replications.boyce.models import BACKBONES, Backbone

NONE = "none"
IMAGENET = "imagenet"
MAKE_TARGET = "make replicate-boyce"


@dataclass(frozen=True)
class WeightsFile:
    """A verified ImageNet weights file for one transfer model."""

    model: str
    path: Path
    sha256: str
    md5: str
    matches_keras_release: bool  # its md5 is the one keras.applications checks its download against

    @property
    def row_note(self) -> str:
        """What a table row must say about these weights, if anything."""
        if self.matches_keras_release:
            return ""
        return f"ImageNet weights {self.path.name} differ from the Keras release (md5 {self.md5[:12]})"


def keras_cache_folders() -> list[Path]:
    """Where Keras caches downloads: `$KERAS_HOME/models` when set, then `~/.keras/models`."""
    folders = []
    if os.environ.get("KERAS_HOME"):
        folders.append(Path(os.environ["KERAS_HOME"]).expanduser() / "models")
    folders.append(Path.home() / ".keras" / "models")
    return folders


def search_folders(weights: str) -> list[Path]:
    """The folders searched for the notop files, in order, for a `weights` value other than `none`."""
    folders = []
    if weights != IMAGENET:
        given = Path(weights).expanduser()
        if not given.exists():
            raise WeightsError(
                f"--weights {weights}: no such file or folder. Give `imagenet`, `none`, a folder holding the "
                f"notop files or the path of one ({', '.join(b.weights_file for b in BACKBONES.values())})."
            )
        if given.is_file() and given.name not in {backbone.weights_file for backbone in BACKBONES.values()}:
            raise WeightsError(
                f"--weights {weights}: a weights file must keep the name Keras gives it, so that it is clear "
                f"which model it is for: one of {', '.join(b.weights_file for b in BACKBONES.values())}."
            )
        folders.append(given.parent if given.is_file() else given)
    folders += [weights_dir(), *keras_cache_folders()]
    unique = []
    for folder in folders:
        resolved = folder.resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def resolve_weights(weights: str, models: tuple[str, ...] = tuple(BACKBONES)) -> dict[str, WeightsFile]:
    """The verified ImageNet weights file of each transfer model in `models`; {} for `none`.

    Raises WeightsError, naming every missing file with the folder to put it in and its download address,
    or naming a file that is not a Keras weights file.
    """
    weights = str(weights)
    if weights == NONE:
        return {}
    folders = search_folders(weights)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for model in models:
        backbone = BACKBONES[model]
        candidates = [folder / backbone.weights_file for folder in folders]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            missing.append(model)
        else:
            found[model] = path
    if missing:
        raise WeightsError(missing_weights_message(missing, folders))
    return {model: verify_weights_file(model, path) for model, path in found.items()}


def missing_weights_message(missing: list[str], folders: list[Path]) -> str:
    lines = [f"ImageNet weights for the Boyce transfer models are missing ({len(missing)} file(s)):"]
    for model in missing:
        backbone = BACKBONES[model]
        lines.append(f"  {model}: {backbone.weights_file}")
        lines.append(f"      download from {backbone.weights_url}")
    applications = ", ".join(f"keras.applications.{BACKBONES[model].application}" for model in missing)
    lines += [
        f"Put each file in {folders[0]} (Keras' own cache: $KERAS_HOME/models, else ~/.keras/models; "
        "FER_WEIGHTS_DIR overrides), or give its folder: `fer-replicate run boyce --weights <folder>` "
        f"(`{MAKE_TARGET} WEIGHTS=<folder>`).",
        f"On a machine with network access, calling {applications} with include_top=False downloads them into "
        "~/.keras/models; copy them from there.",
        f"Or run without them: `fer-replicate run boyce --weights none` (`{MAKE_TARGET} WEIGHTS=none`). The "
        "transfer models then start from random initialisation, and every table row of theirs says so.",
        f"Looked in: {', '.join(str(folder) for folder in folders)}.",
    ]
    return "\n".join(lines)


def verify_weights_file(model: str, path: Path) -> WeightsFile:
    """Check that `path` is a Keras weights file (HDF5 with layer weights) and hash it."""
    backbone: Backbone = BACKBONES[model]
    try:
        with h5py.File(path, "r") as handle:
            # Legacy files (the keras.applications downloads) list their layers in `layer_names`, whole-model
            # files keep them under `model_weights`, Keras 3 `.weights.h5` files under `layers`.
            is_keras = "layer_names" in handle.attrs or "model_weights" in handle or "layers" in handle
    except OSError as error:
        raise WeightsError(
            f"{path} is not a readable HDF5 file ({error}); the {model} transfer model needs "
            f"{backbone.weights_file} from {backbone.weights_url}, or run with --weights none."
        ) from error
    if not is_keras:
        raise WeightsError(
            f"{path} is an HDF5 file but holds no Keras layer weights; the {model} transfer model needs "
            f"{backbone.weights_file} from {backbone.weights_url}, or run with --weights none."
        )
    sha256, md5 = file_digests(path)
    return WeightsFile(model, path, sha256, md5, md5 == backbone.keras_md5)


def file_digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a file's bytes: sha256 for the record, md5 because Keras publishes md5s."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.hexdigest()
