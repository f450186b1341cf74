"""Label maps: a `file,label` CSV naming a user's images and their classes."""

import pytest

from fer_common.data.label_map import read_label_map
from fer_common.errors import DatasetError

CLASSES = ("negative", "neutral", "positive")


def _touch(folder, *names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")


def test_files_are_relative_to_the_csv_and_labels_any_case(tmp_path):
    _touch(tmp_path, "photos/a.jpg", "b.jpg")
    # Header in another case with spaces, and a byte-order mark as spreadsheets write it.
    (tmp_path / "labels.csv").write_text("\ufeff File , LABEL\nphotos/a.jpg,Positive\nb.jpg, negative \n")
    assert read_label_map(tmp_path / "labels.csv", CLASSES) == [
        ((tmp_path / "photos/a.jpg").resolve(), 2),
        ((tmp_path / "b.jpg").resolve(), 0),
    ]


def test_missing_header_column_is_a_dataset_error(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\na.jpg,neutral\n")
    with pytest.raises(DatasetError, match="needs the header columns file,label"):
        read_label_map(tmp_path / "labels.csv", CLASSES)


def test_unknown_label_is_a_dataset_error_naming_its_line(tmp_path):
    _touch(tmp_path, "a.jpg")
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,happy\n")
    with pytest.raises(DatasetError, match="line 2: label 'happy' is not one of negative, neutral, positive"):
        read_label_map(tmp_path / "labels.csv", CLASSES)


def test_every_missing_file_is_named(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,neutral\n,neutral\n")
    with pytest.raises(DatasetError, match=r"names 2 file\(s\) not found.*line 2 'a\.jpg'; line 3 ''"):
        read_label_map(tmp_path / "labels.csv", CLASSES)


def test_a_file_listed_twice_is_a_dataset_error(tmp_path):
    _touch(tmp_path, "a.jpg")
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,neutral\n./a.jpg,positive\n")
    with pytest.raises(DatasetError, match="line 3: './a.jpg' is listed twice"):
        read_label_map(tmp_path / "labels.csv", CLASSES)
