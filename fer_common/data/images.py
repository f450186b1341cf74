"""Finding and decoding image files with OpenCV into uint8 (H, W, C) arrays."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from tqdm import tqdm

from fer_common.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

Color = Literal["auto", "gray", "rgb"]

# Decoding is a few microseconds per 48x48 image, so hand threads chunks rather than single files.
_CHUNK_SIZE = 256
_IMREAD_FLAGS = {"auto": cv2.IMREAD_ANYCOLOR, "gray": cv2.IMREAD_GRAYSCALE, "rgb": cv2.IMREAD_COLOR}


def is_image_name(name: str) -> bool:
    """A visible file name whose suffix is an image format OpenCV reads (hidden files are OS clutter)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith(".")


def list_image_files(folder: Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name."""
    # iterdir builds child paths ~8x faster than `folder / name`, and names alone decide (no stat per
    # entry): it lists 36k FER2013 files.
    return sorted((path for path in folder.iterdir() if is_image_name(path.name)), key=lambda path: path.name)


def scan_class_folders(folder: Path, class_names: Sequence[str], description: str) -> list[tuple[Path, int]]:
    """(file, label) for every image in `folder/<class name>/`, classes in `class_names` order.

    Every class must have a non-empty folder and no other folders may be present: a missing, extra
    or empty folder means a broken download, and loading it anyway would silently change the classes.
    `description` names the folder in error messages (e.g. "FER2013 train/").
    """
    present = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and entry.name[0] != ".")
    unknown = [name for name in present if name not in class_names]
    missing = [name for name in class_names if name not in present]
    if unknown or missing:
        raise DatasetError(
            f"{description} at {folder} has the wrong class folders: "
            + (f"unknown {', '.join(unknown)}; " if unknown else "")
            + (f"missing {', '.join(missing)}; " if missing else "")
            + f"expected exactly {', '.join(class_names)}."
        )
    labelled: list[tuple[Path, int]] = []
    for label, class_name in enumerate(class_names):
        files = list_image_files(folder / class_name)
        if not files:
            raise DatasetError(
                f"{description} class folder {folder / class_name} holds no images "
                f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))}); the download is probably incomplete."
            )
        labelled.extend((path, label) for path in files)
    return labelled


def read_image(path: Path, color: Color = "auto") -> np.ndarray:
    """One image as uint8 (H, W, C): grayscale gives C=1, colour gives RGB with C=3.

    `color` forces the result: "gray" converts colour files, "rgb" expands grayscale ones.
    """
    try:
        encoded = np.fromfile(path, dtype=np.uint8)  # imread cannot report why it failed; this can
    except OSError as error:
        raise DatasetError(f"Cannot read image file {path}: {error.strerror or error}.") from error
    image = cv2.imdecode(encoded, _IMREAD_FLAGS[color]) if encoded.size else None
    if image is None:
        raise DatasetError(f"Image file {path} is corrupt or not an image OpenCV can decode; replace it.")
    if image.ndim == 2:
        return image[:, :, np.newaxis]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of `image`, resized to size x size (area averaging when shrinking)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    if side == size:
        return square
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    return resized.reshape(size, size, image.shape[2])  # cv2 drops a single channel axis


def read_images(
    paths: Sequence[Path],
    *,
    color: Literal["gray", "rgb"],
    size: tuple[int, int],
    crop_to_size: bool = False,
    progress: bool = True,
    description: str = "decoding",
) -> np.ndarray:
    """Decode `paths` in parallel into one uint8 array (N, height, width, C).

    An image of another size raises DatasetError naming it, unless `crop_to_size` is set (square
    `size` only): then it is centre-cropped to a square and resized.
    """
    height, width = size
    channels = 1 if color == "gray" else 3
    images = np.empty((len(paths), height, width, channels), dtype=np.uint8)

    def decode_chunk(start: int) -> int:
        chunk = paths[start : start + _CHUNK_SIZE]
        for offset, path in enumerate(chunk):
            image = read_image(path, color)
            if crop_to_size and image.shape[:2] != size:
                image = center_crop_resize(image, height)
            if image.shape[:2] != size:
                raise DatasetError(
                    f"Image {path} is {image.shape[1]}x{image.shape[0]} pixels; this dataset's images "
                    f"are {width}x{height}."
                )
            images[start + offset] = image
        return len(chunk)

    workers = min(16, 2 * (os.cpu_count() or 1))  # file reads and cv2 decoding both release the GIL
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress_bar(total=len(paths), description=description, unit="img", enabled=progress) as bar,
    ):
        for decoded in pool.map(decode_chunk, range(0, len(paths), _CHUNK_SIZE)):
            bar.update(decoded)
    return images


def progress_bar(iterable=None, *, total: int | None = None, description: str, unit: str, enabled: bool = True) -> tqdm:
    """A progress bar on stderr, hidden where the caller asks for none or the suite's messages are off (-q)."""
    shown = enabled and log.isEnabledFor(logging.INFO)
    return tqdm(iterable, total=total, desc=description, unit=unit, disable=not shown)
