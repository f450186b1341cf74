"""Dataset loaders, the decoded-array cache and SHA256SUMS: real data where present, synthetic always."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_common.data import DATASETS, FaceDataset, cfd, ckplus48, fer2013, load_dataset
from fer_common.data.images import read_image
from fer_common.data.integrity import content_checksum, source_fingerprint, verify_sha256sums
from fer_common.errors import DatasetError
from replications.hong.data import to_hong_classes

from .fixtures_data import make_ckplus, make_fer_folders, real_root, write_fer_csv, write_image

# Official FER2013 class counts per Usage (fer2013.csv), in the CSV's class order.
FER2013_COUNTS = {
    "Training": {
        "angry": 3995,
        "disgust": 436,
        "fear": 4097,
        "happy": 7215,
        "sad": 4830,
        "surprise": 3171,
        "neutral": 4965,
    },
    "PublicTest": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607},
    "PrivateTest": {
        "angry": 491,
        "disgust": 55,
        "fear": 528,
        "happy": 879,
        "sad": 594,
        "surprise": 416,
        "neutral": 626,
    },
}
CKPLUS48_COUNTS = {
    "anger": 135,
    "contempt": 54,
    "disgust": 177,
    "fear": 75,
    "happy": 207,
    "sadness": 84,
    "surprise": 249,
}
CFD_COUNTS = {"N": 691, "HC": 36, "HO": 35, "A": 34, "F": 27}


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty cache of its own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FER_CACHE_DIR", str(folder))
    return folder


def assert_same_dataset(first: FaceDataset, second: FaceDataset) -> None:
    assert first.name == second.name and first.class_names == second.class_names
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    pd.testing.assert_frame_equal(first.meta, second.meta)
    assert (first.groups is None) == (second.groups is None)
    if first.groups is not None:
        np.testing.assert_array_equal(first.groups, second.groups)
    assert first.checksum == second.checksum and first.extra == second.extra


def assert_matches_written(dataset: FaceDataset, written) -> None:
    paths = dataset.meta["path"].tolist()
    assert sorted(paths) == sorted(written.images)
    for index, path in enumerate(paths):
        np.testing.assert_array_equal(dataset.images[index, :, :, 0], written.images[path].squeeze())
        assert dataset.labels[index] == written.labels[path]
        assert dataset.meta["split"].iloc[index] == written.splits[path]


# ---- real data ---------------------------------------------------------------------------------------------


def timed_load(name: str) -> tuple[FaceDataset, float]:
    start = time.perf_counter()
    dataset = load_dataset(name, progress=False)
    return dataset, time.perf_counter() - start


@pytest.fixture(scope="module")
def fer2013_loads(tmp_path_factory):
    """The real FER2013 through a fresh cache: (first load, a cached load, first seconds, cached seconds).

    The cached time is the best of three cached loads, so that other work on the machine does not
    decide the speed-up test.
    """
    real_root("fer2013")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FER_CACHE_DIR", str(tmp_path_factory.mktemp("fer2013-cache")))
        first, first_seconds = timed_load("fer2013")
        cached = [timed_load("fer2013") for _ in range(3)]
    return first, cached[0][0], first_seconds, min(seconds for _, seconds in cached)


@pytest.mark.real_data
def test_fer2013_real_counts(fer2013_loads):
    dataset = fer2013_loads[0]
    assert dataset.images.shape == (35887, 48, 48, 1) and dataset.images.dtype == np.uint8
    assert dataset.class_names == list(fer2013.CLASS_NAMES)
    assert dataset.extra["edition"] == "folders"
    for usage, counts in FER2013_COUNTS.items():
        part = dataset.split(usage)
        assert part.class_counts() == counts
        assert len(part) == sum(counts.values())
    assert len(dataset.split("Training")) == 28709
    assert len(dataset.split("PublicTest")) == len(dataset.split("PrivateTest")) == 3589


@pytest.mark.real_data
def test_fer2013_real_labels_follow_folders(fer2013_loads):
    dataset = fer2013_loads[0]
    folders = dataset.meta["path"].str.split("/").str[1]
    assert (folders.to_numpy() == np.asarray(dataset.class_names)[dataset.labels]).all()
    prefixes = dataset.meta["path"].str.split("/").str[2].str.split("_").str[0]
    assert (prefixes == dataset.meta["split"]).all()


@pytest.mark.real_data
def test_fer2013_real_second_load_from_cache_is_10x_faster(fer2013_loads):
    first, second, first_seconds, second_seconds = fer2013_loads
    print(f"\nFER2013 first load {first_seconds:.2f} s, second (cached) load {second_seconds:.2f} s")
    assert_same_dataset(first, second)
    assert len(first.checksum) == 64
    assert second_seconds * 10 <= first_seconds


@pytest.mark.real_data
@pytest.mark.parametrize("csv_name", ["fer2013.csv", "fer2013.csv.gz"])
def test_fer2013_csv_edition_matches_folder_edition_on_real_images(fer2013_loads, tmp_path, csv_name):
    folder_edition = fer2013_loads[0]
    # Three images of every class in every split: 63 real images, all labels and usages represented.
    splits = folder_edition.meta["split"].to_numpy()
    chosen = np.concatenate(
        [
            np.flatnonzero((folder_edition.labels == label) & (splits == usage))[:3]
            for usage in fer2013.SPLITS
            for label in range(len(fer2013.CLASS_NAMES))
        ]
    )
    expected = folder_edition.subset(chosen)
    usages = expected.meta["split"].tolist()
    write_fer_csv(tmp_path / "csv" / csv_name, expected.images, expected.labels, usages)

    csv_edition = load_dataset("fer2013", tmp_path / "csv", progress=False)

    assert csv_edition.extra["edition"] == "csv"
    np.testing.assert_array_equal(csv_edition.images, expected.images)
    np.testing.assert_array_equal(csv_edition.labels, expected.labels)
    assert csv_edition.meta["split"].tolist() == expected.meta["split"].tolist()
    assert csv_edition.meta["path"].iloc[0] == f"{csv_name}#1"


@pytest.mark.real_data
def test_ckplus48_real_counts_and_subjects():
    real_root("ckplus48")
    dataset = load_dataset("ckplus48", progress=False)
    assert dataset.images.shape == (981, 48, 48, 1)
    assert dataset.class_counts() == CKPLUS48_COUNTS
    assert len(set(dataset.groups)) == 118
    assert (dataset.groups == dataset.meta["subject"].to_numpy(dtype=str)).all()
    assert set(dataset.meta.columns) >= {"subject", "sequence", "frame", "path", "split"}
    assert set(dataset.meta["split"]) == {"all"}
    first = dataset.meta.iloc[0]
    assert (first["subject"], first["sequence"], first["frame"]) == ("S010", 4, 17)


@pytest.mark.real_data
def test_cfd_real_counts_and_meta():
    real_root("cfd")
    dataset = load_dataset("cfd", progress=False)
    assert dataset.images.shape == (823, 256, 256, 3)
    assert dataset.class_counts() == CFD_COUNTS
    meta = dataset.meta
    assert set(meta["race"]) == set(cfd.RACES) and set(meta["sex"]) == {"F", "M"}
    assert len(set(dataset.groups)) == 823  # one photo per person in this copy
    row = meta[meta["path"] == "CFD-BF-200-080-N.jpg"].iloc[0]
    fields = (row["race"], row["sex"], row["target"], row["photo"], row["expression"])
    assert fields == ("B", "F", "BF-200", "080", "N")
    # Non-neutral photos exist only for Black and White targets.
    assert set(meta.loc[meta["expression"] != "N", "race"]) == {"B", "W"}


@pytest.mark.real_data
def test_cfd_real_hong_classes():
    real_root("cfd")
    dataset = load_dataset("cfd", progress=False)
    hong = to_hong_classes(dataset, races=("B", "W"), neutral="all")
    composition = hong.extra["composition"]
    assert hong.class_names == ["negative", "neutral", "positive"]
    assert composition["classes"] == {"negative": 61, "neutral": 248, "positive": 71}
    assert hong.class_counts() == composition["classes"]
    assert set(hong.meta["race"]) == {"B", "W"}
    with pytest.raises(DatasetError, match="neutral='all'"):
        to_hong_classes(dataset, neutral="same_targets")  # one photo per person: no such neutral photos


@pytest.mark.real_data
@pytest.mark.parametrize("name, files", [("ckplus48", 981), ("cfd", 823)])
def test_real_sha256sums_verify(name, files):
    summary = verify_sha256sums(real_root(name))
    assert summary.files_checked == files and summary.unlisted == []


# ---- synthetic data ----------------------------------------------------------------------------------------


def test_fer2013_folder_edition_synthetic(tmp_path):
    written = make_fer_folders(tmp_path / "fer2013")
    dataset = load_dataset("fer2013", tmp_path / "fer2013", progress=False)
    assert dataset.images.shape == (7 * 4, 48, 48, 1) and dataset.labels.dtype == np.int64
    assert_matches_written(dataset, written)
    sad = dataset.meta["path"].str.contains("/sad/").to_numpy()
    assert (dataset.labels[sad] == fer2013.CLASS_NAMES.index("sad")).all()


@pytest.mark.parametrize("csv_name", ["fer2013.csv", "fer2013.csv.gz"])
def test_fer2013_csv_edition_matches_folder_edition_synthetic(tmp_path, csv_name):
    make_fer_folders(tmp_path / "folders")
    folder_edition = load_dataset("fer2013", tmp_path / "folders", progress=False)
    write_fer_csv(
        tmp_path / "csv" / csv_name, folder_edition.images, folder_edition.labels, folder_edition.meta["split"].tolist()
    )
    csv_edition = load_dataset("fer2013", tmp_path / "csv", progress=False)
    np.testing.assert_array_equal(csv_edition.images, folder_edition.images)
    np.testing.assert_array_equal(csv_edition.labels, folder_edition.labels)
    assert csv_edition.meta["split"].tolist() == folder_edition.meta["split"].tolist()
    assert csv_edition.class_names == folder_edition.class_names


def test_fer2013_prefers_folder_edition_when_both_present(tmp_path):
    make_fer_folders(tmp_path)
    write_fer_csv(tmp_path / "fer2013.csv", np.zeros((1, 48, 48, 1), np.uint8), np.array([0]), ["Training"])
    assert load_dataset("fer2013", tmp_path, progress=False).extra["edition"] == "folders"


def test_ckplus48_synthetic_in_kaggle_subfolder(tmp_path):
    written = make_ckplus(tmp_path / "CK+48")
    dataset = load_dataset("ckplus48", tmp_path, progress=False)
    assert dataset.images.shape == (7 * 3 * 3, 48, 48, 1)
    assert_matches_written(dataset, written.prefixed("CK+48/"))
    assert set(dataset.groups) == {"S100", "S101", "S102"}
    assert dataset.meta["frame"].dtype == np.int64


def test_cfd_synthetic_crops_resizes_and_regroups(tmp_path):
    names = [
        "CFD-WM-001-011-N.jpg",
        "CFD-WM-001-012-HO.jpg",
        "CFD-WM-002-011-A.jpg",
        "CFD-BF-200-080-N.jpg",
        "CFD-BF-003-016-F.jpg",
        "CFD-AF-200-228-N.jpg",
    ]
    colour = np.zeros((300, 200, 3), np.uint8)
    colour[:, :, 2] = 200  # OpenCV writes BGR, so this is red
    for index, name in enumerate(names):
        write_image(tmp_path / "cfd" / f"sub{index % 2}" / name, colour)
    dataset = load_dataset("cfd", tmp_path / "cfd", progress=False)
    assert dataset.images.shape == (6, 256, 256, 3)
    centre = dataset.images[:, 128, 128].astype(int)
    assert (abs(centre[:, 0] - 200) <= 2).all() and (centre[:, 2] < 5).all()  # red, now in RGB order
    assert dataset.meta["target"].tolist().count("WM-001") == 2
    assert set(dataset.groups) == {"WM-001", "WM-002", "BF-200", "BF-003", "AF-200"}

    same = to_hong_classes(dataset, neutral="same_targets")
    assert same.meta["path"].str.endswith("N.jpg").sum() == 1  # only WM-001 has a neutral and another photo
    assert same.extra["composition"]["classes"] == {"negative": 2, "neutral": 1, "positive": 1}
    everything = to_hong_classes(dataset, neutral="all")
    assert everything.extra["composition"]["classes"] == {"negative": 2, "neutral": 2, "positive": 1}
    assert everything.extra["composition"]["by_race"]["B"] == {"negative": 1, "neutral": 1, "positive": 0}
    with pytest.raises(ValueError, match="races"):
        to_hong_classes(dataset, races=("X",))


def test_read_image_gray_and_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_image(tmp_path / "gray.png", gray)
    assert read_image(tmp_path / "gray.png").shape == (3, 4, 1)
    bgr = np.zeros((3, 4, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    write_image(tmp_path / "blue.png", bgr)
    rgb = read_image(tmp_path / "blue.png")
    assert rgb.shape == (3, 4, 3) and (rgb[..., 2] == 255).all() and (rgb[..., 0] == 0).all()
    assert read_image(tmp_path / "blue.png", "gray").shape == (3, 4, 1)


def test_registry_and_load_dataset_defaults(tmp_path, monkeypatch):
    assert set(DATASETS) == {"fer2013", "ckplus48", "cfd", "affectnet"}
    assert "msambare/fer2013" in DATASETS["fer2013"].how_to_get
    assert "challenges-in-representation-learning-facial-expression-recognition-challenge" in (
        DATASETS["fer2013"].how_to_get
    )
    assert "shawon10/ckplus" in DATASETS["ckplus48"].how_to_get
    assert "chicagofaces.org" in DATASETS["cfd"].how_to_get
    assert "mohammadmahoor.com/affectnet" in DATASETS["affectnet"].how_to_get
    make_ckplus(tmp_path / "ckplus48", subjects=1, frames=1)
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))
    assert len(load_dataset("ckplus48", progress=False)) == 7


# ---- cache -------------------------------------------------------------------------------------------------


class DecodeCounter:
    """Wraps a loader module's `read_images` to count decodes (a cache hit decodes nothing)."""

    def __init__(self, monkeypatch, module) -> None:
        self.calls = 0
        original = module.read_images

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, "read_images", counted)


def test_cache_second_load_is_a_faster_hit(tmp_path, monkeypatch, isolated_cache):
    root = tmp_path / "ckplus48"
    make_ckplus(root, subjects=20)  # 420 images
    decodes = DecodeCounter(monkeypatch, ckplus48)
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))
    first, first_seconds = timed_load("ckplus48")
    cached = [timed_load("ckplus48") for _ in range(3)]
    assert decodes.calls == 1
    assert min(seconds for _, seconds in cached) < first_seconds  # best of three: the machine is shared
    assert_same_dataset(first, cached[0][0])
    assert first.checksum == content_checksum([root / path for path in first.meta["path"]], root)
    assert len(list((isolated_cache / "datasets").glob("ckplus48-*.npz"))) == 1


def test_cache_invalidated_by_touch_add_remove(tmp_path, monkeypatch, isolated_cache):
    root = tmp_path / "ckplus48"
    written = make_ckplus(root)
    decodes = DecodeCounter(monkeypatch, ckplus48)
    first = load_dataset("ckplus48", root, progress=False)

    touched = root / next(iter(written.images))
    status = touched.stat()
    os.utime(touched, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    assert_same_dataset(load_dataset("ckplus48", root, progress=False), first)
    assert decodes.calls == 2

    write_image(root / "anger" / "S200_001_00000001.png", np.full((48, 48), 7, np.uint8))
    grown = load_dataset("ckplus48", root, progress=False)
    assert (decodes.calls, len(grown)) == (3, len(first) + 1)
    assert grown.checksum != first.checksum

    (root / "anger" / "S200_001_00000001.png").unlink()
    shrunk = load_dataset("ckplus48", root, progress=False)
    assert (decodes.calls, len(shrunk)) == (4, len(first))
    assert shrunk.checksum == first.checksum
    assert len(list((isolated_cache / "datasets").glob("*.npz"))) == 1  # one slot, overwritten


def test_cache_off_and_corrupt_cache(tmp_path, monkeypatch, isolated_cache):
    root = tmp_path / "ckplus48"
    make_ckplus(root)
    decodes = DecodeCounter(monkeypatch, ckplus48)
    load_dataset("ckplus48", root, use_cache=False, progress=False)
    assert not (isolated_cache / "datasets").exists()
    expected = load_dataset("ckplus48", root, progress=False)
    (cache_file,) = (isolated_cache / "datasets").glob("*.npz")
    cache_file.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable dataset cache"):
        rebuilt = load_dataset("ckplus48", root, progress=False)
    assert_same_dataset(rebuilt, expected)
    assert decodes.calls == 3
    assert load_dataset("ckplus48", root, progress=False).checksum == expected.checksum
    assert decodes.calls == 3  # the rebuild rewrote a good cache


def test_cache_options_get_separate_slots(tmp_path, isolated_cache):
    root = tmp_path / "cfd"
    write_image(root / "CFD-WM-001-011-N.jpg", np.full((64, 64, 3), 90, np.uint8))
    small = cfd.load_cfd(root, image_size=32, progress=False)
    large = cfd.load_cfd(root, image_size=64, progress=False)
    assert small.images.shape[1:] == (32, 32, 3) and large.images.shape[1:] == (64, 64, 3)
    assert len(list((isolated_cache / "datasets").glob("cfd-*.npz"))) == 2


def test_source_fingerprint_tracks_names_sizes_and_times(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(b"1")
    second.write_bytes(b"22")
    key = source_fingerprint([first, second], tmp_path)
    assert source_fingerprint([second, first], tmp_path) == key  # order does not matter
    first.write_bytes(b"111")
    assert source_fingerprint([first, second], tmp_path) != key


def test_select_classes_keeps_and_relabels_in_the_order_given():
    labels = np.array([0, 3, 4, 6, 3, 5, 1])
    dataset = FaceDataset(
        "fer2013",
        np.arange(7, dtype=np.uint8).reshape(7, 1, 1, 1),
        labels,
        list(fer2013.CLASS_NAMES),
        pd.DataFrame({"path": [f"{i}.jpg" for i in range(7)], "split": ["Training"] * 7}),
    )
    four = dataset.select_classes(["happy", "sad", "neutral", "surprise"])
    assert four.class_names == ["happy", "sad", "neutral", "surprise"]
    # happy (3) -> 0, sad (4) -> 1, neutral (6) -> 2, surprise (5) -> 3; angry and disgust dropped.
    assert four.labels.tolist() == [0, 1, 2, 0, 3]
    assert four.meta["path"].tolist() == ["1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg"]
    with pytest.raises(ValueError, match="no class 'contempt'"):
        dataset.select_classes(["happy", "contempt"])
