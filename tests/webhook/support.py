"""Builders and checks shared by the webhook tests."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch

from agent.config import AgentConfig
from tests.support.kube_checks import restricted_violations, schema_problems
from webhook.admission import Reviewer, ReviewOutcome
from webhook.containers import AGENT_CONTAINER_NAMES, is_our_volume
from webhook.settings import Settings

PREFIX = "vault.hashicorp.com/"
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SETTINGS = Settings(vault_address="https://vault.vault.svc:8200")


def annotated(**short: str) -> dict[str, str]:
    """Annotations from keyword names: agent_inject_secret_db="x" -> .../agent-inject-secret-db."""
    return {PREFIX + key.replace("_", "-"): value for key, value in short.items()}


def app_container(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": f"{name}:1", **extra}


def make_pod(
    annotations: dict[str, str] | None = None,
    *,
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    service_account_mount: bool = True,
    **spec_fields: Any,
) -> dict[str, Any]:
    """A pod as the API server hands it to webhooks: the ServiceAccount plugin has already added
    the kube-api-access volume and its mount (unless ``service_account_mount`` is false)."""
    containers = copy.deepcopy(containers if containers is not None else [app_container()])
    init_containers = copy.deepcopy(init_containers or [])
    spec: dict[str, Any] = {"containers": containers}
    if init_containers:
        spec["initContainers"] = init_containers
    if service_account_mount:
        mount = {
            "name": "kube-api-access-x1y2z",
            "mountPath": SERVICE_ACCOUNT_PATH,
            "readOnly": True,
        }
        for container in containers + init_containers:
            container.setdefault("volumeMounts", []).append(dict(mount))
        spec["volumes"] = [
            {
                "name": "kube-api-access-x1y2z",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                    ],
                },
            }
        ]
    spec.update(spec_fields)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "shop", "annotations": dict(annotations or {})},
        "spec": spec,
    }


def review_request(
    obj: dict[str, Any] | None,
    *,
    namespace: str = "shop",
    operation: str = "CREATE",
    kind: str = "Pod",
    api_version: str = "admission.k8s.io/v1",
    uid: str = "3f0c8d8e-7c1e-4a8e-9a57-0b5c1e4b9d11",
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "" if kind == "Pod" else "apps", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
        "operation": operation,
        "namespace": namespace,
    }
    if obj is not None:
        request["object"] = obj
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def review(pod: dict[str, Any], settings: Settings = SETTINGS, **request: Any) -> ReviewOutcome:
    return Reviewer(settings).review(review_request(pod, **request))


def patch_of(outcome: ReviewOutcome) -> list[dict[str, Any]]:
    encoded = outcome.review["response"].get("patch")
    return json.loads(base64.b64decode(encoded)) if encoded else []


def mutated(pod: dict[str, Any], settings: Settings = SETTINGS, **request: Any) -> dict[str, Any]:
    """The pod after the webhook's patch; fails the test if the pod was not injected."""
    outcome = review(pod, settings, **request)
    response = outcome.review["response"]
    assert response["allowed"], response.get("status")
    assert outcome.result == "injected", outcome.detail
    result: dict[str, Any] = jsonpatch.apply_patch(pod, patch_of(outcome))
    return result


def agent_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [
        container
        for container in spec.get("initContainers", []) + spec["containers"]
        if container["name"] in AGENT_CONTAINER_NAMES
    ]


def agent_config_of(container: dict[str, Any]) -> dict[str, Any]:
    """The agent's configuration as the agent reads it (defaults filled in), as JSON values."""
    env = {item["name"]: item for item in container["env"]}
    config = AgentConfig.from_json(env["VSI_AGENT_CONFIG"]["value"])
    document: dict[str, Any] = json.loads(json.dumps(config.to_dict()))
    return document


def mount_paths(container: dict[str, Any]) -> dict[str, str]:
    return {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}


def container_named(pod: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod["spec"]
    for container in spec.get("initContainers", []) + spec["containers"]:
        if container["name"] == name:
            return dict(container)
    raise AssertionError(f"no container {name}")


def agent_problems(pod: dict[str, Any]) -> list[str]:
    """Schema problems of the whole pod, and restricted violations of the agent containers: the
    injected containers must pass "restricted" even when the app containers do not."""
    problems = schema_problems(pod)
    agents_only = {
        "securityContext": {},
        "containers": [c for c in pod["spec"]["containers"] if c["name"] in AGENT_CONTAINER_NAMES],
        "initContainers": [
            c for c in pod["spec"].get("initContainers", []) if c["name"] in AGENT_CONTAINER_NAMES
        ],
        "volumes": [v for v in pod["spec"].get("volumes", []) if is_our_volume(v["name"])],
    }
    problems += restricted_violations(agents_only)
    return problems
