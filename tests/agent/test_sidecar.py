"""Sidecar mode end to end: handoff, rotation, refresh, notifications, shutdown. Real OpenBao
and PostgreSQL; the agent runs as ``python -m agent`` subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import LifecycleConfig, SignalTarget, TemplateConfig
from tests.agent.conftest import make_identity
from tests.agent.harness import AgentProcess, PodDirs, agent_config, run_agent, template, wait_for
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer, unique_name

pytestmark = pytest.mark.slow

FRACTION = 1.0 / 3.0


def db_policy(name: str) -> str:
    return f'path "database/creds/{name}" {{ capabilities = ["read"] }}\n'


def kv_policy(name: str) -> str:
    return f'path "secret/data/{name}" {{ capabilities = ["read"] }}\n'


def db_template(pod: PodDirs, name: str) -> TemplateConfig:
    return template(
        pod,
        "db",
        f"database/creds/{name}",
        f'{{{{ with secret "database/creds/{name}" }}}}'
        "{{ .Data.username }}:{{ .Data.password }}{{ end }}",
        perms=0o600,
    )


def read_credentials(path: Path) -> tuple[str, str]:
    username, _, password = path.read_text().partition(":")
    return username, password


def test_the_sidecar_adopts_the_init_credentials_so_the_pod_gets_one_set(
    database: VaultServer, postgres: PostgresServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    vault = database
    name = unique_name("one-set")
    vault.create_database_role(name, default_ttl=120, max_ttl=600)
    identity = make_identity(vault, kube, pod.root, policy=db_policy(name))
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[db_template(pod, name)],
        readiness_file=str(pod.state / "ready"),
    )
    init = run_agent("init", config, pod.root)
    assert init.process is not None
    assert init.process.returncode == 0, init.logs()
    credentials = read_credentials(pod.file("db"))
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("ready"), timeout=15, message="sidecar ready")
        assert sidecar.events("adopt")
        assert not (pod.state / "handoff.json").exists()
        assert not sidecar.events("login")
        assert not sidecar.events("fetch")
        # Booleans and counts only: pytest would print credentials, lease ids and accessors.
        same = read_credentials(pod.file("db")) == credentials
        assert same, "the sidecar replaced the credentials it adopted"
        leases = len(vault.leases(f"database/creds/{name}"))
        assert leases == 1, f"leases: {leases}"
        postgres.assert_accepts(*credentials)
        sidecar.terminate()
        assert sidecar.wait(20) == 0


def test_database_credentials_rotate_with_a_third_of_their_lifetime_left(
    database: VaultServer, postgres: PostgresServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """ttl 4s, max ttl 12s: the agent renews, learns the max TTL, and issues new credentials
    while the old ones have at least 4s left. The app can log in with what is on disk at every
    moment, and the old credentials still work right after the rotation."""
    vault = database
    name = unique_name("rotate")
    max_ttl = 12
    vault.create_database_role(name, default_ttl=4, max_ttl=max_ttl)
    identity = make_identity(vault, kube, pod.root, policy=db_policy(name))
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[db_template(pod, name)],
        readiness_file=str(pod.state / "ready"),
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: pod.file("db").exists(), timeout=15, message="first render")
        seen = [read_credentials(pod.file("db"))]
        deadline = time.monotonic() + 2.6 * max_ttl
        while time.monotonic() < deadline and len(seen) < 3:
            current = read_credentials(pod.file("db"))
            if current != seen[-1]:
                # Right after a rotation the old credentials must still work.
                postgres.assert_accepts(*seen[-1], "old credentials died at rotation")
                seen.append(current)
            postgres.assert_accepts(*current, "credentials on disk do not work")
            time.sleep(0.2)
        rotations = sidecar.events("rotate")
        credentials_seen = len(seen)
        assert credentials_seen >= 3, sidecar.logs()
        assert len(rotations) >= 2
        for rotation in rotations:
            # Near the max TTL, far above the 4s a lease never renewed would live: Vault counts
            # whole seconds, and the agent's clock starts when the answer arrives, which on a
            # loaded machine was 10.3 s after a 12 s issue (the 1.5 s margin failed there).
            assert rotation["old_lifetime"] >= max_ttl - 2.5
            assert rotation["old_seconds_left"] >= FRACTION * max_ttl - 0.5
        renewals = [line for line in sidecar.events("renew") if line["kind"] == "lease"]
        assert renewals, "renewable leases are renewed before they are replaced"
        sidecar.terminate()
        assert sidecar.wait(20) == 0
    output = sidecar.output()
    for number, (username, password) in enumerate(seen):
        # Booleans: a failing ``x not in output`` would print the password and the output.
        leaked_password = password in output
        leaked_username = username in output
        assert not leaked_password, f"password {number} appears in the agent's output"
        assert not leaked_username, f"username {number} appears in the agent's output"


def test_static_secrets_are_reread_and_rendered_only_when_they_change(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("static")
    vault.put_kv("secret", name, {"greeting": "hello"})
    identity = make_identity(vault, kube, pod.root, policy=kv_policy(name))
    counter = pod.root / "command-runs"
    script = pod.root / "on-change.sh"
    script.write_text(f'echo run >> "{counter}"\n')
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[
            template(
                pod,
                "app",
                f"secret/{name}",
                f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.greeting }}}}{{{{ end }}}}',
                command=f"/bin/sh {script}",
            )
        ],
        lifecycle=LifecycleConfig(
            static_secret_render_interval_seconds=1.0, revoke_grace_seconds=0.0
        ),
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(counter.exists, timeout=15, message="the command after the first write")
        assert pod.file("app").read_text() == "hello"
        time.sleep(3.5)  # three refresh intervals without a change
        assert len(sidecar.events("write")) == 1
        assert len(sidecar.events("fetch")) >= 3
        assert counter.read_text().count("run") == 1
        vault.put_kv("secret", name, {"greeting": "bonjour"})
        wait_for(
            lambda: pod.file("app").read_text() == "bonjour", timeout=5, message="the new value"
        )
        wait_for(lambda: counter.read_text().count("run") == 2, timeout=5, message="command")
        commands = wait_for(
            lambda: len(sidecar.events("command")) == 2 and sidecar.events("command"),
            timeout=5,
            message="the command's audit line",
        )
        assert [line["result"] for line in commands] == ["ok", "ok"]
        sidecar.terminate()
        assert sidecar.wait(20) == 0


APP_SCRIPT = """
import signal, sys, time
with open("/proc/self/comm", "w") as comm:
    comm.write("vsi-test-app")
def on_hup(signum, frame):
    with open(sys.argv[1], "a") as out:
        out.write("hup\\n")
signal.signal(signal.SIGHUP, on_hup)
open(sys.argv[1], "a").close()
while True:
    time.sleep(0.1)
"""


def test_a_changed_file_sends_the_signal_to_the_app_process(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("signal")
    vault.put_kv("secret", name, {"v": "1"})
    identity = make_identity(vault, kube, pod.root, policy=kv_policy(name))
    received = pod.root / "received"
    app = subprocess.Popen([sys.executable, "-c", APP_SCRIPT, str(received)])
    try:
        wait_for(received.exists, timeout=10, message="app start")
        config = agent_config(
            vault_url=vault.url,
            identity=identity,
            pod=pod,
            templates=[
                template(
                    pod,
                    "app",
                    f"secret/{name}",
                    f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.v }}}}{{{{ end }}}}',
                    signal=SignalTarget(signal="SIGHUP", process_name="vsi-test-app"),
                )
            ],
            lifecycle=LifecycleConfig(
                static_secret_render_interval_seconds=1.0, revoke_grace_seconds=0.0
            ),
        )
        with AgentProcess("sidecar", config, pod.root) as sidecar:
            wait_for(lambda: received.read_text().count("hup") == 1, timeout=15, message="HUP 1")
            vault.put_kv("secret", name, {"v": "2"})
            wait_for(lambda: received.read_text().count("hup") == 2, timeout=10, message="HUP 2")
            assert [line["processes"] for line in sidecar.events("signal")] == [1, 1]
            assert app.poll() is None
            sidecar.terminate()
            assert sidecar.wait(20) == 0
    finally:
        app.kill()
        app.wait()


def test_sigterm_keeps_files_for_the_grace_period_then_revokes_everything(
    database: VaultServer, postgres: PostgresServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    vault = database
    name = unique_name("shutdown")
    vault.create_database_role(name, default_ttl=60, max_ttl=600)
    identity = make_identity(vault, kube, pod.root, policy=db_policy(name))
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[db_template(pod, name)],
        lifecycle=LifecycleConfig(revoke_grace_seconds=2.0),
    )
    assert run_agent("init", config, pod.root).process.returncode == 0  # type: ignore[union-attr]
    credentials = read_credentials(pod.file("db"))
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: sidecar.events("adopt"), timeout=15, message="adoption")
        # Counts only: pytest would print the accessors and lease ids.
        tokens = len(vault.tokens_of_role(identity.role))
        assert tokens == 1, f"tokens: {tokens}"
        sidecar.terminate()
        time.sleep(1.0)
        # Within the grace period: the files and the credentials still work.
        assert sidecar.running()
        postgres.assert_accepts(*credentials)
        leases = len(vault.leases(f"database/creds/{name}"))
        assert leases == 1, f"leases: {leases}"
        assert sidecar.wait(20) == 0
    assert pod.file("db").exists()
    tokens_left = len(vault.tokens_of_role(identity.role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"
    # Vault revokes a revoked token's leases in the background, within a fraction of a second.
    wait_for(lambda: len(vault.leases(f"database/creds/{name}")) == 0, timeout=5, message="leases")
    postgres.assert_refuses(*credentials)
    assert sidecar.events("revoke")


def test_without_a_handoff_the_sidecar_logs_in_renders_and_becomes_ready(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("native")
    vault.put_kv("secret", name, {"v": "native"})
    identity = make_identity(vault, kube, pod.root, policy=kv_policy(name))
    ready = pod.state / "ready"
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[template(pod, "app", f"secret/{name}", default_format="env")],
        readiness_file=str(ready),
    )
    probe_before = run_agent("ready", config, pod.root)
    assert probe_before.process is not None
    assert probe_before.process.returncode == 1
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(ready.exists, timeout=15, message="readiness file")
        assert pod.file("app").read_text() == "export v='native'\n"
        probe = run_agent("ready", config, pod.root)
        assert probe.process is not None
        assert probe.process.returncode == 0
        assert sidecar.events("login")
        sidecar.terminate()
        assert sidecar.wait(20) == 0


def test_a_failed_first_render_still_creates_the_readiness_file_once_it_renders(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """With exit_on_retry_failure off the agent keeps going after a template fails at first (a
    missing key); when new data renders it, the native sidecar's startup probe passes."""
    name = unique_name("late")
    vault.put_kv("secret", name, {"a": "1"})
    identity = make_identity(vault, kube, pod.root, policy=kv_policy(name))
    ready = pod.state / "ready"
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[
            template(
                pod,
                "app",
                f"secret/{name}",
                f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.b }}}}{{{{ end }}}}',
                error_on_missing_key=True,
            )
        ],
        lifecycle=LifecycleConfig(
            static_secret_render_interval_seconds=1.0,
            revoke_grace_seconds=0.0,
            exit_on_retry_failure=False,
        ),
        readiness_file=str(ready),
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(
            lambda: [line for line in sidecar.events("error") if line.get("template") == "app"],
            timeout=15,
            message="the failed first render",
        )
        assert not ready.exists()
        vault.put_kv("secret", name, {"a": "1", "b": "2"})
        wait_for(ready.exists, timeout=10, message="the readiness file after the late render")
        assert pod.file("app").read_text() == "2"
        assert len(sidecar.events("ready")) == 1
        sidecar.terminate()
        assert sidecar.wait(20) == 0


def test_credentials_are_issued_anew_before_the_token_that_issued_them_dies(
    database: VaultServer, postgres: PostgresServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    """Leases die with their token (consul-template#1433). Token ttl 5s, max ttl 12s; database
    credentials that could live 10 minutes: the agent logs in again before the token's max TTL
    and issues the credentials anew while the old ones still have a third of their life. (The
    agent schedules nothing closer than a second, so shorter TTLs leave a loaded machine no
    slack.)"""
    vault = database
    name = unique_name("token-bound")
    vault.create_database_role(name, default_ttl=300, max_ttl=600)
    identity = make_identity(
        vault, kube, pod.root, policy=db_policy(name), token_ttl="5s", token_max_ttl="12s"
    )
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[db_template(pod, name)],
    )
    with AgentProcess("sidecar", config, pod.root) as sidecar:
        wait_for(lambda: pod.file("db").exists(), timeout=15, message="first render")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            postgres.assert_accepts(*read_credentials(pod.file("db")))
            time.sleep(0.25)
        logins = sidecar.events("login")
        rotations = sidecar.events("rotate")
        assert len(logins) >= 2, sidecar.logs()
        assert len(rotations) >= 1
        for rotation in rotations:
            assert rotation["old_lifetime"] <= 12.5  # bounded by the token, not the lease
            assert rotation["old_seconds_left"] >= FRACTION * rotation["old_lifetime"] - 0.5
        capped = [line for line in sidecar.events("renew") if line.get("capped")]
        assert capped, "the token's max TTL is learned from a capped renewal"
        sidecar.terminate()
        assert sidecar.wait(20) == 0
    tokens_left = len(vault.tokens_of_role(identity.role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"
