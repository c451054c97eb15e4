"""agent.vault maps every Vault failure to the agent's own exception, with messages that never
carry a token, a JWT, a secret value or Vault's own error text. (Shapes only: requests-mock.
Behaviour against a real server is in test_vault_client.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import requests_mock

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

ADDRESS = "http://vault.test:8200"
TOKEN = "s.topsecrettokenvalue"
LEASE = "database/creds/app/AbCdEfGhIjKlMnOp"


@pytest.fixture
def client() -> VaultClient:
    vault = VaultClient(VaultConnection(address=ADDRESS, max_retries=0))
    vault.use_token(TOKEN)
    return vault


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(403, {"errors": ["vault text: denied"]}, PermissionDenied, id="403 is denied"),
        pytest.param(401, {"errors": []}, PermissionDenied, id="401 is denied too"),
        pytest.param(404, {"errors": []}, NotFound, id="404 is not found"),
        pytest.param(400, {"errors": ["lease not found"]}, RequestRejected, id="400 is rejected"),
        pytest.param(
            429, {"errors": ["vault text: slow down"]}, VaultUnavailable, id="429 is transient"
        ),
        pytest.param(500, {"errors": ["boom"]}, VaultUnavailable, id="500 is transient"),
        pytest.param(
            503, {"errors": ["Vault is sealed"]}, VaultUnavailable, id="sealed is transient"
        ),
        pytest.param(
            412, {"errors": []}, VaultUnavailable, id="412 not replicated yet is transient"
        ),
    ],
)
def test_status_codes_map_to_what_the_caller_should_do(
    client: VaultClient, status: int, body: dict[str, object], expected: type[VaultError]
) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{ADDRESS}/v1/secret/data/app", status_code=status, json=body)
        with pytest.raises(expected) as raised:
            client.read("secret/data/app")
    assert raised.value.status == status
    assert raised.value.path == "secret/data/app"
    assert str(raised.value).startswith("read secret/data/app: ")
    for error_text in body["errors"]:  # type: ignore[attr-defined]
        assert error_text not in str(raised.value)


def test_a_connection_failure_is_transient_and_says_so(client: VaultClient) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{ADDRESS}/v1/secret/data/app", exc=requests.ConnectionError("refused"))
        with pytest.raises(VaultUnavailable, match="Vault did not answer") as raised:
            client.read("secret/data/app")
    assert raised.value.status is None


def test_a_timeout_is_transient(client: VaultClient) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{ADDRESS}/v1/secret/data/app", exc=requests.ReadTimeout("slow"))
        with pytest.raises(VaultUnavailable):
            client.read("secret/data/app")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param("garbage", None, id="an unreadable hint is ignored"),
    ],
)
def test_a_429_carries_the_servers_retry_hint(
    client: VaultClient, header: str, expected: float | None
) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(
            f"{ADDRESS}/v1/kv/app",
            status_code=429,
            json={"errors": []},
            headers={"Retry-After": header},
        )
        with pytest.raises(VaultUnavailable) as raised:
            client.read("kv/app")
    assert raised.value.retry_after == expected


def test_lease_errors_name_a_hash_of_the_lease_never_its_id(client: VaultClient) -> None:
    with requests_mock.Mocker() as mock:
        mock.put(f"{ADDRESS}/v1/sys/leases/renew", status_code=400, json={"errors": [LEASE]})
        with pytest.raises(RequestRejected) as raised:
            client.renew_lease(LEASE, 30)
    assert LEASE not in str(raised.value)
    assert "AbCdEfGh" not in str(raised.value)
    assert lease_reference(LEASE) in str(raised.value)
    assert lease_reference(LEASE).startswith("database/creds/app/sha256:")


def test_the_token_never_appears_in_errors_or_reprs(client: VaultClient, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.payload.signature")
    with requests_mock.Mocker() as mock:
        mock.post(
            f"{ADDRESS}/v1/auth/kubernetes/login",
            status_code=200,
            json={
                "auth": {
                    "client_token": TOKEN,
                    "accessor": "acc",
                    "lease_duration": 60,
                    "renewable": True,
                    "policies": ["default"],
                }
            },
        )
        token = client.login(AuthConfig(role="app", token_file=str(token_file)))
        sent = mock.last_request
        assert sent is not None
        assert sent.json() == {"role": "app", "jwt": "eyJhbGciOiJSUzI1NiJ9.payload.signature"}
        assert "X-Vault-Token" not in sent.headers
    assert TOKEN not in repr(token)
    assert token.ttl == 60
    assert client.token == TOKEN
    assert TOKEN not in token_reference(token.accessor)


def test_login_reads_the_token_file_afresh_each_time(client: VaultClient, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    answer = {"auth": {"client_token": TOKEN, "accessor": "a", "lease_duration": 5}}
    with requests_mock.Mocker() as mock:
        mock.post(f"{ADDRESS}/v1/auth/jwt/login", json=answer)
        auth = AuthConfig(
            role="app", method="jwt", mount_path="auth/jwt", token_file=str(token_file)
        )
        token_file.write_text("first-jwt\n")
        client.login(auth)
        token_file.write_text("rotated-jwt\n")
        client.login(auth)
        bodies = [request.json()["jwt"] for request in mock.request_history]
    assert bodies == ["first-jwt", "rotated-jwt"]


def test_a_missing_token_file_is_a_login_error_without_content(
    client: VaultClient, tmp_path: Path
) -> None:
    with pytest.raises(LoginError, match="cannot read the ServiceAccount token file"):
        client.login(AuthConfig(role="app", token_file=str(tmp_path / "absent")))


def test_auth_params_override_role_and_token_path(client: VaultClient, tmp_path: Path) -> None:
    other = tmp_path / "projected"
    other.write_text("projected-jwt")
    answer = {"auth": {"client_token": TOKEN, "accessor": "a", "lease_duration": 5}}
    with requests_mock.Mocker() as mock:
        mock.post(f"{ADDRESS}/v1/auth/kubernetes/login", json=answer)
        client.login(
            AuthConfig(
                role="ignored",
                token_file="/nonexistent",
                params={"role": "from-params", "token_path": str(other)},
            )
        )
        assert mock.last_request is not None
        assert mock.last_request.json() == {"role": "from-params", "jwt": "projected-jwt"}


def test_integers_in_secret_data_stay_integers(client: VaultClient) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(
            f"{ADDRESS}/v1/kv/app",
            text='{"lease_duration": 2764800, '
            '"data": {"port": 5432, "ratio": 0.5, "big": 12345678901234567890}}',
        )
        secret = client.read("kv/app")
    assert secret.data["port"] == 5432
    assert type(secret.data["port"]) is int
    assert type(secret.data["big"]) is int
    assert secret.lease_duration == 2764800


def test_a_capped_renewal_is_recognised(client: VaultClient) -> None:
    with requests_mock.Mocker() as mock:
        mock.put(
            f"{ADDRESS}/v1/sys/leases/renew",
            json={
                "lease_id": LEASE,
                "lease_duration": 12,
                "renewable": True,
                "warnings": [
                    'TTL of "30s" exceeded the effective max_ttl of "12s"; '
                    "TTL value is capped accordingly"
                ],
            },
        )
        renewal = client.renew_lease(LEASE, 30)
        assert mock.last_request is not None
        assert mock.last_request.json() == {"lease_id": LEASE, "increment": 30}
    assert renewal.capped is True
    assert renewal.ttl == 12


def test_list_uses_get_with_list_true(client: VaultClient) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{ADDRESS}/v1/secret/metadata?list=true", json={"data": {"keys": ["a", "b/"]}})
        assert client.list_keys("secret/metadata/") == ["a", "b/"]


def test_keep_alives_can_be_disabled() -> None:
    vault = VaultClient(VaultConnection(address=ADDRESS, disable_keep_alives=True))
    with requests_mock.Mocker() as mock:
        mock.get(f"{ADDRESS}/v1/kv/app", json={"data": {}})
        vault.read("kv/app")
        assert mock.last_request is not None
        assert mock.last_request.headers["Connection"] == "close"


def test_namespace_is_sent_as_a_header() -> None:
    vault = VaultClient(VaultConnection(address=ADDRESS, namespace="team-a"))
    vault.use_token(TOKEN)
    with requests_mock.Mocker() as mock:
        mock.get(f"{ADDRESS}/v1/kv/app", json={"data": {}})
        vault.read("kv/app")
        assert mock.last_request is not None
        assert mock.last_request.headers["X-Vault-Namespace"] == "team-a"
        assert mock.last_request.headers["X-Vault-Token"] == TOKEN
