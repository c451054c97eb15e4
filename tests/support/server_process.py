"""What the real test servers (OpenBao, PostgreSQL) share: one child process, its log, and a
``with`` block that cleans up even when the start fails half way."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Self


class ServerProcess:
    """Subclasses set ``_process`` and ``_log_path`` and implement ``start`` and ``close``."""

    _process: subprocess.Popen[bytes] | None
    _log_path: Path

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            # A server that did not come up in time may still run, and its files remain.
            self.close()
            raise

    def __exit__(self, *_: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
