"""The ValidatingAdmissionPolicy's CEL, evaluated against pods the way the API server does it:
match conditions, then variables, then validations. A pod that asks for injection but arrives
without the agent is rejected; an injected one, or one that does not ask, is admitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel

from tests.manifests.conftest import find, rendered

ROOT = Path(__file__).resolve().parents[2]
INJECT = "vault.hashicorp.com/agent-inject"
STATUS = "vault.hashicorp.com/agent-inject-status"


def _policy() -> dict[str, Any]:
    spec: dict[str, Any] = find(rendered("default"), "ValidatingAdmissionPolicy")["spec"]
    return spec


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    environment = celpy.Environment()
    program = environment.program(environment.compile(expression))
    return program.evaluate({name: json_to_cel(value) for name, value in activation.items()})


def admit(pod: dict[str, Any]) -> tuple[bool, str]:
    """(admitted, message) for ``pod`` under the rendered policy."""
    policy = _policy()
    if not all(_evaluate(c["expression"], {"object": pod}) for c in policy["matchConditions"]):
        return True, "not matched"
    variables: dict[str, Any] = {}
    for variable in policy["variables"]:
        value = _evaluate(variable["expression"], {"object": pod, "variables": variables})
        variables[variable["name"]] = _plain(value)
    for validation in policy["validations"]:
        if not _evaluate(validation["expression"], {"object": pod, "variables": variables}):
            return False, str(validation["message"])
    return True, "valid"


def _plain(value: Any) -> Any:
    if isinstance(value, celpy.celtypes.BoolType):
        return bool(value)
    if isinstance(value, celpy.celtypes.ListType):
        return [_plain(item) for item in value]
    if isinstance(value, celpy.celtypes.StringType):
        return str(value)
    return value


def _pod(
    annotations: dict[str, str] | None,
    *,
    containers: tuple[str, ...] = ("app",),
    init_containers: tuple[str, ...] = (),
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"containers": [{"name": name, "image": "x"} for name in containers]},
    }
    if annotations is not None:
        pod["metadata"]["annotations"] = annotations
    if init_containers:
        pod["spec"]["initContainers"] = [{"name": name, "image": "x"} for name in init_containers]
    return pod


@pytest.mark.parametrize(
    ("pod", "admitted"),
    [
        pytest.param(_pod(None), True, id="a pod without annotations is not judged"),
        pytest.param(_pod({INJECT: "false"}), True, id="a pod that declines injection passes"),
        pytest.param(_pod({INJECT: "true"}), False, id="asking without the agent is rejected"),
        pytest.param(_pod({INJECT: "T"}), False, id="every true spelling counts as asking"),
        pytest.param(
            _pod({INJECT: " true\n"}),
            False,
            id="white space the webhook ignores still counts as asking",
        ),
        pytest.param(
            _pod({INJECT: "\vtrue"}),
            True,
            id="padding the webhook refuses is no request to judge",
        ),
        pytest.param(
            _pod({INJECT: "true", STATUS: "update"}),
            False,
            id="a pod to re-inject that was not re-injected is rejected",
        ),
        pytest.param(
            _pod(
                {INJECT: "true", STATUS: "injected"},
                containers=("app", "vault-agent"),
                init_containers=("vault-agent-init",),
            ),
            True,
            id="an injected pod with init container and sidecar passes",
        ),
        pytest.param(
            _pod({INJECT: "true", STATUS: "injected"}, init_containers=("vault-agent",)),
            True,
            id="a native sidecar among init containers passes",
        ),
        pytest.param(
            _pod({INJECT: "true"}, init_containers=("vault-agent-init",)),
            True,
            id="a pre-populate-only pod with just the init agent passes",
        ),
        pytest.param(
            _pod({INJECT: "true", STATUS: "injected"}),
            True,
            id="a pod marked injected passes even without the agent",
        ),
    ],
)
def test_the_policy_rejects_exactly_the_pods_that_miss_their_agent(
    pod: dict[str, Any], admitted: bool
) -> None:
    verdict, message = admit(pod)
    assert verdict is admitted, message
    if not admitted:
        assert "vault.hashicorp.com/agent-inject" in message


def test_the_policy_knows_the_agent_container_names_the_webhook_injects() -> None:
    from webhook.containers import AGENT_CONTAINER_NAMES

    (names,) = [v for v in _policy()["variables"] if v["name"] == "agentNames"]
    assert sorted(_evaluate(names["expression"], {})) == sorted(AGENT_CONTAINER_NAMES)


def test_every_setting_in_the_manifests_is_one_the_webhook_reads() -> None:
    settings_source = (ROOT / "webhook/settings.py").read_text()
    for overlay in ("default", "native-sidecar", "cert-manager", "example"):
        deployment = find(rendered(overlay), "Deployment", "vault-sidecar-injector")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        names = [entry["name"] for entry in container["env"]]
        unknown = [
            n for n in names if n.startswith("AGENT_INJECT_") and f'"{n}"' not in settings_source
        ]
        assert unknown == [], f"{overlay}: the webhook does not read {unknown}"
