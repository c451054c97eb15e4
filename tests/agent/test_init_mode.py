"""Init mode end to end: ``python -m agent --mode init`` against real OpenBao and PostgreSQL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from agent.config import LifecycleConfig, TemplateConfig, replace
from tests.agent.conftest import make_identity
from tests.agent.harness import (
    AppIdentity,
    PodDirs,
    agent_config,
    parse_map_file,
    run_agent,
    template,
)
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer, unique_name

pytestmark = pytest.mark.slow

POLICY = """
path "secret/data/{name}" {{ capabilities = ["read"] }}
path "kv1/{name}" {{ capabilities = ["read"] }}
path "database/creds/{name}" {{ capabilities = ["read"] }}
path "pki/issue/app" {{ capabilities = ["update"] }}
"""


def test_init_renders_kv_database_and_pki_then_exits_zero(
    database: VaultServer,
    postgres: PostgresServer,
    kube: FakeKubeApiServer,
    pod: PodDirs,
) -> None:
    vault = database
    name = unique_name("orders")
    vault.put_kv("secret", name, {"password": "kv2-pass", "port": 5432})
    vault.put_kv("kv1", name, {"api_key": "kv1-key"}, version=1)
    vault.create_database_role(name, default_ttl=60, max_ttl=300)
    identity = make_identity(vault, kube, pod.root, policy=POLICY.format(name=name))
    templates = [
        # The v2 path without /data/ and the one with it are the same secret.
        template(pod, "kv2-short", f"secret/{name}"),
        template(
            pod,
            "kv2-long",
            f"secret/data/{name}",
            f'{{{{ with secret "secret/data/{name}" }}}}{{{{ .Data.data.password }}}}{{{{ end }}}}',
        ),
        template(pod, "kv1", f"kv1/{name}", default_format="json"),
        template(
            pod,
            "db",
            f"database/creds/{name}",
            f'{{{{ with secret "database/creds/{name}" }}}}'
            "{{ .Data.username }}:{{ .Data.password }}{{ end }}",
            perms=0o600,
        ),
        template(
            pod,
            "cert",
            "pki/issue/app",
            '{{ with pkiCert "pki/issue/app" "common_name=orders.example.test" "ttl=10m" }}'
            "{{ .Data.Cert }}{{ .Data.Key }}{{ end }}",
        ),
    ]
    config = agent_config(vault_url=vault.url, identity=identity, pod=pod, templates=templates)
    init = run_agent("init", config, pod.root)

    assert init.process is not None
    assert init.process.returncode == 0, init.logs()
    assert "kv2-pass" in parse_map_file(pod.file("kv2-short"))["data"]
    assert pod.file("kv2-long").read_text() == "kv2-pass"
    assert json.loads(pod.file("kv1").read_text()) == {"api_key": "kv1-key"}
    username, password = pod.file("db").read_text().split(":")
    postgres.assert_accepts(username, password)
    assert stat.S_IMODE(pod.file("db").stat().st_mode) == 0o600
    assert stat.S_IMODE(pod.file("kv1").stat().st_mode) == 0o640
    # Booleans: a failing ``x in text`` would print the file, its private key with it.
    cert = pod.file("cert").read_text()
    has_certificate, has_key = "BEGIN CERTIFICATE" in cert, "PRIVATE KEY" in cert
    assert has_certificate, "no certificate in the cert file"
    assert has_key, "no private key in the cert file"

    handoff = pod.state / "handoff.json"
    assert stat.S_IMODE(handoff.stat().st_mode) == 0o600
    # Nothing the agent printed holds a secret value or the token.
    token = json.loads(handoff.read_text())["token"]["token"]
    output = init.output()
    secrets = {
        "the KV v2 value": "kv2-pass",
        "the KV v1 value": "kv1-key",
        "the database username": username,
        "the database password": password,
        "the token": token,
    }
    for what, secret in secrets.items():
        # A boolean: a failing ``secret not in output`` would print the secret and the output.
        leaked = secret in output
        assert not leaked, f"{what} appears in the agent's output"
    events = [line["event"] for line in init.audit()]
    assert events[0] == "start"
    assert "login" in events
    assert events[-1] == "handoff"
    assert all(line["namespace"] == identity.namespace for line in init.audit())
    assert all(line["pod"] == "test-pod" for line in init.audit())


def test_init_fetches_each_distinct_secret_once(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("shared")
    vault.put_kv("secret", name, {"a": "1", "b": "2"})
    identity = make_identity(vault, kube, pod.root, policy=POLICY.format(name=name))
    templates = [
        template(
            pod,
            f"t{index}",
            f"secret/{name}",
            f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.a }}}}{{{{ end }}}}',
        )
        for index in range(3)
    ]
    config = agent_config(vault_url=vault.url, identity=identity, pod=pod, templates=templates)
    init = run_agent("init", config, pod.root)
    assert init.process is not None
    assert init.process.returncode == 0, init.logs()
    assert [pod.file(f"t{index}").read_text() for index in range(3)] == ["1", "1", "1"]
    assert len(init.events("fetch")) == 1


def test_init_leaves_no_token_on_disk_when_no_sidecar_follows(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("job")
    vault.put_kv("secret", name, {"a": "1"})
    identity = make_identity(vault, kube, pod.root, policy=POLICY.format(name=name))
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[template(pod, "kv", f"secret/{name}")],
        handoff=False,
    )
    init = run_agent("init", config, pod.root)
    assert init.process is not None
    assert init.process.returncode == 0, init.logs()
    assert "a" in parse_map_file(pod.file("kv"))["data"]
    assert not (pod.state / "handoff.json").exists()
    assert init.events("handoff") == []


def test_init_gives_up_with_a_clear_message_when_a_secret_is_denied(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("denied")
    vault.put_kv("secret", name, {"a": "1"})
    identity = make_identity(
        vault, kube, pod.root, policy='path "nothing/*" { capabilities = ["read"] }'
    )
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[template(pod, "app", f"secret/{name}")],
        lifecycle=LifecycleConfig(init_timeout_seconds=3.0, revoke_grace_seconds=0.0),
        max_backoff=1.0,
    )
    init = run_agent("init", config, pod.root, timeout=30)
    assert init.process is not None
    assert init.process.returncode == 1
    # The token may not even see the mount, so the path is read as written.
    assert f"template app: read secret/{name}: permission denied (HTTP 403)" in init.logs()
    assert not pod.file("app").exists()
    assert not (pod.state / "handoff.json").exists()
    # The failed init revoked its token: nothing piles up in Vault when a pod crash-loops.
    assert init.events("revoke")


def test_a_handoff_that_cannot_be_written_fails_init_and_leaves_nothing_in_vault(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("nohandoff")
    vault.put_kv("secret", name, {"a": "1"})
    identity = make_identity(vault, kube, pod.root, policy=POLICY.format(name=name))
    blocker = pod.root / "not-a-directory"
    blocker.write_text("")
    config = agent_config(
        vault_url=vault.url,
        identity=identity,
        pod=pod,
        templates=[template(pod, "kv", f"secret/{name}")],
        state_dir=str(blocker / "state"),
    )
    init = run_agent("init", config, pod.root)
    assert init.process is not None
    assert init.process.returncode == 1
    assert "init failed: handoff: " in init.logs()
    assert "Traceback" not in init.logs()
    # Without a handoff the sidecar logs in afresh: the init's token must not live on.
    assert init.events("revoke")
    # A count: pytest would print the list's accessors.
    tokens_left = len(vault.tokens_of_role(identity.role))
    assert tokens_left == 0, f"tokens left: {tokens_left}"


@pytest.mark.parametrize("mode", ["init", "sidecar"])
def test_exit_on_auth_error_says_why_the_login_failed(pod: PodDirs, mode: str) -> None:
    identity = AppIdentity(
        role="app", namespace="ns", service_account="sa", token_file=pod.root / "no-token"
    )
    config = agent_config(
        vault_url="http://127.0.0.1:9",
        identity=identity,
        pod=pod,
        templates=[template(pod, "app", "secret/app")],
    )
    config = replace(config, auth=replace(config.auth, exit_on_error=True))
    agent = run_agent(mode, config, pod.root, timeout=30)
    assert agent.process is not None
    assert agent.process.returncode == 1
    # The line that says the agent gives up names the reason, not only the warnings before it.
    errors = [
        json.loads(line)["message"]
        for line in agent.logs().splitlines()
        if json.loads(line)["level"] == "error"
    ]
    assert any("cannot read the ServiceAccount token file" in message for message in errors), errors


def test_a_template_error_fails_init_but_the_good_templates_are_written(
    vault: VaultServer, kube: FakeKubeApiServer, pod: PodDirs
) -> None:
    name = unique_name("mixed")
    vault.put_kv("secret", name, {"a": "good"})
    identity = make_identity(vault, kube, pod.root, policy=POLICY.format(name=name))
    templates: list[TemplateConfig] = [
        template(
            pod,
            "good",
            f"secret/{name}",
            f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.a }}}}{{{{ end }}}}',
        ),
        template(
            pod,
            "missing-key",
            f"secret/{name}",
            f'{{{{ with secret "secret/{name}" }}}}{{{{ .Data.data.absent }}}}{{{{ end }}}}',
            error_on_missing_key=True,
        ),
    ]
    config = agent_config(vault_url=vault.url, identity=identity, pod=pod, templates=templates)
    init = run_agent("init", config, pod.root)
    assert init.process is not None
    assert init.process.returncode == 1
    assert pod.file("good").read_text() == "good"
    assert not pod.file("missing-key").exists()
    assert "template missing-key" in init.logs()


def test_an_invalid_configuration_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.agent.harness import REPO_ROOT

    result = subprocess.run(
        [sys.executable, "-m", "agent", "--mode", "init"],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO_ROOT),
            "VSI_AGENT_CONFIG": json.dumps(
                {
                    "vault": {"address": "ftp://vault"},
                    "auth": {"role": ""},
                    "pod": {"namespace": "ns", "service_account": "sa"},
                }
            ),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "vault.address: must start with http:// or https://" in result.stderr
    assert "auth.role: required" in result.stderr
