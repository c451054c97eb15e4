"""Writing certificate files so that a reader never sees half of an update.

``write_file`` replaces one file atomically (temporary file in the same directory, fsync, rename).
``publish_files`` replaces a set of files at once, the way the kubelet updates a Secret volume:
the files live in a hidden versioned directory, ``..data`` is a symlink to it, and each visible name
is a symlink through ``..data``; one rename of the ``..data`` link switches every file together, so
a certificate and its key always match.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

DATA_LINK = "..data"


def write_file(path: Path, content: bytes, *, mode: int) -> None:
    """Atomically replace ``path`` with ``content``; the file never exists with wider ``mode``."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _current(directory: Path, names: Mapping[str, object]) -> dict[str, bytes] | None:
    try:
        return {name: (directory / DATA_LINK / name).read_bytes() for name in names}
    except OSError:
        return None


def publish_files(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    """Make ``directory/<name>`` hold each ``(content, mode)`` of ``files``, all switched at once.

    Returns whether anything changed; unchanged content is not rewritten.
    """
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {name: content for name, (content, _mode) in files.items()}
    if _current(directory, files) == wanted:
        return False
    version = directory / f"..{secrets.token_hex(8)}"
    version.mkdir(mode=0o755)
    try:
        for name, (content, mode) in files.items():
            write_file(version / name, content, mode=mode)
    except BaseException:
        # Left behind, each failed pass (a full volume, say) would make the next one likelier.
        shutil.rmtree(version, ignore_errors=True)
        raise
    previous = os.readlink(directory / DATA_LINK) if (directory / DATA_LINK).is_symlink() else None
    staging = directory / f"{DATA_LINK}_tmp"
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    staging.symlink_to(version.name)
    os.replace(staging, directory / DATA_LINK)
    for name in files:
        link = directory / name
        if not link.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(Path(DATA_LINK) / name)
    if previous is not None and previous != version.name:
        shutil.rmtree(directory / previous, ignore_errors=True)
    return True
