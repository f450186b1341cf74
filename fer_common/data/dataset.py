"""The one dataset type every loader returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class FaceDataset:
    """Images with labels and per-image metadata.

    images: uint8 array (N, H, W, C). labels: int64 array (N,), indices into class_names.
    groups: one id per image (subject or person) or None where the dataset has none.
    meta: one row per image; always has `path` and `split` columns (official split or usage),
    plus whatever the dataset knows (demographics, sequence, ...).
    checksum: identifies the source files, for provenance and cache keys.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    meta: pd.DataFrame
    groups: np.ndarray | None = None
    checksum: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"{self.name}: images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}"
            )
        if len(self.labels) != n or len(self.meta) != n or (self.groups is not None and len(self.groups) != n):
            raise ValueError(f"{self.name}: images, labels, meta and groups must have the same length ({n})")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray | list[int]) -> FaceDataset:
        """The images at `index` (integer positions or a boolean mask), same classes."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return FaceDataset(
            name=self.name,
            images=self.images[index],
            labels=self.labels[index],
            class_names=list(self.class_names),
            meta=self.meta.iloc[index].reset_index(drop=True),
            groups=None if self.groups is None else self.groups[index],
            checksum=self.checksum,
            extra=dict(self.extra),
        )

    def split(self, name: str) -> FaceDataset:
        """The images whose official split (`meta['split']`) is `name`."""
        return self.subset(self.meta["split"].to_numpy() == name)

    def select_classes(self, class_names: Sequence[str]) -> FaceDataset:
        """The images of the named classes only, relabelled 0..k-1 in the order given.

        For papers that use a subset of a dataset's classes (Boyce: FER2013's happy, sad, neutral,
        surprise); the order given becomes `class_names`, so it is the order of every report and matrix.
        """
        wanted = list(class_names)
        unknown = [name for name in wanted if name not in self.class_names]
        if unknown:
            raise ValueError(f"{self.name} has no class {unknown[0]!r}; its classes: {', '.join(self.class_names)}")
        if len(set(wanted)) != len(wanted) or not wanted:
            raise ValueError(f"class names must be unique and at least one, got {wanted}")
        old_labels = [self.class_names.index(name) for name in wanted]
        new_label_of = np.full(len(self.class_names), -1, dtype=np.int64)
        new_label_of[old_labels] = np.arange(len(wanted))
        kept = self.subset(np.isin(self.labels, old_labels))
        return FaceDataset(
            name=kept.name,
            images=kept.images,
            labels=new_label_of[kept.labels],
            class_names=wanted,
            meta=kept.meta,
            groups=kept.groups,
            checksum=kept.checksum,
            extra=kept.extra,
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts, strict=True)}
