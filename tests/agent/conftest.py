"""Fixtures of the agent tests: one real OpenBao, one real PostgreSQL and one fake kube-apiserver
for the session, and per test a fresh identity (ServiceAccount, policy, jwt role) and pod dirs."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.harness import AppIdentity, PodDirs
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import (  # noqa: F401
    VaultServer,
    unique_name,
    vault_server,
    vault_with_postgres,
)

# Tests that mount a real tmpfs (a full volume): skipped without root, as README promises.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture(scope="session")
def vault(kube: FakeKubeApiServer) -> Iterator[VaultServer]:
    """A dev server with jwt auth trusting the fake kube's ServiceAccount tokens, a KV v1 mount
    at ``kv1/`` (``secret/`` is KV v2 in dev mode) and PKI at ``pki/`` (role ``app``)."""
    with VaultServer.dev() as server:
        server.enable_jwt_auth(public_key_pem=kube.public_key_pem)
        server.enable_kv("kv1", version=1)
        server.enable_pki("pki", role="app", max_ttl="1h")
        yield server


@pytest.fixture(scope="session")
def database(vault: VaultServer, postgres: PostgresServer) -> VaultServer:
    """The session's Vault with the database engine at ``database/`` on the session's Postgres."""
    vault.enable_database(postgres)
    return vault


def make_identity(
    vault: VaultServer,
    kube: FakeKubeApiServer,
    directory: Path,
    *,
    policy: str,
    token_ttl: str = "1h",  # noqa: S107 - a duration
    token_max_ttl: str = "",
) -> AppIdentity:
    name = unique_name("app")
    namespace = unique_name("ns")
    vault.write_policy(name, policy)
    vault.create_jwt_role(
        name,
        namespace=namespace,
        service_account=name,
        policies=[name],
        ttl=token_ttl,
        max_ttl=token_max_ttl,
    )
    token_file = directory / "sa-token"
    token_file.write_text(
        kube.issue_token(namespace, name, audiences=["vault"], lifetime=datetime.timedelta(hours=2))
    )
    return AppIdentity(role=name, namespace=namespace, service_account=name, token_file=token_file)


@pytest.fixture
def pod(tmp_path: Path) -> PodDirs:
    return PodDirs.create(tmp_path / "pod")
