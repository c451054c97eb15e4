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
from collections.abc import Mapping
from contextlib import nullcontext
from json.encoder import encode_basestring_ascii as _json_string
from typing import TextIO

from agent.config import LOGGING_LEVELS

CONTEXT_FIELDS = ("uid", "namespace", "pod", "result", "kind", "duration_ms", "detail", "path")


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
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created,
            record.msecs,
            level_name=record.levelname,
            logger_name=record.name,
            message=record.getMessage(),
            context=record.__dict__,
            exception=exception,
        )

    def line(
        self,
        created: float,
        msecs: float,
        *,
        level_name: str,
        logger_name: str,
        message: str,
        context: Mapping[str, object],
        exception: str | None = None,
    ) -> str:
        parts = [
            f'{{"time":"{self._time(created, msecs)}","level":',
            _json_string(level_name.lower()),
            ',"logger":',
            _json_string(logger_name),
            ',"message":',
            _json_string(message),
        ]
        for name in CONTEXT_FIELDS:
            value = context.get(name)
            if value is not None:
                parts.append(f',"{name}":')
                parts.append(self._value(value))
        if exception:
            parts.append(',"exception":')
            parts.append(_json_string(exception))
        parts.append("}")
        return "".join(parts)


# The handler configure() installed, while it is the root's only one.
_installed: logging.StreamHandler[TextIO] | None = None


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler[TextIO] | None:
    """The JSON handler a record of ``logger`` would reach, and nothing else would see it:
    no filter, no other handler on the way to the root. None otherwise."""
    handler = _installed
    root = logging.root
    if handler is None or root.handlers != [handler] or root.filters or handler.filters:
        return None
    if handler.level > logging.INFO:
        return None
    current: logging.Logger | None = logger
    while current is not None and current is not root:
        if current.handlers or current.filters or not current.propagate:
            return None
        current = current.parent
    return handler


def info(logger: logging.Logger, message: str, context: Mapping[str, object]) -> None:
    """``logger.info(message, extra=context)``, written straight to the stream when only the
    handler of ``configure`` (JSON format) would see the record: the same line, under the same
    lock, without building a LogRecord (half the cost of the line every admission writes).
    Anything else (the text format, pytest's caplog, handlers added later) goes through
    logging as usual."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _direct_handler(logger)
    formatter = handler.formatter if handler is not None else None
    if handler is None or not isinstance(formatter, JsonFormatter):
        logger.info("%s", message, extra=dict(context))
        return
    created = time.time()
    line = formatter.line(
        created,
        (created - int(created)) * 1000,
        level_name="INFO",
        logger_name=logger.name,
        message=message,
        context=context,
    )
    # StreamHandler.emit's write and flush, without taking the lock a second time in flush.
    with handler.lock or nullcontext():
        stream = handler.stream
        stream.write(line + handler.terminator)
        stream.flush()


def configure(level: str = "info", log_format: str = "json", stream: TextIO | None = None) -> None:
    # Neither format writes the caller's file and line, the thread or the process, so a record
    # need not compute them (a stack walk and a getpid per admission line; the logging HOWTO's
    # "Optimization" section names these switches).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    global _installed  # noqa: PLW0603 - the one handler this module manages
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _installed = handler
    root.setLevel(LOGGING_LEVELS.get(level, logging.INFO))
