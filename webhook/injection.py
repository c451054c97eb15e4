"""Whether to inject (with the reason), and the injection itself: pod + spec -> mutated copy.

Pure: no I/O. The original pod is never modified; the caller diffs original against the copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from webhook.annotations import (
    AGENT_INJECT,
    AGENT_INJECT_STATUS,
    PREFIX,
    InjectionSpec,
)
from webhook.containers import (
    AGENT_CONTAINER_NAMES,
    ContainerPatchError,
    agent_container,
    is_our_volume,
    pod_volumes,
    secret_mounts,
)
from webhook.values import BOOLEAN_HINT, BOOLEAN_PADDING, parse_bool

STATUS_INJECTED = "injected"

Verdict = Literal["inject", "skip", "refuse"]


class Decision:
    """Plain class, not a frozen dataclass, like the spec's classes (see webhook.annotations)."""

    def __init__(self, verdict: Verdict, reason: str, warn: bool = False) -> None:
        self.verdict: Final = verdict
        self.reason: Final = reason
        # Worth telling the pod author (kubectl prints admission warnings): silent non-injection.
        self.warn: Final = warn


class InjectionError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# The pod is decoded JSON: its objects are dicts (a cheaper check than Mapping's ABC).
def should_inject(pod: Mapping[str, Any]) -> Decision:
    """vault-k8s's rules: opt-in annotation, not yet injected, pod not already running."""
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        annotations = {}
    raw = annotations.get(AGENT_INJECT)
    if raw is None:
        if any(isinstance(key, str) and key.startswith(PREFIX) for key in annotations):
            return Decision(
                "skip",
                f"nothing injected: {AGENT_INJECT} is not set, so the other {PREFIX}* "
                "annotations are ignored",
                warn=True,
            )
        return Decision("skip", f"no {AGENT_INJECT} annotation")
    try:
        wanted = parse_bool(str(raw).strip(BOOLEAN_PADDING))
    except ValueError:
        return Decision("refuse", f"{AGENT_INJECT}: expected {BOOLEAN_HINT}, got {str(raw)[:40]!r}")
    if not wanted:
        return Decision("skip", f"{AGENT_INJECT} is false")
    if str(annotations.get(AGENT_INJECT_STATUS, "")).strip() == STATUS_INJECTED:
        return Decision("skip", "already injected")
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    if phase not in (None, "", "Pending"):
        return Decision("skip", f"pod phase is {phase}")
    return Decision("inject", "requested")


def structure_problems(pod: Mapping[str, Any]) -> list[str]:
    """Shapes the injection relies on; the API server validates the rest after admission."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return ["spec: expected an object"]
    problems = []
    for field in ("containers", "initContainers", "volumes"):
        items = spec.get(field)
        if items is None and field != "containers":
            continue
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            problems.append(f"spec.{field}: expected a list of objects")
            continue
        for item in items:
            if not isinstance(item.get("name"), str):
                problems.append(f"spec.{field}: every item needs a name")
                break
            mounts = item.get("volumeMounts")
            if mounts is not None and (
                not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts)
            ):
                problems.append(f"spec.{field}[{item['name']}].volumeMounts: expected a list")
                break
    metadata = pod.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append("metadata: expected an object")
    elif isinstance(metadata, dict) and not isinstance(metadata.get("annotations", {}), dict):
        problems.append("metadata.annotations: expected an object")
    return problems


def _strip_previous_injection(spec: dict[str, Any]) -> None:
    """For agent-inject-status: update, so a second injection does not stack on the first.
    Replaces lists and containers instead of changing them: they are shared with the original."""
    for field in ("containers", "initContainers"):
        if field in spec:
            kept = []
            for original in spec[field]:
                if original.get("name") in AGENT_CONTAINER_NAMES:
                    continue
                container = original
                if "volumeMounts" in original:
                    container = {
                        **original,
                        "volumeMounts": [
                            mount
                            for mount in original["volumeMounts"]
                            if not is_our_volume(str(mount.get("name", "")))
                        ],
                    }
                kept.append(container)
            spec[field] = kept
    if "volumes" in spec:
        spec["volumes"] = [
            volume for volume in spec["volumes"] if not is_our_volume(str(volume.get("name")))
        ]


def _conflicts(pod_spec: Mapping[str, Any], new_volumes: list[dict[str, Any]]) -> list[str]:
    problems = []
    existing = {volume.get("name") for volume in pod_spec.get("volumes") or []}
    for volume in new_volumes:
        if volume["name"] in existing:
            problems.append(
                f"spec.volumes: the pod already has a volume named {volume['name']}, "
                "which the injection needs"
            )
    for field in ("containers", "initContainers"):
        for container in pod_spec.get(field) or []:
            if container.get("name") in AGENT_CONTAINER_NAMES:
                problems.append(
                    f"spec.{field}: the pod already has a container named {container['name']}"
                )
    return problems


def inject(pod: Mapping[str, Any], spec: InjectionSpec) -> dict[str, Any]:
    """A mutated copy of ``pod``; raises InjectionError with every problem found.

    The copy shares every subtree it does not change with ``pod`` (copying only along the paths
    it changes), which keeps the admission fast and lets the diff skip untouched parts by
    identity. Neither the pod nor the copy may be modified afterwards."""
    problems = structure_problems(pod)
    if problems:
        raise InjectionError(problems)
    mutated = dict(pod)
    pod_spec: dict[str, Any] = dict(pod["spec"])
    mutated["spec"] = pod_spec
    if spec.reinject:
        _strip_previous_injection(pod_spec)
    volumes = pod_volumes(spec)
    if spec.token_volume.projected is None and not any(
        volume.get("name") == spec.token_volume.volume_name
        for volume in pod_spec.get("volumes") or []
    ):
        # The pod's own token mount names a volume the ServiceAccount plugin has not added yet.
        problems.append(
            f"spec.volumes: no volume {spec.token_volume.volume_name} for the ServiceAccount "
            f"token mounted at {spec.token_volume.mount_path}"
        )
    problems += _conflicts(pod_spec, volumes)
    if problems:
        raise InjectionError(problems)

    all_containers = list(pod_spec.get("containers") or []) + list(
        pod_spec.get("initContainers") or []
    )
    copied_mounts: list[Mapping[str, Any]] = []
    if spec.copy_volume_mounts_from is not None:
        source = next(c for c in all_containers if c.get("name") == spec.copy_volume_mounts_from)
        copied_mounts = list(source.get("volumeMounts") or [])

    targets = set(spec.target_containers)
    for field in ("containers", "initContainers"):
        if field in pod_spec:
            pod_spec[field] = [
                {
                    **container,
                    "volumeMounts": [
                        *(container.get("volumeMounts") or []),
                        *secret_mounts(spec, read_only=True),
                    ],
                }
                if container.get("name") in targets
                else container
                for container in pod_spec[field]
            ]

    first = None
    sidecar = None
    # Serialized once: the init container and the sidecar carry the same configuration.
    document = spec.agent_config.to_json() if spec.agent_config is not None else None
    try:
        if spec.mode == "native-sidecar":
            first = agent_container(
                spec, "native", copied_mounts=copied_mounts, config_document=document
            )
        elif spec.mode != "sidecar-only":
            first = agent_container(
                spec, "init", copied_mounts=copied_mounts, config_document=document
            )
    except ContainerPatchError as error:
        patch_key = "agent-init-json-patch" if spec.mode != "native-sidecar" else "agent-json-patch"
        problems.append(f"{PREFIX}{patch_key}: {error}")
    try:
        if spec.mode in ("init-and-sidecar", "sidecar-only"):
            sidecar = agent_container(
                spec, "sidecar", copied_mounts=copied_mounts, config_document=document
            )
    except ContainerPatchError as error:
        problems.append(f"{PREFIX}agent-json-patch: {error}")
    if problems:
        raise InjectionError(problems)

    init_containers = list(pod_spec.get("initContainers") or [])
    if first is not None:
        if spec.init_first:
            init_containers.insert(0, first)
        else:
            init_containers.append(first)
        pod_spec["initContainers"] = init_containers
    if sidecar is not None:
        pod_spec["containers"] = [*pod_spec["containers"], sidecar]
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), *volumes]
    if spec.share_process_namespace is not None:
        pod_spec["shareProcessNamespace"] = spec.share_process_namespace

    metadata = dict(mutated.get("metadata") or {})
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        AGENT_INJECT_STATUS: STATUS_INJECTED,
    }
    mutated["metadata"] = metadata
    return mutated
