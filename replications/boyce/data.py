"""Boyce's data, rebuilt from FER2013: the 4-class splits and the capstone's 128-image test set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_common.data import load_dataset
from fer_common.data.dataset import FaceDataset
from fer_common.data.splits import per_class_sample
from fer_common.errors import DatasetError
from replications.boyce import imagenet

SUBSET_SEED = 0  # per-class limits draw the same images for every training seed, so seeds stay comparable


@dataclass
class Images:
    """uint8 48x48 grayscale faces and their labels (indices into the 4 class names)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class TransferFeatures:
    """A frozen backbone's pooled features of every split, computed once and shared by the seeds."""

    extractor: object  # keras.Model: 0..255 pixels -> features
    splits: dict[str, np.ndarray]
    seconds: float  # wall time of computing them


SPLITS = ("train", "validation", "test", "private")


@dataclass
class BoyceData:
    train: Images
    validation: Images
    test: Images  # the capstone's 128
    private: Images  # the whole 4-class PrivateTest (a stratified subset in the quick profile)
    test_source: str
    test_has_training_duplicate: np.ndarray  # bool per test image: a near-duplicate among the train images
    weights: dict[str, imagenet.WeightsFile]  # transfer model -> verified ImageNet weights; {} for `none`
    features: dict[str, TransferFeatures] = field(default_factory=dict)

    def split(self, name: str) -> Images:
        return {"train": self.train, "validation": self.validation, "test": self.test, "private": self.private}[name]


# --- data -------------------------------------------------------------------------------------------------


def file_names(dataset: FaceDataset) -> np.ndarray:
    """Each image's path under the dataset folder, e.g. `test/happy/PrivateTest_10077120.jpg`."""
    return dataset.meta["path"].to_numpy(dtype=str)


def draw_test_files(private: FaceDataset, per_class: int, seed: int) -> list[str]:
    """The capstone-style test: `per_class` images of each class drawn at random from `private` (4 classes).

    Files are sorted by name before the draw, so the draw does not depend on the order the loader read
    them in. Returns the chosen paths, sorted.
    """
    names = file_names(private)
    order = np.argsort(names, kind="stable")
    chosen = order[per_class_sample(private.labels[order], per_class, seed)]
    counts = np.bincount(private.labels[chosen], minlength=len(private.class_names))
    if (counts != per_class).any():
        short = private.class_names[int(np.argmin(counts))]
        raise DatasetError(f"PrivateTest has fewer than {per_class} {short} images; cannot draw the test set")
    return sorted(names[chosen].tolist())


def locate_test_files(private: FaceDataset, config: dict) -> tuple[np.ndarray, str]:
    """Indices into `private` of the metadata's listed test files, and how the test set was obtained.

    The CSV edition has no file names: there the same draw is made from its PrivateTest rows, and the
    description says that these are not the listed files.
    """
    listed = list(config["test_files"])
    per_class = config["test_per_class"]
    position = {name: index for index, name in enumerate(file_names(private))}
    if private.extra.get("edition") == "csv":
        drawn = draw_test_files(private, per_class, config["test_seed"])
        source = (
            f"drawn with seed {config['test_seed']} from the CSV edition's PrivateTest rows: that edition has no "
            "file names, so these are not the files the metadata lists"
        )
        return np.array([position[name] for name in drawn]), source
    absent = [name for name in listed if name not in position]
    if absent:
        raise DatasetError(
            f"{len(absent)} of the {len(listed)} test files listed in replications/boyce/metadata.yaml "
            f"(config.test_files) are not in this FER2013's 4-class PrivateTest, e.g. {', '.join(absent[:3])}. "
            "The list was drawn from the Kaggle folder edition (msambare/fer2013); use that edition, or the "
            "official CSV, where the same draw is made from its rows."
        )
    index = np.array(sorted(position[name] for name in listed))
    counts = np.bincount(private.labels[index], minlength=len(private.class_names))
    if (counts != per_class).any():
        raise DatasetError(f"config.test_files must hold {per_class} images per class, found {counts.tolist()}")
    return index, f"the {len(listed)} files listed in metadata.yaml (config.test_files)"


def test_images(private: FaceDataset, train: Images, config: dict) -> tuple[Images, str]:
    """The 128-image test and how it was obtained. `test_source: private` (the replication): the listed
    PrivateTest files. `test_source: training` (a hypothesis, `explain_test_from_training`): the same number
    per class drawn with `test_seed` from the training images the model trains on."""
    source = config["test_source"]
    if source == "private":
        index, description = locate_test_files(private, config)
        return Images(private.images[index], private.labels[index]), description
    if source == "training":
        index = per_class_sample(train.labels, config["test_per_class"], config["test_seed"])
        description = (
            f"{config['test_per_class']} per class drawn with seed {config['test_seed']} from the training images "
            "the model trains on (test_source: training)"
        )
        return Images(train.images[index], train.labels[index]), description
    raise ValueError(f"config.test_source must be 'private' or 'training', got {source!r}")


def validation_images(dataset: FaceDataset, config: dict) -> Images:
    """The validation images: at most `validation_per_class` per class of each split in `validation_splits`
    (PublicTest in the replication; PublicTest and PrivateTest in `explain_validation_with_test_pool`)."""
    splits = config["validation_splits"]
    if not splits:
        raise ValueError("config.validation_splits must name at least one FER2013 split")
    parts = [at_most_per_class(dataset.split(name), config["validation_per_class"]) for name in splits]
    if len(parts) == 1:
        return parts[0]
    return Images(np.concatenate([part.images for part in parts]), np.concatenate([part.labels for part in parts]))


def at_most_per_class(dataset: FaceDataset, per_class: int | None) -> Images:
    """The whole split (None), or at most `per_class` images of each class drawn with SUBSET_SEED."""
    index = np.arange(len(dataset)) if per_class is None else per_class_sample(dataset.labels, per_class, SUBSET_SEED)
    return Images(dataset.images[index], dataset.labels[index])


def drawn_test_files_yaml() -> str:
    """The draw the metadata's config asks for, as the YAML list `config.test_files` holds.

    `python -m replications.boyce.data` regenerates the list (FER_DATA_DIR must hold FER2013).
    """
    from fer_common.metadata import load_metadata

    config = load_metadata(Path(__file__).with_name("metadata.yaml")).config
    dataset = load_dataset("fer2013").select_classes(config["classes"])
    names = draw_test_files(dataset.split("PrivateTest"), config["test_per_class"], config["test_seed"])
    return "\n".join(f"    - {name}" for name in names)


if __name__ == "__main__":
    print(drawn_test_files_yaml())
