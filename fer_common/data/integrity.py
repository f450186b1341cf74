"""File integrity: SHA256SUMS verification, cheap change detection and content checksums."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fer_common.errors import DatasetError

SUMS_FILE = "SHA256SUMS"
_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")  # `sha256sum` text (two spaces) or binary (" *")
_LISTED_PROBLEMS = 20  # name this many bad files, then only count the rest


@dataclass
class IntegritySummary:
    """The result of a successful verification."""

    folder: Path
    files_checked: int
    unlisted: list[str] = field(default_factory=list)  # files present but not in SHA256SUMS


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_all(paths: list[Path]) -> list[str]:
    # hashlib releases the GIL while hashing, so threads overlap reading and hashing.
    with ThreadPoolExecutor(max_workers=min(16, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(file_sha256, paths))


def relative_name(path: Path | str, root: Path) -> str:
    """`path` relative to `root` with forward slashes, the form used in keys and SHA256SUMS."""
    return _relative_to_prefix(os.fspath(path), os.path.join(root, ""), root)


def _relative_to_prefix(path: str, prefix: str, root: Path) -> str:
    # String slicing: Path.relative_to costs ~10 us, noticeable over 36k files on every cached load.
    if not path.startswith(prefix):
        return Path(path).relative_to(root).as_posix()
    return path[len(prefix) :].replace(os.sep, "/")


def read_sha256sums(folder: Path) -> dict[str, str]:
    """{relative path: expected sha256} from `folder/SHA256SUMS`."""
    sums_path = folder / SUMS_FILE
    if not sums_path.is_file():
        raise DatasetError(f"No {SUMS_FILE} file in {folder}: there is nothing to verify the files against.")
    expected: dict[str, str] = {}
    for number, line in enumerate(sums_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _SUMS_LINE.match(line)
        if match is None:
            raise DatasetError(
                f"{sums_path} line {number} is not '<64 hex digits>  <path>' as sha256sum writes: {line[:80]!r}."
            )
        name = match.group(2).removeprefix("./")
        expected[name] = match.group(1).lower()
    return expected


def verify_sha256sums(folder: Path) -> IntegritySummary:
    """Check every file listed in `folder/SHA256SUMS`; raise DatasetError naming each bad one.

    A file listed but absent or with other contents is an error. Files present but not listed are
    reported in the summary only: extra files do not change what the listed ones contain.
    """
    folder = Path(folder)
    expected = read_sha256sums(folder)
    names = sorted(expected)
    existing = [name for name in names if (folder / name).is_file()]
    actual = dict(zip(existing, _hash_all([folder / name for name in existing]), strict=True))
    problems = [
        f"{name} (missing)" if name not in actual else f"{name} (contents differ)"
        for name in names
        if actual.get(name) != expected[name]
    ]
    if problems:
        shown = "; ".join(problems[:_LISTED_PROBLEMS])
        more = f"; and {len(problems) - _LISTED_PROBLEMS} more" if len(problems) > _LISTED_PROBLEMS else ""
        raise DatasetError(
            f"{len(problems)} of {len(names)} files in {folder} fail {SUMS_FILE}: {shown}{more}. "
            "Re-download or re-extract the dataset."
        )
    listed = set(names) | {SUMS_FILE}
    present = (
        relative_name(Path(directory) / filename, folder)
        for directory, _, filenames in os.walk(folder)
        for filename in filenames
    )
    unlisted = sorted(name for name in present if name not in listed)
    return IntegritySummary(folder=folder, files_checked=len(names), unlisted=unlisted)


def source_fingerprint(files: Iterable[Path], root: Path) -> str:
    """A fast key over (relative path, size, mtime_ns) of `files`: changes when any is added,
    removed, replaced or touched, without reading their contents."""
    prefix = os.path.join(root, "")
    try:
        lines = [_stat_line(_relative_to_prefix(path, prefix, root), os.stat(path)) for path in map(os.fspath, files)]
    except OSError as error:
        raise DatasetError(f"Cannot read {error.filename}: {error.strerror}.") from error
    return _sorted_digest(lines)


def tree_fingerprint(folders: Iterable[Path], root: Path) -> str:
    """Like `source_fingerprint` over every visible file below `folders`, plus their sub-folder names.

    Walking with scandir avoids building a Path per file and stats through the directory handle:
    about 3x faster, which matters for FER2013's 36k files on every cached load.
    """
    prefix = os.path.join(root, "")
    lines = []
    pending = [os.fspath(folder) for folder in folders]
    try:
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue  # OS clutter such as .DS_Store is not part of a dataset
                    name = _relative_to_prefix(entry.path, prefix, root)
                    if entry.is_dir():
                        pending.append(entry.path)
                        lines.append(f"{name}/\n")
                    else:
                        lines.append(_stat_line(name, entry.stat()))
    except OSError as error:
        raise DatasetError(f"Cannot read {error.filename}: {error.strerror}.") from error
    return _sorted_digest(lines)


def _stat_line(name: str, status: os.stat_result) -> str:
    return f"{name}\0{status.st_size}\0{status.st_mtime_ns}\n"


def _sorted_digest(lines: list[str]) -> str:
    # Names are unique and end at a NUL or slash, so sorting lines orders by name: the key ignores order.
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def content_checksum(files: Iterable[Path], root: Path) -> str:
    """sha256 over the relative paths and contents of `files`, independent of their order."""
    named = sorted((relative_name(path, root), path) for path in files)
    digest = hashlib.sha256()
    for (name, _), file_hash in zip(named, _hash_all([path for _, path in named]), strict=True):
        digest.update(f"{file_hash}  {name}\n".encode())
    return digest.hexdigest()
