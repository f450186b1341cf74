"""Dataset loading: one registry of datasets, each with a loader and how to obtain it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fer_common import paths
from fer_common.data import affectnet, cfd, ckplus48, fer2013
from fer_common.data.dataset import FaceDataset
from fer_common.data.integrity import check_dataset_folder
from fer_common.errors import DatasetError

__all__ = ["DATASETS", "DatasetInfo", "FaceDataset", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset the project knows: its loader and, in one paragraph, how to obtain it."""

    name: str
    title: str
    how_to_get: str
    loader: Callable[..., FaceDataset]


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("fer2013", "FER2013 (ICML 2013 challenge)", fer2013.HOW_TO_GET, fer2013.load_fer2013),
        DatasetInfo(
            "ckplus48", "CK+48 (Extended Cohn-Kanade, Kaggle edition)", ckplus48.HOW_TO_GET, ckplus48.load_ckplus48
        ),
        DatasetInfo("cfd", "Chicago Face Database", cfd.HOW_TO_GET, cfd.load_cfd),
        DatasetInfo("affectnet", "AffectNet", affectnet.AFFECTNET_HOW_TO_GET, affectnet.load_affectnet),
    )
}


def load_dataset(
    name: str, root: Path | str | None = None, *, use_cache: bool = True, progress: bool = True
) -> FaceDataset:
    """Load dataset `name` from `root` (default `FER_DATA_DIR/<name>`), through the decoded-array cache.

    A folder with a SHA256SUMS is checked against it first: DatasetError naming the files that differ, unless
    the run allows modified data (see `integrity.data_audit`)."""
    info = DATASETS.get(name)
    if info is None:
        raise DatasetError(f"Unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}.")
    folder = Path(root) if root is not None else paths.data_dir() / name
    check_dataset_folder(folder, info.how_to_get)
    return info.loader(folder, use_cache=use_cache, progress=progress)
