"""Optional Prometheus metrics, served on a loopback address only (``metrics_address``).

Seconds left on each lease and on the token are computed at scrape time from the agent's
clocks, so they are exact whenever Prometheus asks. Labels are Vault paths and template names:
never a value, a lease id or a token.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expiry:
    """One credential's expiry on the monotonic clock: what ``seconds remaining`` is made of."""

    kind: str  # "lease", "certificate" or "token"
    path: str
    expires_at: float


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


class _ExpiryCollector(Collector):
    def __init__(
        self, expiries: Callable[[], Iterable[Expiry]], requests: Callable[[], int]
    ) -> None:
        self._expiries = expiries
        self._requests = requests

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.monotonic()
        remaining = GaugeMetricFamily(
            "vsi_agent_seconds_remaining",
            "Seconds until a credential held by the agent expires (unless renewed).",
            labels=["kind", "path"],
        )
        for expiry in self._expiries():
            remaining.add_metric([expiry.kind, expiry.path], max(0.0, expiry.expires_at - now))
        yield remaining
        sent = GaugeMetricFamily(
            "vsi_agent_vault_requests", "HTTP requests the agent has sent to Vault."
        )
        sent.add_metric([], float(self._requests()))
        yield sent


class Metrics:
    """Counters the agent bumps, plus the expiry gauge. Usable (and cheap) when not served."""

    def __init__(self) -> None:
        self._server: WSGIServer | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.renewals = Counter(
            "vsi_agent_renewals",
            "Successful renewals.",
            ["kind"],
            registry=self.registry,
        )
        self.rotations = Counter(
            "vsi_agent_rotations",
            "Credentials issued anew before the old ones expired.",
            ["path"],
            registry=self.registry,
        )
        self.failures = Counter(
            "vsi_agent_failures",
            "Failed operations, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.writes = Counter(
            "vsi_agent_file_writes",
            "Rendered files written because their bytes changed.",
            ["template"],
            registry=self.registry,
        )

    def watch(self, expiries: Callable[[], Iterable[Expiry]], requests: Callable[[], int]) -> None:
        self.registry.register(_ExpiryCollector(expiries, requests))

    def serve(self, address: str) -> None:
        host, port = parse_loopback_address(address)
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        logger.info("metrics served on %s:%d", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
