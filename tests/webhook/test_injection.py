"""The mutated pod: containers, volumes and mounts, checked against the schema and Pod Security."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from agent.config import AgentConfig
from tests.support.kube_checks import restricted_violations
from tests.webhook.support import (
    SERVICE_ACCOUNT_PATH,
    SETTINGS,
    agent_config_of,
    agent_containers,
    agent_problems,
    annotated,
    app_container,
    container_named,
    make_pod,
    mount_paths,
    patch_of,
    review,
)
from tests.webhook.support import mutated as mutate

BASE = annotated(agent_inject="true", role="app", agent_inject_secret_db="database/creds/app")

RESTRICTED_APP = app_container(
    securityContext={
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
)

SHAPES = [
    pytest.param({}, {}, id="basic"),
    pytest.param(
        {},
        {"containers": [app_container("web"), app_container("worker"), app_container("log")]},
        id="several containers",
    ),
    pytest.param({}, {"init_containers": [app_container("migrate")]}, id="init containers present"),
    pytest.param({}, {"service_account_mount": False}, id="no volumes at all"),
    pytest.param(
        {},
        {"automountServiceAccountToken": False, "service_account_mount": False},
        id="automount disabled",
    ),
    pytest.param(annotated(agent_pre_populate_only="true"), {}, id="pre-populate only"),
    pytest.param(annotated(agent_pre_populate="false"), {}, id="sidecar only"),
    pytest.param(
        annotated(agent_init_first="true"),
        {"init_containers": [app_container("migrate")]},
        id="init first",
    ),
    pytest.param(annotated(agent_native_sidecar="true"), {}, id="native sidecar"),
    pytest.param(
        annotated(
            secret_volume_path_db="/etc/db",
            agent_inject_secret_cache="kv/cache",
            secret_volume_path_cache="/etc/cache",
        ),
        {},
        id="custom volume paths",
    ),
    pytest.param(
        annotated(
            agent_inject_template_db=(
                '{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}'
            )
        ),
        {},
        id="templates",
    ),
    pytest.param(
        annotated(
            tls_secret="vault-tls",
            ca_cert="/vault/tls/ca.crt",
            client_cert="/vault/tls/tls.crt",
            client_key="/vault/tls/tls.key",
        ),
        {},
        id="TLS to Vault",
    ),
    pytest.param(
        annotated(agent_configmap="agent-config", agent_extra_secret="extra"),
        {},
        id="configmap and extra secret",
    ),
    pytest.param(annotated(agent_inject_signal_db="SIGHUP:nginx"), {}, id="signal to the app"),
    pytest.param(annotated(agent_set_security_context="false"), {}, id="no uid for OpenShift"),
    pytest.param(
        annotated(
            agent_limits_cpu="", agent_limits_mem="", agent_requests_cpu="", agent_requests_mem=""
        ),
        {},
        id="no resources at all",
    ),
    pytest.param(
        annotated(agent_copy_volume_mounts="app"),
        {
            "containers": [app_container(volumeMounts=[{"name": "data", "mountPath": "/data"}])],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "service_account_mount": False,
        },
        id="copied volume mounts",
    ),
]


def _pod(extra: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    options = dict(options)
    volumes = options.pop("volumes", None)
    pod = make_pod({**BASE, **extra}, **options)
    if volumes:
        pod["spec"]["volumes"] = pod["spec"].get("volumes", []) + volumes
    return pod


@pytest.mark.parametrize(("extra", "options"), SHAPES)
def test_every_shape_validates_and_the_agent_containers_are_restricted(
    extra: dict[str, str], options: dict[str, Any]
) -> None:
    pod = mutate(_pod(extra, options))
    assert agent_problems(pod) == []
    for container in agent_containers(pod):
        assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(("extra", "options"), SHAPES)
def test_a_second_pass_over_the_result_changes_nothing(
    extra: dict[str, str], options: dict[str, Any]
) -> None:
    once = mutate(_pod(extra, options))
    again = review(once)
    assert again.result == "skipped"
    assert patch_of(again) == []


@pytest.mark.parametrize(("extra", "options"), SHAPES)
def test_no_container_gets_a_secret_in_its_environment(
    extra: dict[str, str], options: dict[str, Any]
) -> None:
    pod = mutate(_pod(extra, options))
    for container in agent_containers(pod):
        names = [item["name"] for item in container["env"]]
        assert names[1:] == ["POD_NAME", "POD_NAMESPACE", "HOME"]
        assert names[0] in ("VSI_AGENT_CONFIG", "VSI_AGENT_CONFIG_FILE")
        if names[0] == "VSI_AGENT_CONFIG":
            # The configuration the agent will read is valid as the agent sees it.
            AgentConfig.from_dict(agent_config_of(container))
    for container in pod["spec"]["containers"]:
        if container["name"] != "vault-agent":
            assert "env" not in container


def test_a_restricted_pod_stays_restricted() -> None:
    pod = make_pod(
        BASE,
        containers=[RESTRICTED_APP],
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    )
    assert restricted_violations(pod["spec"]) == []
    assert restricted_violations(mutate(pod)["spec"]) == []


def test_the_basic_injection_adds_init_container_last_and_sidecar_last() -> None:
    pod = mutate(make_pod(BASE, init_containers=[app_container("migrate")]))
    spec = pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["migrate", "vault-agent-init"]
    assert [c["name"] for c in spec["containers"]] == ["app", "vault-agent"]
    assert container_named(pod, "vault-agent-init")["args"] == ["--mode", "init"]
    assert container_named(pod, "vault-agent")["args"] == ["--mode", "sidecar"]
    assert pod["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-status"] == "injected"
    # The init container before ours would only see an empty directory: it gets no mount.
    assert "/vault/secrets" not in mount_paths(container_named(pod, "migrate"))


def test_volumes_are_in_memory_with_a_size_limit() -> None:
    pod = mutate(make_pod(BASE))
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes["vault-secrets"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    assert volumes["vault-agent-state"]["emptyDir"]["medium"] == "Memory"


def test_apps_read_the_secrets_and_never_see_the_agent_state_or_token() -> None:
    pod = mutate(make_pod(BASE, automountServiceAccountToken=False, service_account_mount=False))
    app = container_named(pod, "app")
    assert mount_paths(app) == {"/vault/secrets": "vault-secrets"}
    assert app["volumeMounts"][0]["readOnly"] is True
    for agent in agent_containers(pod):
        paths = mount_paths(agent)
        assert paths["/home/vault"] == "vault-agent-state"
        assert paths["/vault/secrets"] == "vault-secrets"
        assert paths["/var/run/secrets/vault.hashicorp.com/serviceaccount"] == "vault-agent-token"
    token_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "vault-agent-token")
    assert token_volume["projected"]["sources"] == [
        {"serviceAccountToken": {"expirationSeconds": 600, "path": "token"}}
    ]


def test_the_pods_own_token_mount_is_shared_read_only_with_the_agent() -> None:
    pod = mutate(make_pod(BASE))
    for agent in agent_containers(pod):
        mount = next(m for m in agent["volumeMounts"] if m["mountPath"] == SERVICE_ACCOUNT_PATH)
        assert mount == {
            "name": "kube-api-access-x1y2z",
            "mountPath": SERVICE_ACCOUNT_PATH,
            "readOnly": True,
        }
    assert not any(v["name"] == "vault-agent-token" for v in pod["spec"]["volumes"])


def test_the_native_sidecar_is_an_init_container_with_a_startup_probe() -> None:
    pod = mutate(
        make_pod(BASE, init_containers=[app_container("migrate")]),
        replace(SETTINGS, native_sidecar=True),
    )
    spec = pod["spec"]
    assert [c["name"] for c in spec["containers"]] == ["app"]
    native = container_named(pod, "vault-agent")
    assert [c["name"] for c in spec["initContainers"]] == ["migrate", "vault-agent"]
    assert native["restartPolicy"] == "Always"
    assert native["args"] == ["--mode", "sidecar"]
    assert native["startupProbe"]["exec"]["command"] == ["python", "-m", "agent", "--mode", "ready"]
    assert agent_config_of(native)["readiness_file"] == "/home/vault/.vault-agent-ready"


def test_init_first_puts_the_agent_first_and_mounts_secrets_into_later_init_containers() -> None:
    pod = mutate(
        make_pod(
            {**BASE, **annotated(agent_init_first="true")},
            init_containers=[app_container("migrate")],
        )
    )
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["vault-agent-init", "migrate"]
    assert mount_paths(container_named(pod, "migrate"))["/vault/secrets"] == "vault-secrets"


def test_only_the_chosen_containers_get_the_secrets() -> None:
    pod = mutate(
        make_pod(
            {**BASE, **annotated(agent_inject_containers="web")},
            containers=[app_container("web"), app_container("sidecar-proxy")],
        )
    )
    assert "/vault/secrets" in mount_paths(container_named(pod, "web"))
    assert "/vault/secrets" not in mount_paths(container_named(pod, "sidecar-proxy"))


def test_copied_mounts_skip_the_service_account_token() -> None:
    pod = make_pod(
        {**BASE, **annotated(agent_copy_volume_mounts="app")},
        containers=[app_container(volumeMounts=[{"name": "data", "mountPath": "/data"}])],
    )
    pod["spec"]["volumes"].append({"name": "data", "emptyDir": {}})
    for agent in agent_containers(mutate(pod)):
        assert [
            p for p, n in mount_paths(agent).items() if n in ("data", "kube-api-access-x1y2z")
        ] == [
            SERVICE_ACCOUNT_PATH,
            "/data",
        ]


def test_a_json_patch_changes_the_sidecar_and_a_bad_one_refuses_the_pod() -> None:
    patch = '[{"op": "replace", "path": "/resources/limits/memory", "value": "300Mi"}]'
    pod = mutate(make_pod({**BASE, **annotated(agent_json_patch=patch)}))
    assert container_named(pod, "vault-agent")["resources"]["limits"]["memory"] == "300Mi"
    assert container_named(pod, "vault-agent-init")["resources"]["limits"]["memory"] == "96Mi"
    bad = '[{"op": "remove", "path": "/nothing/here"}]'
    outcome = review(make_pod({**BASE, **annotated(agent_json_patch=bad)}))
    assert outcome.result == "refused"
    assert "agent-json-patch" in outcome.review["response"]["status"]["message"]


def test_a_signal_shares_the_process_namespace() -> None:
    pod = mutate(make_pod({**BASE, **annotated(agent_inject_signal_db="SIGHUP:nginx")}))
    assert pod["spec"]["shareProcessNamespace"] is True


def test_a_configmap_replaces_the_generated_configuration() -> None:
    pod = mutate(make_pod({**BASE, **annotated(agent_configmap="agent-config")}))
    for agent in agent_containers(pod):
        assert agent["env"][0] == {
            "name": "VSI_AGENT_CONFIG_FILE",
            "value": "/vault/configs/config.json",
        }
        assert mount_paths(agent)["/vault/configs"] == "vault-config"


def test_resources_default_lean_and_follow_annotations() -> None:
    pod = mutate(make_pod({**BASE, **annotated(agent_limits_mem="256Mi")}))
    assert container_named(pod, "vault-agent")["resources"] == {
        "limits": {"cpu": "250m", "memory": "256Mi"},
        "requests": {"cpu": "10m", "memory": "32Mi"},
    }


def test_reinjection_on_update_replaces_the_previous_injection() -> None:
    first = mutate(make_pod(BASE))
    first["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-status"] = "update"
    first["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-secret-cache"] = "kv/cache"
    second = mutate(first)
    assert [c["name"] for c in second["spec"]["containers"]] == ["app", "vault-agent"]
    assert [v["name"] for v in second["spec"]["volumes"]].count("vault-secrets") == 1
    assert len(agent_config_of(container_named(second, "vault-agent"))["templates"]) == 2
    assert agent_problems(second) == []


def test_a_pod_using_a_reserved_volume_name_is_refused() -> None:
    pod = make_pod(BASE)
    pod["spec"]["volumes"].append({"name": "vault-secrets", "emptyDir": {}})
    outcome = review(pod)
    assert outcome.result == "refused"
    assert (
        "already has a volume named vault-secrets"
        in outcome.review["response"]["status"]["message"]
    )


def test_a_pod_with_no_volumes_gets_one_add_operation_for_volumes() -> None:
    """vault-k8s emits several `add /spec/volumes` that overwrite each other; a diff cannot."""
    operations = patch_of(review(make_pod(BASE, service_account_mount=False)))
    volume_adds = [op for op in operations if op["path"].startswith("/spec/volumes")]
    assert len(volume_adds) == 1
    assert volume_adds[0]["op"] == "add"


def test_the_original_pod_is_left_untouched() -> None:
    pod = make_pod(BASE)
    before = copy.deepcopy(pod)
    mutate(pod)
    assert pod == before


@pytest.mark.parametrize(
    ("extra", "pod_user", "warned"),
    [
        pytest.param({}, None, True, id="an app of unknown uid is warned about"),
        pytest.param({}, 1000, True, id="an app of another uid is warned about"),
        pytest.param({"agent_run_as_same_user": "true"}, 1000, False, id="the same user is fine"),
        pytest.param({"agent_run_as_user": "1000"}, 1000, False, id="one chosen uid is fine"),
    ],
)
def test_a_signal_the_agent_could_not_send_draws_a_warning(
    extra: dict[str, str], pod_user: int | None, warned: bool
) -> None:
    pod = make_pod({**BASE, **annotated(agent_inject_signal_db="SIGHUP:nginx", **extra)})
    if pod_user is not None:
        pod["spec"]["securityContext"] = {"runAsUser": pod_user}
    outcome = review(pod)
    assert outcome.result == "injected"
    warnings = outcome.review["response"].get("warnings", [])
    assert any("may only signal processes of its own user" in text for text in warnings) is warned


@pytest.mark.parametrize(
    ("value", "result"),
    [
        pytest.param(" true\n", "injected", id="ascii white space around true is ignored"),
        pytest.param("\vtrue", "refused", id="other padding is refused, as the policy ignores it"),
    ],
)
def test_agent_inject_padding_matches_the_admission_policy(value: str, result: str) -> None:
    pod = make_pod({**BASE, "vault.hashicorp.com/agent-inject": value})
    assert review(pod).result == result


def test_a_signal_with_process_sharing_turned_off_is_refused() -> None:
    pod = make_pod(
        {
            **BASE,
            **annotated(
                agent_inject_signal_db="SIGHUP:nginx", agent_share_process_namespace="false"
            ),
        }
    )
    outcome = review(pod)
    assert outcome.result == "refused"
    assert (
        "agent-share-process-namespace turns off" in outcome.review["response"]["status"]["message"]
    )


def test_an_init_patch_without_an_init_container_draws_a_warning() -> None:
    patch = '[{"op": "add", "path": "/env/-", "value": {"name": "A", "value": "b"}}]'
    pod = make_pod({**BASE, **annotated(agent_native_sidecar="true", agent_init_json_patch=patch)})
    warnings = review(pod).review["response"].get("warnings", [])
    assert any("agent-init-json-patch: has no effect" in text for text in warnings), warnings
