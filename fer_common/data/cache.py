"""Decoded datasets cached as one .npz per (dataset, source folder, loader options).

Each cache file stores the source fingerprint it was built from; a load whose fingerprint differs
(a file added, removed, replaced or touched) rebuilds and overwrites that same file, so stale copies
never pile up. Everything lives in one .npz written to a temporary name and moved into place, so a
reader never sees half a cache and no pickle or pyarrow is needed to read it back.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fer_common import paths
from fer_common.atomic import write_atomically
from fer_common.data.dataset import FaceDataset
from fer_common.data.integrity import content_checksum, source_fingerprint

FORMAT_VERSION = 1  # bump when the file layout below changes, so old files are ignored
_META_PREFIX = "meta."


def cache_path(name: str, root: Path, options: Mapping[str, object]) -> Path:
    """Where the cache for dataset `name` loaded from `root` with `options` lives."""
    identity = json.dumps(
        {"format": FORMAT_VERSION, "name": name, "root": str(Path(root).resolve()), "options": options},
        sort_keys=True,
    )
    slot = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return paths.cache_dir() / "datasets" / f"{name}-{slot}.npz"


def read_cache(path: Path, fingerprint: str) -> FaceDataset | None:
    """The cached dataset if `path` holds one built from sources with `fingerprint`, else None."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            info = json.loads(str(stored["info"]))
            if info["fingerprint"] != fingerprint:
                return None
            meta = pd.DataFrame({column: stored[_META_PREFIX + column] for column in info["meta_columns"]})
            return FaceDataset(
                name=info["name"],
                images=stored["images"],
                labels=stored["labels"],
                class_names=info["class_names"],
                meta=meta,
                groups=stored["groups"] if info["has_groups"] else None,
                checksum=info["checksum"],
                extra=info["extra"],
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        # A damaged cache is only a lost shortcut: rebuild from the sources.
        warnings.warn(f"Ignoring unreadable dataset cache {path}: {error}", stacklevel=2)
        return None


def write_cache(path: Path, dataset: FaceDataset, fingerprint: str) -> None:
    """Store `dataset` at `path` atomically; a cache that cannot be written only costs speed."""
    info = {
        "fingerprint": fingerprint,
        "name": dataset.name,
        "class_names": list(dataset.class_names),
        "checksum": dataset.checksum,
        "extra": dataset.extra,
        "has_groups": dataset.groups is not None,
        "meta_columns": list(dataset.meta.columns),
    }
    arrays = {
        "info": np.array(json.dumps(info)),
        "images": dataset.images,
        "labels": dataset.labels,
        "groups": np.asarray(dataset.groups if dataset.groups is not None else [], dtype=str),
    }
    for column in dataset.meta.columns:
        values = dataset.meta[column].to_numpy()
        arrays[_META_PREFIX + column] = values.astype(str) if values.dtype == object else values
    try:
        write_atomically(path, lambda stream: np.savez(stream, **arrays))
    except OSError as error:
        warnings.warn(f"Could not write dataset cache {path}: {error}", stacklevel=2)


def load_or_build(
    name: str,
    root: Path,
    fingerprint: str,
    options: Mapping[str, object],
    build: Callable[[], FaceDataset],
    *,
    use_cache: bool,
) -> FaceDataset:
    """The cached dataset if its sources still have `fingerprint`, else `build()` (which must set the
    checksum), cached for next time. For loaders that can fingerprint without listing their files."""
    path = cache_path(name, root, options)
    if use_cache and (cached := read_cache(path, fingerprint)) is not None:
        return cached
    dataset = build()
    if use_cache:
        write_cache(path, dataset, fingerprint)
    return dataset


def load_with_cache(
    name: str,
    root: Path,
    files: Sequence[Path],
    options: Mapping[str, object],
    build: Callable[[], FaceDataset],
    *,
    use_cache: bool,
) -> FaceDataset:
    """The dataset decoded from `files` (under `root`) by `build`, from the cache when still valid.

    On a rebuild the content checksum of `files` is computed and stored with the arrays, so later
    loads get provenance without re-reading every file.
    """

    def build_with_checksum() -> FaceDataset:
        dataset = build()
        dataset.checksum = content_checksum(files, root)
        return dataset

    fingerprint = source_fingerprint(files, root)
    return load_or_build(name, root, fingerprint, options, build_with_checksum, use_cache=use_cache)
