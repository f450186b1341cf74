"""CK+48: the Kaggle edition of Extended Cohn-Kanade, 48x48 grayscale faces in one folder per emotion.

Files are `S<subject>_<sequence>_<frame>.png`, the last frames of each posed sequence. Frames of one
sequence are near-duplicates, so splits must keep subjects apart: `groups` holds the subject id.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from fer_common.data.cache import load_with_cache
from fer_common.data.dataset import FaceDataset
from fer_common.data.images import read_images, scan_class_folders
from fer_common.data.integrity import relative_name
from fer_common.errors import DatasetError

NAME = "ckplus48"
CLASS_NAMES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
IMAGE_SIZE = 48
KAGGLE_FOLDER = "CK+48"  # the Kaggle archive unpacks into this sub-folder
LOADER_VERSION = 1  # bump when decoding changes, so caches of the old result are not used
_FILE_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.[A-Za-z]+$")

HOW_TO_GET = (
    "CK+48 is on Kaggle: `kaggle datasets download -d shawon10/ckplus`, then unzip it into the dataset "
    "folder (the emotion folders may sit directly there or in its CK+48/ sub-folder). It is derived from the "
    "Extended Cohn-Kanade database (Lucey et al. 2010), licensed by its authors for non-commercial research."
)


def load_ckplus48(root: Path, *, use_cache: bool = True, progress: bool = True) -> FaceDataset:
    """CK+48 from `root/<emotion>/` or `root/CK+48/<emotion>/`; meta has subject, sequence, frame."""
    root = Path(root)
    folder = root / KAGGLE_FOLDER if (root / KAGGLE_FOLDER).is_dir() else root
    if not folder.is_dir():
        raise DatasetError(
            f"CK+48 not found in {root}. Expected one folder per emotion ({', '.join(CLASS_NAMES)}) holding "
            f"S<subject>_<sequence>_<frame>.png images. {HOW_TO_GET} "
            "Point FER_DATA_DIR at the folder that holds ckplus48/, or pass root."
        )
    labelled = scan_class_folders(folder, CLASS_NAMES, "CK+48")
    files = [path for path, _ in labelled]

    def build() -> FaceDataset:
        subjects, sequences, frames = zip(*(_parse_file_name(path) for path in files), strict=True)
        images = read_images(files, color="gray", size=(IMAGE_SIZE, IMAGE_SIZE), progress=progress, description="CK+48")
        meta = pd.DataFrame(
            {
                "subject": list(subjects),
                "sequence": np.array(sequences, dtype=np.int64),
                "frame": np.array(frames, dtype=np.int64),
                "path": [relative_name(path, root) for path in files],
                "split": "all",
            }
        )
        labels = np.array([label for _, label in labelled], dtype=np.int64)
        groups = np.array(subjects, dtype=str)
        return FaceDataset(NAME, images, labels, list(CLASS_NAMES), meta, groups=groups)

    return load_with_cache(NAME, root, files, {"version": LOADER_VERSION}, build, use_cache=use_cache)


def _parse_file_name(path: Path) -> tuple[str, int, int]:
    """(subject, sequence, frame) from `S010_004_00000017.png`."""
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise DatasetError(
            f"CK+48 file {path} is not named S<subject>_<sequence>_<frame>.png; the subject id in the name "
            "is needed to keep subjects apart in splits."
        )
    return match.group(1), int(match.group(2)), int(match.group(3))
