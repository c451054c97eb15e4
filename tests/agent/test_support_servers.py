"""The reusable server fixtures of tests/support (imported in tests/agent/conftest.py, as their
docstrings tell other test directories to) work as documented."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import postgres as postgres_module
from tests.support import vault as vault_module
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
    postgres.assert_accepts(username, password)
    assert username in postgres.roles(prefix="v-")
    # A boolean and a count: pytest would print the lease ids.
    leases = vault_with_postgres.leases(f"database/creds/{role}")
    only_this_one = leases == [answer["lease_id"]]
    assert only_this_one, f"{len(leases)} leases, expected only the one just issued"
    vault_with_postgres.revoke_lease(answer["lease_id"])
    postgres.assert_refuses(username, password)


def test_postgres_survives_a_stop_and_start_with_its_data(
    postgres: PostgresServer,
) -> None:
    name = unique_name("keep").replace("-", "_")
    with postgres.connect() as connection:
        connection.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'pw'")
    postgres.stop()
    assert not postgres.running
    postgres.start()
    postgres.assert_accepts(name, "pw")


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_vault_that_does_not_come_up_is_not_left_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    fake = _script(tmp_path / "bao", f'echo $$ > "{pid_file}"\nexec sleep 60\n')
    monkeypatch.setattr(vault_module, "bao_binary", lambda: str(fake))
    server = VaultServer.dev()
    monkeypatch.setattr(server, "start", lambda: VaultServer.start(server, timeout=0.5))
    with pytest.raises(RuntimeError, match="did not listen"), server:
        pass
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists(), "the server process outlived the failed start"
    assert not server.work_dir.exists()


def test_a_failed_initdb_says_why_and_leaves_no_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Outside pytest's private tmp_path: as root, initdb runs as the unprivileged server user.
    base = Path(tempfile.mkdtemp(prefix="vsi-initdb-test-"))
    try:
        base.chmod(0o755)
        bin_dir, scratch = base / "bin", base / "tmp"
        bin_dir.mkdir(mode=0o755)
        scratch.mkdir(mode=0o755)
        _script(bin_dir / "initdb", "echo 'initdb: cannot frobnicate' >&2\nexit 1\n")
        monkeypatch.setattr(postgres_module, "reachable_bin_dir", lambda: bin_dir)
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        with pytest.raises(RuntimeError, match="cannot frobnicate"):
            PostgresServer()
        assert list(scratch.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
