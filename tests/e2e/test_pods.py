"""Annotated pods through the real webhook over TLS, run in the pod emulator against real OpenBao
and PostgreSQL: what a pod author and an app see, from admission to revocation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.e2e import stack
from tests.e2e.conftest import PodFactory, needs_root
from tests.e2e.stack import vault_annotations, wait_until
from tests.support.emulator import (
    EmulatedPod,
    EmulatorOptions,
    PodPhase,
    VolumeBacking,
    leftovers,
)
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer, unique_name

pytestmark = [pytest.mark.slow, needs_root]

SECRETS_VOLUME = "vault-secrets"
TOKEN_REVIEW = ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")
DEFAULT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
LOGGED_IN = re.compile(r"^db: logged in as (\S+):", re.MULTILINE)


def new_app(
    vault: VaultServer,
    *,
    database_ttls: tuple[int, int] | None = (60, 300),
    kv: dict[str, str] | None = None,
) -> stack.VaultApp:
    return stack.configure_app(
        vault,
        name=unique_name("app"),
        namespace=unique_name("ns"),
        service_account=unique_name("sa"),
        database_ttls=database_ttls,
        kv=kv,
    )


def secret_annotations(
    app: stack.VaultApp, postgres: PostgresServer, *, kv: bool = False
) -> dict[str, str]:
    """A database credential at /vault/secrets/db and, if asked, the KV secret at .../config."""
    wanted = vault_annotations(
        agent_inject="true",
        agent_inject_secret_db=app.database_path,
        agent_inject_template_db=stack.database_template(app, postgres),
    )
    if kv:
        wanted |= vault_annotations(
            agent_inject_secret_config=app.kv_path,
            agent_inject_template_config=stack.kv_template(app),
        )
    return wanted


def container_names(pod: dict[str, Any], field: str) -> list[str]:
    return [container["name"] for container in pod["spec"].get(field) or []]


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for field in ("initContainers", "containers"):
        for candidate in pod["spec"].get(field) or []:
            if candidate["name"] == name:
                found: dict[str, Any] = candidate
                return found
    raise KeyError(name)


def mount_paths(pod: dict[str, Any], name: str) -> list[str]:
    return [mount["mountPath"] for mount in container(pod, name).get("volumeMounts") or []]


def logged_in_users(pod: EmulatedPod, name: str = "app") -> list[str]:
    """Users the app logged in to PostgreSQL as, in order (it logs each new credential once)."""
    return LOGGED_IN.findall(pod.logs(name))


def rendered_credential(pod: EmulatedPod, file_name: str = "db") -> dict[str, Any]:
    """The connection string the agent wrote, read from the pod's tmpfs (never printed)."""
    text = (pod.volume_path(SECRETS_VOLUME) / file_name).read_text()
    return conninfo_to_dict(text)


def assert_can_log_in(postgres: PostgresServer, credential: dict[str, Any]) -> None:
    postgres.assert_accepts(credential["user"], credential["password"])


def new_database_users(postgres: PostgresServer, before: set[str]) -> set[str]:
    return set(postgres.roles(prefix="v-")) - before


def assert_everything_revoked(
    vault: VaultServer, postgres: PostgresServer, app: stack.VaultApp, before: set[str]
) -> None:
    """After the pod stopped: no lease of the app's database role, no user Vault made for it."""
    wait_until(
        lambda: not vault.leases(app.lease_prefix), timeout=15, what="every lease to be revoked"
    )
    wait_until(
        lambda: not new_database_users(postgres, before),
        timeout=15,
        what="the pod's database users to be dropped",
    )


# A secret the role may not read: started first, checked at the end ------------------------------
# The agent's init retries a denied read (a policy may be fixed meanwhile) with a long backoff until
# its 120 s bound, so this pod takes about 80 s to fail. It runs in the background while the other
# tests run; the first test checks the init container's log early, the last one the pod's failure.


@dataclass(frozen=True)
class DeniedPod:
    pod: EmulatedPod
    app: stack.VaultApp
    denied_path: str


@pytest.fixture(scope="module")
def denied_pod(
    vault: VaultServer,
    webhook: stack.WebhookServer,
    kube: FakeKubeApiServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DeniedPod]:
    app = new_app(vault, database_ttls=None, kv={"message": "mine"})
    someone_else = new_app(vault, database_ttls=None, kv={"message": "not yours"})
    bare = stack.app_pod(
        app,
        name=unique_name("denied"),
        restart_policy="Never",
        pod_annotations=vault_annotations(
            agent_inject="true", agent_inject_secret_config=someone_else.kv_path
        )
        | app.auth_annotations("kubernetes"),
        containers=[stack.app_container("app", env={"DB_FILE": "/vault/secrets/config"})],
    )
    admission = stack.admit(webhook, bare)
    assert admission.allowed, admission.message
    workdir = tmp_path_factory.mktemp("denied-pod")
    pod = EmulatedPod(
        admission.mutated,
        images=stack.images(),
        workdir=workdir,
        token_issuer=kube,
        options=EmulatorOptions(kube_api_url=kube.url),
    )
    with pod:
        yield DeniedPod(pod, app, someone_else.kv_path)
    assert not leftovers(workdir)


def test_a_denied_secret_is_named_in_the_init_containers_log_at_once(
    denied_pod: DeniedPod,
) -> None:
    pod = denied_pod.pod
    wait_until(
        lambda: f"read {denied_pod.denied_path}: permission denied" in pod.logs("vault-agent-init"),
        timeout=20,
        what="the init container to name the denied path",
    )
    assert pod.status("app").state == "waiting"


# The cases -------------------------------------------------------------------------------------


def test_classic_init_and_sidecar_one_credential_logged_in_kv_followed_and_revoked_at_stop(
    vault: VaultServer,
    postgres: PostgresServer,
    kube: FakeKubeApiServer,
    webhook: stack.WebhookServer,
    start_pod: PodFactory,
) -> None:
    app = new_app(vault, kv={"message": "first"})
    users_before = set(postgres.roles(prefix="v-"))
    reviews_before = kube.requests.count(TOKEN_REVIEW)
    bare = stack.app_pod(
        app,
        name=unique_name("classic"),
        pod_annotations=secret_annotations(app, postgres, kv=True)
        | app.auth_annotations("kubernetes")
        | vault_annotations(template_static_secret_render_interval="1s"),
        containers=[stack.app_container("app", env={"CONFIG_FILE": "/vault/secrets/config"})],
    )
    admission = stack.admit(webhook, bare)
    assert admission.allowed, admission.message
    assert admission.warnings == []
    mutated = admission.mutated
    assert container_names(mutated, "initContainers") == ["vault-agent-init"]
    assert container_names(mutated, "containers") == ["app", "vault-agent"]

    pod = start_pod(mutated)
    pod.wait_until_running(timeout=30)
    assert pod.volume_backing(SECRETS_VOLUME) is VolumeBacking.TMPFS
    users = wait_until(lambda: logged_in_users(pod), timeout=15, what="the app to log in")
    credential = rendered_credential(pod)
    assert users == [credential["user"]]
    assert_can_log_in(postgres, credential)
    assert "config: version 1, message 'first'" in pod.logs("app")
    # Vault's kubernetes auth asked the (fake) API server about the pod's own token.
    assert kube.requests.count(TOKEN_REVIEW) > reviews_before

    # One set of credentials per pod start: the sidecar adopted the init container's.
    wait_until(lambda: '"event":"adopt"' in pod.logs("vault-agent"), timeout=15, what="the handoff")
    leases = len(vault.leases(app.lease_prefix))  # a count: pytest would print the lease ids
    assert leases == 1, f"leases: {leases}"
    assert new_database_users(postgres, users_before) == {credential["user"]}

    vault.put_kv("secret", app.kv_name, {"message": "second"})
    wait_until(
        lambda: "config: version 2, message 'second'" in pod.logs("app"),
        timeout=15,
        what="the app to see the KV change",
    )

    assert pod.stop() is PodPhase.SUCCEEDED
    assert_everything_revoked(vault, postgres, app, users_before)
    sidecar_log = pod.logs("vault-agent")
    # The cluster-wide default annotation (AGENT_INJECT_DEFAULT_ANNOTATIONS) set the grace.
    assert '"event":"shutdown"' in sidecar_log
    assert '"grace_seconds":1.0' in sidecar_log
    assert '"event":"revoke"' in sidecar_log


def test_native_sidecar_with_jwt_auth_rotates_before_expiry_and_the_old_credential_overlaps(
    vault: VaultServer,
    postgres: PostgresServer,
    webhook: stack.WebhookServer,
    start_pod: PodFactory,
) -> None:
    default_ttl, max_ttl = 5, 15
    app = new_app(vault, database_ttls=(default_ttl, max_ttl))
    users_before = set(postgres.roles(prefix="v-"))
    bare = stack.app_pod(
        app,
        name=unique_name("native"),
        pod_annotations=secret_annotations(app, postgres)
        | app.auth_annotations("jwt")
        | vault_annotations(agent_native_sidecar="true"),
    )
    admission = stack.admit(webhook, bare)
    assert admission.allowed, admission.message
    mutated = admission.mutated
    assert container_names(mutated, "initContainers") == ["vault-agent"]
    assert container_names(mutated, "containers") == ["app"]
    agent = container(mutated, "vault-agent")
    assert agent["restartPolicy"] == "Always"
    assert agent["startupProbe"]["exec"]["command"][-2:] == ["--mode", "ready"]
    token_volume = next(v for v in mutated["spec"]["volumes"] if v["name"] == "vault-agent-token")
    assert token_volume["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "vault"

    pod = start_pod(mutated)
    pod.wait_until_running(timeout=30)
    # The app refuses to start without its file: running at once, never restarted, proves the
    # startup probe held it back until the first render was on disk.
    assert pod.status("app").restart_count == 0
    wait_until(lambda: logged_in_users(pod), timeout=15, what="the app to log in")
    first = rendered_credential(pod)
    (first_lease,) = vault.leases(app.lease_prefix)
    assert new_database_users(postgres, users_before) == {first["user"]}

    users = wait_until(
        lambda: (found := logged_in_users(pod))[1:] and found,
        timeout=max_ttl + 10,
        what="the app to log in with a rotated credential",
    )
    assert users[0] == first["user"]
    second = rendered_credential(pod)
    assert users[1] == second["user"] != first["user"]
    # The app has the new credential while the old one still works, with at least about a third
    # of its lifetime left (less the time this test took to look).
    old_lease = vault.lookup_lease(first_lease)
    assert old_lease is not None
    assert old_lease["ttl"] >= max_ttl / 3 - 2
    assert_can_log_in(postgres, first)
    assert_can_log_in(postgres, second)
    wait_until(
        lambda: f"previous user {first['user']} still accepted" in pod.logs("app"),
        timeout=5,
        what="the app to see its previous credential still accepted",
    )
    # ...and the old one dies at its max TTL: Vault drops the user.
    wait_until(
        lambda: first["user"] not in postgres.roles(prefix="v-"),
        timeout=max_ttl,
        what="the first credential to expire",
    )

    assert pod.stop() is PodPhase.SUCCEEDED
    assert_everything_revoked(vault, postgres, app, users_before)


def test_pre_populate_only_job_completes_with_its_credential(
    vault: VaultServer,
    postgres: PostgresServer,
    webhook: stack.WebhookServer,
    start_pod: PodFactory,
) -> None:
    app = new_app(vault, database_ttls=(30, 60))
    bare = stack.app_pod(
        app,
        name=unique_name("job"),
        restart_policy="Never",
        pod_annotations=secret_annotations(app, postgres)
        | app.auth_annotations("kubernetes")
        | vault_annotations(agent_pre_populate_only="true"),
        containers=[stack.app_container("job", env={"MODE": "once"})],
    )
    admission = stack.admit(webhook, bare)
    assert admission.allowed, admission.message
    mutated = admission.mutated
    assert container_names(mutated, "initContainers") == ["vault-agent-init"]
    # No sidecar: nothing keeps the Job's pod alive after its work.
    assert container_names(mutated, "containers") == ["job"]

    pod = start_pod(mutated)
    assert pod.wait_until_completed(timeout=60) is PodPhase.SUCCEEDED
    # Nobody would adopt a handoff: the init container leaves no token behind on the volume.
    init_log = pod.logs("vault-agent-init")
    assert "no sidecar follows" in init_log
    assert "handoff" not in {
        json.loads(line).get("event") for line in init_log.splitlines() if line.startswith("{")
    }
    assert len(logged_in_users(pod, "job")) == 1
    assert pod.status("job").exit_code == 0
    leases = len(vault.leases(app.lease_prefix))  # a count: pytest would print the lease ids
    assert leases == 1, f"leases: {leases}"


def test_only_the_containers_named_in_agent_inject_containers_get_the_secrets(
    vault: VaultServer,
    postgres: PostgresServer,
    webhook: stack.WebhookServer,
    start_pod: PodFactory,
) -> None:
    app = new_app(vault)
    sidecar_of_its_own = stack.app_container("metrics") | {
        "command": ["python", "-c", "import signal; signal.sigwait([signal.SIGTERM])"]
    }
    bare = stack.app_pod(
        app,
        name=unique_name("several"),
        pod_annotations=secret_annotations(app, postgres)
        | app.auth_annotations("kubernetes")
        | vault_annotations(agent_inject_containers="web,worker"),
        containers=[
            stack.app_container("web"),
            stack.app_container("worker"),
            sidecar_of_its_own,
        ],
    )
    admission = stack.admit(webhook, bare)
    assert admission.allowed, admission.message
    mutated = admission.mutated
    assert "/vault/secrets" in mount_paths(mutated, "web")
    assert "/vault/secrets" in mount_paths(mutated, "worker")
    assert "/vault/secrets" not in mount_paths(mutated, "metrics")

    pod = start_pod(mutated)
    pod.wait_until_running(timeout=30)
    web_users = wait_until(lambda: logged_in_users(pod, "web"), timeout=15, what="web to log in")
    worker_users = wait_until(
        lambda: logged_in_users(pod, "worker"), timeout=15, what="worker to log in"
    )
    # Both read the one credential of the pod.
    assert web_users == worker_users == [rendered_credential(pod)["user"]]
    look = "import os, sys; sys.exit(0 if os.path.exists('/vault/secrets/db') else 3)"
    assert pod.exec("web", ["python", "-c", look]).exit_code == 0
    assert pod.exec("metrics", ["python", "-c", look]).exit_code == 3


def test_without_automount_only_the_agent_gets_a_token_and_the_app_has_none(
    vault: VaultServer,
    postgres: PostgresServer,
    kube: FakeKubeApiServer,
    webhook: stack.WebhookServer,
    start_pod: PodFactory,
) -> None:
    app = new_app(vault)
    users_before = set(postgres.roles(prefix="v-"))
    reviews_before = kube.requests.count(TOKEN_REVIEW)
    bare = stack.app_pod(
        app,
        name=unique_name("no-automount"),
        automount=False,
        pod_annotations=secret_annotations(app, postgres) | app.auth_annotations("kubernetes"),
    )
    admission = stack.admit(webhook, bare)
    assert admission.allowed, admission.message
    mutated = admission.mutated
    volumes = {volume["name"]: volume for volume in mutated["spec"]["volumes"]}
    assert "serviceAccountToken" in volumes["vault-agent-token"]["projected"]["sources"][0]
    assert not [name for name in volumes if name.startswith("kube-api-access-")]
    assert mount_paths(mutated, "app") == ["/vault/secrets"]
    token_mounts = [
        mount["mountPath"]
        for mount in container(mutated, "vault-agent")["volumeMounts"]
        if mount["name"] == "vault-agent-token"
    ]
    assert token_mounts

    pod = start_pod(mutated)
    pod.wait_until_running(timeout=30)
    users = wait_until(lambda: logged_in_users(pod), timeout=15, what="the app to log in")
    assert users == [rendered_credential(pod)["user"]]
    # The agent logged in with the projected token, checked by TokenReview.
    assert kube.requests.count(TOKEN_REVIEW) > reviews_before
    no_token = (
        "import os, sys; "
        f"sys.exit(3 if os.path.exists({DEFAULT_TOKEN_FILE!r}) "
        f"or os.path.exists({token_mounts[0]!r}) else 0)"
    )
    assert pod.exec("app", ["python", "-c", no_token]).exit_code == 0
    has_token = (
        f"import os, sys; sys.exit(0 if os.path.getsize({token_mounts[0] + '/token'!r}) else 3)"
    )
    assert pod.exec("vault-agent", ["python", "-c", has_token]).exit_code == 0

    assert pod.stop() is PodPhase.SUCCEEDED
    assert_everything_revoked(vault, postgres, app, users_before)


# Last, so that the ~80 s this pod needs to fail overlap the tests above.
def test_a_pod_whose_role_may_not_read_its_secret_fails_with_the_reason_in_the_init_log(
    vault: VaultServer, denied_pod: DeniedPod
) -> None:
    pod = denied_pod.pod
    assert pod.wait_until_completed(timeout=150) is PodPhase.FAILED
    assert "vault-agent-init" in pod.failure_message
    last_error = [line for line in pod.logs("vault-agent-init").splitlines() if '"error"' in line][
        -1
    ]
    assert (
        f"init failed: template config: read {denied_pod.denied_path}: permission denied"
        in last_error
    )
    app_status = pod.status("app")
    assert not app_status.started
    assert app_status.restart_count == 0
    # The failed init revoked its token: a crash-looping pod does not pile tokens up in Vault.
    tokens_left = len(vault.tokens_of_role(denied_pod.app.name))  # not the accessors
    assert tokens_left == 0, f"tokens left: {tokens_left}"
