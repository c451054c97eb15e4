"""Logging set-up: JSON lines (or plain text) on standard error with the pod's context."""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any

from agent.config import LOGGING_LEVELS, AgentConfig


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Messages are the agent's own: they never carry secret data."""

    def __init__(self, context: dict[str, str]) -> None:
        super().__init__()
        self._context = context

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self._context,
        }
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: a traceback's locals and messages could hold what we must not log.
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"))


def configure(config: AgentConfig, *, mode: str) -> None:
    context = {
        "mode": mode,
        "pod": os.environ.get("POD_NAME") or config.pod.name,
        "namespace": os.environ.get("POD_NAMESPACE") or config.pod.namespace,
    }
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter(context))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s agent[{mode}] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(LOGGING_LEVELS.get(config.log_level, logging.INFO))
    # Third-party request logs would print URLs with lease ids and paths at debug level.
    for noisy in ("urllib3", "requests", "hvac"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
