"""Bad dataset inputs raise DatasetError with a message that names the problem (and the file or row)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_common.data import integrity, load_dataset
from fer_common.data.images import read_image
from fer_common.data.integrity import data_audit, verify_sha256sums
from fer_common.errors import DatasetError

from .fixtures_data import make_ckplus, make_fer_folders, write_fer_csv, write_image, write_sha256sums


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))


def load(name: str, root: Path):
    return load_dataset(name, root, progress=False)


def write_csv_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.parent


def pixels(count: int = 2304, value: str = "7") -> str:
    return " ".join([value] * count)


# ---- missing data ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("fer2013", r"FER2013 not found in .*train/<emotion>.*fer2013\.csv.*msambare/fer2013"),
        ("ckplus48", r"CK\+48 not found in .*shawon10/ckplus"),
        ("cfd", r"CFD not found in .*chicagofaces\.org"),
    ],
)
def test_missing_folder(tmp_path, name, expected):
    with pytest.raises(DatasetError, match=expected):
        load(name, tmp_path / "absent")


def test_unknown_dataset_lists_known_ones():
    expected = "Unknown dataset 'fer2014'; known datasets: fer2013, ckplus48, cfd"
    with pytest.raises(DatasetError, match=expected):
        load_dataset("fer2014")


def test_fer2013_folder_edition_without_test_folder(tmp_path):
    make_fer_folders(tmp_path)
    shutil.rmtree(tmp_path / "test")
    with pytest.raises(DatasetError, match=r"has no test/ folder"):
        load("fer2013", tmp_path)


# ---- FER2013 CSV -------------------------------------------------------------------------------------------


def test_csv_wrong_columns(tmp_path):
    root = write_csv_text(tmp_path / "fer2013.csv", f"emotion,pixel,Usage\n0,{pixels()},Training\n")
    with pytest.raises(DatasetError, match=r"expected emotion, pixels, Usage, found emotion, pixel, Usage"):
        load("fer2013", root)


def test_csv_pixel_string_of_wrong_length_names_the_row(tmp_path):
    rows = [f"0,{pixels()},Training", f"1,{pixels()},PublicTest", f"2,{pixels(2303)},PrivateTest"]
    root = write_csv_text(tmp_path / "fer2013.csv", "emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"row 3 \(line 4 of fer2013\.csv\).*2303 values; expected 2304"):
        load("fer2013", root)


def test_csv_non_integer_pixels_name_the_row(tmp_path):
    bad = pixels(2303) + " 4.5"
    text = f"emotion,pixels,Usage\n0,{pixels()},Training\n0,{bad},Training\n"
    root = write_csv_text(tmp_path / "fer2013.csv", text)
    with pytest.raises(DatasetError, match=r"row 2 .*whitespace-separated integers"):
        load("fer2013", root)


def test_csv_pixel_out_of_range_names_the_row(tmp_path):
    text = f"emotion,pixels,Usage\n0,{pixels(value='256')},Training\n"
    root = write_csv_text(tmp_path / "fer2013.csv", text)
    with pytest.raises(DatasetError, match=r"row 1 .*0\.\.255, found 256\.\.256"):
        load("fer2013", root)


@pytest.mark.parametrize(
    "row, expected",
    [
        ("7,{p},Training", r"row 1 .*emotion '7'"),
        ("x,{p},Training", r"row 1 .*emotion 'x'"),
        ("0,{p},Validation", r"row 1 .*Usage 'Validation'; expected one of Training, PublicTest, PrivateTest"),
    ],
)
def test_csv_bad_emotion_or_usage_names_the_row(tmp_path, row, expected):
    root = write_csv_text(tmp_path / "fer2013.csv", "emotion,pixels,Usage\n" + row.format(p=pixels()) + "\n")
    with pytest.raises(DatasetError, match=expected):
        load("fer2013", root)


def test_corrupt_gzip_csv(tmp_path):
    (tmp_path / "fer2013.csv.gz").write_bytes(gzip.compress(b"emotion,pixels,Usage\n")[:15])
    with pytest.raises(DatasetError, match=r"fer2013\.csv\.gz cannot be read as CSV"):
        load("fer2013", tmp_path)


def test_csv_with_header_only(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", np.zeros((0, 48, 48, 1), np.uint8), np.zeros(0, int), [])
    with pytest.raises(DatasetError, match="has a header but no rows"):
        load("fer2013", tmp_path)


# ---- image folders -----------------------------------------------------------------------------------------


def test_corrupt_image_names_the_file(tmp_path):
    written = make_ckplus(tmp_path)
    corrupt = tmp_path / sorted(written.images)[5]
    corrupt.write_bytes(b"\x89PNG but not really")
    with pytest.raises(DatasetError, match=rf"{corrupt.name} is corrupt"):
        load("ckplus48", tmp_path)
    with pytest.raises(DatasetError, match=rf"{corrupt.name} is corrupt"):
        read_image(corrupt)


def test_empty_class_folder(tmp_path):
    make_fer_folders(tmp_path)
    for image in (tmp_path / "test" / "disgust").iterdir():
        image.unlink()
    (tmp_path / "test" / "disgust" / ".DS_Store").write_bytes(b"clutter")
    with pytest.raises(DatasetError, match=r"class folder .*test/disgust holds no images"):
        load("fer2013", tmp_path)


def test_unknown_class_folder(tmp_path):
    make_ckplus(tmp_path)
    (tmp_path / "happy").rename(tmp_path / "happiness")
    expected = r"wrong class folders: unknown happiness; missing happy; expected exactly anger, contempt"
    with pytest.raises(DatasetError, match=expected):
        load("ckplus48", tmp_path)


def test_fer2013_file_without_split_prefix(tmp_path):
    make_fer_folders(tmp_path)
    write_image(tmp_path / "test" / "happy" / "im0.png", np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError, match=r"im0\.png does not start with PublicTest_ or PrivateTest_"):
        load("fer2013", tmp_path)


def test_wrong_image_size_names_the_file(tmp_path):
    make_ckplus(tmp_path)
    write_image(tmp_path / "fear" / "S300_001_00000001.png", np.zeros((40, 50), np.uint8))
    expected = r"S300_001_00000001\.png is 50x40 pixels; this dataset's images are 48x48"
    with pytest.raises(DatasetError, match=expected):
        load("ckplus48", tmp_path)


def test_ckplus_file_name_without_subject(tmp_path):
    make_ckplus(tmp_path)
    write_image(tmp_path / "fear" / "face.png", np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError, match=r"face\.png is not named S<subject>_<sequence>_<frame>\.png"):
        load("ckplus48", tmp_path)


def test_cfd_unknown_expression_code(tmp_path):
    write_image(tmp_path / "CFD-WM-001-011-N.jpg", np.zeros((256, 256, 3), np.uint8))
    write_image(tmp_path / "CFD-WM-002-011-S.jpg", np.zeros((256, 256, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"CFD-WM-002-011-S\.jpg has expression code 'S'"):
        load("cfd", tmp_path)


# ---- SHA256SUMS --------------------------------------------------------------------------------------------


def test_sha256sums_pass_and_report_unlisted(tmp_path):
    make_ckplus(tmp_path, subjects=1, frames=1)
    write_sha256sums(tmp_path)
    write_image(tmp_path / "anger" / "S999_001_00000001.png", np.zeros((48, 48), np.uint8))
    summary = verify_sha256sums(tmp_path)
    assert summary.files_checked == 7 and summary.unlisted == ["anger/S999_001_00000001.png"]


def test_sha256sums_mismatch_and_missing_name_the_files(tmp_path):
    written = make_ckplus(tmp_path, subjects=1, frames=1)
    write_sha256sums(tmp_path)
    changed, removed = (tmp_path / name for name in sorted(written.images)[:2])
    changed.write_bytes(changed.read_bytes() + b"\0")
    removed.unlink()
    relative = [path.relative_to(tmp_path).as_posix() for path in (changed, removed)]
    expected = rf"2 of 7 files .*{relative[0]} \(contents differ\); {relative[1]} \(missing\)"
    with pytest.raises(DatasetError, match=expected):
        verify_sha256sums(tmp_path)


def test_sha256sums_many_problems_are_counted(tmp_path):
    for index in range(25):
        (tmp_path / f"file{index:02d}.txt").write_text(str(index))
    write_sha256sums(tmp_path)
    for index in range(25):
        (tmp_path / f"file{index:02d}.txt").write_text("changed")
    expected = r"25 of 25 files .*file19\.txt \(contents differ\); and 5 more"
    with pytest.raises(DatasetError, match=expected) as error:
        verify_sha256sums(tmp_path)
    assert "file20.txt" not in str(error.value)


def test_sha256sums_malformed_or_absent(tmp_path):
    with pytest.raises(DatasetError, match="No SHA256SUMS file"):
        verify_sha256sums(tmp_path)
    (tmp_path / "SHA256SUMS").write_text("abc  ./x.png\n")
    with pytest.raises(DatasetError, match=r"line 1 is not '<64 hex digits>  <path>'"):
        verify_sha256sums(tmp_path)


# ---- the check on every load -------------------------------------------------------------------------------


def test_a_load_stops_at_files_that_differ_from_sha256sums_naming_ten(tmp_path):
    folder = tmp_path / "ckplus48"  # beside the test's cache folder
    written = make_ckplus(folder, subjects=2, frames=1)
    write_sha256sums(folder)
    names = sorted(written.images)
    for name in names[:12]:
        (folder / name).write_bytes((folder / name).read_bytes() + b"\0")
    (folder / names[12]).unlink()
    with pytest.raises(DatasetError) as error:
        load("ckplus48", folder)
    message = str(error.value)
    assert message.startswith(f"13 of 14 files in {folder} differ from its SHA256SUMS: {names[0]} (contents differ)")
    assert names[9] in message and names[10] not in message and "; and 3 more." in message
    assert "restore a clean copy" in message and "kaggle datasets download" in message
    assert "--allow-modified-data" in message


def test_modified_data_loads_inside_an_audit_that_allows_it(tmp_path):
    folder = tmp_path / "ckplus48"  # beside the test's cache folder
    written = make_ckplus(folder, subjects=1, frames=1)
    write_sha256sums(folder)
    name = sorted(written.images)[0]
    (folder / name).write_bytes((folder / name).read_bytes() + b"\0")
    with data_audit(allow_modified=True) as audit:
        assert len(load("ckplus48", folder)) == 7
    (check,) = audit.modified
    assert check.problems == [f"{name} (contents differ)"] and check.files_checked == 7


def test_a_folder_without_sha256sums_loads_unchecked(tmp_path):
    folder = tmp_path / "ckplus48"  # beside the test's cache folder
    make_ckplus(folder, subjects=1, frames=1)
    with data_audit() as audit:
        load("ckplus48", folder)
    assert audit.checks == []


def test_the_verification_is_kept_until_a_file_changes(tmp_path, monkeypatch):
    folder = tmp_path / "ckplus48"
    written = make_ckplus(folder, subjects=1, frames=1)
    write_sha256sums(folder)
    calls = []
    original = integrity.compare_with_sha256sums

    def counted(checked):
        calls.append(checked)
        return original(checked)

    monkeypatch.setattr(integrity, "compare_with_sha256sums", counted)
    load("ckplus48", folder)
    load("ckplus48", folder)
    assert len(calls) == 1  # the second load reads the stored verification
    name = sorted(written.images)[0]
    (folder / name).write_bytes((folder / name).read_bytes() + b"\0")
    with pytest.raises(DatasetError, match=rf"{name} \(contents differ\)"):
        load("ckplus48", folder)
    assert len(calls) == 2
