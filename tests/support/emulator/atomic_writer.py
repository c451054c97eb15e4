"""The kubelet's AtomicWriter: how configMap, secret, downwardAPI and projected volumes are written.

Files live in a timestamped directory ``..<timestamp>``; ``..data`` is a symlink to it; each
user-visible top-level name is a symlink through ``..data``. An update writes a new timestamped
directory and swaps ``..data`` with one rename, so a reader sees the whole old payload or the whole
new one, never a mix (and tools that watch the token file see the same events as in a cluster).
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_NAME = "..data"
_DATA_DIR_TMP_NAME = "..data_tmp"


@dataclass(frozen=True)
class FileContent:
    data: bytes
    mode: int


def _current_payload(data_dir: Path) -> dict[str, FileContent]:
    payload: dict[str, FileContent] = {}
    for path in data_dir.rglob("*"):
        if path.is_file():
            payload[path.relative_to(data_dir).as_posix()] = FileContent(
                path.read_bytes(), path.stat().st_mode & 0o7777
            )
    return payload


def write_payload(
    target: Path, payload: Mapping[str, FileContent], *, group: int | None = None
) -> bool:
    """Make ``target`` show exactly ``payload``; return whether anything changed.

    ``group`` is the pod's fsGroup: files and directories are group-owned by it and group-readable,
    directories setgid, as the kubelet's volume ownership step leaves them.
    """
    data_link = target / DATA_DIR_NAME
    old_data_dir = target / os.readlink(data_link) if data_link.is_symlink() else None
    if old_data_dir is not None and _current_payload(old_data_dir) == dict(payload):
        return False
    stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    new_data_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    directory_mode = 0o2755 if group is not None else 0o755
    _own(new_data_dir, directory_mode, group)
    for relative, content in payload.items():
        destination = new_data_dir / relative
        for parent in reversed(destination.relative_to(new_data_dir).parents[:-1]):
            directory = new_data_dir / parent
            if not directory.exists():
                directory.mkdir()
                _own(directory, directory_mode, group)
        destination.write_bytes(content.data)
        _own(destination, content.mode | (0o440 if group is not None else 0), group)
    temporary_link = target / _DATA_DIR_TMP_NAME
    temporary_link.unlink(missing_ok=True)
    temporary_link.symlink_to(new_data_dir.name)
    temporary_link.rename(data_link)
    wanted_names = {relative.split("/", 1)[0] for relative in payload}
    for name in wanted_names:
        visible = target / name
        if not visible.is_symlink():
            visible.symlink_to(f"{DATA_DIR_NAME}/{name}")
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in wanted_names:
            entry.unlink()
    if old_data_dir is not None:
        shutil.rmtree(old_data_dir)
    return True


def _own(path: Path, mode: int, group: int | None) -> None:
    if group is not None:
        os.chown(path, -1, group)
    os.chmod(path, mode)
