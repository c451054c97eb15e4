"""Replicas of the automatic TLS against the loopback fake kube-apiserver, for the certs tests."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from certs.election import ElectionTimings
from certs.kube import AutoTls, AutoTlsSettings, run_auto_tls
from certs.rotation import RotationPolicy
from tests.support.fake_kube import FakeKubeApiServer, ObjectKey

NAMESPACE = "vsi"
WEBHOOK_CONFIGURATION = "vault-sidecar-injector-cfg"
HOSTS = ("injector", "injector.vsi", "injector.vsi.svc", "injector.vsi.svc.cluster.local")
FAST_ELECTION = ElectionTimings(lease_duration=0.6, renew_deadline=0.4, retry_period=0.1)
WEBHOOK_KEY = ObjectKey(
    "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", None, WEBHOOK_CONFIGURATION
)
LEASE_KEY = ObjectKey(
    "coordination.k8s.io/v1", "leases", NAMESPACE, "vault-sidecar-injector-leader"
)
SECRET_KEY = ObjectKey("v1", "secrets", NAMESPACE, "vault-sidecar-injector-tls")


def api_client(kube: FakeKubeApiServer) -> client.ApiClient:
    configuration = client.Configuration(host=kube.url)
    configuration.api_key = {"BearerToken": kube.admin_token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return client.ApiClient(configuration)


def add_webhook_configuration(kube: FakeKubeApiServer, entries: int = 3) -> None:
    kube.put_object(
        WEBHOOK_KEY,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "webhooks": [
                {
                    "name": f"entry-{index}.vault.hashicorp.com",
                    "clientConfig": {"service": {"name": "injector", "namespace": NAMESPACE}},
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                }
                for index in range(entries)
            ],
        },
    )


def published_bundles(kube: FakeKubeApiServer) -> list[bytes]:
    """The caBundle of every webhook entry, decoded, as the API server would read it."""
    configuration = kube.get_object(WEBHOOK_KEY) or {}
    return [
        base64.b64decode(entry.get("clientConfig", {}).get("caBundle", ""))
        for entry in configuration.get("webhooks", [])
    ]


def lease_holder(kube: FakeKubeApiServer) -> str | None:
    lease = kube.get_object(LEASE_KEY)
    return None if lease is None else str(lease["spec"].get("holderIdentity") or "")


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Replicas:
    """Start replicas with ``start(name)``; every one is stopped when the block ends."""

    kube: FakeKubeApiServer
    base_dir: Path
    policy: RotationPolicy = field(default_factory=RotationPolicy)
    running: dict[str, AutoTls] = field(default_factory=dict)
    clients: list[client.ApiClient] = field(default_factory=list)

    def settings(self, name: str, **changes: Any) -> AutoTlsSettings:
        values: dict[str, Any] = {
            "namespace": NAMESPACE,
            "webhook_configuration": WEBHOOK_CONFIGURATION,
            "hosts": HOSTS,
            "identity": name,
            "cert_dir": self.base_dir / name,
            "election": FAST_ELECTION,
            "policy": self.policy,
            "reconcile_interval": 0.1,
            "poll_interval": 0.1,
            "request_timeout": 2.0,
        }
        values.update(changes)
        return AutoTlsSettings(**values)

    def start(self, name: str, **changes: Any) -> AutoTls:
        api = api_client(self.kube)
        self.clients.append(api)
        replica = run_auto_tls(self.settings(name, **changes), api_client=api)
        self.running[name] = replica
        return replica

    def leaders(self) -> list[str]:
        return [name for name, replica in self.running.items() if replica.is_leader]

    def stop_all(self) -> None:
        for replica in self.running.values():
            replica.stop(timeout=5)
        for api in self.clients:
            api.close()  # type: ignore[no-untyped-call]


@contextmanager
def replicas(
    kube: FakeKubeApiServer, base_dir: Path, *, policy: RotationPolicy | None = None
) -> Iterator[Replicas]:
    group = Replicas(kube, base_dir, policy or RotationPolicy())
    try:
        yield group
    finally:
        group.stop_all()
