"""Logging set-up for the webhook: one JSON object per line, or plain text for humans.

Context goes in ``extra=`` under the names in ``CONTEXT_FIELDS``; nothing else from a record is
emitted, so an accidental ``extra`` cannot leak into the logs.
"""

from __future__ import annotations

import json
import logging
import sys
import time

CONTEXT_FIELDS = ("uid", "namespace", "pod", "result", "kind", "duration_ms", "detail", "path")
LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Every admission writes a line, so the per-line work is kept
    small: the encoder is built once and the date part of the time once per second."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = json.JSONEncoder(separators=(",", ":"), default=str)
        # (whole second, its text), swapped as one tuple so that threads never mix two seconds.
        self._second: tuple[int, str] = (-1, "")

    def _time(self, created: float, msecs: float) -> str:
        second = self._second
        if second[0] != int(created):
            second = (int(created), time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)))
            self._second = second
        return f"{second[1]}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self._time(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        for name in CONTEXT_FIELDS:
            value = attributes.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encoder.encode(entry)


def configure(level: str = "info", log_format: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.INFO))
