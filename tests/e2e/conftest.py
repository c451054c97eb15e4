"""Fixtures of the end-to-end tests: one fake kube-apiserver, one PostgreSQL, one OpenBao (with
kubernetes auth through the fake's TokenReview, jwt auth, the database engine) and one webhook over
TLS for the whole session; per test, pods run in the emulator and checked for leftovers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import stack
from tests.support.emulator import EmulatedPod, EmulatorOptions, leftovers
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the pod emulator needs root: mount namespaces, tmpfs, chroot, setuid",
)

# Cluster-wide annotation defaults (our AGENT_INJECT_DEFAULT_ANNOTATIONS): every pod of the suite
# gets a short revoke grace, so stopping a pod takes a second, not five.
DEFAULT_ANNOTATIONS = {"agent-revoke-grace": stack.SHORT_REVOKE_GRACE}


@pytest.fixture(scope="session")
def vault(kube: FakeKubeApiServer, postgres: PostgresServer) -> Iterator[VaultServer]:
    with VaultServer.dev() as server:
        stack.enable_kubernetes_auth(server, kube)
        server.enable_jwt_auth(public_key_pem=kube.public_key_pem)
        server.enable_database(postgres, mount=stack.DATABASE_MOUNT)
        yield server


@pytest.fixture(scope="session")
def webhook(
    vault: VaultServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[stack.WebhookServer]:
    with stack.WebhookServer(
        vault_address=vault.url,
        work_dir=tmp_path_factory.mktemp("webhook"),
        environment={"AGENT_INJECT_DEFAULT_ANNOTATIONS": json.dumps(DEFAULT_ANNOTATIONS)},
    ) as server:
        yield server


PodFactory = Callable[[dict[str, Any]], EmulatedPod]


@pytest.fixture
def start_pod(kube: FakeKubeApiServer, tmp_path: Path) -> Iterator[PodFactory]:
    """Start a mutated pod in the emulator; every pod is stopped and checked for leftovers
    (processes, mounts) after the test."""
    pods: list[tuple[EmulatedPod, Path]] = []

    def start(manifest: dict[str, Any]) -> EmulatedPod:
        workdir = tmp_path / f"pod-{len(pods)}"
        workdir.mkdir()
        pod = EmulatedPod(
            manifest,
            images=stack.images(),
            workdir=workdir,
            token_issuer=kube,
            options=EmulatorOptions(kube_api_url=kube.url, restart_backoff_seconds=0.2),
        )
        pods.append((pod, workdir))
        return pod.start()

    yield start
    for pod, workdir in pods:
        pod.stop()
        left = leftovers(workdir)
        assert not left, f"pod {pod.name} left behind: {left}"
