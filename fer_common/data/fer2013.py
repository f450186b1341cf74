"""FER2013 (ICML 2013 challenge) from either of its two common editions.

The Kaggle folder edition holds JPEGs in `train/<emotion>/` and `test/<emotion>/`, the official split
(`Usage`) being the file-name prefix. The official CSV has one row per image with columns
`emotion,pixels,Usage`. Both give 48x48 grayscale images with the CSV's label numbering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_common.data.cache import load_or_build, load_with_cache
from fer_common.data.dataset import FaceDataset
from fer_common.data.images import progress_bar, read_images, scan_class_folders
from fer_common.data.integrity import content_checksum, relative_name, tree_fingerprint
from fer_common.errors import DatasetError

NAME = "fer2013"
# The official CSV's emotion numbering 0..6; the folder edition's folders map onto it by name.
CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SPLITS = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48
CSV_FILES = ("fer2013.csv", "fer2013.csv.gz")
CSV_COLUMNS = ("emotion", "pixels", "Usage")
LOADER_VERSION = 1  # bump when decoding changes, so caches of the old result are not used
_FOLDER_SPLITS = {"train": ("Training",), "test": ("PublicTest", "PrivateTest")}

HOW_TO_GET = (
    "FER2013 is on Kaggle (research use only, ICML 2013 workshop terms). Folder edition: "
    "`kaggle datasets download -d msambare/fer2013`, then unzip it so that train/ and test/ sit directly "
    "in the dataset folder. Official CSV: accept the rules of the Kaggle competition "
    "`challenges-in-representation-learning-facial-expression-recognition-challenge`, run "
    "`kaggle competitions download -c challenges-in-representation-learning-facial-expression-recognition-"
    "challenge`, extract fer2013.tar.gz and put fer2013.csv (or fer2013.csv.gz) in the dataset folder."
)


def load_fer2013(root: Path, *, use_cache: bool = True, progress: bool = True) -> FaceDataset:
    """FER2013 from `root`, preferring the folder edition when both editions are present."""
    root = Path(root)
    if (root / "train").is_dir() or (root / "test").is_dir():
        return load_fer2013_folders(root, use_cache=use_cache, progress=progress)
    for csv_name in CSV_FILES:
        if (root / csv_name).is_file():
            return load_fer2013_csv(root / csv_name, use_cache=use_cache, progress=progress)
    raise DatasetError(
        f"FER2013 not found in {root}. Expected either the folder edition (train/<emotion>/Training_<id>.jpg "
        f"and test/<emotion>/PublicTest_<id>.jpg or PrivateTest_<id>.jpg, emotions {', '.join(CLASS_NAMES)}) "
        f"or the official CSV ({' or '.join(CSV_FILES)} with columns {','.join(CSV_COLUMNS)}). {HOW_TO_GET} "
        "Point FER_DATA_DIR at the folder that holds fer2013/, or pass root."
    )


def load_fer2013_folders(root: Path, *, use_cache: bool = True, progress: bool = True) -> FaceDataset:
    """The Kaggle folder edition: `train/<emotion>/Training_*.jpg`, `test/<emotion>/P*Test_*.jpg`."""
    folders = [root / folder for folder in _FOLDER_SPLITS]
    for folder in folders:
        if not folder.is_dir():
            raise DatasetError(
                f"FER2013 folder edition in {root} has no {folder.name}/ folder; it needs both train/ and "
                f"test/, each with one folder per emotion. {HOW_TO_GET}"
            )

    def build() -> FaceDataset:
        # Listing and checking the layout happens here, on a cache miss: an unchanged tree was valid.
        labelled = [
            item for folder in folders for item in scan_class_folders(folder, CLASS_NAMES, f"FER2013 {folder.name}/")
        ]
        files = [path for path, _ in labelled]
        splits = [_split_from_file_name(path) for path in files]
        images = read_images(
            files, color="gray", size=(IMAGE_SIZE, IMAGE_SIZE), progress=progress, description="FER2013"
        )
        meta = pd.DataFrame({"path": [relative_name(path, root) for path in files], "split": splits})
        labels = np.array([label for _, label in labelled], dtype=np.int64)
        checksum = content_checksum(files, root)
        return FaceDataset(
            NAME, images, labels, list(CLASS_NAMES), meta, checksum=checksum, extra={"edition": "folders"}
        )

    options = {"edition": "folders", "version": LOADER_VERSION}
    fingerprint = tree_fingerprint(folders, root)
    return load_or_build(NAME, root, fingerprint, options, build, use_cache=use_cache)


def _split_from_file_name(path: Path) -> str:
    folder = path.parent.parent.name  # train or test
    allowed = _FOLDER_SPLITS[folder]
    prefix = path.name.split("_", 1)[0]
    if prefix not in allowed:
        raise DatasetError(
            f"FER2013 file {path} does not start with {' or '.join(p + '_' for p in allowed)}. In the folder "
            f"edition the file-name prefix is the official split, so files in {folder}/ must carry it; "
            "rename the file or use the official CSV instead."
        )
    return prefix


def load_fer2013_csv(csv_path: Path, *, use_cache: bool = True, progress: bool = True) -> FaceDataset:
    """The official CSV (`emotion,pixels,Usage`, one 48x48 image per row), plain or gzipped."""
    csv_path = Path(csv_path)

    def build() -> FaceDataset:
        table = _read_table(csv_path)
        labels = _parse_emotions(table["emotion"], csv_path)
        splits = _parse_usages(table["Usage"], csv_path)
        images = _parse_pixels(table["pixels"], csv_path, progress)
        row_names = [f"{csv_path.name}#{row}" for row in range(1, len(table) + 1)]
        meta = pd.DataFrame({"path": row_names, "split": splits})
        return FaceDataset(NAME, images, labels, list(CLASS_NAMES), meta, extra={"edition": "csv"})

    options = {"edition": "csv", "version": LOADER_VERSION}
    return load_with_cache(NAME, csv_path.parent, [csv_path], options, build, use_cache=use_cache)


def _read_table(csv_path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, compression="infer")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as error:
        raise DatasetError(f"FER2013 CSV {csv_path} cannot be read as CSV: {error}.") from error
    table.columns = [str(column).strip() for column in table.columns]  # some copies have ", Usage"
    missing = [column for column in CSV_COLUMNS if column not in table.columns]
    if missing:
        raise DatasetError(
            f"FER2013 CSV {csv_path} has the wrong columns: expected {', '.join(CSV_COLUMNS)}, found "
            f"{', '.join(table.columns) or 'none'} (missing {', '.join(missing)}). Use the challenge's "
            "fer2013.csv, not train.csv or test.csv, which lack Usage or emotion."
        )
    if table.empty:
        raise DatasetError(f"FER2013 CSV {csv_path} has a header but no rows.")
    return table


def _row_name(index: int, csv_path: Path) -> str:
    """Row numbers count data rows from 1; the line number adds the header line."""
    return f"row {index + 1} (line {index + 2} of {csv_path.name})"


def _parse_emotions(column: pd.Series, csv_path: Path) -> np.ndarray:
    numbers = pd.to_numeric(column.str.strip(), errors="coerce")
    valid = numbers.isin(range(len(CLASS_NAMES))).to_numpy()
    if not valid.all():
        bad = int(np.flatnonzero(~valid)[0])
        raise DatasetError(
            f"FER2013 CSV {csv_path} {_row_name(bad, csv_path)} has emotion {column.iloc[bad]!r}; "
            f"expected an integer 0..{len(CLASS_NAMES) - 1} ({', '.join(CLASS_NAMES)})."
        )
    return numbers.to_numpy(dtype=np.int64)


def _parse_usages(column: pd.Series, csv_path: Path) -> list[str]:
    usages = column.str.strip()
    valid = usages.isin(SPLITS).to_numpy()
    if not valid.all():
        bad = int(np.flatnonzero(~valid)[0])
        raise DatasetError(
            f"FER2013 CSV {csv_path} {_row_name(bad, csv_path)} has Usage {column.iloc[bad]!r}; "
            f"expected one of {', '.join(SPLITS)}."
        )
    return usages.tolist()


def _parse_pixels(column: pd.Series, csv_path: Path, progress: bool) -> np.ndarray:
    expected = IMAGE_SIZE * IMAGE_SIZE
    images = np.empty((len(column), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8)
    rows = progress_bar(column, description="FER2013 CSV", unit="row", enabled=progress)
    for index, text in enumerate(rows):
        where = f"FER2013 CSV {csv_path} {_row_name(index, csv_path)}"
        try:
            # The C parser is ~50x faster than str.split + int and raises on any non-integer token.
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except ValueError:
            raise DatasetError(
                f"{where}: the pixels field must hold whitespace-separated integers, found {text[:40]!r}..."
            ) from None
        if values.size != expected:
            raise DatasetError(f"{where}: the pixels field holds {values.size} values; expected {expected} (48x48).")
        if values.min() < 0 or values.max() > 255:
            raise DatasetError(f"{where}: pixel values must be 0..255, found {values.min()}..{values.max()}.")
        images[index, :, :, 0] = values.reshape(IMAGE_SIZE, IMAGE_SIZE)
    return images
