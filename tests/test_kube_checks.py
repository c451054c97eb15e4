"""The shared checks catch what they promise to catch, so a passing check means something."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.kube_checks import pod_spec_of, restricted_violations, schema_problems

RESTRICTED_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "app", "namespace": "default"},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "app",
                "image": "app:1",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "runAsUser": 1000,
                },
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
    },
}


def test_a_restricted_pod_passes_both_checks() -> None:
    assert schema_problems(RESTRICTED_POD) == []
    assert restricted_violations(RESTRICTED_POD["spec"]) == []


def _broken(change: str) -> dict[str, Any]:
    pod = copy.deepcopy(RESTRICTED_POD)
    spec: dict[str, Any] = pod["spec"]
    container = spec["containers"][0]
    if change == "escalation":
        container["securityContext"]["allowPrivilegeEscalation"] = True
    elif change == "seccomp":
        del spec["securityContext"]["seccompProfile"]
    elif change == "root":
        container["securityContext"]["runAsUser"] = 0
    elif change == "capabilities":
        container["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    elif change == "hostpath":
        spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    elif change == "non-root-unset":
        del spec["securityContext"]["runAsNonRoot"]
    elif change == "pod selinux type":
        spec["securityContext"]["seLinuxOptions"] = {"type": "spc_t"}
    elif change == "selinux user":
        container["securityContext"]["seLinuxOptions"] = {"user": "system_u"}
    elif change == "host process":
        spec["securityContext"]["windowsOptions"] = {"hostProcess": True}
    elif change == "apparmor":
        container["securityContext"]["appArmorProfile"] = {"type": "Unconfined"}
    return spec


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            "escalation",
            "allowPrivilegeEscalation must be false",
            id="privilege escalation is caught",
        ),
        pytest.param(
            "seccomp",
            "seccompProfile.type must be RuntimeDefault",
            id="a missing seccomp profile is caught",
        ),
        pytest.param("root", "runAsUser must not be 0", id="running as root is caught"),
        pytest.param(
            "capabilities",
            "capabilities.add may only hold NET_BIND_SERVICE",
            id="added capabilities are caught",
        ),
        pytest.param("hostpath", "volume host", id="a hostPath volume is caught"),
        pytest.param(
            "non-root-unset", "runAsNonRoot must be true", id="runAsNonRoot left unset is caught"
        ),
        pytest.param(
            "pod selinux type",
            "spec.securityContext: seLinuxOptions.type spc_t",
            id="a pod-level SELinux type is caught",
        ),
        pytest.param(
            "selinux user", "seLinuxOptions.user must not be set", id="an SELinux user is caught"
        ),
        pytest.param(
            "host process", "hostProcess must not be true", id="a Windows host process is caught"
        ),
        pytest.param(
            "apparmor",
            "appArmorProfile.type Unconfined",
            id="an unconfined AppArmor profile is caught",
        ),
    ],
)
def test_each_restricted_rule_is_enforced(change: str, expected: str) -> None:
    problems = restricted_violations(_broken(change))
    assert any(expected in problem for problem in problems), problems


def test_schema_check_refuses_unknown_fields() -> None:
    pod = copy.deepcopy(RESTRICTED_POD)
    pod["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert schema_problems(pod) != []


def test_pod_spec_is_found_inside_workloads() -> None:
    deployment = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": []}}}}
    cronjob = {
        "kind": "CronJob",
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"x": 1}}}}},
    }
    assert pod_spec_of(deployment) == {"containers": []}
    assert pod_spec_of(cronjob) == {"x": 1}
    assert pod_spec_of({"kind": "Service", "spec": {}}) is None
