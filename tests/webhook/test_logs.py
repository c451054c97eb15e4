"""The admission line written straight to the stream is the line logging would write."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from webhook import logs

CONTEXT: dict[str, object] = {
    "uid": 'uid-"quoted"-ü',
    "namespace": "shop",
    "pod": "orders-*",
    "result": "injected",
    "kind": "init-and-sidecar",
    "detail": None,
    "duration_ms": 0.25,
}


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """configure()'s logging, writing to a string; the root logger restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    output = io.StringIO()
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)
    # configure() remembers its handler; monkeypatch puts the one from before back afterwards.
    monkeypatch.setattr(logs, "_installed", logs._installed)
    try:
        yield output
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _no_record(*_arguments: object, **_keywords: object) -> logging.LogRecord:
    raise AssertionError("a LogRecord was made")


def test_the_direct_line_is_the_line_logging_writes(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs.configure("info", "json", stream)
    logger = logging.getLogger("webhook.app")
    with monkeypatch.context() as patched:
        patched.setattr(logging.Logger, "makeRecord", _no_record)
        logs.info(logger, "admission injected", CONTEXT)
    logger.info("admission %s", "injected", extra=CONTEXT)
    direct, through_logging = stream.getvalue().splitlines()
    assert direct == through_logging
    assert json.loads(direct) == {
        "time": "2023-11-14T22:13:20.250Z",
        "level": "info",
        "logger": "webhook.app",
        "message": "admission injected",
        **{key: value for key, value in CONTEXT.items() if value is not None},
    }


def test_below_the_level_nothing_is_written(stream: io.StringIO) -> None:
    logs.configure("warn", "json", stream)
    logs.info(logging.getLogger("webhook.app"), "admission injected", CONTEXT)
    assert stream.getvalue() == ""


def test_a_handler_set_above_info_is_obeyed(stream: io.StringIO) -> None:
    logs.configure("info", "json", stream)
    (handler,) = logging.getLogger().handlers
    handler.setLevel(logging.WARNING)
    logs.info(logging.getLogger("webhook.app"), "admission injected", CONTEXT)
    assert stream.getvalue() == ""


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_another_handler_gets_the_record_as_from_logging(stream: io.StringIO) -> None:
    logs.configure("info", "json", stream)
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    logs.info(logging.getLogger("webhook.app"), "admission injected", CONTEXT)
    (record,) = collect.records
    assert record.getMessage() == "admission injected"
    assert record.__dict__["uid"] == CONTEXT["uid"]
    assert json.loads(stream.getvalue())["pod"] == "orders-*"


def test_the_text_format_goes_through_logging(stream: io.StringIO) -> None:
    logs.configure("info", "standard", stream)
    logs.info(logging.getLogger("webhook.app"), "admission injected", CONTEXT)
    assert stream.getvalue().rstrip().endswith("INFO webhook.app admission injected")
