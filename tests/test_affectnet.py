"""AffectNet loader, on small AffectNet-shaped copies the tests build from real CFD and CK+48 photos."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_common.data.affectnet import CLASS_NAMES, IMAGES_FOLDER, LIST_FILE_COLUMNS, load_affectnet
from fer_common.data.images import read_image
from fer_common.errors import DatasetError

from .helpers import requires_dataset, shared_data_dir

CFD = shared_data_dir() / "cfd"
CKPLUS48 = shared_data_dir() / "ckplus48"
# CFD expression suffix -> AffectNet code (neutral 0, happy 1, fear 4, anger 6).
CFD_CODES = {"N": 0, "HC": 1, "HO": 1, "A": 6, "F": 4}
CENTRE_BOX = (64, 64, 128, 128)  # x, y, width, height in the 256x256 CFD photos
EDGE_BOX = (200, 150, 100, 100)  # runs past the right edge: clipped to x 200..256
# CK+48 folder -> a spelling an AffectNet folder edition uses, and the AffectNet class it must map to.
CKPLUS_SPELLINGS = {
    "anger": ("Angry", 6),
    "contempt": ("contempt", 7),
    "disgust": ("5", 5),
    "fear": ("fear", 4),
    "happy": ("Happiness", 1),
    "sadness": ("sad", 2),
    "surprise": ("surprise", 3),
}


def _cfd_photos(expression: str, count: int) -> list[Path]:
    return sorted(CFD.glob(f"CFD-*-{expression}.jpg"))[:count]


def make_list_file_edition(root: Path, per_expression: int = 8) -> pd.DataFrame:
    """An official-layout copy: `per_expression` CFD photos for each of N, HC, HO, A, F, one row in four in
    validation.csv, plus three neutral photos coded 8, 9 and 10 that the loader must drop. The first row's
    image sits directly under root (the fallback location); the second row's box runs past the image edge.
    Returns the rows written, in order, with a `split` column."""
    photos = [
        (photo, code) for expression, code in CFD_CODES.items() for photo in _cfd_photos(expression, per_expression)
    ]
    extra_neutral = sorted(CFD.glob("CFD-*-N.jpg"))[per_expression : per_expression + 3]
    photos += [(photo, code) for photo, code in zip(extra_neutral, (8, 9, 10), strict=True)]
    rows = []
    for index, (photo, code) in enumerate(photos):
        relative = f"{index % 3}/{photo.name}"
        folder = root if index == 0 else root / IMAGES_FOLDER
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / relative)
        box = EDGE_BOX if index == 1 else CENTRE_BOX
        rows.append(
            {
                "subDirectory_filePath": relative,
                "face_x": box[0],
                "face_y": box[1],
                "face_width": box[2],
                "face_height": box[3],
                "facial_landmarks": "70.1;80.2;90.3",
                "expression": code,
                "valence": 0.25,
                "arousal": -0.5,
                "split": "validation" if index % 4 == 3 else "training",
            }
        )
    table = pd.DataFrame(rows)
    for split in ("training", "validation"):
        table[table["split"] == split][list(LIST_FILE_COLUMNS)].to_csv(root / f"{split}.csv", index=False)
    return table


def _expected_crop(path: Path, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    image = read_image(path, "rgb")
    x, y, width, height = box
    face = image[max(y, 0) : min(y + height, image.shape[0]), max(x, 0) : min(x + width, image.shape[1])]
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def list_file_root(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    if not CFD.is_dir():
        pytest.skip(f"needs the real cfd dataset in FER_DATA_DIR ({shared_data_dir()})")
    root = tmp_path_factory.mktemp("affectnet_list")
    return root, make_list_file_edition(root)


def test_list_file_edition_keeps_codes_0_to_7_with_their_splits(list_file_root):
    root, table = list_file_root
    dataset = load_affectnet(root, image_size=64, use_cache=False, progress=False)
    kept = table[table["expression"] < 8]
    assert dataset.class_names == list(CLASS_NAMES)
    assert len(dataset) == 40
    counts = {"neutral": 8, "happy": 16, "sad": 0, "surprise": 0, "fear": 8, "disgust": 0, "anger": 8}
    assert dataset.class_counts() == {**counts, "contempt": 0}
    assert dataset.extra["dropped"] == {"none": 1, "uncertain": 1, "non-face": 1}
    assert dataset.extra["edition"] == "list-file"
    assert dataset.images.shape == (40, 64, 64, 3) and dataset.images.dtype == np.uint8
    # training.csv rows come first, then validation.csv's; each keeps its list file's split and its code.
    in_order = pd.concat([kept[kept["split"] == "training"], kept[kept["split"] == "validation"]])
    expected_paths = [
        path if row == 0 else f"{IMAGES_FOLDER}/{path}"  # row 0 sits at the fallback location
        for row, path in zip(in_order.index, in_order["subDirectory_filePath"], strict=True)
    ]
    assert dataset.meta["path"].tolist() == expected_paths
    assert dataset.meta["split"].tolist() == in_order["split"].tolist()
    assert dataset.labels.tolist() == in_order["expression"].tolist()
    assert dict(dataset.meta["split"].value_counts()) == {"training": 30, "validation": 10}
    assert dataset.meta["valence"].tolist() == [0.25] * 40


def test_list_file_edition_crops_the_face_box_clipped_to_the_image(list_file_root):
    root, table = list_file_root
    dataset = load_affectnet(root, image_size=48, use_cache=False, progress=False)
    first, second = table.iloc[0], table.iloc[1]
    assert dataset.meta["path"].iloc[0] == first["subDirectory_filePath"]
    np.testing.assert_array_equal(
        dataset.images[0], _expected_crop(root / first["subDirectory_filePath"], CENTRE_BOX, 48)
    )
    second_path = root / IMAGES_FOLDER / second["subDirectory_filePath"]
    np.testing.assert_array_equal(dataset.images[1], _expected_crop(second_path, EDGE_BOX, 48))


def test_list_file_edition_is_cached_with_a_checksum(list_file_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    root, _ = list_file_root
    built = load_affectnet(root, image_size=32, progress=False)
    cached = load_affectnet(root, image_size=32, progress=False)
    assert len(list(tmp_path.rglob("affectnet-*.npz"))) == 1
    assert built.checksum and cached.checksum == built.checksum
    np.testing.assert_array_equal(cached.images, built.images)
    assert cached.meta["split"].tolist() == built.meta["split"].tolist()


@requires_dataset("ckplus48")
def test_folder_edition_maps_class_spellings_and_split_folders(tmp_path):
    root = tmp_path / "affectnet"
    for split, count in (("train", 3), ("val", 2)):
        for ck_folder, (spelling, _) in CKPLUS_SPELLINGS.items():
            target = root / split / spelling
            target.mkdir(parents=True)
            for photo in sorted((CKPLUS48 / ck_folder).glob("*.png"))[:count]:
                shutil.copy(photo, target / photo.name)
    (root / "train" / "Angry" / "notes.txt").write_text("not an image")
    (root / "__MACOSX").mkdir()  # archive clutter beside the split folders is ignored
    dataset = load_affectnet(root, image_size=64, use_cache=False, progress=False)
    assert len(dataset) == 35
    assert dataset.extra["edition"] == "folders"
    assert dict(dataset.meta["split"].value_counts()) == {"training": 21, "validation": 14}
    expected = {spelling: label for spelling, label in CKPLUS_SPELLINGS.values()}
    assert dataset.labels.tolist() == [expected[folder] for folder in dataset.meta["folder"]]
    assert dataset.class_counts()["neutral"] == 0 and dataset.class_counts()["contempt"] == 5
    # CK+48 is grayscale: the loader gives RGB with three equal channels, resized 48 -> 64.
    assert dataset.images.shape == (35, 64, 64, 3)
    assert np.array_equal(dataset.images[..., 0], dataset.images[..., 2])


@requires_dataset("ckplus48")
def test_folder_edition_without_split_folders_is_split_all(tmp_path):
    for folder in ("neutral", "7"):
        (tmp_path / folder).mkdir()
        shutil.copy(next((CKPLUS48 / "contempt").glob("*.png")), tmp_path / folder / "a.png")
    dataset = load_affectnet(tmp_path, image_size=48, use_cache=False, progress=False)
    assert dataset.meta["split"].tolist() == ["all", "all"]
    assert sorted(dataset.labels.tolist()) == [0, 7]


@requires_dataset("cfd")
def test_affectnet8_edition_reads_exp_npy_annotations(tmp_path):
    photos = _cfd_photos("HO", 4) + _cfd_photos("A", 4)
    codes = ["1", "1", "1", "9", "6", "6", "6", "6"]
    for index, (photo, code) in enumerate(zip(photos, codes, strict=True)):
        folder = tmp_path / ("val_set" if index >= 6 else "train_set")
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "annotations").mkdir(exist_ok=True)
        shutil.copy(photo, folder / "images" / f"{index}.jpg")
        # The archive stores each code as a 0-d text array.
        np.save(folder / "annotations" / f"{index}_exp.npy", np.array(code))
    dataset = load_affectnet(tmp_path, image_size=32, use_cache=False, progress=False)
    assert dataset.extra == {"edition": "affectnet-8", "dropped": {"none": 0, "uncertain": 1, "non-face": 0}}
    assert len(dataset) == 7
    assert dict(dataset.meta["split"].value_counts()) == {"training": 5, "validation": 2}
    assert dataset.labels.tolist() == [1, 1, 1, 6, 6, 6, 6]

    (tmp_path / "train_set" / "annotations" / "0_exp.npy").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="0_exp.npy is corrupt"):
        load_affectnet(tmp_path, use_cache=False, progress=False)
    (tmp_path / "train_set" / "annotations" / "0_exp.npy").unlink()
    with pytest.raises(DatasetError, match="has no expression annotation"):
        load_affectnet(tmp_path, use_cache=False, progress=False)


# ---- bad input ---------------------------------------------------------------------------------------------


def test_missing_root_explains_both_layouts_and_how_to_get_affectnet(tmp_path):
    with pytest.raises(DatasetError) as raised:
        load_affectnet(tmp_path / "nowhere", use_cache=False)
    message = str(raised.value)
    assert str(tmp_path / "nowhere") in message
    assert "http://mohammadmahoor.com/affectnet/" in message and "$FER_DATA_DIR/affectnet" in message
    assert "training.csv" in message and "one folder per class" in message
    assert "\n" not in message


def test_empty_root_says_no_layout_was_found(tmp_path):
    with pytest.raises(DatasetError, match="No AffectNet layout found"):
        load_affectnet(tmp_path, use_cache=False)


def test_list_file_without_required_columns_names_them(tmp_path):
    columns = {"subDirectory_filePath": ["0/a.jpg"], "face_x": [0], "face_y": [0], "face_height": [9]}
    pd.DataFrame(columns).to_csv(tmp_path / "training.csv", index=False)
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) face_width, expression"):
        load_affectnet(tmp_path, use_cache=False)


@requires_dataset("cfd")
def test_bad_expression_code_names_the_line(tmp_path):
    make_list_file_edition(tmp_path, per_expression=1)
    table = pd.read_csv(tmp_path / "training.csv")
    table.loc[1, "expression"] = 12
    table.to_csv(tmp_path / "training.csv", index=False)
    with pytest.raises(DatasetError, match="training.csv line 3 has expression '12'; expected an integer"):
        load_affectnet(tmp_path, use_cache=False)


@requires_dataset("cfd")
def test_listed_but_missing_image_is_named(tmp_path):
    table = make_list_file_edition(tmp_path, per_expression=1)
    missing = table["subDirectory_filePath"].iloc[2]
    (tmp_path / IMAGES_FOLDER / missing).unlink()
    with pytest.raises(DatasetError, match=f"1 of 5 AffectNet images .* missing; the first is '{missing}'"):
        load_affectnet(tmp_path, use_cache=False)


@requires_dataset("cfd")
def test_corrupt_image_is_named(tmp_path):
    table = make_list_file_edition(tmp_path, per_expression=1)
    corrupt = tmp_path / IMAGES_FOLDER / table["subDirectory_filePath"].iloc[3]
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DatasetError, match=f"{corrupt.name} is corrupt"):
        load_affectnet(tmp_path, use_cache=False, progress=False)


@requires_dataset("cfd")
def test_face_box_outside_the_image_is_named(tmp_path):
    make_list_file_edition(tmp_path, per_expression=1)
    table = pd.read_csv(tmp_path / "training.csv")
    table.loc[2, "face_x"] = 300
    table.to_csv(tmp_path / "training.csv", index=False)
    with pytest.raises(DatasetError, match="face box x=300 .* lies outside the 256x256 image"):
        load_affectnet(tmp_path, use_cache=False, progress=False)


def test_unknown_class_folder_is_named(tmp_path):
    (tmp_path / "happy").mkdir()
    (tmp_path / "smiling").mkdir()
    with pytest.raises(DatasetError, match="smiling is not a class folder"):
        load_affectnet(tmp_path, use_cache=False)


def test_two_spellings_of_one_class_are_refused(tmp_path):
    (tmp_path / "anger").mkdir()
    (tmp_path / "Angry").mkdir()
    with pytest.raises(DatasetError, match="both hold class anger"):
        load_affectnet(tmp_path, use_cache=False)


def test_images_folder_without_list_files_asks_for_them(tmp_path):
    (tmp_path / IMAGES_FOLDER).mkdir()
    with pytest.raises(DatasetError, match="neither training.csv nor validation.csv"):
        load_affectnet(tmp_path, use_cache=False)


def test_list_file_with_no_usable_rows_is_refused(tmp_path):
    header_only = pd.DataFrame({column: [] for column in LIST_FILE_COLUMNS})
    header_only.to_csv(tmp_path / "validation.csv", index=False)
    with pytest.raises(DatasetError, match=r"\(validation.csv\) list no image with an expression code 0..7"):
        load_affectnet(tmp_path, use_cache=False)
