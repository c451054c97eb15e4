"""Audit lines and metrics: context on every line, nothing but scalars, loopback only, one
series per credential."""

from __future__ import annotations

import io
import json
import socket
import time

import pytest
import requests

from agent.audit import Audit
from agent.config import AgentConfig, PodIdentity
from agent.metrics import Expiry, Metrics, MetricsError, params_label, parse_loopback_address
from tests.agent.conftest import make_identity
from tests.agent.harness import AgentProcess, PodDirs, agent_config, template, wait_for
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.vault import VaultServer


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_each_event_is_one_json_line_with_the_pods_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "orders-7d9f")
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    stream = io.StringIO()
    audit = Audit(PodIdentity(namespace="shop", service_account="orders", uid="u-1"), stream=stream)
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
    audit = Audit(PodIdentity(namespace="ns", service_account="sa"), stream=io.StringIO())
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


def _scrape(metrics: Metrics) -> str:
    """What Prometheus would read: the metrics served on a free loopback port, fetched once."""
    port = free_loopback_port()
    metrics.serve(f"127.0.0.1:{port}")
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        metrics.close()


def test_metrics_show_seconds_left_and_counters() -> None:
    metrics = Metrics()
    now = time.monotonic()
    metrics.watch(lambda: [Expiry("lease", "database/creds/app", now + 100.0)], lambda: 42)
    metrics.count("renewals", "lease")
    text = _scrape(metrics)
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


def test_rotations_are_counted_by_path_and_params() -> None:
    """``vsi_agent_rotations_total`` has the labels that ``vsi_agent_seconds_remaining`` uses to
    tell calls on one path apart: each call counts on its own series, and a label missing is a
    bug (it would merge series), not an empty label."""
    metrics = Metrics()
    issue_a = params_label("pkiCert", (("common_name", "a.example.test"),))
    issue_b = params_label("pkiCert", (("common_name", "b.example.test"),))
    metrics.count("rotations", "pki/issue/app", issue_a)
    metrics.count("rotations", "pki/issue/app", issue_a)
    metrics.count("rotations", "pki/issue/app", issue_b)
    metrics.count("rotations", "database/creds/app", params_label("secret", ()))
    with pytest.raises(ValueError, match="label values"):
        metrics.count("rotations", "pki/issue/app")
    text = _scrape(metrics)
    assert rotation_series(text) == {
        ("pki/issue/app", issue_a): 2.0,
        ("pki/issue/app", issue_b): 1.0,
        ("database/creds/app", ""): 1.0,
    }


def test_the_params_label_is_empty_for_a_plain_read_and_a_stable_hash_otherwise() -> None:
    issue_a = (("common_name", "a.example.test"), ("ttl", "10m"))
    issue_b = (("common_name", "b.example.test"), ("ttl", "10m"))
    assert params_label("secret", ()) == ""
    labels = {
        params_label("pkiCert", issue_a),
        params_label("pkiCert", issue_b),
        params_label("secret", issue_a),
        params_label("pkiCert", ()),
    }
    assert len(labels) == 4
    # Pinned: a series keeps its labels across restarts and upgrades of the agent.
    assert params_label("pkiCert", issue_a) == "sha256:427dabed0312"
    assert not any("example.test" in label for label in labels)


def labels_of(series: str) -> dict[str, str]:
    """``{a="x",b="y"}`` as a dict (label values here hold no comma or quote)."""
    pairs = (pair.partition("=") for pair in series.strip("{}").split(","))
    return {name: value.strip('"') for name, _, value in pairs}


def rotation_series(text: str) -> dict[tuple[str, str], float]:
    """Each ``vsi_agent_rotations_total`` sample: its (path, params) labels and its value."""
    prefix = "vsi_agent_rotations_total{"
    series = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            labels_text, _, value = line[len(prefix) - 1 :].rpartition(" ")
            labels = labels_of(labels_text)
            assert set(labels) == {"path", "params"}, line
            series[labels["path"], labels["params"]] = float(value)
    return series


def seconds_remaining_series(text: str) -> list[str]:
    """The label sets (``{...}``) of every ``vsi_agent_seconds_remaining`` sample."""
    prefix = "vsi_agent_seconds_remaining{"
    return [
        line[len(prefix) - 1 :].rsplit(" ", 1)[0]
        for line in text.splitlines()
        if line.startswith(prefix)
    ]


def _pki_sidecar_with_metrics(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs, calls: dict[str, str]
) -> tuple[AgentConfig, int]:
    """A sidecar config with one template per call (name -> template function call) on the PKI
    role ``pki/issue/app``, serving metrics on a free loopback port (returned with it)."""
    identity = make_identity(
        vault, kube, pod.root, policy='path "pki/issue/app" { capabilities = ["update"] }'
    )
    templates = [
        template(pod, name, "pki/issue/app", f"{{{{ with {call} }}}}issued{{{{ end }}}}")
        for name, call in calls.items()
    ]
    port = free_loopback_port()
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=templates,
        metrics_address=f"127.0.0.1:{port}",
    )
    return config, port


@pytest.mark.slow
def test_one_path_asked_with_different_parameters_gets_one_series_per_credential(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """Three certificates from the one PKI role ``pki/issue/app``: two ``pkiCert`` calls with
    different common names and a ``secret`` write with the first one's parameters. Each is a
    credential of its own with its own expiry, so each has its own series: the same labels
    twice would make one overwrite the other. The parameters appear only as a hash."""
    calls = {
        "cert-a": 'pkiCert "pki/issue/app" "common_name=a.example.test" "ttl=10m"',
        "cert-b": 'pkiCert "pki/issue/app" "common_name=b.example.test" "ttl=20m"',
        "written-a": 'secret "pki/issue/app" "common_name=a.example.test" "ttl=10m"',
    }
    config, port = _pki_sidecar_with_metrics(vault, kube, pod, calls)
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        sidecar.terminate()
        assert sidecar.wait(20) == 0
    series = seconds_remaining_series(text)
    certificates = [labels for labels in series if 'path="pki/issue/app"' in labels]
    assert len(certificates) == 3, series
    assert len(set(series)) == len(series), series
    assert all('kind="certificate"' in labels for labels in certificates)
    assert "example.test" not in "".join(series), "parameters appear only as a hash"
    assert len([labels for labels in series if 'kind="token"' in labels]) == 1


@pytest.mark.slow
def test_rotations_of_different_calls_on_one_path_are_counted_apart_and_join_seconds_remaining(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """Two ``pkiCert`` calls on the one PKI role ``pki/issue/app`` with different common names,
    each certificate short-lived, so the real sidecar issues each anew (at about two thirds of
    its life). Each call's rotations count on a series of its own, whose (path, params) labels are
    those of the call's ``vsi_agent_seconds_remaining`` series: the two metrics can be joined."""
    calls = {
        "cert-a": 'pkiCert "pki/issue/app" "common_name=a.example.test" "ttl=6s"',
        "cert-b": 'pkiCert "pki/issue/app" "common_name=b.example.test" "ttl=6s"',
    }
    config, port = _pki_sidecar_with_metrics(vault, kube, pod, calls)

    def scrape_after_two_rotated() -> str | None:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return text if len(rotation_series(text)) >= 2 else None

    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
        text = wait_for(
            scrape_after_two_rotated,
            timeout=30,
            message="a rotation of each certificate",
        )
        sidecar.terminate()
        assert sidecar.wait(20) == 0
    rotations = rotation_series(text)
    assert len(rotations) == 2, sorted(rotations)
    assert all(value >= 1.0 for value in rotations.values())
    rotated = set(rotations)
    remaining = {
        (labels_of(series)["path"], labels_of(series)["params"])
        for series in seconds_remaining_series(text)
        if 'kind="certificate"' in series
    }
    assert rotated == remaining
    assert {params for _, params in rotated} == {
        params_label("pkiCert", (("common_name", name), ("ttl", "6s")))
        for name in ("a.example.test", "b.example.test")
    }
    assert "example.test" not in text, "parameters appear only as a hash"
