"""Atomic writes: unchanged bytes are not rewritten, readers never see partial files, and a full
filesystem leaves the previous file intact."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.files import FileWriteError, write_if_changed
from tests.agent.conftest import needs_root


def test_writes_a_new_file_with_the_requested_mode(tmp_path: Path) -> None:
    target = tmp_path / "secrets" / "db"
    assert write_if_changed(target, b"user: a\n", mode=0o600) is True
    assert target.read_bytes() == b"user: a\n"
    assert target.stat().st_mode & 0o777 == 0o600


def test_unchanged_bytes_are_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "db"
    write_if_changed(target, b"same", mode=0o640)
    inode = target.stat().st_ino
    assert write_if_changed(target, b"same", mode=0o640) is False
    assert target.stat().st_ino == inode


def test_unchanged_bytes_with_another_mode_only_change_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "db"
    write_if_changed(target, b"same", mode=0o644)
    inode = target.stat().st_ino
    assert write_if_changed(target, b"same", mode=0o600) is False
    assert target.stat().st_ino == inode
    assert target.stat().st_mode & 0o777 == 0o600


def test_changed_bytes_replace_the_file_and_leave_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "db"
    write_if_changed(target, b"one", mode=0o640)
    assert write_if_changed(target, b"two", mode=0o640) is True
    assert target.read_bytes() == b"two"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["db"]


def test_a_directory_that_cannot_be_made_is_a_write_error(tmp_path: Path) -> None:
    """Every failure is a FileWriteError, the one the agent handles (not a stray OSError)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(FileWriteError, match="cannot write"):
        write_if_changed(blocker / "db", b"content")


def test_a_reader_never_sees_a_partial_or_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "db"
    versions = [bytes([65 + index]) * 200_000 for index in range(6)]
    write_if_changed(target, versions[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def read_continuously() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for _ in range(10):
            for version in versions:
                write_if_changed(target, version)
    finally:
        stop.set()
        reader.join()
    assert seen <= set(versions)
    assert len(seen) > 1


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, like a memory emptyDir with a size limit."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@needs_root
def test_a_full_tmpfs_leaves_the_previous_file_intact(tiny_tmpfs: Path) -> None:
    target = tiny_tmpfs / "db"
    write_if_changed(target, b"good content\n")
    with pytest.raises(FileWriteError) as raised:
        write_if_changed(target, b"x" * 200_000)
    assert "No space left" in str(raised.value)
    assert "xxxx" not in str(raised.value)
    assert target.read_bytes() == b"good content\n"
    assert sorted(path.name for path in tiny_tmpfs.iterdir()) == ["db"]
