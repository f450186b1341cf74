"""Chicago Face Database: colour portraits named `CFD-<Race><Sex>-<target>-<photo>-<expression>.jpg`.

Images are square 256x256 RGB: originals of another shape are centre-cropped and resized on load.
The person id (`target`, e.g. `BF-200`) is the group for subject-disjoint splits. Labels are the CFD
expression codes (EXPRESSIONS); a replication that needs other classes regroups them itself from
`meta["expression"]` (e.g. replications/hong/data.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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
