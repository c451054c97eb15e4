"""Certificate files are switched as a set, with the right modes, and only when they change."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from certs.files import DATA_LINK, publish_files, write_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_file_replaces_content_with_the_given_mode(tmp_path: Path) -> None:
    target = tmp_path / "tls.key"
    target.write_bytes(b"old")
    write_file(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tls.key"]


def test_published_files_switch_together_and_old_versions_go(tmp_path: Path) -> None:
    first = {"tls.crt": (b"cert-1", 0o644), "tls.key": (b"key-1", 0o600)}
    second = {"tls.crt": (b"cert-2", 0o644), "tls.key": (b"key-2", 0o600)}
    assert publish_files(tmp_path, first) is True
    first_version = os.readlink(tmp_path / DATA_LINK)
    assert publish_files(tmp_path, first) is False
    assert publish_files(tmp_path, second) is True
    assert (tmp_path / "tls.crt").read_bytes() == b"cert-2"
    assert (tmp_path / "tls.key").read_bytes() == b"key-2"
    assert _mode(tmp_path / "tls.key") == 0o600
    assert _mode(tmp_path / "tls.crt") == 0o644
    assert not (tmp_path / first_version).exists()
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".."))
    assert hidden == sorted([DATA_LINK, os.readlink(tmp_path / DATA_LINK)])


def test_plain_files_from_before_become_links(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_bytes(b"hand-made")
    publish_files(tmp_path, {"tls.crt": (b"managed", 0o644)})
    assert (tmp_path / "tls.crt").is_symlink()
    assert (tmp_path / "tls.crt").read_bytes() == b"managed"


def test_a_failed_publication_leaves_the_current_files_and_no_partial_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_files(tmp_path, {"tls.crt": (b"cert-1", 0o644), "tls.key": (b"key-1", 0o600)})
    before = sorted(p.name for p in tmp_path.iterdir())

    def full_volume(path: Path, content: bytes, *, mode: int) -> None:
        if path.name == "tls.key":
            raise OSError(errno.ENOSPC, "No space left on device")
        write_file(path, content, mode=mode)

    monkeypatch.setattr("certs.files.write_file", full_volume)
    with pytest.raises(OSError, match="No space"):
        publish_files(tmp_path, {"tls.crt": (b"cert-2", 0o644), "tls.key": (b"key-2", 0o600)})
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "tls.crt").read_bytes() == b"cert-1"
    assert (tmp_path / "tls.key").read_bytes() == b"key-1"
