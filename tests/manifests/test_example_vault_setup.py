"""The worked example's Vault commands, run for real: vault-setup.sh against OpenBao and
PostgreSQL configures exactly what the example Deployment asks for, and a credential it issues
logs in to the database."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.authority import generate_ca
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer, bao_binary

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "manifests/overlays/example/vault-setup.sh"
PAYMENT_API_KEY = "example-payment-key-7c41d9"
# Stands in for the CLI: writes down its arguments (what any user sees in the process list), then
# runs the real one.
RECORDING_CLI = """#!/bin/sh
printf '%s\\n' "$*" >> "$VSI_TEST_ARGUMENTS"
exec "$VSI_TEST_REAL_CLI" "$@"
"""


@pytest.fixture(scope="module")
def command_lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file where every CLI call of the script leaves its arguments, one line each."""
    return tmp_path_factory.mktemp("cli") / "arguments.log"


@pytest.fixture(scope="module")
def configured(
    tmp_path_factory: pytest.TempPathFactory, command_lines: Path
) -> Iterator[tuple[VaultServer, PostgresServer]]:
    # Vault runs outside the (absent) cluster here, so it needs the API server's CA as a file.
    kubernetes_ca = tmp_path_factory.mktemp("kube") / "ca.crt"
    kubernetes_ca.write_bytes(generate_ca().cert_pem)
    cli = command_lines.parent / "vault"
    cli.write_text(RECORDING_CLI)
    cli.chmod(0o755)
    with VaultServer.dev() as vault, PostgresServer() as postgres:
        environment = {
            **os.environ,
            "VAULT": str(cli),
            "VSI_TEST_REAL_CLI": bao_binary(),
            "VSI_TEST_ARGUMENTS": str(command_lines),
            "PAYMENT_API_KEY": PAYMENT_API_KEY,
            "VAULT_ADDR": vault.url,
            "VAULT_TOKEN": vault.root_token,
            "KUBERNETES_HOST": "https://127.0.0.1:6443",
            "KUBERNETES_CA_CERT": str(kubernetes_ca),
            "POSTGRES_URL": f"{postgres.host}:{postgres.port}/postgres",
            "POSTGRES_SSLMODE": "disable",
            "POSTGRES_ADMIN_USER": postgres.superuser,
            "POSTGRES_ADMIN_PASSWORD": postgres.password,
        }
        for attempt in ("first run", "re-run"):
            finished = subprocess.run(
                ["sh", str(SCRIPT)], env=environment, capture_output=True, text=True,
                check=False, timeout=120,
            )  # fmt: skip
            output = (finished.stdout + finished.stderr).replace(postgres.password, "***")
            assert finished.returncode == 0, f"{attempt} failed:\n{output[-3000:]}"
        yield vault, postgres


def test_the_role_binds_the_example_service_account_with_the_vault_audience(
    configured: tuple[VaultServer, PostgresServer],
) -> None:
    vault, _postgres = configured
    role = vault.api("GET", "auth/kubernetes/role/orders")["data"]
    assert role["bound_service_account_names"] == ["orders"]
    assert role["bound_service_account_namespaces"] == ["shop"]
    assert role["audience"] == "vault"
    assert role["token_policies"] == ["orders"]


def test_the_policy_reads_the_two_paths_and_nothing_else(
    configured: tuple[VaultServer, PostgresServer],
) -> None:
    vault, _postgres = configured
    policy = vault.api("GET", "sys/policies/acl/orders")["data"]["policy"]
    assert policy.count("path ") == 2
    assert 'path "database/creds/orders"' in policy
    assert 'path "secret/data/orders/config"' in policy
    token = vault.api("POST", "auth/token/create", {"policies": ["orders"], "ttl": "5m"})
    client = vault.client(token["auth"]["client_token"])
    assert client.sys.get_capabilities(paths=["secret/data/orders/config"])["capabilities"] == [
        "read"
    ]
    assert client.sys.get_capabilities(paths=["secret/data/other"])["capabilities"] == ["deny"]


def test_the_kv_secret_and_a_working_database_credential_are_issued(
    configured: tuple[VaultServer, PostgresServer],
) -> None:
    vault, postgres = configured
    config = vault.api("GET", "secret/data/orders/config")["data"]["data"]
    assert set(config) == {"payment_api_key"}
    assert config["payment_api_key"] == PAYMENT_API_KEY
    credential = vault.api("GET", "database/creds/orders")
    assert credential["lease_duration"] == 3600
    username, password = credential["data"]["username"], credential["data"]["password"]
    postgres.assert_accepts(username, password)
    vault.revoke_lease(credential["lease_id"])
    postgres.assert_refuses(username, password)


def test_no_secret_value_is_on_a_command_line(
    configured: tuple[VaultServer, PostgresServer], command_lines: Path
) -> None:
    _vault, postgres = configured
    arguments = command_lines.read_text()
    assert "database/config/orders" in arguments
    # Booleans first, so that a failure does not print the secret it found.
    password_shown = postgres.password in arguments
    key_shown = PAYMENT_API_KEY in arguments
    assert not password_shown, "the PostgreSQL admin password was on a command line"
    assert not key_shown, "the KV secret was on a command line"
