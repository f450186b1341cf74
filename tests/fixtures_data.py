"""Helpers for the data-layer tests: real dataset roots, and small synthetic datasets written to disk."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_common import paths
from fer_common.data import ckplus48, fer2013


def real_root(name: str) -> Path:
    """The real dataset `name` under FER_DATA_DIR; skips the test, saying why, when it is absent."""
    root = paths.data_dir() / name
    if not root.is_dir():
        pytest.skip(f"real {name} dataset not found: FER_DATA_DIR ({paths.data_dir()}) has no {name}/ folder")
    return root


def write_image(path: Path, image: np.ndarray) -> None:
    """Write `image` (gray (H, W) or (H, W, 1), or colour in OpenCV's BGR order) losslessly or as JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix, image)
    assert ok, path
    encoded.tofile(path)


def random_images(count: int, height: int, width: int, channels: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, channels), dtype=np.uint8)


@dataclass
class Written:
    """What a synthetic dataset holds, keyed by relative path, to compare a loader's output with."""

    images: dict[str, np.ndarray]
    labels: dict[str, int]
    splits: dict[str, str]

    def add(self, path: str, image: np.ndarray, label: int, split: str) -> None:
        self.images[path], self.labels[path], self.splits[path] = image, label, split

    def prefixed(self, prefix: str) -> Written:
        """The same files seen from a parent folder: `prefix` put before every path."""
        return Written(
            *(
                {prefix + path: value for path, value in table.items()}
                for table in (self.images, self.labels, self.splits)
            )
        )


def make_fer_folders(root: Path, per_split: dict[str, int] | None = None, seed: int = 0) -> Written:
    """A folder-edition FER2013 of PNGs (lossless, so pixels survive exactly): train/ and test/."""
    per_split = per_split or {"Training": 2, "PublicTest": 1, "PrivateTest": 1}
    written = Written({}, {}, {})
    total = len(fer2013.CLASS_NAMES) * sum(per_split.values())
    images = iter(random_images(total, 48, 48, 1, seed))
    for label, class_name in enumerate(fer2013.CLASS_NAMES):
        for usage, count in per_split.items():
            folder = "train" if usage == "Training" else "test"
            for index in range(count):
                relative = f"{folder}/{class_name}/{usage}_{label}{index:03d}.png"
                image = next(images)
                write_image(root / relative, image)
                written.add(relative, image, label, usage)
    return written


def write_fer_csv(path: Path, images: np.ndarray, labels: np.ndarray, usages: list[str]) -> None:
    """The official CSV layout (`emotion,pixels,Usage`); gzipped when `path` ends in .gz."""
    lines = ["emotion,pixels,Usage"] + [
        f"{label},{' '.join(map(str, image.reshape(-1)))},{usage}"
        for image, label, usage in zip(images, labels, usages, strict=True)
    ]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def make_ckplus(root: Path, subjects: int = 3, frames: int = 3, seed: int = 0) -> Written:
    """CK+48 layout: every class gets one sequence of `frames` frames from each of `subjects` subjects."""
    written = Written({}, {}, {})
    count = len(ckplus48.CLASS_NAMES) * subjects * frames
    images = iter(random_images(count, 48, 48, 1, seed))
    for label, class_name in enumerate(ckplus48.CLASS_NAMES):
        for subject in range(subjects):
            for frame in range(frames):
                relative = f"{class_name}/S{100 + subject:03d}_{label + 1:03d}_{frame + 10:08d}.png"
                image = next(images)
                write_image(root / relative, image)
                written.add(relative, image, label, "all")
    return written


def write_sha256sums(folder: Path) -> None:
    """A `sha256sum`-style SHA256SUMS over every file in `folder`, paths like `./a/b.png`."""
    lines = [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  ./{path.relative_to(folder).as_posix()}"
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "SHA256SUMS"
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
