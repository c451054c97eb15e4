"""Faults the agent survives. In each: the files keep their last good content, the agent recovers
by itself, under persistent errors it sends at most about one request per second (counted at a
proxy in front of Vault), and after shutdown no lease of the pod is left in Vault."""

from __future__ import annotations

import datetime
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import AgentConfig, LifecycleConfig, TemplateConfig, replace
from certs.authority import generate_ca
from tests.agent.conftest import make_identity, needs_root
from tests.agent.harness import (
    AgentProcess,
    AppIdentity,
    PodDirs,
    agent_config,
    template,
    wait_for,
)
from tests.agent.proxy import FaultProxy
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer, unique_name

pytestmark = pytest.mark.slow

# "At most about one request per second": the count over a fault window may exceed the window's
# length in seconds by this much (the first failure and the one that finds Vault back).
RATE_SLACK = 2


def policy(name: str) -> str:
    return (
        f'path "database/creds/{name}" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{name}" {{ capabilities = ["read"] }}\n'
    )


@dataclass
class Scenario:
    """A sidecar (no init) with a database credential and a KV secret, through the proxy."""

    vault: VaultServer
    proxy: FaultProxy
    pod: PodDirs
    identity: AppIdentity
    name: str
    config: AgentConfig

    def credentials(self) -> tuple[str, str]:
        username, _, password = self.pod.file("db").read_text().partition(":")
        return username, password

    def leases(self) -> list[str]:
        return self.vault.leases(f"database/creds/{self.name}")


def db_and_kv_templates(pod: PodDirs, name: str) -> list[TemplateConfig]:
    return [
        template(
            pod,
            "db",
            f"database/creds/{name}",
            f'{{{{ with secret "database/creds/{name}" }}}}'
            "{{ .Data.username }}:{{ .Data.password }}{{ end }}",
        ),
        template(
            pod,
            "kv",
            f"secret/{name}",
            f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.value }}}}{{{{ end }}}}',
        ),
    ]


@pytest.fixture
def scenario(database: VaultServer, kube: FakeKubeApiServer, pod: PodDirs) -> Iterator[Scenario]:
    vault = database
    name = unique_name("fault")
    vault.create_database_role(name, default_ttl=4, max_ttl=12)
    vault.put_kv("secret", name, {"value": "v1"})
    identity = make_identity(vault, kube, pod.root, policy=policy(name), token_ttl="6s")
    with FaultProxy(vault.url) as proxy:
        config = agent_config(
            vault_url=proxy.url,
            identity=identity,
            pod=pod,
            templates=db_and_kv_templates(pod, name),
            lifecycle=LifecycleConfig(
                static_secret_render_interval_seconds=2.0,
                revoke_grace_seconds=0.0,
                init_timeout_seconds=20.0,
            ),
        )
        yield Scenario(vault, proxy, pod, identity, name, config)


def stop_and_check_nothing_is_left(
    scenario: Scenario, sidecar: AgentProcess, *, expired_allowed: bool = False
) -> None:
    scenario.proxy.mode = "pass"
    sidecar.terminate()
    assert sidecar.wait(30) == 0
    assert_nothing_left(
        scenario.vault,
        f"database/creds/{scenario.name}",
        scenario.identity.role,
        expired_allowed=expired_allowed,
    )


def assert_nothing_left(
    vault: VaultServer, lease_prefix: str, role: str, *, expired_allowed: bool = False
) -> None:
    """No token of the pod, and (Vault revokes a token's leases in the background, within a
    fraction of a second) soon no lease. ``expired_allowed``: a lease that expired while its
    database was down stays listed, expired, until Vault retries its revocation; it is no
    credential anyone can use, so only live leases count."""

    def live_leases() -> list[str]:
        leases = vault.leases(lease_prefix)
        if expired_allowed:
            leases = [
                lease for lease in leases if (vault.lookup_lease(lease) or {}).get("ttl", 0) > 0
            ]
        return leases

    # Counts only, here and below: pytest would print a list's items (accessors, lease ids).
    tokens_left = len(vault.tokens_of_role(role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"
    wait_for(lambda: len(live_leases()) == 0, timeout=5, message="leases revoked")


def changed_files(pod: PodDirs, before: dict[str, str]) -> list[str]:
    """Names of the files whose content is no longer ``before``'s: a failure shows names, never
    the credentials in them."""
    return [name for name, content in before.items() if pod.file(name).read_text() != content]


def assert_rate_at_most_one_per_second(proxy: FaultProxy, start: float, end: float) -> None:
    during = proxy.between(start, end)
    assert len(during) <= (end - start) + RATE_SLACK, [
        (round(seen.at - start, 2), seen.path) for seen in during
    ]


def started(scenario: Scenario) -> AgentProcess:
    sidecar = AgentProcess("sidecar", scenario.config, scenario.pod.root).start()
    wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
    return sidecar


def test_vault_unreachable_then_back(scenario: Scenario, postgres: PostgresServer) -> None:
    with started(scenario) as sidecar:
        files_before = {name: scenario.pod.file(name).read_text() for name in ("db", "kv")}
        scenario.proxy.mode = "drop"
        start = time.monotonic()
        # A full minute, as the issue asks: longer than the token (6 s) and the credentials'
        # max TTL (12 s), so everything the agent held dies while Vault is away.
        time.sleep(60.0)
        end = time.monotonic()
        assert changed_files(scenario.pod, files_before) == []
        assert_rate_at_most_one_per_second(scenario.proxy, start, end)
        assert sidecar.running()
        scenario.proxy.mode = "pass"
        recovered_at = len(sidecar.events("rotate"))
        # Back: the agent renews or re-issues by itself; the credentials on disk work again.
        wait_for(
            lambda: (
                len(sidecar.events("rotate")) > recovered_at
                and postgres.can_log_in(*scenario.credentials())
            ),
            timeout=20,
            message="recovery after the outage",
        )
        stop_and_check_nothing_is_left(scenario, sidecar)


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [
        pytest.param(500, None, id="500 internal errors"),
        pytest.param(429, "1", id="429 rate limited with a retry hint"),
        pytest.param(503, None, id="503 sealed"),
    ],
)
def test_persistent_error_answers_are_retried_at_most_once_a_second(
    scenario: Scenario, postgres: PostgresServer, status: int, retry_after: str | None
) -> None:
    with started(scenario) as sidecar:
        files_before = {name: scenario.pod.file(name).read_text() for name in ("db", "kv")}
        scenario.proxy.status_code = status
        scenario.proxy.retry_after = retry_after
        scenario.proxy.mode = "status"
        start = time.monotonic()
        time.sleep(7.0)
        end = time.monotonic()
        assert_rate_at_most_one_per_second(scenario.proxy, start, end)
        assert scenario.proxy.between(start, end), "the agent did try during the fault"
        assert changed_files(scenario.pod, files_before) == []
        scenario.proxy.mode = "pass"
        wait_for(
            lambda: postgres.can_log_in(*scenario.credentials()),
            timeout=20,
            message="working credentials after the fault",
        )
        stop_and_check_nothing_is_left(scenario, sidecar)


def test_token_revoked_behind_the_agents_back(scenario: Scenario, postgres: PostgresServer) -> None:
    with started(scenario) as sidecar:
        old = scenario.credentials()
        (accessor,) = scenario.vault.tokens_of_role(scenario.identity.role)
        scenario.vault.revoke_accessor(accessor)  # and with it, every lease it issued
        wait_for(
            lambda: scenario.credentials() != old and postgres.can_log_in(*scenario.credentials()),
            timeout=20,
            message="new credentials under a new token",
        )
        assert len(sidecar.events("login")) == 2
        postgres.assert_refuses(*old)
        stop_and_check_nothing_is_left(scenario, sidecar)


def test_lease_revoked_behind_the_agents_back(scenario: Scenario, postgres: PostgresServer) -> None:
    with started(scenario) as sidecar:
        old = scenario.credentials()
        (lease,) = scenario.leases()
        scenario.vault.revoke_lease(lease)
        wait_for(
            lambda: scenario.credentials() != old and postgres.can_log_in(*scenario.credentials()),
            timeout=20,
            message="new credentials after the revocation",
        )
        assert len(sidecar.events("login")) == 1, "a lost lease does not need a new login"
        stop_and_check_nothing_is_left(scenario, sidecar)


def test_postgres_down_while_issuing(scenario: Scenario, postgres: PostgresServer) -> None:
    with started(scenario) as sidecar:
        db_before = scenario.pod.file("db").read_text()
        postgres.stop()
        try:
            start = time.monotonic()
            rotations = len(sidecar.events("rotate"))
            # The 4s/12s credential must be issued anew within 8s: it cannot be while Postgres
            # is down, and the agent keeps the old file and retries with backoff.
            time.sleep(10.0)
            end = time.monotonic()
            assert len(sidecar.events("rotate")) == rotations
            failed = [
                line
                for line in sidecar.events("error")
                if line.get("path", "").startswith("database")
            ]
            assert failed, "the failed issue is in the audit trail"
            creds_path = [
                seen for seen in scenario.proxy.between(start, end) if "creds" in seen.path
            ]
            assert len(creds_path) <= (end - start) + RATE_SLACK
            assert changed_files(scenario.pod, {"db": db_before}) == []
        finally:
            postgres.start()
        wait_for(
            lambda: postgres.can_log_in(*scenario.credentials()),
            timeout=25,
            message="credentials issued once Postgres is back",
        )
        assert len(sidecar.events("login")) == 1, "the token outlived the outage"
        stop_and_check_nothing_is_left(scenario, sidecar, expired_allowed=True)


def test_a_template_error_beside_good_templates(
    database: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    vault = database
    name = unique_name("tplerr")
    vault.put_kv("secret", name, {"a": "a1", "b": "b1"})
    identity = make_identity(vault, kube, pod.root, policy=policy(name))
    body = f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.KEY }}}}{{{{ end }}}}'
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[
            template(pod, "good", f"secret/{name}", body.replace("KEY", "a")),
            template(
                pod, "strict", f"secret/{name}", body.replace("KEY", "b"), error_on_missing_key=True
            ),
        ],
        lifecycle=LifecycleConfig(
            static_secret_render_interval_seconds=1.0, revoke_grace_seconds=0.0
        ),
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
        vault.put_kv("secret", name, {"a": "a2"})  # "b" is gone: the strict template fails
        wait_for(lambda: pod.file("good").read_text() == "a2", timeout=10, message="good update")
        wait_for(
            lambda: [e for e in sidecar.events("error") if e.get("template") == "strict"],
            timeout=10,
            message="the strict template's error",
        )
        assert pod.file("strict").read_text() == "b1"
        fetches_before = len(sidecar.events("fetch"))
        time.sleep(2.5)
        # The failing template makes nothing fetch again beyond the regular refresh.
        assert len(sidecar.events("fetch")) - fetches_before <= 3
        vault.put_kv("secret", name, {"a": "a3", "b": "b3"})
        wait_for(lambda: pod.file("strict").read_text() == "b3", timeout=10, message="recovery")
        assert pod.file("good").read_text() == "a3"
        sidecar.terminate()
        assert sidecar.wait(20) == 0


def test_a_failing_or_hanging_command_blocks_nothing(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("cmd")
    vault.put_kv("secret", name, {"v": "1"})
    identity = make_identity(vault, kube, pod.root, policy=policy(name))
    body = f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.v }}}}{{{{ end }}}}'
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[
            template(pod, "fails", f"secret/{name}", body, command="/bin/sh -c 'exit 3'"),
            template(
                pod,
                "hangs",
                f"secret/{name}",
                body + " ",
                command="/bin/sleep 600",
                command_timeout_seconds=1.5,
            ),
            template(pod, "plain", f"secret/{name}", body + "  "),
        ],
        lifecycle=LifecycleConfig(
            static_secret_render_interval_seconds=1.0, revoke_grace_seconds=0.0
        ),
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
        # While "hangs" runs its command, the scheduler keeps working: a change is rendered.
        vault.put_kv("secret", name, {"v": "2"})
        wait_for(lambda: pod.file("plain").read_text() == "2  ", timeout=5, message="render")
        results = wait_for(
            lambda: (
                sorted((line["template"], line["result"]) for line in sidecar.events("command"))
                if len(sidecar.events("command")) >= 4
                else None
            ),
            timeout=10,
            message="all commands reaped",
        )
        assert results == [
            ("fails", "failed"),
            ("fails", "failed"),
            ("hangs", "timed out"),
            ("hangs", "timed out"),
        ]
        assert (
            "sleep 600"
            not in subprocess.run(
                ["ps", "-eo", "args"], capture_output=True, text=True, check=True
            ).stdout
        )
        sidecar.terminate()
        assert sidecar.wait(20) == 0


@pytest.fixture
def tiny_secrets_volume(pod: PodDirs) -> Iterator[Path]:
    """The secrets volume as a real 64 KiB tmpfs (an emptyDir with medium Memory and a limit)."""
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(pod.secrets)],
        check=True,
    )
    try:
        yield pod.secrets
    finally:
        subprocess.run(["umount", "-l", str(pod.secrets)], check=True)


@needs_root
def test_a_full_tmpfs_keeps_the_previous_file(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs, tiny_secrets_volume: Path
) -> None:
    name = unique_name("full")
    vault.put_kv("secret", name, {"v": "small", "other": "o1"})
    identity = make_identity(vault, kube, pod.root, policy=policy(name))
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[
            template(
                pod,
                "big",
                f"secret/{name}",
                f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.v }}}}{{{{ end }}}}',
            ),
            template(
                pod,
                "other",
                f"secret/{name}",
                f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.other }}}}{{{{ end }}}}',
            ),
        ],
        lifecycle=LifecycleConfig(
            static_secret_render_interval_seconds=1.0, revoke_grace_seconds=0.0
        ),
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
        vault.put_kv("secret", name, {"v": "x" * 100_000, "other": "o2"})
        wait_for(lambda: pod.file("other").read_text() == "o2", timeout=10, message="other")
        wait_for(
            lambda: [e for e in sidecar.events("error") if e.get("operation") == "write"],
            timeout=10,
            message="the failed write",
        )
        assert pod.file("big").read_text() == "small"
        assert sorted(path.name for path in pod.secrets.iterdir()) == ["big", "other"]
        vault.put_kv("secret", name, {"v": "fits again", "other": "o3"})
        wait_for(lambda: pod.file("big").read_text() == "fits again", timeout=15, message="fits")
        sidecar.terminate()
        assert sidecar.wait(20) == 0


def test_sigterm_in_the_middle_of_a_renewal(scenario: Scenario, postgres: PostgresServer) -> None:
    with started(scenario) as sidecar:
        credentials = scenario.credentials()
        scenario.proxy.delays["sys/leases/renew"] = 20.0
        wait_for(
            lambda: any("sys/leases/renew" in path for path in list(scenario.proxy.in_flight)),
            timeout=15,
            message="a renewal on the wire",
        )
        asked = time.monotonic()
        sidecar.terminate()
        assert sidecar.wait(15) == 0
        assert time.monotonic() - asked < 5.0, "shutdown waited for the stuck renewal"
        scenario.proxy.delays.clear()
        assert_nothing_left(
            scenario.vault, f"database/creds/{scenario.name}", scenario.identity.role
        )
        postgres.assert_refuses(*credentials)
        assert scenario.pod.file("db").exists()


def test_a_lease_vault_cannot_revoke_at_shutdown_does_not_keep_the_token_alive(
    scenario: Scenario, postgres: PostgresServer
) -> None:
    """Vault fails to revoke a lease at shutdown (a 500, its database in trouble, say): the token
    is revoked all the same, and with it every lease it issued."""
    with started(scenario) as sidecar:
        credentials = scenario.credentials()
        scenario.proxy.statuses["sys/leases/revoke"] = 500
        sidecar.terminate()
        assert sidecar.wait(30) == 0
        assert scenario.proxy.count("sys/leases/revoke") >= 1, "the lease revocation was tried"
    assert_nothing_left(scenario.vault, f"database/creds/{scenario.name}", scenario.identity.role)
    postgres.assert_refuses(*credentials)


def test_a_refused_relogin_with_exit_on_error_revokes_what_the_agent_holds_then_exits_one(
    database: VaultServer, postgres: PostgresServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """auth.exit_on_error: the re-login before the token's max TTL is refused (Vault's
    kubernetes auth answers 403 for a ServiceAccount token the role does not allow). The agent
    exits non-zero, but first revokes the lease it holds and the token that issued it, as a
    SIGTERM would: it leaves no live credential behind for the token's remaining life."""
    vault = database
    name = unique_name("exit-on-err")
    mount = unique_name("k8s")
    vault.enable_kubernetes_auth(
        kube_url=kube.url,
        reviewer_jwt=kube.admin_token,
        ca_pem=generate_ca().cert_pem.decode(),
        mount=mount,
    )
    vault.write_policy(name, policy(name))
    namespace = unique_name("ns")
    # Long enough that the old token and its lease outlive the check below by many seconds
    # when the agent leaves them alive; the re-login comes at about two thirds of the max TTL.
    vault.create_kubernetes_role(
        name,
        namespace=namespace,
        service_account=name,
        policies=[name],
        mount=mount,
        audience="vault",
        ttl="10s",
        max_ttl="24s",
    )
    vault.create_database_role(name, default_ttl=300, max_ttl=600)
    token_file = pod.root / "sa-token"
    token_file.write_text(
        kube.issue_token(namespace, name, audiences=["vault"], lifetime=datetime.timedelta(hours=1))
    )
    identity = AppIdentity(
        role=name, namespace=namespace, service_account=name, token_file=token_file
    )
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[db_and_kv_templates(pod, name)[0]],
        lifecycle=LifecycleConfig(revoke_grace_seconds=0.0, init_timeout_seconds=20.0),
    )
    config = replace(
        config,
        auth=replace(
            config.auth, method="kubernetes", mount_path=f"auth/{mount}", exit_on_error=True
        ),
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        username, password = _wait_for_working_database_credentials(sidecar, pod, postgres)
        tokens = len(vault.tokens_of_role(name))
        assert tokens == 1, f"tokens: {tokens}"
        # The projected token is rotated to one for a ServiceAccount the role does not allow.
        token_file.write_text(
            kube.issue_token(
                namespace, "intruder", audiences=["vault"], lifetime=datetime.timedelta(hours=1)
            )
        )
        assert sidecar.wait(40) == 1, sidecar.logs()
        exited = time.monotonic()
        # Counts only: a failure message must not show an accessor or a lease id.
        tokens_left = len(vault.tokens_of_role(name))
        assert tokens_left == 0, f"the old token was left alive (tokens left: {tokens_left})"
        # Vault revokes a revoked token's leases in the background, within a fraction of a second.
        wait_for(
            lambda: len(vault.leases(f"database/creds/{name}")) == 0,
            timeout=3,
            message="the lease revoked",
        )
        assert sidecar.events("revoke")
        postgres.assert_refuses(username, password)
        # The checks above ran while the old token still had time to live.
        assert time.monotonic() - exited < 5.0
        assert "Traceback" not in sidecar.logs()


def jwt_for_another_service_account(kube: FakeKubeApiServer, identity: AppIdentity) -> str:
    """Signed by the trusted key, but its subject is not the role's bound subject."""
    return kube.issue_token(
        identity.namespace, "intruder", audiences=["vault"], lifetime=datetime.timedelta(hours=1)
    )


def jwt_with_a_foreign_signature(kube: FakeKubeApiServer, identity: AppIdentity) -> str:
    """The role's own claims, under the signature of another token: not a valid JWT."""
    lifetime = datetime.timedelta(hours=1)
    claims = kube.issue_token(
        identity.namespace, identity.service_account, audiences=["vault"], lifetime=lifetime
    )
    other = kube.issue_token(identity.namespace, "other", audiences=["vault"], lifetime=lifetime)
    return claims.rpartition(".")[0] + "." + other.rpartition(".")[2]


def _assert_no_token_or_lease_left(
    vault: VaultServer, role: str, name: str, *, timeout: float
) -> None:
    """No token of ``role`` and, within ``timeout``, no lease of database/creds/<name> left."""
    # Counts only: a failure message must not show an accessor or a lease id.
    tokens_left = len(vault.tokens_of_role(role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"
    # Vault revokes a revoked token's leases in the background, within a fraction of a second.
    wait_for(
        lambda: len(vault.leases(f"database/creds/{name}")) == 0,
        timeout=timeout,
        message="the leases revoked",
    )


def _wait_for_working_database_credentials(
    sidecar: AgentProcess, pod: PodDirs, postgres: PostgresServer
) -> tuple[str, str]:
    """The sidecar's first render is on disk and the app can log in with the database
    credentials it wrote; returns them (username, password) for the checks after revocation."""
    wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
    username, _, password = pod.file("db").read_text().partition(":")
    postgres.assert_accepts(username, password)
    return username, password


def _short_lived_sidecar_config(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs, name: str
) -> tuple[AppIdentity, AgentConfig]:
    """A sidecar with auth.exit_on_error, one database template, and a token that lives 24 s at
    most: the re-login comes at about two thirds of that, and the old token and its lease would
    live on for several seconds after it, past the checks of the tests that use this."""
    vault.create_database_role(name, default_ttl=300, max_ttl=600)
    identity = make_identity(
        vault, kube, pod.root, policy=policy(name), token_ttl="10s", token_max_ttl="24s"
    )
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[db_and_kv_templates(pod, name)[0]],
        lifecycle=LifecycleConfig(revoke_grace_seconds=0.0, init_timeout_seconds=20.0),
    )
    return identity, replace(config, auth=replace(config.auth, exit_on_error=True))


def _login_error_statuses(agent: AgentProcess) -> list[int | None]:
    """The HTTP status of every failed login the agent audited (None: no answer was read)."""
    return [
        event.get("status") for event in agent.events("error") if event.get("operation") == "login"
    ]


def _assert_revoked_before_expiry(
    agent: AgentProcess, vault: VaultServer, *, identity: AppIdentity, name: str, started: float
) -> None:
    """After a fatal exit: no token of the role and no lease of database/creds/<name> left, and
    that while the first token (issued after ``started``, max TTL 24 s) could still have lived:
    revoked, not expired."""
    _assert_no_token_or_lease_left(vault, identity.role, name, timeout=3)
    assert len(agent.events("revoke")) >= 1
    assert time.monotonic() < started + 24.0
    assert "Traceback" not in agent.logs()


@pytest.mark.parametrize(
    "refused_jwt",
    [
        pytest.param(jwt_for_another_service_account, id="a JWT for another ServiceAccount"),
        pytest.param(jwt_with_a_foreign_signature, id="a JWT whose signature does not verify"),
    ],
)
def test_a_relogin_refused_with_400_and_exit_on_error_revokes_what_the_agent_holds_then_exits_one(
    database: VaultServer,
    postgres: PostgresServer,
    kube: FakeKubeApiServer,
    pod: PodDirs,
    refused_jwt: Callable[[FakeKubeApiServer, AppIdentity], str],
) -> None:
    """auth.exit_on_error with jwt auth: OpenBao refuses a JWT it does not accept with a 400, not
    a 403. At startup any refused login is fatal; a refused re-login (before the token's max
    TTL) is too: the agent revokes the lease it holds and the token that issued it, then exits
    1, instead of retrying a login that cannot succeed until the token and the lease die."""
    vault = database
    name = unique_name("exit-on-400")
    identity, config = _short_lived_sidecar_config(vault, kube, pod, name)
    started = time.monotonic()  # the first token cannot outlive started + 24 s
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        username, password = _wait_for_working_database_credentials(sidecar, pod, postgres)
        tokens = len(vault.tokens_of_role(identity.role))
        assert tokens == 1, f"tokens: {tokens}"
        # The projected token file now holds a JWT the role does not accept.
        identity.token_file.write_text(refused_jwt(kube, identity))
        assert sidecar.wait(40) == 1, sidecar.logs()
        assert _login_error_statuses(sidecar) == [400]
        _assert_revoked_before_expiry(sidecar, vault, identity=identity, name=name, started=started)
        postgres.assert_refuses(username, password)


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        pytest.param("status", 503, id="503"),
        pytest.param("status", 429, id="429"),
        pytest.param("drop", 0, id="no answer"),
    ],
)
def test_a_relogin_that_fails_transiently_with_exit_on_error_is_retried(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs, fault: str, status: int
) -> None:
    """auth.exit_on_error makes only a refused re-login fatal: one that gets a 503, a 429 or no
    answer at all may succeed later, so the agent backs off and tries again, and logs in once
    Vault answers."""
    name = unique_name("relogin-retry")
    identity = make_identity(
        vault,
        kube,
        pod.root,
        policy=f'path "secret/data/{name}" {{ capabilities = ["read"] }}',
        token_ttl="3s",
        token_max_ttl="6s",
    )
    vault.put_kv("secret", name, {"value": "v1"})
    with FaultProxy(vault.url) as proxy:
        config = agent_config(
            vault_url=proxy.url,
            identity=identity,
            pod=pod,
            templates=[template(pod, "kv", f"secret/{name}")],
        )
        config = replace(config, auth=replace(config.auth, exit_on_error=True))
        with AgentProcess("sidecar", config, pod.root) as sidecar:
            wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
            logins_before = proxy.count("/login")
            if fault == "drop":
                proxy.drops.add("/login")
            else:
                proxy.statuses["/login"] = status
                proxy.retry_after = "1"
            # Two failed re-logins: the agent lived through the first one.
            wait_for(
                lambda: proxy.count("/login") >= logins_before + 2,
                timeout=30,
                message="two failed re-logins",
            )
            assert sidecar.running(), sidecar.logs()
            proxy.drops.clear()
            proxy.statuses.clear()
            wait_for(lambda: len(sidecar.events("login")) >= 2, timeout=20, message="re-login")
            assert sidecar.running(), sidecar.logs()
            sidecar.terminate()
            assert sidecar.wait(30) == 0
    tokens_left = len(vault.tokens_of_role(identity.role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"


def replace_atomically(path: Path, text: str) -> None:
    """As the kubelet rotates a projected token: a new file renamed over the old one, so the
    agent never reads a half-written token."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    staged.replace(path)


@pytest.mark.parametrize("mode", ["init", "sidecar"])
@pytest.mark.parametrize(
    ("exit_on_error", "unreadable"),
    [
        pytest.param(True, False, id="exit_on_error-refused"),
        pytest.param(True, True, id="exit_on_error-unreadable"),
        pytest.param(False, False, id="retry-refused"),
    ],
)
def test_a_relogin_refused_during_the_first_render(
    database: VaultServer,
    postgres: PostgresServer,
    kube: FakeKubeApiServer,
    pod: PodDirs,
    *,
    mode: str,
    exit_on_error: bool,
    unreadable: bool,
) -> None:
    """The first render (init mode; a sidecar without a handoff): the token is revoked behind
    the agent's back after the database credential is issued and before the KV read, and the
    token file now holds a JWT OpenBao refuses with a 400 (or is gone). With auth.exit_on_error
    the re-login is fatal, as in the running loop: the agent revokes what it holds and exits 1
    at once (a token file it cannot read: at the second try), not after retrying until the init
    timeout. Without it, the re-login is retried as before, and succeeds once the token file
    holds a good JWT again."""
    vault = database
    name = unique_name("first-render")
    vault.create_database_role(name, default_ttl=300, max_ttl=600)
    vault.put_kv("secret", name, {"value": "v1"})
    identity = make_identity(vault, kube, pod.root, policy=policy(name))
    kv_read = f"/secret/data/{name}"
    with FaultProxy(vault.url) as proxy:
        # Held back long enough for the test to revoke the token the read carries.
        proxy.delays[kv_read] = 5.0
        config = agent_config(
            vault_url=proxy.url,
            identity=identity,
            pod=pod,
            templates=db_and_kv_templates(pod, name),
            lifecycle=LifecycleConfig(revoke_grace_seconds=0.0, init_timeout_seconds=60.0),
        )
        config = replace(config, auth=replace(config.auth, exit_on_error=exit_on_error))
        with AgentProcess(mode, config, pod.root) as agent:
            wait_for(
                lambda: any(kv_read in path for path in proxy.in_flight),
                timeout=20,
                message="the KV read held back",
            )
            username, _, password = pod.file("db").read_text().partition(":")
            postgres.assert_accepts(username, password)
            (accessor,) = vault.tokens_of_role(identity.role)
            vault.revoke_accessor(accessor)
            good_jwt = identity.token_file.read_text()
            if unreadable:
                identity.token_file.unlink()
            else:
                replace_atomically(
                    identity.token_file, jwt_for_another_service_account(kube, identity)
                )
            proxy.delays.clear()
            swapped = time.monotonic()

            if exit_on_error:
                # Before, the refused re-login was retried until the init timeout (60 s).
                assert agent.wait(30) == 1, agent.logs()
                assert time.monotonic() - swapped < 30.0
                if unreadable:
                    # The first failed read was retried; the second was fatal.
                    statuses = _login_error_statuses(agent)
                    assert len(statuses) >= 2, len(statuses)
                    assert set(statuses) == {None}, statuses
                else:
                    assert _login_error_statuses(agent) == [400]
            else:
                wait_for(
                    lambda: 400 in _login_error_statuses(agent),
                    timeout=30,
                    message="a refused login",
                )
                assert agent.running(), agent.logs()
                replace_atomically(identity.token_file, good_jwt)
                if mode == "init":
                    assert agent.wait(30) == 0, agent.logs()
                else:
                    wait_for(lambda: agent.events("ready"), timeout=30, message="first render")
                    # The loop issues the database credential the lost token took with it anew
                    # (stopping in the middle of that would leave a lease Vault revokes later).
                    wait_for(
                        lambda: pod.file("db").read_text().partition(":")[0] != username,
                        timeout=20,
                        message="a new database credential",
                    )
                    new_username, _, new_password = pod.file("db").read_text().partition(":")
                    postgres.assert_accepts(new_username, new_password)
                    agent.terminate()
                    assert agent.wait(30) == 0, agent.logs()
                kv_rendered = pod.file("kv").read_text() == "v1"
                assert kv_rendered
            assert "Traceback" not in agent.logs()
    if not exit_on_error and mode == "init":
        # The init handed its token over to a sidecar that will not come.
        for accessor in vault.tokens_of_role(identity.role):
            vault.revoke_accessor(accessor)
    if exit_on_error or mode == "sidecar":
        _assert_no_token_or_lease_left(vault, identity.role, name, timeout=5)
    postgres.assert_refuses(username, password)


def test_init_renders_again_what_a_token_lost_mid_render_took_with_it(
    database: VaultServer, postgres: PostgresServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """Init mode: the database credential is on disk when Vault stops accepting the token (it
    was revoked behind the agent's back, and with it the credential). The agent logs in again
    and must render that file again too, or init would exit 0 and hand the app a dead
    credential."""
    vault = database
    name = unique_name("lost-mid-render")
    vault.create_database_role(name, default_ttl=300, max_ttl=600)
    vault.put_kv("secret", name, {"value": "v1"})
    identity = make_identity(vault, kube, pod.root, policy=policy(name))
    kv_read = f"/secret/data/{name}"
    with FaultProxy(vault.url) as proxy:
        proxy.delays[kv_read] = 5.0  # long enough to revoke the token the read carries
        config = agent_config(
            vault_url=proxy.url,
            identity=identity,
            pod=pod,
            templates=db_and_kv_templates(pod, name),
            lifecycle=LifecycleConfig(revoke_grace_seconds=0.0, init_timeout_seconds=60.0),
        )
        with AgentProcess("init", config, pod.root) as agent:
            wait_for(
                lambda: any(kv_read in path for path in proxy.in_flight),
                timeout=20,
                message="the KV read held back",
            )
            first_user, _, first_password = pod.file("db").read_text().partition(":")
            (accessor,) = vault.tokens_of_role(identity.role)
            vault.revoke_accessor(accessor)
            proxy.delays.clear()
            assert agent.wait(30) == 0, agent.logs()
            assert "Traceback" not in agent.logs()
    user, _, password = pod.file("db").read_text().partition(":")
    renewed = user != first_user
    assert renewed, "the database file still holds the credential revoked with the token"
    postgres.assert_accepts(user, password)
    postgres.assert_refuses(first_user, first_password)
    kv_rendered = pod.file("kv").read_text() == "v1"
    assert kv_rendered
    # The init handed its token over to a sidecar that will not come.
    for left in vault.tokens_of_role(identity.role):
        vault.revoke_accessor(left)


def test_a_token_file_still_unreadable_at_the_relogins_retry_with_exit_on_error_is_fatal(
    database: VaultServer, postgres: PostgresServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """auth.exit_on_error: the ServiceAccount token file is gone when the re-login comes (before
    the token's max TTL). The first failed read is retried (it may race with the kubelet's
    rotation); still unreadable at the retry, the agent revokes the lease it holds and its token,
    then exits 1, instead of retrying until the token and the lease die under the app."""
    vault = database
    name = unique_name("no-sa-token")
    identity, config = _short_lived_sidecar_config(vault, kube, pod, name)
    started = time.monotonic()  # the first token cannot outlive started + 24 s
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        username, password = _wait_for_working_database_credentials(sidecar, pod, postgres)
        identity.token_file.unlink()
        # Before, the unreadable file was retried with the login backoff until the token died.
        assert sidecar.wait(40) == 1, sidecar.logs()
        statuses = _login_error_statuses(sidecar)
        assert len(statuses) >= 2, len(statuses)
        assert set(statuses) == {None}, statuses
        _assert_revoked_before_expiry(sidecar, vault, identity=identity, name=name, started=started)
        postgres.assert_refuses(username, password)


def test_a_token_file_unreadable_once_at_a_relogin_with_exit_on_error_is_retried(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """auth.exit_on_error: a re-login that cannot read the token file once (as when a read races
    with the kubelet's rotation of a projected token) is retried, and the agent lives on once
    the file is back."""
    name = unique_name("sa-token-blip")
    identity = make_identity(
        vault,
        kube,
        pod.root,
        policy=f'path "secret/data/{name}" {{ capabilities = ["read"] }}',
        token_ttl="5s",
        token_max_ttl="12s",
    )
    vault.put_kv("secret", name, {"value": "v1"})
    # The retry comes 2.4 to 3 s after the failed read: time for the test to put the file back.
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[template(pod, "kv", f"secret/{name}")],
        min_backoff=3.0,
    )
    config = replace(config, auth=replace(config.auth, exit_on_error=True))
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
        jwt = identity.token_file.read_text()
        identity.token_file.unlink()
        wait_for(
            lambda: any(
                event.get("operation") == "login" and event.get("status") is None
                for event in sidecar.events("error")
            ),
            timeout=20,
            message="a login that cannot read the token file",
        )
        replace_atomically(identity.token_file, jwt)
        wait_for(lambda: len(sidecar.events("login")) >= 2, timeout=20, message="re-login")
        assert sidecar.running(), sidecar.logs()
        sidecar.terminate()
        assert sidecar.wait(30) == 0, sidecar.logs()
    tokens_left = len(vault.tokens_of_role(identity.role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"


def test_signals_during_a_failed_inits_revocation_do_not_abort_it(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """An init that gives up revokes its token; a second signal (Ctrl-C pressed twice) while
    that revocation is on the wire must not abandon it."""
    name = unique_name("resignal")
    identity = make_identity(
        vault, kube, pod.root, policy='path "nothing/*" { capabilities = ["read"] }'
    )
    with FaultProxy(vault.url) as proxy:
        proxy.delays["auth/token/revoke-self"] = 2.0
        config = agent_config(
            vault_url=proxy.url,
            identity=identity,
            pod=pod,
            templates=[template(pod, "app", f"secret/{name}")],
            lifecycle=LifecycleConfig(init_timeout_seconds=2.0, revoke_grace_seconds=0.0),
            max_backoff=1.0,
        )
        with AgentProcess("init", config, pod.root) as init:
            wait_for(
                lambda: any("revoke-self" in path for path in list(proxy.in_flight)),
                timeout=20,
                message="the revocation on the wire",
            )
            init.terminate()
            time.sleep(0.3)
            init.terminate()
            assert init.wait(20) == 1
    assert init.events("revoke"), init.logs()
    assert "Traceback" not in init.logs()
    tokens_left = len(vault.tokens_of_role(identity.role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"


def test_vault_restarted_from_file_storage(
    kube: FakeKubeApiServer, postgres: PostgresServer, pod: PodDirs, tmp_path: Path
) -> None:
    with VaultServer.persistent(tmp_path / "bao") as vault:
        vault.enable_jwt_auth(public_key_pem=kube.public_key_pem)
        vault.enable_kv("secret", version=2)
        name = unique_name("restart")
        vault.enable_database(postgres, roles={name: (4, 12)})
        vault.put_kv("secret", name, {"value": "v1"})
        identity = make_identity(vault, kube, pod.root, policy=policy(name), token_ttl="6s")
        config = agent_config(
            vault_url=vault.url,
            identity=identity,
            pod=pod,
            templates=db_and_kv_templates(pod, name),
            lifecycle=LifecycleConfig(
                static_secret_render_interval_seconds=2.0, revoke_grace_seconds=0.0
            ),
        )
        with AgentProcess("sidecar", config, pod.root) as sidecar:
            wait_for(lambda: sidecar.events("ready"), timeout=20, message="first render")
            kv = pod.file("kv").read_text()
            vault.stop()
            time.sleep(2.0)
            vault.start(unseal=False)
            time.sleep(2.0)  # sealed: 503s
            assert changed_files(pod, {"kv": kv}) == []
            vault.unseal()
            restarted = time.monotonic()
            renewals = len(sidecar.events("renew"))
            wait_for(
                lambda: len(sidecar.events("renew")) > renewals,
                timeout=20,
                message="renewals after the restart",
            )
            wait_for(
                lambda: postgres.can_log_in(*pod.file("db").read_text().split(":", 1)),
                timeout=20,
                message="working credentials after the restart",
            )
            assert time.monotonic() - restarted < 20
            sidecar.terminate()
            assert sidecar.wait(20) == 0
        assert_nothing_left(vault, f"database/creds/{name}", identity.role)
