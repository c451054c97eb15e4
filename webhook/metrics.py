"""Prometheus metrics of the webhook.

Under gunicorn every worker is a process; ``PROMETHEUS_MULTIPROC_DIR`` (set by ``webhook.server``
before this module is imported) makes the values shared files, and ``exposition`` merges them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# A shared value asks for the process id at every increment, to notice a fork; os.getpid is a
# system call each time (glibc stopped caching it), three per admission. This is the same id,
# kept in memory and refreshed in every child that os.fork makes (gunicorn forks its workers
# that way), so it answers what os.getpid would.
_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid  # noqa: PLW0603 - the one cached value, written only here
    _pid = os.getpid()


def process_id() -> int:
    return _pid


os.register_at_fork(after_in_child=_refresh_pid)
if os.environ.get(MULTIPROCESS_ENV):
    # Before the first metric below is made: each takes its value class from here.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)  # type: ignore[no-untyped-call]

REQUEST_SECONDS = Histogram(
    "vsi_webhook_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
INJECTIONS = Counter(
    "vsi_webhook_injections_total",
    "Pods injected, by namespace and kind of injection (InjectionMode).",
    ["namespace", "kind"],
)
FAILURES = Counter(
    "vsi_webhook_failures_total",
    "Admissions that did not inject: refused pods, malformed requests, internal errors.",
    ["namespace", "reason"],
)


# Label children by label values: ``labels()`` costs more than the increment itself (it
# validates and locks on every call). These hold the same children prometheus_client keeps for
# each label set, so they add no series.
_injections: dict[tuple[str, str], Counter] = {}
_failures: dict[tuple[str, str], Counter] = {}


def count_injection(namespace: str, kind: str) -> None:
    counter = _injections.get((namespace, kind))
    if counter is None:
        counter = _injections[(namespace, kind)] = INJECTIONS.labels(namespace=namespace, kind=kind)
    counter.inc()


def count_failure(namespace: str, reason: str) -> None:
    counter = _failures.get((namespace, reason))
    if counter is None:
        counter = _failures[(namespace, reason)] = FAILURES.labels(
            namespace=namespace, reason=reason
        )
    counter.inc()


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type, merged across worker processes when needed."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
