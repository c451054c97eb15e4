"""The audit trail: one JSON line per event on standard output, never a value or a token.

Each line names the pod, namespace and ServiceAccount the agent works for, the event (login,
fetch, renew, rotate, write, command, signal, revoke, error, ...), and what it was about: a Vault
path, a lease reference (``agent.vault.lease_reference``: path and hash, never the lease id), a
token reference (hash of the accessor), a TTL, a file. Callers pass only such fields; this module
has no parameter that could carry secret data, and refuses values that are not scalars.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
from typing import TextIO

from agent.config import PodIdentity

Scalar = str | int | float | bool | None

EVENTS = frozenset(
    {
        "start",
        "login",
        "fetch",
        "renew",
        "rotate",
        "refresh",
        "write",
        "command",
        "signal",
        "handoff",
        "adopt",
        "ready",
        "revoke",
        "error",
        "shutdown",
    }
)


class Audit:
    """Writes audit lines for one agent; thread-safe, flushed per line."""

    def __init__(self, pod: PodIdentity, *, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        # The downward API knows the pod's final name; the webhook may not (generateName).
        self._context: dict[str, Scalar] = {
            "pod": os.environ.get("POD_NAME") or pod.name,
            "namespace": os.environ.get("POD_NAMESPACE") or pod.namespace,
            "service_account": pod.service_account,
        }
        if pod.uid:
            self._context["pod_uid"] = pod.uid

    def event(self, event: str, **fields: Scalar) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        for name, value in fields.items():
            if not isinstance(value, Scalar):
                raise TypeError(f"audit field {name!r} must be a scalar")
        line: dict[str, Scalar] = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "audit": True,
            "event": event,
            **self._context,
        }
        line.update({name: value for name, value in fields.items() if value is not None})
        text = json.dumps(line, separators=(",", ":"), sort_keys=False)
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()
