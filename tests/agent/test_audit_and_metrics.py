"""Audit lines and metrics: context on every line, nothing but scalars, loopback only."""

from __future__ import annotations

import io
import json
import socket
import time

import pytest
import requests

from agent.audit import Audit
from agent.config import PodIdentity
from agent.metrics import Expiry, Metrics, MetricsError, parse_loopback_address


def test_each_event_is_one_json_line_with_the_pods_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "orders-7d9f")
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    stream = io.StringIO()
    audit = Audit(PodIdentity("shop", "orders", uid="u-1"), stream=stream)
    audit.event("renew", kind="lease", path="database/creds/orders", ttl=30, lease=None)
    audit.event("write", template="db")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "renew"
    assert first["pod"] == "orders-7d9f"
    assert first["namespace"] == "shop"
    assert first["service_account"] == "orders"
    assert first["pod_uid"] == "u-1"
    assert first["ttl"] == 30
    assert "lease" not in first  # None fields are left out
    assert second["template"] == "db"


def test_unknown_events_and_structured_values_are_refused() -> None:
    audit = Audit(PodIdentity("ns", "sa"), stream=io.StringIO())
    with pytest.raises(ValueError, match="unknown audit event"):
        audit.event("secret-dump")
    with pytest.raises(TypeError):
        audit.event("fetch", data={"password": "x"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param("127.0.0.1:9102", ("127.0.0.1", 9102), id="IPv4 loopback"),
        pytest.param("[::1]:9102", ("::1", 9102), id="IPv6 loopback"),
        pytest.param("localhost:80", ("localhost", 80), id="localhost"),
        pytest.param("127.1.2.3:9102", ("127.1.2.3", 9102), id="anywhere in 127/8"),
    ],
)
def test_loopback_addresses_are_accepted(address: str, expected: tuple[str, int]) -> None:
    assert parse_loopback_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("0.0.0.0:9102", id="every interface"),
        pytest.param("10.0.0.5:9102", id="a pod IP"),
        pytest.param(":9102", id="no host"),
        pytest.param("127.0.0.1", id="no port"),
        pytest.param("127.0.0.1:99999", id="a port out of range"),
        pytest.param("vault.example:9102", id="a remote name"),
    ],
)
def test_other_addresses_are_refused(address: str) -> None:
    with pytest.raises(MetricsError):
        parse_loopback_address(address)


def test_metrics_show_seconds_left_and_counters() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = Metrics()
    now = time.monotonic()
    metrics.watch(lambda: [Expiry("lease", "database/creds/app", now + 100.0)], lambda: 42)
    metrics.count("renewals", "lease")
    metrics.serve(f"127.0.0.1:{port}")
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        metrics.close()
    line = next(
        line for line in text.splitlines() if line.startswith("vsi_agent_seconds_remaining{")
    )
    assert 'path="database/creds/app"' in line
    assert 95.0 < float(line.rsplit(" ", 1)[1]) <= 100.0
    assert 'vsi_agent_renewals_total{kind="lease"} 1.0' in text
    assert "vsi_agent_vault_requests 42.0" in text


def test_an_unknown_counter_is_a_bug_not_a_new_metric() -> None:
    with pytest.raises(ValueError, match="unknown counter"):
        Metrics().count("secrets_seen", "x")
