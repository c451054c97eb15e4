"""agent.vault maps every Vault failure to the agent's own exception, with messages that never
carry a token, a JWT, a secret value or Vault's own error text.

Shapes only: a canned HTTP server on loopback answers what each test tells it to (behaviour
against a real server is in test_vault_client.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.config import AuthConfig, VaultConnection
from agent.vault import (
    LoginError,
    NotFound,
    PermissionDenied,
    RequestRejected,
    VaultClient,
    VaultError,
    VaultUnavailable,
    lease_reference,
    token_reference,
)

TOKEN = "s.topsecrettokenvalue"
LEASE = "database/creds/app/AbCdEfGhIjKlMnOp"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    # The client's port: one port for several requests means one kept-alive connection.
    client_port: int


@dataclass
class CannedVault:
    """Answers every request with ``status``/``answer``/``headers``; records the requests."""

    url: str = ""
    status: int = 200
    answer: Any = field(default_factory=dict)
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    drop: bool = False

    @property
    def last(self) -> Seen:
        return self.seen[-1]


@pytest.fixture
def canned() -> Iterator[CannedVault]:
    state = CannedVault()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            state.seen.append(
                Seen(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    json.loads(raw) if raw else None,
                    self.client_address[1],
                )
            )
            if state.drop:
                self.close_connection = True
                return
            payload = state.raw if state.raw is not None else json.dumps(state.answer).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def client_for(canned: CannedVault, **options: Any) -> VaultClient:
    vault = VaultClient(VaultConnection(address=canned.url, max_retries=0, **options))
    vault.use_token(TOKEN)
    return vault


@pytest.mark.parametrize(
    ("status", "errors", "expected"),
    [
        pytest.param(403, ["vault text: denied"], PermissionDenied, id="403 is denied"),
        pytest.param(401, [], PermissionDenied, id="401 is denied too"),
        pytest.param(404, [], NotFound, id="404 is not found"),
        pytest.param(400, ["vault text: lease"], RequestRejected, id="400 is rejected"),
        pytest.param(429, ["vault text: slow down"], VaultUnavailable, id="429 is transient"),
        pytest.param(500, ["vault text: boom"], VaultUnavailable, id="500 is transient"),
        pytest.param(503, ["vault text: sealed"], VaultUnavailable, id="sealed is transient"),
        pytest.param(412, [], VaultUnavailable, id="412 not replicated yet is transient"),
    ],
)
def test_status_codes_map_to_what_the_caller_should_do(
    canned: CannedVault, status: int, errors: list[str], expected: type[VaultError]
) -> None:
    canned.status, canned.answer = status, {"errors": errors}
    with pytest.raises(expected) as raised:
        client_for(canned).read("secret/data/app")
    assert raised.value.status == status
    assert raised.value.path == "secret/data/app"
    assert str(raised.value).startswith("read secret/data/app: ")
    for error_text in errors:
        assert error_text not in str(raised.value)


def test_no_server_is_transient_and_says_so() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = VaultClient(VaultConnection(address=f"http://127.0.0.1:{port}", max_retries=1))
    with pytest.raises(VaultUnavailable, match="Vault did not answer") as raised:
        client.read("secret/data/app")
    assert raised.value.status is None


def test_a_dropped_connection_is_transient(canned: CannedVault) -> None:
    canned.drop = True
    with pytest.raises(VaultUnavailable, match="Vault did not answer"):
        client_for(canned).read("secret/data/app")
    assert len(canned.seen) == 1, "a request that reached Vault is never sent twice"


def test_an_answer_that_is_not_json_is_transient(canned: CannedVault) -> None:
    canned.raw = b"<html>gateway</html>"
    with pytest.raises(VaultUnavailable, match="not JSON"):
        client_for(canned).read("secret/data/app")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param("garbage", None, id="an unreadable hint is ignored"),
    ],
)
def test_a_429_carries_the_servers_retry_hint(
    canned: CannedVault, header: str, expected: float | None
) -> None:
    canned.status, canned.answer, canned.headers = 429, {"errors": []}, {"Retry-After": header}
    with pytest.raises(VaultUnavailable) as raised:
        client_for(canned).read("kv/app")
    assert raised.value.retry_after == expected


def test_lease_errors_name_a_hash_of_the_lease_never_its_id(canned: CannedVault) -> None:
    canned.status, canned.answer = 400, {"errors": [LEASE]}
    with pytest.raises(RequestRejected) as raised:
        client_for(canned).renew_lease(LEASE, 30)
    assert LEASE not in str(raised.value)
    assert "AbCdEfGh" not in str(raised.value)
    assert lease_reference(LEASE) in str(raised.value)
    assert lease_reference(LEASE).startswith("database/creds/app/sha256:")
    assert canned.last.body == {"lease_id": LEASE, "increment": 30}


def test_login_sends_the_jwt_without_a_token_and_keeps_the_token_out_of_reprs(
    canned: CannedVault, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.payload.signature\n")
    canned.answer = {
        "auth": {
            "client_token": TOKEN,
            "accessor": "acc",
            "lease_duration": 60,
            "renewable": True,
            "policies": ["default"],
        }
    }
    client = VaultClient(VaultConnection(address=canned.url))
    token = client.login(AuthConfig(role="app", token_file=str(token_file)))
    assert canned.last.method == "POST"
    assert canned.last.path == "/v1/auth/kubernetes/login"
    assert canned.last.body == {"role": "app", "jwt": "eyJhbGciOiJSUzI1NiJ9.payload.signature"}
    assert "X-Vault-Token" not in canned.last.headers
    assert TOKEN not in repr(token)
    assert token.ttl == 60
    assert client.token == TOKEN
    client.read("kv/app")
    assert canned.last.headers["X-Vault-Token"] == TOKEN
    assert TOKEN not in token_reference(token.accessor)


def test_login_reads_the_token_file_afresh_each_time(canned: CannedVault, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    canned.answer = {"auth": {"client_token": TOKEN, "accessor": "a", "lease_duration": 5}}
    client = VaultClient(VaultConnection(address=canned.url))
    auth = AuthConfig(role="app", method="jwt", mount_path="auth/jwt", token_file=str(token_file))
    token_file.write_text("first-jwt\n")
    client.login(auth)
    token_file.write_text("rotated-jwt\n")
    client.login(auth)
    assert [seen.body["jwt"] for seen in canned.seen] == ["first-jwt", "rotated-jwt"]
    assert {seen.path for seen in canned.seen} == {"/v1/auth/jwt/login"}


def test_a_missing_token_file_is_a_login_error_without_content(tmp_path: Path) -> None:
    client = VaultClient(VaultConnection(address="http://127.0.0.1:9"))
    with pytest.raises(LoginError, match="cannot read the ServiceAccount token file"):
        client.login(AuthConfig(role="app", token_file=str(tmp_path / "absent")))


def test_auth_params_override_role_and_token_path(canned: CannedVault, tmp_path: Path) -> None:
    other = tmp_path / "projected"
    other.write_text("projected-jwt")
    canned.answer = {"auth": {"client_token": TOKEN, "accessor": "a", "lease_duration": 5}}
    VaultClient(VaultConnection(address=canned.url)).login(
        AuthConfig(
            role="ignored",
            token_file="/nonexistent",
            params={"role": "from-params", "token_path": str(other)},
        )
    )
    assert canned.last.body == {"role": "from-params", "jwt": "projected-jwt"}


def test_integers_in_secret_data_stay_integers(canned: CannedVault) -> None:
    canned.raw = (
        b'{"lease_duration": 2764800, '
        b'"data": {"port": 5432, "ratio": 0.5, "big": 12345678901234567890}}'
    )
    secret = client_for(canned).read("kv/app")
    assert secret.data["port"] == 5432
    assert type(secret.data["port"]) is int
    assert type(secret.data["big"]) is int
    assert secret.lease_duration == 2764800


def test_a_capped_renewal_is_recognised(canned: CannedVault) -> None:
    canned.answer = {
        "lease_id": LEASE,
        "lease_duration": 12,
        "renewable": True,
        "warnings": [
            'TTL of "30s" exceeded the effective max_ttl of "12s"; TTL value is capped accordingly'
        ],
    }
    renewal = client_for(canned).renew_lease(LEASE, 30)
    assert renewal.capped is True
    assert renewal.ttl == 12


def test_list_uses_get_with_list_true(canned: CannedVault) -> None:
    canned.answer = {"data": {"keys": ["a", "b/"]}}
    assert client_for(canned).list_keys("secret/metadata/") == ["a", "b/"]
    assert canned.last.method == "GET"
    assert canned.last.path == "/v1/secret/metadata?list=true"


def test_keep_alive_reuses_one_connection_unless_disabled(canned: CannedVault) -> None:
    canned.answer = {"data": {}}
    client = client_for(canned)
    for _ in range(3):
        client.read("kv/app")
    assert "Connection" not in canned.last.headers
    assert len({seen.client_port for seen in canned.seen}) == 1
    canned.seen.clear()
    closing = client_for(canned, disable_keep_alives=True)
    for _ in range(2):
        closing.read("kv/app")
    assert canned.last.headers["Connection"] == "close"
    assert len({seen.client_port for seen in canned.seen}) == 2


def test_namespace_and_request_headers(canned: CannedVault) -> None:
    canned.answer = {"data": {}}
    client_for(canned, namespace="team-a").read("kv/app")
    assert canned.last.headers["X-Vault-Namespace"] == "team-a"
    assert canned.last.headers["X-Vault-Token"] == TOKEN
    assert canned.last.headers["X-Vault-Request"] == "true"


def test_an_address_with_a_path_prefix_keeps_it(canned: CannedVault) -> None:
    canned.answer = {"data": {}}
    VaultClient(VaultConnection(address=canned.url + "/vault/")).read("kv/app")
    assert canned.last.path == "/vault/v1/kv/app"
