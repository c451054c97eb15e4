"""Optional Prometheus metrics, served on a loopback address only (``metrics_address``).

The agent counts events in plain dictionaries; ``prometheus_client`` is imported only when
metrics are served (it costs several MiB of memory in every pod otherwise). Seconds left on each
lease and on the token are computed at scrape time from the agent's clocks. Labels are Vault
paths, template names and short hashes of a call's parameters: never a value, a lease id or a
token.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# name -> (labels, help). Exposed as counters ``vsi_agent_<name>_total``. ``rotations`` carries
# the ``params`` label of ``vsi_agent_seconds_remaining`` (see params_label): one series per call,
# and the two metrics join on (path, params).
COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "renewals": (("kind",), "Successful renewals of leases and tokens."),
    "rotations": (("path", "params"), "Credentials issued anew before the old ones expired."),
    "failures": (("operation",), "Failed operations, by operation."),
    "file_writes": (("template",), "Rendered files written because their bytes changed."),
}


@dataclass(frozen=True)
class Expiry:
    """One credential's expiry on the monotonic clock: what ``seconds remaining`` is made of."""

    kind: str  # "lease", "certificate" or "token"
    path: str
    expires_at: float
    # Tells apart credentials from one path asked with different parameters (see params_label).
    params: str = ""


def params_label(function: str, params: Sequence[tuple[str, str]]) -> str:
    """Which call on a path a series is about: empty for a plain read, otherwise a short hash of
    the template function and its parameters. Stable across restarts (the series keeps its name)
    and one-way (parameters may be sensitive, e.g. a transit plaintext)."""
    if function == "secret" and not params:
        return ""
    canonical = json.dumps([function, [list(pair) for pair in params]], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


class MetricsError(ValueError):
    """The metrics address is not a loopback host:port."""


def parse_loopback_address(address: str) -> tuple[str, int]:
    """``127.0.0.1:9102``, ``[::1]:9102`` or ``localhost:9102``; anything else is refused."""
    host, separator, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not separator or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise MetricsError(f"metrics_address {address!r}: expected host:port")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise MetricsError(f"metrics_address {address!r}: only loopback addresses are served")
    return host, int(port_text)


class Metrics:
    """Counters the agent bumps and the expiries it holds; cheap when not served."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, tuple[str, ...]], int] = defaultdict(int)
        self._lock = threading.Lock()
        self._expiries: Callable[[], Iterable[Expiry]] = tuple
        self._requests: Callable[[], int] = lambda: 0
        self._server: Any = None

    def count(self, name: str, *values: str) -> None:
        """Add one to counter ``name``: one value per label, in the order of ``COUNTERS``."""
        if name not in COUNTERS:
            raise ValueError(f"unknown counter {name!r}")
        labels = COUNTERS[name][0]
        if len(values) != len(labels):
            raise ValueError(f"counter {name!r} takes {len(labels)} label values: {labels}")
        with self._lock:
            self._counts[(name, values)] += 1

    def watch(self, expiries: Callable[[], Iterable[Expiry]], requests: Callable[[], int]) -> None:
        self._expiries = expiries
        self._requests = requests

    def _families(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415 - only when served
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        with self._lock:
            counts = dict(self._counts)
        for name, (labels, help_text) in COUNTERS.items():
            family = CounterMetricFamily(f"vsi_agent_{name}", help_text, labels=list(labels))
            for (counted, values), total in sorted(counts.items()):
                if counted == name:
                    family.add_metric(list(values), float(total))
            yield family
        now = time.monotonic()
        remaining = GaugeMetricFamily(
            "vsi_agent_seconds_remaining",
            "Seconds until a credential held by the agent expires (unless renewed).",
            labels=["kind", "path", "params"],
        )
        for expiry in self._expiries():
            remaining.add_metric(
                [expiry.kind, expiry.path, expiry.params], max(0.0, expiry.expires_at - now)
            )
        yield remaining
        sent = GaugeMetricFamily(
            "vsi_agent_vault_requests", "HTTP requests the agent has sent to Vault."
        )
        sent.add_metric([], float(self._requests()))
        yield sent

    def serve(self, address: str) -> None:
        host, port = parse_loopback_address(address)
        from prometheus_client import (  # noqa: PLC0415 - only when served
            CollectorRegistry,
            start_http_server,
        )

        metrics = self

        class _Collector:
            def collect(self) -> Iterator[Any]:
                return metrics._families()

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector())
        self._server, _thread = start_http_server(port, addr=host, registry=registry)
        logger.info("metrics served on %s:%d", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
