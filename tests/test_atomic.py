"""The one atomic writer: a file is replaced completely or not at all, and a new file never overwrites."""

import numpy as np
import pytest

from fer_common import atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "table.md"
    atomic.write_text_atomically(path, "old\n")
    atomic.write_text_atomically(path, "new\n")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.md"]
    assert path.stat().st_mode & 0o777 == atomic.FILE_MODE


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "state.npz"
    atomic.write_bytes_atomically(path, b"old")

    def crash(stream):
        stream.write(b"half of a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomically(path, crash)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]


def test_a_failed_fsync_publishes_nothing(tmp_path, monkeypatch):
    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_bytes_atomically(tmp_path / "job.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_streams_numpy_archives(tmp_path):
    path = tmp_path / "predictions.npz"
    atomic.write_atomically(path, lambda stream: np.savez(stream, y=np.arange(3)))
    with np.load(path) as loaded:
        assert loaded["y"].tolist() == [0, 1, 2]


def test_replacing_keeps_the_suffix_a_writer_insists_on(tmp_path):
    path = tmp_path / "model.keras"
    with atomic.replacing(path, suffix=".keras") as temporary:
        assert temporary.suffix == ".keras" and temporary.parent == tmp_path and temporary.name.startswith(".")
        temporary.write_bytes(b"weights")
    assert path.read_bytes() == b"weights" and not temporary.exists()


def test_new_file_takes_the_next_free_name_and_never_overwrites(tmp_path):
    first = atomic.write_new_file(tmp_path, "full-x", ".json", b"1")
    second = atomic.write_new_file(tmp_path, "full-x", ".json", b"2")
    assert (first.name, second.name) == ("full-x.json", "full-x-2.json")
    assert first.read_bytes() == b"1" and second.read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full-x-2.json", "full-x.json"]


def test_new_file_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError("hard links not supported")

    monkeypatch.setattr(atomic.os, "link", no_links)
    atomic.write_new_file(tmp_path, "bench", ".json", b"1")
    atomic.write_new_file(tmp_path, "bench", ".json", b"2")
    assert sorted(p.read_bytes() for p in tmp_path.iterdir()) == [b"1", b"2"]
