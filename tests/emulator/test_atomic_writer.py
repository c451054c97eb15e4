"""The kubelet's atomic writer layout: readers see the old payload or the new one, never a mix."""

from __future__ import annotations

import os
from pathlib import Path

from tests.emulator.conftest import needs_root
from tests.support.emulator.atomic_writer import DATA_DIR_NAME, FileContent, write_payload


def _visible(target: Path) -> dict[str, str]:
    return {
        path.relative_to(target).as_posix(): path.read_text()
        for path in sorted(target.rglob("*"))
        if path.is_file() and not path.relative_to(target).as_posix().startswith("..")
    }


def test_files_are_symlinks_through_the_data_link(tmp_path: Path) -> None:
    changed = write_payload(
        tmp_path,
        {"token": FileContent(b"one", 0o600), "nested/ca.crt": FileContent(b"ca", 0o644)},
    )
    assert changed
    assert os.readlink(tmp_path / "token") == f"{DATA_DIR_NAME}/token"
    assert os.readlink(tmp_path / "nested") == f"{DATA_DIR_NAME}/nested"
    assert (tmp_path / DATA_DIR_NAME).is_symlink()
    assert _visible(tmp_path) == {"token": "one"}  # rglob does not follow the nested symlink
    assert (tmp_path / "nested" / "ca.crt").read_text() == "ca"
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600


def test_an_update_swaps_the_data_link_and_removes_what_went_away(tmp_path: Path) -> None:
    write_payload(tmp_path, {"a": FileContent(b"1", 0o644), "b": FileContent(b"2", 0o644)})
    first_data = os.readlink(tmp_path / DATA_DIR_NAME)
    assert write_payload(tmp_path, {"a": FileContent(b"3", 0o644)})
    second_data = os.readlink(tmp_path / DATA_DIR_NAME)
    assert first_data != second_data
    assert not (tmp_path / first_data).exists(), "the old payload directory is removed"
    assert not (tmp_path / "b").exists()
    assert (tmp_path / "a").read_text() == "3"


def test_an_unchanged_payload_is_not_rewritten(tmp_path: Path) -> None:
    payload = {"token": FileContent(b"same", 0o644)}
    write_payload(tmp_path, payload)
    before = os.readlink(tmp_path / DATA_DIR_NAME)
    assert not write_payload(tmp_path, payload)
    assert os.readlink(tmp_path / DATA_DIR_NAME) == before


@needs_root
def test_an_fs_group_owns_the_files_and_may_read_them(tmp_path: Path) -> None:
    write_payload(tmp_path, {"token": FileContent(b"t", 0o600)}, group=2000)
    info = (tmp_path / "token").stat()
    assert info.st_gid == 2000
    assert info.st_mode & 0o777 == 0o640
    data_dir = (tmp_path / DATA_DIR_NAME).resolve()
    assert data_dir.stat().st_mode & 0o2000
