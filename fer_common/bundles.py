"""Trained models on disk: `<name>.keras` with `<name>.json` beside it (classes, preprocessing, provenance).

A bundle carries the preprocessing its model was trained with, and inference applies it through
`train.to_model_input`, the function training used: a model never sees pixels scaled differently from
training (the Neamtiu source code, for one, forgets its 1/255 at inference).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_common import paths, registry
from fer_common.atomic import replacing, write_text_atomically
from fer_common.contract import Preprocessing
from fer_common.errors import FerError

FORMAT_VERSION = 1
PACKAGE_BUNDLES_DIR = Path(__file__).resolve().parent / "pretrained"


@dataclass
class Bundle:
    """A loaded model with the class names and preprocessing it was trained with."""

    model: Any  # keras.Model
    class_names: list[str]
    preprocessing: Preprocessing
    source: dict
    path: Path

    def predict(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, classes) for uint8 face crops, preprocessed exactly as in training."""
        batch = self.preprocessing.apply(faces)
        if len(batch) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float64)
        # predict_on_batch skips model.predict's per-call set-up, which dominates for a frame's few faces.
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float64)


def models_dir() -> Path:
    """Where trained bundles are saved and looked up first (`FER_MODELS_DIR`, default `<cache>/models`)."""
    default = paths.cache_dir() / "models"
    return Path(os.environ.get("FER_MODELS_DIR", default)).expanduser().resolve()


def search_dirs() -> list[Path]:
    """Bundle folders in lookup order: the user's models, then the ones shipped with the package."""
    return [models_dir(), PACKAGE_BUNDLES_DIR]


def list_bundles() -> list[str]:
    """Names of the bundles found, each name once (the first folder wins), sorted within each folder."""
    names: list[str] = []
    for folder in search_dirs():
        if folder.is_dir():
            names.extend(path.stem for path in sorted(folder.glob("*.keras")) if path.stem not in names)
    return names


def demo_bundles() -> dict[str, str]:
    """{replication id: bundle name} of the replications that provide the demo's model, in registry order."""
    replications = registry.REPLICATIONS
    offered = {replication_id: replications.get(replication_id).demo_bundle for replication_id in replications.ids()}
    return {replication_id: name for replication_id, name in offered.items() if name}


def how_to_make() -> str:
    """How to get a bundle: train the default model's entry or a replication with the demo (others may save
    their models too)."""
    default = registry.REPLICATIONS.default_model
    makers = ([default.replication_id] if default else []) + list(demo_bundles())
    targets = " or ".join(f"`make replicate-{replication_id}`" for replication_id in dict.fromkeys(makers))
    return (
        f"Train one with {targets or '`make replicate-<id>`'} (other replications may save their models too), "
        "which saves `<id>-<setting>...keras` and its .json in FER_MODELS_DIR, or pass the path of a .keras file "
        "that has its .json beside it."
    )


def default_bundle_name() -> str:
    """The registry's default model when it is available, else the demo bundle of the first replication that
    declares one (`Replication.demo_bundle`), else the first bundle found."""
    default = registry.REPLICATIONS.default_model
    for name in ([default.bundle] if default else []) + list(demo_bundles().values()):
        if _find_by_name(name) is not None:
            return name
    available = list_bundles()
    if available:
        return available[0]
    raise FerError(f"No trained model is available (looked in {_search_dirs_text()}). {how_to_make()}")


def save_bundle(
    model, path_stem: Path | str, *, class_names: Sequence[str], preprocessing: Preprocessing, source: dict
) -> Path:
    """Write `<path_stem>.keras` and `<path_stem>.json`; returns the .keras path.

    Each file is written under a temporary name and renamed into place, so a reader never sees half a
    file. `source` records where the model came from: replication id, setting, seed, accuracy, record
    path, commit.
    """
    _check_output_count(model, [str(name) for name in class_names], Path(path_stem))
    return _write_bundle(model.save, path_stem, class_names, preprocessing, source)


def save_bundle_file(
    model_file: Path, path_stem: Path | str, *, class_names: Sequence[str], preprocessing: Preprocessing, source: dict
) -> Path:
    """`save_bundle` for a model already saved as a .keras file (by a worker process): copied, not reloaded,
    so the bundle is the very file the model's own `save` wrote."""
    return _write_bundle(
        lambda target: shutil.copyfile(model_file, target), path_stem, class_names, preprocessing, source
    )


def choose_bundle(name: str, folder: Path | None = None) -> tuple[Path, list[Path], str]:
    """The `.keras` file of bundle `name` in FER_MODELS_DIR, the bundles it was chosen among, and how.

    `name` itself when it exists (the runner chose its seed); otherwise the `name-seed<N>` bundle with the
    highest selection score (the lowest seed on ties) among those that record one. The selection score is
    measured on validation data, never on the set the bundle's accuracy is reported on, so the choice does
    not inflate that accuracy."""
    folder = models_dir() if folder is None else folder
    exact = folder / f"{name}.keras"
    if exact.is_file():
        _, _, source = _read_metadata(exact.with_suffix(".json"))
        return exact, [exact], source.get("chosen_by") or "the bundle of that exact name"
    scored = []
    for keras_path in folder.glob(f"{name}-seed*.keras"):
        _, _, source = _read_metadata(keras_path.with_suffix(".json"))
        if source.get("selection_score") is not None:
            scored.append((-float(source["selection_score"]), int(source.get("seed", 0)), keras_path, source))
    if not scored:
        raise FerError(
            f"No bundle {name!r} or {name}-seed<N> with a recorded selection score in {folder}. {how_to_make()}"
        )
    scored.sort(key=lambda entry: entry[:2])
    selected_on = scored[0][3].get("selected_on", "selection score")
    return scored[0][2], sorted(entry[2] for entry in scored), f"highest {selected_on}"


def ship_bundle(name: str, as_name: str, target_dir: Path = PACKAGE_BUNDLES_DIR) -> Path:
    """Copy a trained bundle (see `choose_bundle`) into the package as `<as_name>`, for `predict` and
    `demo` right after set-up. Only the model is kept (no optimizer state: a third of the size); the
    metadata keeps its provenance and says which bundle it came from and how it was chosen."""
    chosen, candidates, chosen_by = choose_bundle(name)
    class_names, preprocessing, source = _read_metadata(chosen.with_suffix(".json"))
    model = _load_model(chosen)
    source = {
        **source,
        "shipped_from": chosen.stem,
        "chosen_among": [path.stem for path in candidates],
        "chosen_by": chosen_by,
    }
    return save_bundle(model, target_dir / as_name, class_names=class_names, preprocessing=preprocessing, source=source)


def _write_bundle(
    write_model, path_stem: Path | str, class_names: Sequence[str], preprocessing: Preprocessing, source: dict
) -> Path:
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    keras_path, json_path = stem.with_name(stem.name + ".keras"), stem.with_name(stem.name + ".json")
    metadata = {
        "format": FORMAT_VERSION,
        "class_names": [str(name) for name in class_names],
        "preprocessing": asdict(preprocessing),
        "source": source,
    }
    # Keras insists on the .keras suffix, so the temporary file keeps it.
    with replacing(keras_path, suffix=".keras") as temporary_model:
        write_model(temporary_model)
        write_text_atomically(json_path, json.dumps(metadata, indent=2, default=str) + "\n")
    return keras_path


def load_bundle(name_or_path: str | Path) -> Bundle:
    """A bundle by path (`.../model.keras`) or by name (`chen`, `chen-random_split`, `neamtiu`...).

    Names are looked up in FER_MODELS_DIR, then in the package's `pretrained/` folder; a bare
    replication id picks `<id>.keras`, else the first `<id>-*.keras` in sorted order.
    """
    keras_path = _resolve(str(name_or_path))
    json_path = keras_path.with_suffix(".json")
    class_names, preprocessing, source = _read_metadata(json_path)
    model = _load_model(keras_path)
    _check_output_count(model, class_names, keras_path)
    _check_input_shape(model, preprocessing, keras_path)
    return Bundle(model, class_names, preprocessing, source, keras_path)


def _resolve(name_or_path: str) -> Path:
    looks_like_path = name_or_path.endswith(".keras") or os.sep in name_or_path or "/" in name_or_path
    if looks_like_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise FerError(f"Model file {path} does not exist.")
        if path.suffix != ".keras":
            raise FerError(f"Model file {path} is not a .keras file; a bundle is <name>.keras with <name>.json.")
        return path.resolve()
    found = _find_by_name(name_or_path)
    if found is None:
        available = ", ".join(list_bundles()) or "none"
        raise FerError(
            f"No model bundle named {name_or_path!r} in {_search_dirs_text()}. Available bundles: {available}. "
            f"{how_to_make()}"
        )
    return found


def _find_by_name(name: str) -> Path | None:
    for folder in search_dirs():
        exact = folder / f"{name}.keras"
        if exact.is_file():
            return exact
        settings = sorted(folder.glob(f"{name}-*.keras")) if folder.is_dir() else []
        if settings:
            return settings[0]
    return None


def _search_dirs_text() -> str:
    return " or ".join(str(folder) for folder in search_dirs())


def _read_metadata(json_path: Path) -> tuple[list[str], Preprocessing, dict]:
    if not json_path.is_file():
        raise FerError(
            f"Model metadata {json_path} is missing: a bundle's .keras file needs its .json beside it "
            "(class names and preprocessing), as save_bundle writes it."
        )
    try:
        metadata = json.loads(json_path.read_text())
        class_names = [str(name) for name in metadata["class_names"]]
        preprocessing = Preprocessing(**metadata["preprocessing"])
        source = dict(metadata.get("source") or {})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FerError(
            f"Model metadata {json_path} is not valid bundle metadata ({type(error).__name__}: {error}); "
            "it needs class_names and preprocessing {size, channels, scale}."
        ) from error
    if not class_names:
        raise FerError(f"Model metadata {json_path} names no classes.")
    return class_names, preprocessing, source


def _load_model(keras_path: Path):
    import keras

    try:
        # compile=False: inference needs no loss, and custom training losses need not be importable.
        return keras.saving.load_model(keras_path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise FerError(f"Cannot load model {keras_path}: {error}") from error


def _check_output_count(model, class_names: Sequence[str], where: Path) -> None:
    outputs = int(model.output_shape[-1])
    if outputs != len(class_names):
        raise FerError(
            f"{where}: model has {outputs} outputs but its metadata names {len(class_names)} classes "
            f"({', '.join(class_names)})."
        )


def _check_input_shape(model, preprocessing: Preprocessing, where: Path) -> None:
    expected = (preprocessing.size, preprocessing.size, preprocessing.channels)
    actual = tuple(model.input_shape[1:])
    fits = len(actual) == 3 and all(dimension in (None, want) for dimension, want in zip(actual, expected, strict=True))
    if not fits:
        raise FerError(f"{where}: model takes inputs of shape {actual} but its metadata says {expected}.")
