"""Chicago Face Database: colour portraits named `CFD-<Race><Sex>-<target>-<photo>-<expression>.jpg`.

Images are square 256x256 RGB: originals of another shape are centre-cropped and resized on load.
The person id (`target`, e.g. `BF-200`) is the group for subject-disjoint splits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fer_common.data.cache import load_with_cache
from fer_common.data.dataset import FaceDataset
from fer_common.data.images import is_image_name, read_images
from fer_common.data.integrity import relative_name
from fer_common.errors import DatasetError

NAME = "cfd"
EXPRESSIONS = ("N", "HC", "HO", "A", "F")  # neutral, happy closed / open mouth, angry, fear
RACES = ("A", "B", "I", "L", "M", "W")  # Asian, Black, Indian, Latino, Multiracial, White
SEXES = ("F", "M")
IMAGE_SIZE = 256
LOADER_VERSION = 1  # bump when decoding changes, so caches of the old result are not used
_FILE_NAME = re.compile(r"^CFD-([A-Z])([A-Z])-(\d+)-(\d+)-([A-Z]+)\.[A-Za-z]+$")

HONG_CLASSES = ("negative", "neutral", "positive")
_HONG_CLASS_OF_EXPRESSION = {
    "A": "negative",
    "F": "negative",
    "N": "neutral",
    "HC": "positive",
    "HO": "positive",
}

HOW_TO_GET = (
    "The Chicago Face Database is free for non-commercial research but must be requested at "
    "https://www.chicagofaces.org/ (fill in the form; a download link is emailed). Unpack it and put the "
    "CFD-<Race><Sex>-<target>-<photo>-<expression>.jpg photos in the dataset folder (sub-folders are fine)."
)


def load_cfd(root: Path, *, use_cache: bool = True, progress: bool = True, image_size: int = IMAGE_SIZE) -> FaceDataset:
    """Every CFD photo under `root` (searched recursively) as (N, image_size, image_size, 3) RGB."""
    root = Path(root)
    files = _find_photos(root)
    if not files:
        raise DatasetError(
            f"CFD not found in {root}: no CFD-<Race><Sex>-<target>-<photo>-<expression>.jpg photos there or "
            f"below. {HOW_TO_GET} Point FER_DATA_DIR at the folder that holds cfd/, or pass root."
        )

    def build() -> FaceDataset:
        fields = [_parse_file_name(path) for path in files]
        images = read_images(
            files,
            color="rgb",
            size=(image_size, image_size),
            crop_to_size=True,
            progress=progress,
            description="CFD",
        )
        meta = pd.DataFrame(fields, columns=["race", "sex", "target", "photo", "expression"])
        meta["path"] = [relative_name(path, root) for path in files]
        meta["split"] = "all"
        labels = np.array([EXPRESSIONS.index(code) for code in meta["expression"]], dtype=np.int64)
        groups = meta["target"].to_numpy(dtype=str)
        return FaceDataset(NAME, images, labels, list(EXPRESSIONS), meta, groups=groups)

    options = {"image_size": image_size, "version": LOADER_VERSION}
    return load_with_cache(NAME, root, files, options, build, use_cache=use_cache)


def _find_photos(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [
        Path(directory) / name
        for directory, _, names in os.walk(root)
        for name in names
        if name.startswith("CFD-") and is_image_name(name)
    ]
    return sorted(found, key=lambda path: relative_name(path, root))


def _parse_file_name(path: Path) -> tuple[str, str, str, str, str]:
    """(race, sex, target, photo, expression) from `CFD-BF-200-080-N.jpg`; target is `BF-200`."""
    match = _FILE_NAME.match(path.name)
    problem = None
    if match is None:
        problem = "is not named CFD-<Race><Sex>-<target>-<photo>-<expression>.jpg"
    elif match.group(1) not in RACES:
        problem = f"has race code {match.group(1)!r}, not one of {', '.join(RACES)}"
    elif match.group(2) not in SEXES:
        problem = f"has sex code {match.group(2)!r}, not one of {', '.join(SEXES)}"
    elif match.group(5) not in EXPRESSIONS:
        problem = f"has expression code {match.group(5)!r}, not one of {', '.join(EXPRESSIONS)}"
    if problem:
        raise DatasetError(f"CFD file {path} {problem}; rename or remove it.")
    race, sex, target, photo, expression = match.groups()
    return race, sex, f"{race}{sex}-{target}", photo, expression


def to_hong_classes(
    dataset: FaceDataset,
    races: Sequence[str] = ("B", "W"),
    neutral: Literal["same_targets", "all"] = "same_targets",
) -> FaceDataset:
    """CFD regrouped into Hong's three classes: negative (A, F), neutral (N), positive (HC, HO).

    Only targets of the given races are kept. `neutral="same_targets"` keeps neutral photos only of
    targets that also appear with a non-neutral expression, so identity cannot predict the class;
    `"all"` keeps every neutral photo. The counts are recorded in `extra['composition']`.
    """
    unknown = sorted(set(races) - set(RACES))
    if unknown or not races:
        raise ValueError(f"races must be a non-empty selection of {', '.join(RACES)}; got {list(races)}")
    if neutral not in ("same_targets", "all"):
        raise ValueError(f"neutral must be 'same_targets' or 'all', got {neutral!r}")
    meta = dataset.meta
    in_races = meta["race"].isin(races)
    is_neutral = meta["expression"] == "N"
    expressive_targets = set(meta.loc[in_races & ~is_neutral, "target"])
    keep_neutral = is_neutral if neutral == "all" else is_neutral & meta["target"].isin(expressive_targets)
    kept = dataset.subset((in_races & (~is_neutral | keep_neutral)).to_numpy())

    class_names = [_HONG_CLASS_OF_EXPRESSION[expression] for expression in kept.meta["expression"]]
    labels = np.array([HONG_CLASSES.index(name) for name in class_names], dtype=np.int64)
    counts = {name: class_names.count(name) for name in HONG_CLASSES}
    race_of = kept.meta["race"].to_numpy()
    composition = {
        "races": list(races),
        "neutral": neutral,
        "images": len(kept),
        "targets": int(kept.meta["target"].nunique()),
        "classes": counts,
        "expressions": {code: int((kept.meta["expression"] == code).sum()) for code in EXPRESSIONS},
        "by_race": {
            race: {name: int(np.sum((race_of == race) & (labels == index))) for index, name in enumerate(HONG_CLASSES)}
            for race in races
        },
    }
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise DatasetError(
            f"CFD regrouped for races {', '.join(races)} with neutral={neutral!r} leaves no "
            f"{' or '.join(empty)} images (composition {composition['classes']}). With "
            "neutral='same_targets' this happens when every person has a single photo, as in the "
            "one-photo-per-person subset; use neutral='all' there, or choose other races."
        )
    return FaceDataset(
        name=f"{dataset.name}_hong",
        images=kept.images,
        labels=labels,
        class_names=list(HONG_CLASSES),
        meta=kept.meta,
        groups=kept.groups,
        checksum=dataset.checksum,
        extra={**dataset.extra, "composition": composition},
    )
