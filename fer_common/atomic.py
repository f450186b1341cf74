"""The one way this project writes a file: completely or not at all.

Every writer goes through a temporary file in the target's own folder (same file system, so publishing it is
atomic), flushed and fsynced before it takes the target's name; a failure at any point removes the temporary
file. Readers therefore see the old file or the new one, never half of one, even after a crash. Leftover
temporary files from a killed process start with a dot and end in `.tmp` (or the caller's suffix), so
loaders that skip dot-files ignore them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

# mkstemp makes 0600 files; records, tables, caches and bundles are meant to be shared.
FILE_MODE = 0o644
MAX_NAME_ATTEMPTS = 1000


def _temporary_file(folder: Path, name: str, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=suffix)
    os.close(handle)
    return Path(temporary)


def _sync(path: Path) -> None:
    """Make `path`'s content durable (writers that take a path, such as Keras, do not fsync)."""
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())
    os.chmod(path, FILE_MODE)


@contextlib.contextmanager
def temporary_beside(path: Path | str, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside `path` for the body to fill and publish; removed afterwards in any case.

    The caller publishes it inside the body (`os.replace`, `os.link`); use `replacing` to replace `path`."""
    path = Path(path)
    temporary = _temporary_file(path.parent, path.name, suffix)
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path: Path | str, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path for the body to write; when the body succeeds, it replaces `path` atomically.

    suffix: for writers that insist on one (Keras saves only to `*.keras`)."""
    path = Path(path)
    with temporary_beside(path, suffix=suffix) as temporary:
        yield temporary
        _sync(temporary)
        os.replace(temporary, path)


def write_atomically(path: Path | str, write: Callable[[BinaryIO], object]) -> Path:
    """Replace `path` with what `write(stream)` writes into a binary stream (e.g. `np.savez`)."""
    path = Path(path)
    with replacing(path) as temporary, open(temporary, "wb") as stream:
        write(stream)  # `replacing` fsyncs the file once it is closed
    return path


def write_bytes_atomically(path: Path | str, data: bytes) -> Path:
    """Replace `path` with `data` atomically."""
    return write_atomically(path, lambda stream: stream.write(data))


def write_text_atomically(path: Path | str, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) atomically."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def write_new_file(folder: Path | str, stem: str, suffix: str, data: bytes) -> Path:
    """Write `data` as `<folder>/<stem><suffix>` (`<stem>-2<suffix>`, `-3`, ... if taken); never overwrites.

    The complete, fsynced file is published with a hard link, which fails if the name exists: no
    check-then-write race between two writers."""
    folder = Path(folder)
    with temporary_beside(folder / f"{stem}{suffix}") as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, FILE_MODE)
        return _publish_new(temporary, folder, stem, suffix)


def _publish_new(temporary: Path, folder: Path, stem: str, suffix: str) -> Path:
    for attempt in range(1, MAX_NAME_ATTEMPTS):
        target = folder / (f"{stem}{suffix}" if attempt == 1 else f"{stem}-{attempt}{suffix}")
        try:
            os.link(temporary, target)
            return target
        except FileExistsError:
            continue
        except OSError:
            # File systems without hard links: the small race of exists()+replace is the best we can do.
            if target.exists():
                continue
            os.replace(temporary, target)
            return target
    raise FileExistsError(f"{folder}: no free name for {stem}{suffix} after {MAX_NAME_ATTEMPTS} attempts")
