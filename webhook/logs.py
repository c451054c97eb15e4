"""Logging set-up for the webhook: one JSON object per line, or plain text for humans.

Context goes in ``extra=`` under the names in ``CONTEXT_FIELDS``; nothing else from a record is
emitted, so an accidental ``extra`` cannot leak into the logs.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from json.encoder import encode_basestring_ascii as _json_string

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
    """One JSON object per record, the bytes ``json.dumps(entry, separators=(",", ":"),
    default=str)`` would write. Every admission writes a line, so the line is put together from
    pieces: the C string escaper for text, repr for numbers, the date part of the time once per
    second; only other values go through a JSON encoder (which json builds anew per call)."""

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

    def _value(self, value: object) -> str:
        # Exact types only: json writes bool, subclasses and NaN its own way.
        if type(value) is str:
            return _json_string(value)
        if type(value) is int or (type(value) is float and math.isfinite(value)):
            return repr(value)
        return self._encoder.encode(value)

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f'{{"time":"{self._time(record.created, record.msecs)}","level":',
            _json_string(record.levelname.lower()),
            ',"logger":',
            _json_string(record.name),
            ',"message":',
            _json_string(record.getMessage()),
        ]
        attributes = record.__dict__
        for name in CONTEXT_FIELDS:
            value = attributes.get(name)
            if value is not None:
                parts.append(f',"{name}":')
                parts.append(self._value(value))
        if record.exc_info:
            parts.append(',"exception":')
            parts.append(_json_string(self.formatException(record.exc_info)))
        parts.append("}")
        return "".join(parts)


def configure(level: str = "info", log_format: str = "json") -> None:
    # Neither format writes the caller's file and line, the thread or the process, so a record
    # need not compute them (a stack walk and a getpid per admission line; the logging HOWTO's
    # "Optimization" section names these switches).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.INFO))
