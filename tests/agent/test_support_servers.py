"""The reusable server fixtures of tests/support (imported in tests/agent/conftest.py, as their
docstrings tell other test directories to) work as documented."""

from __future__ import annotations

import pytest

from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer, unique_name

pytestmark = pytest.mark.slow


def test_database_credentials_from_the_shared_fixtures_log_in(
    vault_with_postgres: VaultServer, postgres: PostgresServer
) -> None:
    role = unique_name("fixture")
    vault_with_postgres.create_database_role(role, default_ttl=60, max_ttl=120)
    answer = vault_with_postgres.api("GET", f"database/creds/{role}")
    username, password = answer["data"]["username"], answer["data"]["password"]
    assert postgres.can_log_in(username, password)
    assert username in postgres.roles(prefix="v-")
    assert vault_with_postgres.leases(f"database/creds/{role}") == [answer["lease_id"]]
    vault_with_postgres.revoke_lease(answer["lease_id"])
    assert not postgres.can_log_in(username, password)


def test_postgres_survives_a_stop_and_start_with_its_data(
    postgres: PostgresServer,
) -> None:
    name = unique_name("keep").replace("-", "_")
    with postgres.connect() as connection:
        connection.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'pw'")
    postgres.stop()
    assert not postgres.running
    postgres.start()
    assert postgres.can_log_in(name, "pw")
