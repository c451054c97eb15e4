"""Atomic file replacement for rendered secrets: a reader sees the old bytes or the new, never
a partial or empty file, and a failed write (a full tmpfs) leaves the old file as it was."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger(__name__)


class FileWriteError(OSError):
    """Writing a rendered file failed; the previous file, if any, is intact."""


def _write_error(target: Path, error: OSError) -> FileWriteError:
    return FileWriteError(error.errno, f"cannot write {target}: {os.strerror(error.errno or 0)}")


def _read_if_regular(path: Path) -> bytes | None:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        # Some filesystems cannot fsync a directory; the rename is still atomic there.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)


def write_if_changed(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o640) -> bool:
    """Make ``path`` hold exactly ``data`` with ``mode``; True when the bytes changed.

    Unchanged bytes are not rewritten (only the mode is corrected), so readers and watchers see
    no event. Otherwise: a temporary file in the same directory, written and fsynced, given its
    mode, renamed over ``path`` (atomic on one filesystem), then the directory is fsynced so the
    rename survives a crash.
    """
    target = Path(path)
    directory = target.parent
    try:
        if _read_if_regular(target) == data:
            if (os.stat(target).st_mode & 0o7777) != mode:
                os.chmod(target, mode)
            return False
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _write_error(target, error) from None
    temporary = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        # Created private: nobody reads it before it is complete and renamed.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            os.fsync(descriptor)
            os.fchmod(descriptor, mode)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise _write_error(target, error) from None
    try:
        _fsync_directory(directory)
    except OSError as error:
        logger.warning("could not fsync directory %s: %s", directory, error.strerror)
    return True
