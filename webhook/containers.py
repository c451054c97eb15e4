"""Pure builders of the agent containers, volumes and mounts, as Kubernetes JSON dicts.

Key order inside every dict is fixed, so the same spec always yields the same bytes and patch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import jsonpatch

from agent.config import CONFIG_ENV, CONFIG_FILE_ENV, DEFAULT_STATE_DIR
from webhook.annotations import AGENT_CONFIG_FILE, InjectionSpec

INIT_CONTAINER_NAME = "vault-agent-init"
SIDECAR_CONTAINER_NAME = "vault-agent"
AGENT_CONTAINER_NAMES = (INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME)

STATE_VOLUME = "vault-agent-state"
CONFIG_VOLUME = "vault-config"
CONFIG_MOUNT_PATH = "/vault/configs"
EXTRA_SECRET_VOLUME = "extra-secrets"  # noqa: S105 - names, not secrets
EXTRA_SECRET_MOUNT_PATH = "/vault/custom"  # noqa: S105
TLS_SECRET_VOLUME = "vault-tls-secrets"  # noqa: S105
TLS_SECRET_MOUNT_PATH = "/vault/tls"  # noqa: S105
SECRETS_VOLUME_PREFIX = "vault-secrets"
# The token handoff from init to sidecar is a few kilobytes; the cap only stops runaway writes.
STATE_VOLUME_SIZE_LIMIT = "4Mi"
READY_COMMAND = ("python", "-m", "agent", "--mode", "ready")
STARTUP_PROBE_PERIOD_SECONDS = 1

AgentRole = Literal["init", "sidecar", "native"]


def is_our_volume(name: str) -> bool:
    return name.startswith(SECRETS_VOLUME_PREFIX) or name in (
        STATE_VOLUME,
        CONFIG_VOLUME,
        EXTRA_SECRET_VOLUME,
        TLS_SECRET_VOLUME,
        "vault-agent-token",
    )


def _memory_volume(name: str, size_limit: str) -> dict[str, Any]:
    empty_dir: dict[str, Any] = {"medium": "Memory"}
    if size_limit:
        empty_dir["sizeLimit"] = size_limit
    return {"name": name, "emptyDir": empty_dir}


def pod_volumes(spec: InjectionSpec) -> list[dict[str, Any]]:
    volumes = [_memory_volume(STATE_VOLUME, STATE_VOLUME_SIZE_LIMIT)]
    volumes += [
        _memory_volume(volume.volume_name, spec.secrets_volume_size_limit)
        for volume in spec.secret_volumes
    ]
    projected = spec.token_volume.projected
    if projected is not None:
        token_source: dict[str, Any] = {}
        if projected.audience:
            token_source["audience"] = projected.audience
        token_source["expirationSeconds"] = projected.expiration_seconds
        token_source["path"] = spec.token_volume.file_name
        volumes.append(
            {
                "name": spec.token_volume.volume_name,
                "projected": {"sources": [{"serviceAccountToken": token_source}]},
            }
        )
    if spec.configmap is not None:
        volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": spec.configmap}})
    if spec.extra_secret is not None:
        volumes.append({"name": EXTRA_SECRET_VOLUME, "secret": {"secretName": spec.extra_secret}})
    if spec.tls_secret is not None:
        volumes.append({"name": TLS_SECRET_VOLUME, "secret": {"secretName": spec.tls_secret}})
    return volumes


def secret_mounts(spec: InjectionSpec, *, read_only: bool) -> list[dict[str, Any]]:
    """Mounts of every secrets volume; apps read only, the agent writes."""
    return [
        {"name": volume.volume_name, "mountPath": volume.mount_path, "readOnly": read_only}
        for volume in spec.secret_volumes
    ]


def _agent_mounts(spec: InjectionSpec, copied: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": STATE_VOLUME, "mountPath": DEFAULT_STATE_DIR},
        *secret_mounts(spec, read_only=False),
        {
            "name": spec.token_volume.volume_name,
            "mountPath": spec.token_volume.mount_path,
            "readOnly": True,
        },
    ]
    if spec.configmap is not None:
        mounts.append({"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT_PATH, "readOnly": True})
    if spec.extra_secret is not None:
        mounts.append(
            {"name": EXTRA_SECRET_VOLUME, "mountPath": EXTRA_SECRET_MOUNT_PATH, "readOnly": True}
        )
    if spec.tls_secret is not None:
        mounts.append(
            {"name": TLS_SECRET_VOLUME, "mountPath": TLS_SECRET_MOUNT_PATH, "readOnly": True}
        )
    taken_paths = {mount["mountPath"] for mount in mounts}
    for mount in copied:
        path = str(mount.get("mountPath", ""))
        # vault-k8s skips ServiceAccount token mounts: the agent has its own.
        if "serviceaccount" in path.lower() or path in taken_paths:
            continue
        taken_paths.add(path)
        mounts.append(copy.deepcopy(dict(mount)))
    return mounts


def _environment(spec: InjectionSpec, config_document: str | None) -> list[dict[str, Any]]:
    if spec.agent_config is not None:
        document = config_document or spec.agent_config.to_json()
        config: dict[str, Any] = {"name": CONFIG_ENV, "value": document}
    else:
        config = {"name": CONFIG_FILE_ENV, "value": AGENT_CONFIG_FILE}
    return [
        config,
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "HOME", "value": DEFAULT_STATE_DIR},
    ]


def security_context(spec: InjectionSpec) -> dict[str, Any]:
    """Pod Security "restricted" whatever the app does; uid/gid only when asked (OpenShift
    assigns its own uid, which is why agent-set-security-context: false exists)."""
    context: dict[str, Any] = {}
    security = spec.security
    if security.set_security_context and security.run_as_user is not None:
        context["runAsUser"] = security.run_as_user
    if security.set_security_context and security.run_as_group is not None:
        context["runAsGroup"] = security.run_as_group
    context["runAsNonRoot"] = True
    context["allowPrivilegeEscalation"] = False
    context["capabilities"] = {"drop": ["ALL"]}
    context["readOnlyRootFilesystem"] = True
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context


def _resources(spec: InjectionSpec) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if spec.limits:
        resources["limits"] = dict(spec.limits)
    if spec.requests:
        resources["requests"] = dict(spec.requests)
    return resources


def agent_container(
    spec: InjectionSpec,
    role: AgentRole,
    *,
    copied_mounts: Iterable[Mapping[str, Any]] = (),
    config_document: str | None = None,
) -> dict[str, Any]:
    """The init container, the classic sidecar, or the native sidecar (an init container that
    keeps running: restartPolicy Always, with a startup probe that holds the app back until the
    first render is on disk)."""
    name = INIT_CONTAINER_NAME if role == "init" else SIDECAR_CONTAINER_NAME
    container: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "args": ["--mode", "init" if role == "init" else "sidecar"],
        "env": _environment(spec, config_document),
        "resources": _resources(spec),
        "volumeMounts": _agent_mounts(spec, copied_mounts),
        "securityContext": security_context(spec),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if role == "native":
        container["restartPolicy"] = "Always"
        if spec.wait_for_secrets:
            init_timeout = (
                spec.agent_config.lifecycle.init_timeout_seconds if spec.agent_config else 120.0
            )
            container["startupProbe"] = {
                "exec": {"command": list(READY_COMMAND)},
                "periodSeconds": STARTUP_PROBE_PERIOD_SECONDS,
                "failureThreshold": max(1, int(init_timeout // STARTUP_PROBE_PERIOD_SECONDS)),
                "timeoutSeconds": 5,
            }
    patch = spec.init_json_patch if role == "init" else spec.sidecar_json_patch
    if patch:
        container = apply_container_patch(container, patch)
    return container


class ContainerPatchError(ValueError):
    """agent-json-patch or agent-init-json-patch does not apply to the generated container."""


def apply_container_patch(
    container: dict[str, Any], operations: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    try:
        patched = jsonpatch.JsonPatch([dict(operation) for operation in operations]).apply(
            container
        )
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        TypeError,
        KeyError,
        IndexError,
        ValueError,
    ) as error:
        raise ContainerPatchError(str(error)) from None
    if not isinstance(patched, dict) or patched.get("name") != container["name"]:
        raise ContainerPatchError("the patch must keep the container and its name")
    return patched
