"""Hong et al.'s data: the user's CFD Expression Morphs, or the public CFD subset in the paper's 3 classes.

The paper's 320 morphs are not public. A user who has them puts them in `$FER_DATA_DIR/hong_morphs/` (one
folder per class, or the files plus a label map `labels.csv` with columns `file,label`); otherwise the
public CFD subset, regrouped by `to_hong_classes`, stands in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fer_common.data import cfd
from fer_common.data.dataset import FaceDataset
from fer_common.data.images import read_images, scan_class_folders
from fer_common.data.integrity import content_checksum, relative_name
from fer_common.data.label_map import read_label_map
from fer_common.errors import DatasetError

CLASS_NAMES = ("negative", "neutral", "positive")
CLASS_OF_EXPRESSION = {"A": "negative", "F": "negative", "N": "neutral", "HC": "positive", "HO": "positive"}
STORED_SIZE = 256  # user morphs are stored like the CFD subset: centred 256x256 RGB squares
UNKNOWN = "?"  # race or sex of a file whose name does not follow the CFD convention
# CFD-<race><sex>-<target>..., e.g. CFD-BF-001-025-HC.jpg; morphs keep the target's CFD prefix.
CFD_NAME = re.compile(r"CFD-(?P<race>[A-Z])(?P<sex>[FM])-(?P<target>\d{3})", re.IGNORECASE)
MORPHS_LAYOUT = (
    "Put the CFD Expression Morphs (request them from chicagofaces.org) either in one folder per class, "
    f"{'/, '.join(CLASS_NAMES)}/, or anywhere under the folder with a label map CSV (columns file,label; "
    "file relative to the CSV's folder; label one of " + ", ".join(CLASS_NAMES) + "). Keep the CFD file "
    "names (CFD-<race><sex>-<target>-...) so the bias audit can read race and sex."
)


@dataclass(frozen=True)
class HongData:
    images: dict[str, np.ndarray]  # setting -> model input (grayscale or colour)
    labels: np.ndarray
    demographics: dict[str, np.ndarray]  # "race" / "sex" -> one code per image
    composition: dict
    subsets: dict[str, np.ndarray] = field(default_factory=dict)  # setting -> the images it uses (default: all)


def demographics_from_names(names: list[str]) -> pd.DataFrame:
    """race, sex and target (person id, `BF-001` as the CFD loader writes it) from CFD-style file names.

    A name that is not CFD-style gets UNKNOWN race and sex and its file stem as target.
    """
    rows = []
    for name in names:
        match = CFD_NAME.search(Path(name).name)
        if match:
            race, sex = match["race"].upper(), match["sex"].upper()
            rows.append({"race": race, "sex": sex, "target": f"{race}{sex}-{match['target']}"})
        else:
            rows.append({"race": UNKNOWN, "sex": UNKNOWN, "target": Path(name).stem})
    return pd.DataFrame(rows, columns=["race", "sex", "target"])


def load_user_morphs(folder: Path, label_map_name: str = "labels.csv") -> FaceDataset:
    """The user's morphs: `folder/<class>/*.jpg`, or `folder/<label_map_name>` naming files and labels."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"Hong morphs folder {folder} does not exist. {MORPHS_LAYOUT}")
    label_map = folder / label_map_name
    if label_map.is_file():
        labelled = read_label_map(label_map, CLASS_NAMES)
    else:
        try:
            labelled = scan_class_folders(folder, CLASS_NAMES, "Hong morphs folder")
        except DatasetError as error:
            raise DatasetError(f"{error} No label map {label_map} either. {MORPHS_LAYOUT}") from error
    counts = np.bincount([label for _, label in labelled], minlength=len(CLASS_NAMES))
    if not counts.all():
        empty = [name for name, count in zip(CLASS_NAMES, counts, strict=True) if count == 0]
        raise DatasetError(f"Hong morphs in {folder} have no {', '.join(empty)} image. {MORPHS_LAYOUT}")
    files = [path for path, _ in labelled]
    # The paper centres and resizes; the centred square here, the model's input size in prepare().
    images = read_images(
        files,
        color="rgb",
        size=(STORED_SIZE, STORED_SIZE),
        crop_to_size=True,
        progress=False,
        description="hong morphs",
    )
    # A label map may name files outside its folder: paths and checksum are relative to the common root.
    root = Path(os.path.commonpath([folder.resolve(), *(path.resolve() for path in files)]))
    names = [relative_name(path.resolve(), root) for path in files]
    meta = demographics_from_names(names)
    meta["path"], meta["split"] = names, "all"
    meta["expression"] = [CLASS_NAMES[label] for _, label in labelled]
    return FaceDataset(
        name="hong_morphs",
        images=images,
        labels=np.array([label for _, label in labelled], dtype=np.int64),
        class_names=list(CLASS_NAMES),
        meta=meta,
        groups=meta["target"].to_numpy(dtype=str),
        checksum=content_checksum([path.resolve() for path in files], root),
        extra={"composition": {name: int(count) for name, count in zip(CLASS_NAMES, counts, strict=True)}},
    )


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
    unknown = sorted(set(races) - set(cfd.RACES))
    if unknown or not races:
        raise ValueError(f"races must be a non-empty selection of {', '.join(cfd.RACES)}; got {list(races)}")
    if neutral not in ("same_targets", "all"):
        raise ValueError(f"neutral must be 'same_targets' or 'all', got {neutral!r}")
    meta = dataset.meta
    in_races = meta["race"].isin(races)
    is_neutral = meta["expression"] == "N"
    expressive_targets = set(meta.loc[in_races & ~is_neutral, "target"])
    keep_neutral = is_neutral if neutral == "all" else is_neutral & meta["target"].isin(expressive_targets)
    kept = dataset.subset((in_races & (~is_neutral | keep_neutral)).to_numpy())

    class_names = [CLASS_OF_EXPRESSION[expression] for expression in kept.meta["expression"]]
    labels = np.array([CLASS_NAMES.index(name) for name in class_names], dtype=np.int64)
    counts = {name: class_names.count(name) for name in CLASS_NAMES}
    race_of = kept.meta["race"].to_numpy()
    composition = {
        "races": list(races),
        "neutral": neutral,
        "images": len(kept),
        "targets": int(kept.meta["target"].nunique()),
        "classes": counts,
        "expressions": {code: int((kept.meta["expression"] == code).sum()) for code in cfd.EXPRESSIONS},
        "by_race": {
            race: {name: int(np.sum((race_of == race) & (labels == index))) for index, name in enumerate(CLASS_NAMES)}
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
        class_names=list(CLASS_NAMES),
        meta=kept.meta,
        groups=kept.groups,
        checksum=dataset.checksum,
        extra={**dataset.extra, "composition": composition},
    )


def load_cfd_proxy(config: dict) -> FaceDataset:
    """The public CFD subset in Hong's 3 classes (negative = A+F, positive = HC+HO, neutral = N)."""
    from fer_common.data import load_dataset

    return to_hong_classes(load_dataset("cfd"), races=tuple(config["races"]), neutral=config["neutral"])


def describe_composition(dataset: FaceDataset) -> str:
    """Class counts and race x sex counts, one line, for the record."""
    classes = ", ".join(f"{name} {count}" for name, count in dataset.class_counts().items())
    cells = dataset.meta.groupby(["race", "sex"]).size()
    groups = ", ".join(f"{race}{sex} {count}" for (race, sex), count in cells.items())
    return f"{len(dataset)} images ({classes}; {groups})"
