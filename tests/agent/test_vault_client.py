"""agent.vault and agent.store against a real OpenBao: auth methods, TLS, KV versions, leases,
PKI, one fetch per dependency."""

from __future__ import annotations

import datetime
import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.audit import Audit
from agent.config import AuthConfig, PodIdentity, VaultConnection, VaultTLS
from agent.schedule import Backoff, FailureGate
from agent.store import SecretStore, kv2_data_path, kv2_metadata_path
from agent.templates import Dependency
from agent.vault import (
    NotFound,
    PermissionDenied,
    RequestRejected,
    VaultClient,
    VaultError,
    VaultUnavailable,
)
from certs.authority import generate_ca, issue_serving_certificate
from tests.agent.proxy import FaultProxy
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer, unique_name

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("mount", "path", "expected"),
    [
        pytest.param("secret/", "secret/app", "secret/data/app", id="data is inserted"),
        pytest.param("secret/", "secret/data/app", "secret/data/app", id="a data path is kept"),
        pytest.param("kv/team/", "kv/team/a/b", "kv/team/data/a/b", id="a nested mount"),
    ],
)
def test_kv2_data_paths(mount: str, path: str, expected: str) -> None:
    assert kv2_data_path(mount, path) == expected


def test_kv2_list_paths_go_through_metadata() -> None:
    assert kv2_metadata_path("secret/", "secret/team") == "secret/metadata/team"
    assert kv2_metadata_path("secret/", "secret/metadata/team") == "secret/metadata/team"
    assert kv2_metadata_path("secret/", "secret") == "secret/metadata"


def root_client(vault: VaultServer) -> VaultClient:
    client = VaultClient(VaultConnection(address=vault.url))
    client.use_token(vault.root_token)
    return client


def store_for(client: VaultClient) -> tuple[SecretStore, io.StringIO]:
    stream = io.StringIO()
    return SecretStore(
        client, audit=Audit(PodIdentity(namespace="ns", service_account="sa"), stream=stream)
    ), stream


def test_both_kv2_path_styles_are_one_secret_and_kv1_is_read_as_is(vault: VaultServer) -> None:
    name = unique_name("kvpaths")
    vault.put_kv("secret", name, {"v": 2})
    vault.put_kv("kv1", name, {"v": 1}, version=1)
    store, _ = store_for(root_client(vault))
    short = store.get(Dependency("secret", f"secret/{name}", ()))
    long = store.get(Dependency("secret", f"secret/data/{name}", ()))
    assert short.secret.data["data"] == {"v": 2} == long.secret.data["data"]
    assert short.category == "static"
    kv1 = store.get(Dependency("secret", f"kv1/{name}", ()))
    assert kv1.secret.data == {"v": 1}
    assert kv1.category == "static"  # KV v1 answers a lease duration; the interval applies
    assert kv1.secret.lease_duration > 0


def test_secrets_lists_a_kv2_folder(vault: VaultServer) -> None:
    folder = unique_name("folder")
    for key in ("one", "two", "sub/three"):
        vault.put_kv("secret", f"{folder}/{key}", {"x": 1})
    store, _ = store_for(root_client(vault))
    listed = store.get(Dependency("secrets", f"secret/{folder}", ()))
    assert listed.keys == ("one", "sub/", "two")


def test_one_fetch_per_dependency_until_asked_again(vault: VaultServer) -> None:
    name = unique_name("once")
    vault.put_kv("secret", name, {"v": 1})
    client = root_client(vault)
    store, audit = store_for(client)
    dependency = Dependency("secret", f"secret/{name}", ())
    store.get(dependency)
    sent = client.requests_sent
    for _ in range(5):
        store.get(dependency)
    assert client.requests_sent == sent
    assert audit.getvalue().count('"event":"fetch"') == 1


def test_a_missing_secret_is_not_found(vault: VaultServer) -> None:
    store, _ = store_for(root_client(vault))
    with pytest.raises(NotFound):
        store.get(Dependency("secret", f"secret/{unique_name('absent')}", ()))


def test_a_database_lease_is_renewed_and_its_max_ttl_learned(
    vault: VaultServer, postgres: PostgresServer
) -> None:
    vault.enable_database(postgres)
    name = unique_name("learn")
    vault.create_database_role(name, default_ttl=10, max_ttl=25)
    store, _ = store_for(root_client(vault))
    dependency = Dependency("secret", f"database/creds/{name}", ())
    held = store.get(dependency)
    assert held.category == "lease"
    assert held.clock is not None
    assert held.clock.hard_expires_at is None  # unknown until Vault caps a renewal
    assert held.clock.renewal_increment(1 / 3) == 30
    renewed = store.renew(dependency, increment=30)
    assert renewed.clock is not None
    # Asked for ttl / fraction = 30s, capped at the max TTL: the lifetime is known now.
    assert renewed.clock.hard_expires_at is not None
    assert 22 <= store.learned_lifetimes[dependency] <= 25
    fresh = store.fetch(dependency)
    assert fresh.clock is not None
    assert fresh.clock.hard_expires_at == pytest.approx(
        fresh.clock.issued_at + store.learned_lifetimes[dependency]
    )
    new_lease = fresh.secret.lease_id != held.secret.lease_id  # pytest would print both ids
    assert new_lease, "the reissue returned the old lease"


def test_a_pki_certificate_is_timed_by_its_not_after(vault: VaultServer) -> None:
    store, _ = store_for(root_client(vault))
    dependency = Dependency(
        "pkiCert", "pki/issue/app", (("common_name", "a.example.test"), ("ttl", "90s"))
    )
    held = store.get(dependency)
    assert held.category == "certificate"
    assert set(held.secret.data) == {"Cert", "Key", "CA", "CAChain"}
    assert held.clock is not None
    assert 80 <= held.clock.expires_at - held.clock.issued_at <= 91


def test_a_certificate_issued_already_expired_is_a_rejection_not_a_loop(
    vault: VaultServer,
) -> None:
    """Issued again at once it would be the same; the runner backs off a rejection instead."""
    client = root_client(vault)
    a_day_later = datetime.datetime.now(datetime.UTC).timestamp() + 86400
    store = SecretStore(
        client,
        audit=Audit(PodIdentity(namespace="ns", service_account="sa"), stream=io.StringIO()),
        wall_now=lambda: a_day_later,
    )
    dependency = Dependency(
        "pkiCert", "pki/issue/app", (("common_name", "b.example.test"), ("ttl", "90s"))
    )
    with pytest.raises(RequestRejected, match="already expired"):
        store.get(dependency)


def test_token_renewal_reveals_the_max_ttl(vault: VaultServer) -> None:
    vault.write_policy("renew-test", 'path "secret/*" { capabilities = ["read"] }')
    created = vault.api(
        "POST",
        "auth/token/create",
        {"policies": ["renew-test"], "ttl": "10s", "explicit_max_ttl": "25s"},
    )
    client = VaultClient(VaultConnection(address=vault.url))
    client.use_token(created["auth"]["client_token"])
    renewal = client.renew_self(30)
    assert renewal.capped is True
    assert 20 <= renewal.ttl <= 25
    client.revoke_self()
    with pytest.raises(PermissionDenied):
        client.lookup_self()


def test_kubernetes_auth_logs_in_through_the_token_review(
    vault: VaultServer, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    mount = unique_name("k8s")
    vault.enable_kubernetes_auth(
        kube_url=kube.url,
        reviewer_jwt=kube.admin_token,
        ca_pem=generate_ca().cert_pem.decode(),
        mount=mount,
    )
    vault.write_policy(mount, 'path "secret/data/k8s" { capabilities = ["read"] }')
    vault.create_kubernetes_role(
        "app",
        namespace="shop",
        service_account="orders",
        policies=[mount],
        mount=mount,
        audience="vault",
    )
    token_file = tmp_path / "token"
    token_file.write_text(kube.issue_token("shop", "orders", audiences=["vault"]))
    client = VaultClient(VaultConnection(address=vault.url))
    token = client.login(
        AuthConfig(role="app", mount_path=f"auth/{mount}", token_file=str(token_file))
    )
    assert mount in token.policies
    assert client.lookup_self()["meta"]["service_account_name"] == "orders"
    # A token for another ServiceAccount is refused.
    token_file.write_text(kube.issue_token("shop", "intruder", audiences=["vault"]))
    with pytest.raises(PermissionDenied):
        client.login(AuthConfig(role="app", mount_path=f"auth/{mount}", token_file=str(token_file)))


@pytest.fixture(scope="module")
def tls_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VaultServer, Path]]:
    ca = generate_ca()
    serving = issue_serving_certificate(
        ca, ["vault.test", "127.0.0.1"], lifetime=datetime.timedelta(hours=1)
    )
    with VaultServer.dev(tls=serving, ca_pem=ca.cert_pem) as server:
        assert server.ca_file is not None
        yield server, server.ca_file


def _tls_client(url: str, tls: VaultTLS) -> VaultClient:
    return VaultClient(VaultConnection(address=url, tls=tls, max_retries=0))


def test_tls_to_vault_with_a_ca_file_pem_or_directory(
    tls_vault: tuple[VaultServer, Path], tmp_path: Path
) -> None:
    vault, ca_file = tls_vault
    ca_dir = tmp_path / "cas"
    ca_dir.mkdir()
    (ca_dir / "ca.pem").write_bytes(ca_file.read_bytes())
    import subprocess

    subprocess.run(["openssl", "rehash", str(ca_dir)], check=True, capture_output=True)
    for tls in (
        VaultTLS(ca_cert_file=str(ca_file)),
        VaultTLS(ca_cert_pem=ca_file.read_text()),
        VaultTLS(ca_cert_dir=str(ca_dir)),
    ):
        client = _tls_client(vault.url, tls)
        client.use_token(vault.root_token)
        assert client.mount("secret/app") is not None, tls


def test_tls_server_name_and_skip_verify(tls_vault: tuple[VaultServer, Path]) -> None:
    vault, ca_file = tls_vault
    by_name = vault.url.replace("127.0.0.1", "localhost")  # not in the certificate
    client = _tls_client(by_name, VaultTLS(ca_cert_file=str(ca_file)))
    with pytest.raises(VaultUnavailable, match="TLS handshake"):
        client.read("sys/health")
    named = _tls_client(by_name, VaultTLS(ca_cert_file=str(ca_file), server_name="vault.test"))
    named.use_token(vault.root_token)
    assert named.mount("secret/app") is not None
    untrusted = _tls_client(vault.url, VaultTLS())
    with pytest.raises(VaultUnavailable, match="TLS handshake"):
        untrusted.read("sys/health")
    skipping = _tls_client(vault.url, VaultTLS(skip_verify=True))
    skipping.use_token(vault.root_token)
    assert skipping.mount("secret/app") is not None


def test_requests_go_through_the_configured_proxy(vault: VaultServer) -> None:
    with FaultProxy(vault.url) as proxy:
        client = VaultClient(VaultConnection(address=vault.url, proxy_address=proxy.url))
        client.use_token(vault.root_token)
        assert client.mount("secret/app") is not None
        assert proxy.count("sys/internal/ui/mounts/secret/app") == 1


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("secret/data/{name}", NotFound, id="a 404 for a secret nobody wrote"),
        pytest.param("kv1/{name}", PermissionDenied, id="a 403 for a path the policy denies"),
    ],
)
def test_a_403_or_404_answer_resets_the_failure_gate_and_stays_a_permanent_error(
    vault: VaultServer, path: str, expected: type[VaultError]
) -> None:
    """Vault was unreachable (the gate closed); the next request gets a 403 or 404 from the real
    Vault. That answer proves Vault is up: the gate's backoff starts over, so the next outage
    waits the first step again instead of twice as long. The error itself is still raised as a
    permanent one (not ``VaultUnavailable``), for the caller's long backoff."""
    name = unique_name("gate")
    vault.write_policy(name, f'path "secret/data/{name}" {{ capabilities = ["read"] }}')
    created = vault.api("POST", "auth/token/create", {"policies": [name], "ttl": "5m"})
    first_step = Backoff(1.0, 60.0)
    gate = FailureGate(first_step, random.Random(7))  # noqa: S311 - reproducible jitter
    clock = 100.0
    with FaultProxy(vault.url) as proxy:
        client = VaultClient(
            VaultConnection(address=proxy.url, max_retries=0), gate=gate, now=lambda: clock
        )
        client.use_token(created["auth"]["client_token"])
        proxy.mode = "drop"
        with pytest.raises(VaultUnavailable):
            client.read(path.format(name=name))
        assert gate.failures == 1
        assert not gate.is_open(clock)
        clock = gate.closed_until + 0.1
        proxy.mode = "pass"
        with pytest.raises(expected) as raised:
            client.read(path.format(name=name))
        assert not isinstance(raised.value, VaultUnavailable)
        assert gate.failures == 0, "a 403 or 404 answer did not reset the gate"
        assert gate.is_open(clock)
        # The next outage starts the backoff over: the first step, not the second.
        proxy.mode = "drop"
        with pytest.raises(VaultUnavailable):
            client.read(path.format(name=name))
        assert gate.closed_until - clock <= first_step.initial
        assert proxy.count(name) == 3
