"""AffectNet (Mollahosseini et al. 2017) in its 8 expression classes, from any of three common editions.

* List-file edition (the official download): `training.csv` and/or `validation.csv`, one row per image
  (`subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression, valence,
  arousal`), images under `Manually_Annotated_Images/`. The face box is cropped (clipped to the image) and
  resized; `meta['split']` is `training` or `validation` after the list file.
* AffectNet-8 edition (the cropped copy the authors send on request, used by Dikshit et al.): `train_set/` and
  `val_set/`, each with `images/<id>.jpg` and `annotations/<id>_exp.npy`.
* Folder edition (Kaggle copies): `<class>/*.jpg|png`, optionally under `train/`, `val/` or `validation/` and
  `test/`, whose splits are named `training`, `validation` and `test` (`all` without them).

Expression codes 0..7 are the classes, in AffectNet's order; 8..10 (None, Uncertain, Non-Face) are dropped and
counted in `extra['dropped']`. Images are RGB, image_size x image_size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fer_common.data.cache import load_with_cache
from fer_common.data.dataset import FaceDataset
from fer_common.data.images import list_image_files, progress_bar, read_image, read_images
from fer_common.data.integrity import relative_name
from fer_common.errors import DatasetError

NAME = "affectnet"
CLASS_NAMES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
LIST_FILES = {"training.csv": "training", "validation.csv": "validation"}
LIST_FILE_COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
IMAGES_FOLDER = "Manually_Annotated_Images"
LOADER_VERSION = 1  # bump when decoding changes, so caches of the old result are not used

AFFECTNET_HOW_TO_GET = (
    "AffectNet is licensed and not downloadable: request it from its authors at "
    "http://mohammadmahoor.com/affectnet/ (academic use, signed agreement). Then set FER_DATA_DIR so that "
    "$FER_DATA_DIR/affectnet holds it in one of these layouts: the list-file edition (training.csv and/or "
    "validation.csv next to Manually_Annotated_Images/), the AffectNet-8 edition (train_set/ and val_set/, "
    "each with images/ and annotations/<id>_exp.npy), or a folder edition with one folder per class "
    "(neutral, happy, sad, surprise, fear, disgust, anger, contempt, or 0..7), optionally inside train/, "
    "val/ and test/."
)

_REQUIRED_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression")
_BOX_COLUMNS = ("face_x", "face_y", "face_width", "face_height")
_OPTIONAL_COLUMNS = ("valence", "arousal")
_DROPPED_CODES = {8: "none", 9: "uncertain", 10: "non-face"}
_ANNOTATION_SPLITS = {"train_set": "training", "val_set": "validation"}
_FOLDER_SPLITS = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
# Spellings seen in AffectNet copies (lower case), including the numeric codes; index = class.
_CLASS_FOLDER_SPELLINGS = (
    ("neutral", "0"),
    ("happy", "happiness", "1"),
    ("sad", "sadness", "2"),
    ("surprise", "surprised", "suprise", "3"),
    ("fear", "fearful", "4"),
    ("disgust", "disgusted", "5"),
    ("anger", "angry", "6"),
    ("contempt", "contemptuous", "7"),
)
_CLASS_OF_FOLDER = {spelling: label for label, names in enumerate(_CLASS_FOLDER_SPELLINGS) for spelling in names}

Build = Callable[[], FaceDataset]


def load_affectnet(
    root: str | Path, *, image_size: int = 64, use_cache: bool = True, progress: bool = True
) -> FaceDataset:
    """AffectNet from `root`, whichever edition it holds (list files win when several are present)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"AffectNet not found: {root} is not a folder. {AFFECTNET_HOW_TO_GET}")
    if any((root / name).is_file() for name in LIST_FILES):
        edition, files, build = "list-file", *_list_file_edition(root, image_size, progress)
    elif any((root / folder / "images").is_dir() for folder in _ANNOTATION_SPLITS):
        edition, files, build = "affectnet-8", *_annotation_file_edition(root, image_size, progress)
    else:
        edition, files, build = "folders", *_folder_edition(root, image_size, progress)
    options = {"edition": edition, "image_size": image_size, "version": LOADER_VERSION}
    return load_with_cache(NAME, root, files, options, build, use_cache=use_cache)


# ---- list-file edition -------------------------------------------------------------------------------------


def _list_file_edition(root: Path, image_size: int, progress: bool) -> tuple[list[Path], Build]:
    list_files = [root / name for name in LIST_FILES if (root / name).is_file()]
    table = pd.concat([_read_list_file(path) for path in list_files], ignore_index=True)
    dropped = _dropped_counts(table["expression"].to_numpy())
    table = table[table["expression"] < len(CLASS_NAMES)].reset_index(drop=True)
    if table.empty:
        raise DatasetError(
            f"AffectNet list files in {root} ({', '.join(path.name for path in list_files)}) list no image "
            "with an expression code 0..7; they are empty or truncated. Restore them from the download."
        )
    image_files = _listed_image_files(root, table)

    def build() -> FaceDataset:
        boxes = table[list(_BOX_COLUMNS)].to_numpy()
        images = _decode_faces(image_files, boxes, image_size, progress)
        meta = pd.DataFrame({"path": [relative_name(path, root) for path in image_files], "split": table["split"]})
        for column in ("expression", *_BOX_COLUMNS, *_OPTIONAL_COLUMNS):
            if column in table:
                meta[column] = table[column].to_numpy()
        labels = table["expression"].to_numpy(dtype=np.int64)
        extra = {"edition": "list-file", "dropped": dropped}
        return FaceDataset(NAME, images, labels, list(CLASS_NAMES), meta, extra=extra)

    return list_files + image_files, build


def _read_list_file(path: Path) -> pd.DataFrame:
    """One list file, checked: required columns present, expression an integer 0..10, boxes numeric."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)  # text, so errors quote the file
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise DatasetError(f"AffectNet list file {path} cannot be read as CSV: {error}.") from error
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in _REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise DatasetError(
            f"AffectNet list file {path} lacks the column(s) {', '.join(missing)}. AffectNet's list files "
            f"start with the header line `{','.join(LIST_FILE_COLUMNS)}`; if your copy has no header line, "
            "add that one."
        )
    for column in ("expression", *_BOX_COLUMNS):
        numbers = pd.to_numeric(table[column], errors="coerce")
        valid = numbers.notna() & (numbers % 1 == 0)
        if column == "expression":
            valid &= numbers.between(0, 10)
        if not valid.all():
            row = int(np.flatnonzero(~valid.to_numpy())[0])
            expected = "an integer code 0..10" if column == "expression" else "an integer pixel position or size"
            raise DatasetError(
                f"AffectNet list file {path} line {row + 2} has {column} {table[column].iloc[row]!r}; "
                f"expected {expected}."
            )
        table[column] = numbers.astype(np.int64)
    for column in _OPTIONAL_COLUMNS:
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    table["split"] = LIST_FILES[path.name]
    table["list_file"] = path.name
    return table


def _listed_image_files(root: Path, table: pd.DataFrame) -> list[Path]:
    """Each listed image under Manually_Annotated_Images/, else directly under root; all must exist."""
    found: list[Path] = []
    missing: list[int] = []
    for row, relative in enumerate(table["subDirectory_filePath"]):
        candidates = (root / IMAGES_FOLDER / relative, root / relative)
        match = next((candidate for candidate in candidates if candidate.is_file()), None)
        if match is None:
            missing.append(row)
        else:
            found.append(match)
    if missing:
        first = table.iloc[missing[0]]
        relative = first["subDirectory_filePath"]
        raise DatasetError(
            f"{len(missing)} of {len(table)} AffectNet images listed in the list files are missing; the "
            f"first is {relative!r} (from {first['list_file']}), looked for at "
            f"{root / IMAGES_FOLDER / relative} and {root / relative}. Unpack the images to "
            f"{root / IMAGES_FOLDER}/ as the official download has them."
        )
    return found


def _decode_faces(files: list[Path], boxes: np.ndarray, image_size: int, progress: bool) -> np.ndarray:
    """Each image's face box (x, y, width, height), clipped to the image, resized to image_size square."""
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)

    def decode(index: int) -> None:
        image = read_image(files[index], "rgb")
        images[index] = _resize(_crop_box(image, boxes[index], files[index]), image_size)

    workers = min(16, 2 * (os.cpu_count() or 1))  # file reads and cv2 decoding both release the GIL
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress_bar(total=len(files), description="AffectNet", unit="img", enabled=progress) as bar,
    ):
        for _ in pool.map(decode, range(len(files))):
            bar.update()
    return images


def _crop_box(image: np.ndarray, box: np.ndarray, path: Path) -> np.ndarray:
    x, y, width, height = (int(value) for value in box)
    top, bottom = max(y, 0), min(y + height, image.shape[0])
    left, right = max(x, 0), min(x + width, image.shape[1])
    if bottom <= top or right <= left:
        raise DatasetError(
            f"AffectNet face box x={x} y={y} width={width} height={height} of {path} lies outside the "
            f"{image.shape[1]}x{image.shape[0]} image; fix or delete its row in the list file."
        )
    return image[top:bottom, left:right]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


# ---- AffectNet-8 edition -----------------------------------------------------------------------------------


def _annotation_file_edition(root: Path, image_size: int, progress: bool) -> tuple[list[Path], Build]:
    image_files: list[Path] = []
    annotation_files: list[Path] = []
    splits: list[str] = []
    for folder, split in _ANNOTATION_SPLITS.items():
        if not (root / folder / "images").is_dir():
            continue
        for image in list_image_files(root / folder / "images"):
            annotation = root / folder / "annotations" / f"{image.stem}_exp.npy"
            if not annotation.is_file():
                raise DatasetError(
                    f"AffectNet-8 image {image} has no expression annotation {annotation}; restore it from "
                    "the archive or delete the image."
                )
            image_files.append(image)
            annotation_files.append(annotation)
            splits.append(split)
    if not image_files:
        raise DatasetError(f"AffectNet-8 edition in {root} holds no images. {AFFECTNET_HOW_TO_GET}")

    def build() -> FaceDataset:
        codes = np.array([_read_expression_file(path) for path in annotation_files], dtype=np.int64)
        keep = codes < len(CLASS_NAMES)
        kept_files = [path for path, kept in zip(image_files, keep, strict=True) if kept]
        images = read_images(
            kept_files,
            color="rgb",
            size=(image_size, image_size),
            crop_to_size=True,
            progress=progress,
            description="AffectNet-8",
        )
        meta = pd.DataFrame(
            {
                "path": [relative_name(path, root) for path in kept_files],
                "split": np.asarray(splits)[keep],
                "expression": codes[keep],
            }
        )
        extra = {"edition": "affectnet-8", "dropped": _dropped_counts(codes)}
        return FaceDataset(NAME, images, codes[keep], list(CLASS_NAMES), meta, extra=extra)

    return image_files + annotation_files, build


def _read_expression_file(path: Path) -> int:
    """The code in an AffectNet-8 `<id>_exp.npy` (a 0-d array holding e.g. '3')."""
    try:
        code = int(np.load(path, allow_pickle=False).item())
    except (OSError, ValueError, TypeError) as error:
        raise DatasetError(
            f"AffectNet-8 annotation {path} is corrupt ({error}); restore it from the archive."
        ) from error
    if code not in range(11):
        raise DatasetError(f"AffectNet-8 annotation {path} holds expression {code}; expected a code 0..10.")
    return code


# ---- folder edition ----------------------------------------------------------------------------------------


def _folder_edition(root: Path, image_size: int, progress: bool) -> tuple[list[Path], Build]:
    labelled: list[tuple[Path, int, str]] = []
    for split_root, split in _split_roots(root).items():
        for class_folder, label in _class_folders(split_root).items():
            labelled.extend((path, label, split) for path in list_image_files(class_folder))
    if not labelled:
        raise DatasetError(f"AffectNet folder edition in {root} holds no images. {AFFECTNET_HOW_TO_GET}")
    files = [path for path, _, _ in labelled]

    def build() -> FaceDataset:
        images = read_images(
            files,
            color="rgb",
            size=(image_size, image_size),
            crop_to_size=True,
            progress=progress,
            description="AffectNet",
        )
        meta = pd.DataFrame(
            {
                "path": [relative_name(path, root) for path in files],
                "split": [split for _, _, split in labelled],
                "folder": [path.parent.name for path in files],
            }
        )
        labels = np.array([label for _, label, _ in labelled], dtype=np.int64)
        extra = {"edition": "folders", "dropped": {}}
        return FaceDataset(NAME, images, labels, list(CLASS_NAMES), meta, extra=extra)

    return files, build


def _split_roots(root: Path) -> dict[Path, str]:
    """{folder holding class folders: split name}: train/, val/, test/ when present, else root itself."""
    folders = _visible_folders(root)
    if not folders:
        raise DatasetError(
            f"No AffectNet layout found in {root}: it holds no list files and no folders. {AFFECTNET_HOW_TO_GET}"
        )
    if (root / IMAGES_FOLDER).is_dir():
        raise DatasetError(
            f"{root} has {IMAGES_FOLDER}/ but neither training.csv nor validation.csv: put AffectNet's list "
            f"files next to it (they come in the same download). {AFFECTNET_HOW_TO_GET}"
        )
    split_folders = {
        folder: _FOLDER_SPLITS[folder.name.lower()] for folder in folders if folder.name.lower() in _FOLDER_SPLITS
    }
    others = [folder.name for folder in folders if folder not in split_folders]
    if split_folders and others:
        raise DatasetError(
            f"AffectNet folder edition in {root} mixes split folders "
            f"({', '.join(folder.name for folder in split_folders)}) with other folders "
            f"({', '.join(others)}); put every class folder inside a split folder."
        )
    return split_folders or {root: "all"}


def _class_folders(split_root: Path) -> dict[Path, int]:
    """{class folder: class index}; every folder must name a class, and each class may appear once."""
    folders: dict[Path, int] = {}
    for folder in _visible_folders(split_root):
        label = _CLASS_OF_FOLDER.get(folder.name.lower())
        if label is None:
            spellings = "; ".join("/".join(names) for names in _CLASS_FOLDER_SPELLINGS)
            raise DatasetError(
                f"AffectNet folder edition: {folder} is not a class folder. Each folder must name one of the "
                f"8 classes, spelled (any case) {spellings}; rename or remove it."
            )
        twin = next((other for other, other_label in folders.items() if other_label == label), None)
        if twin is not None:
            raise DatasetError(
                f"AffectNet folder edition: {twin} and {folder} both hold class {CLASS_NAMES[label]}; merge them."
            )
        folders[folder] = label
    return folders


def _visible_folders(folder: Path) -> list[Path]:
    # Hidden folders and archive clutter such as __MACOSX are not part of the dataset.
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith((".", "__")))


def _dropped_counts(codes: np.ndarray) -> dict[str, int]:
    return {name: int(np.sum(codes == code)) for code, name in _DROPPED_CODES.items()}
