"""The pod manifest as typed, validated values: what the emulator runs.

``parse_pod`` reads a Pod dict (as a mutating webhook returned it) into frozen dataclasses and
collects every problem the API server would reject, or the emulator cannot run, into one
``InvalidPod``. Defaults are the API server's (restartPolicy Always, a 30 second grace period,
serviceAccountName ``default``, probe timings).
"""

from __future__ import annotations

import enum
import posixpath
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.emulator.quantity import InvalidQuantity, parse_quantity

DEFAULT_GRACE_PERIOD_SECONDS = 30
DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600
MIN_TOKEN_EXPIRATION_SECONDS = 600
DEFAULT_FILE_MODE = 0o644
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUPPORTED_VOLUME_TYPES = ("emptyDir", "configMap", "secret", "downwardAPI", "projected")


class InvalidPod(ValueError):
    """The API server would reject the pod, or the emulator cannot run it. Lists every problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid pod:\n" + "\n".join(f"  - {problem}" for problem in problems))
        self.problems = list(problems)


class ContainerKind(enum.Enum):
    INIT = "init container"
    SIDECAR = "native sidecar"  # an init container with restartPolicy: Always
    APP = "container"


class RestartPolicy(enum.Enum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


# Actions (probes and lifecycle hooks) -----------------------------------------------------------


@dataclass(frozen=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True)
class HttpGetAction:
    port: int | str
    path: str = "/"
    host: str = "127.0.0.1"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TcpSocketAction:
    port: int | str
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class SleepAction:
    seconds: int


Action = ExecAction | HttpGetAction | TcpSocketAction | SleepAction


@dataclass(frozen=True)
class ProbeSpec:
    action: Action
    initial_delay_seconds: float = 0
    period_seconds: float = 10
    timeout_seconds: float = 1
    failure_threshold: int = 3
    success_threshold: int = 1


# Volumes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyToPath:
    key: str
    path: str
    mode: int | None = None


@dataclass(frozen=True)
class EmptyDirSource:
    memory: bool
    size_limit_bytes: int | None


@dataclass(frozen=True)
class ConfigMapSource:
    name: str
    items: tuple[KeyToPath, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class SecretSource:
    name: str
    items: tuple[KeyToPath, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class DownwardApiItem:
    path: str
    field_path: str
    mode: int | None = None


@dataclass(frozen=True)
class DownwardApiSource:
    items: tuple[DownwardApiItem, ...]


@dataclass(frozen=True)
class ServiceAccountTokenSource:
    path: str
    audience: str | None
    expiration_seconds: int


ProjectionSource = ConfigMapSource | SecretSource | DownwardApiSource | ServiceAccountTokenSource


@dataclass(frozen=True)
class FilesSource:
    """A volume the kubelet fills with files (configMap, secret, downwardAPI, projected)."""

    sources: tuple[ProjectionSource, ...]
    default_mode: int = DEFAULT_FILE_MODE


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    source: EmptyDirSource | FilesSource
    # secret, downwardAPI and projected volumes are tmpfs-backed on a kubelet; configMap is not.
    memory_backed: bool = False


# Containers and pod -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeMountSpec:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""
    sub_path_expr: str = ""


@dataclass(frozen=True)
class ContainerSecurity:
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool = False
    allow_privilege_escalation: bool | None = None


@dataclass(frozen=True)
class PodSecurity:
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    kind: ContainerKind
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    working_dir: str | None = None
    env: tuple[Mapping[str, Any], ...] = ()
    env_from: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[VolumeMountSpec, ...] = ()
    ports: Mapping[str, int] = field(default_factory=dict)
    startup_probe: ProbeSpec | None = None
    readiness_probe: ProbeSpec | None = None
    liveness_probe: ProbeSpec | None = None
    post_start: Action | None = None
    pre_stop: Action | None = None
    security: ContainerSecurity = ContainerSecurity()


@dataclass(frozen=True)
class PodModel:
    name: str
    namespace: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    service_account: str
    restart_policy: RestartPolicy
    grace_period_seconds: float
    security: PodSecurity
    init_containers: tuple[ContainerSpec, ...]
    containers: tuple[ContainerSpec, ...]
    volumes: tuple[VolumeSpec, ...]

    @property
    def all_containers(self) -> tuple[ContainerSpec, ...]:
        return self.init_containers + self.containers

    def container(self, name: str) -> ContainerSpec:
        for container in self.all_containers:
            if container.name == name:
                return container
        raise KeyError(f"pod {self.name} has no container {name!r}")

    def volume(self, name: str) -> VolumeSpec:
        for volume in self.volumes:
            if volume.name == name:
                return volume
        raise KeyError(f"pod {self.name} has no volume {name!r}")


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def parse_pod(manifest: Mapping[str, Any]) -> PodModel:
    """The pod as typed values; raises ``InvalidPod`` listing every problem found."""
    problems = _Problems()
    if manifest.get("kind", "Pod") != "Pod":
        problems.add("kind", f"expected Pod, got {manifest.get('kind')!r}")
    metadata: Mapping[str, Any] = manifest.get("metadata") or {}
    spec: Mapping[str, Any] = manifest.get("spec") or {}
    name = str(metadata.get("name") or "")
    if not name and metadata.get("generateName"):
        name = f"{metadata['generateName']}{uuid.uuid4().hex[:5]}"
    if not name:
        problems.add("metadata.name", "Required value")
    volumes = tuple(
        volume
        for index, raw in enumerate(spec.get("volumes") or [])
        if (volume := _parse_volume(raw, f"spec.volumes[{index}]", problems)) is not None
    )
    init_containers = tuple(
        _parse_container(raw, f"spec.initContainers[{index}]", problems, init=True)
        for index, raw in enumerate(spec.get("initContainers") or [])
    )
    containers = tuple(
        _parse_container(raw, f"spec.containers[{index}]", problems, init=False)
        for index, raw in enumerate(spec.get("containers") or [])
    )
    if not containers:
        problems.add("spec.containers", "Required value")
    restart_policy_text = spec.get("restartPolicy", "Always")
    try:
        restart_policy = RestartPolicy(restart_policy_text)
    except ValueError:
        problems.add("spec.restartPolicy", f"unsupported value {restart_policy_text!r}")
        restart_policy = RestartPolicy.ALWAYS
    grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD_SECONDS)
    if not isinstance(grace, int) or grace < 0:
        problems.add("spec.terminationGracePeriodSeconds", "must be a non-negative integer")
        grace = DEFAULT_GRACE_PERIOD_SECONDS
    pod = PodModel(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        uid=str(metadata.get("uid") or uuid.uuid4()),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        service_account=str(spec.get("serviceAccountName") or "default"),
        restart_policy=restart_policy,
        grace_period_seconds=float(grace),
        security=_parse_pod_security(spec.get("securityContext") or {}),
        init_containers=init_containers,
        containers=containers,
        volumes=volumes,
    )
    _check_references(pod, problems)
    if problems.items:
        raise InvalidPod(problems.items)
    return pod


def _check_references(pod: PodModel, problems: _Problems) -> None:
    volume_names = [volume.name for volume in pod.volumes]
    for duplicate in sorted({n for n in volume_names if volume_names.count(n) > 1}):
        problems.add("spec.volumes", f"duplicate volume name {duplicate!r}")
    container_names = [container.name for container in pod.all_containers]
    for duplicate in sorted({n for n in container_names if container_names.count(n) > 1}):
        problems.add("spec", f"duplicate container name {duplicate!r}")
    for container in pod.all_containers:
        where = f"container {container.name!r}"
        paths = [mount.mount_path for mount in container.volume_mounts]
        for duplicate in sorted({p for p in paths if paths.count(p) > 1}):
            problems.add(where, f"mountPath {duplicate!r} must be unique")
        for mount in container.volume_mounts:
            if mount.name not in volume_names:
                problems.add(where, f"volumeMount {mount.name!r} names no volume of the pod")


def _parse_pod_security(raw: Mapping[str, Any]) -> PodSecurity:
    return PodSecurity(
        run_as_user=raw.get("runAsUser"),
        run_as_group=raw.get("runAsGroup"),
        run_as_non_root=raw.get("runAsNonRoot"),
        fs_group=raw.get("fsGroup"),
        supplemental_groups=tuple(raw.get("supplementalGroups") or ()),
    )


def _parse_container(
    raw: Mapping[str, Any], where: str, problems: _Problems, *, init: bool
) -> ContainerSpec:
    name = str(raw.get("name") or "")
    if not _DNS_LABEL.match(name):
        problems.add(f"{where}.name", f"{name!r} is not a DNS-1123 label")
    image = str(raw.get("image") or "")
    if not image:
        problems.add(f"{where}.image", "Required value")
    restart_policy = raw.get("restartPolicy")
    if init:
        if restart_policy not in (None, "Always"):
            problems.add(f"{where}.restartPolicy", "only 'Always' is allowed")
        kind = ContainerKind.SIDECAR if restart_policy == "Always" else ContainerKind.INIT
    else:
        if restart_policy is not None:
            problems.add(f"{where}.restartPolicy", "may only be set on init containers")
        kind = ContainerKind.APP
    probes = {
        key: _parse_probe(raw[key], f"{where}.{key}", problems)
        for key in ("startupProbe", "readinessProbe", "livenessProbe")
        if raw.get(key) is not None
    }
    lifecycle: Mapping[str, Any] = raw.get("lifecycle") or {}
    if kind is ContainerKind.INIT:
        for key in (*probes, *(f"lifecycle.{hook}" for hook in lifecycle)):
            problems.add(f"{where}.{key}", "may not be set for init containers")
    mounts = tuple(
        _parse_mount(mount, f"{where}.volumeMounts[{index}]", problems)
        for index, mount in enumerate(raw.get("volumeMounts") or [])
    )
    ports = {
        str(port["name"]): int(port["containerPort"])
        for port in raw.get("ports") or []
        if port.get("name")
    }
    security: Mapping[str, Any] = raw.get("securityContext") or {}
    for field_name in ("privileged", "procMount"):
        if security.get(field_name):
            problems.add(f"{where}.securityContext.{field_name}", "the emulator cannot honour it")
    return ContainerSpec(
        name=name,
        image=image,
        kind=kind,
        command=_strings(raw.get("command")),
        args=_strings(raw.get("args")),
        working_dir=raw.get("workingDir") or None,
        env=tuple(raw.get("env") or ()),
        env_from=tuple(raw.get("envFrom") or ()),
        volume_mounts=mounts,
        ports=ports,
        startup_probe=probes.get("startupProbe"),
        readiness_probe=probes.get("readinessProbe"),
        liveness_probe=probes.get("livenessProbe"),
        post_start=_parse_hook(lifecycle.get("postStart"), f"{where}.postStart", problems),
        pre_stop=_parse_hook(lifecycle.get("preStop"), f"{where}.preStop", problems),
        security=ContainerSecurity(
            run_as_user=security.get("runAsUser"),
            run_as_group=security.get("runAsGroup"),
            run_as_non_root=security.get("runAsNonRoot"),
            read_only_root_filesystem=bool(security.get("readOnlyRootFilesystem")),
            allow_privilege_escalation=security.get("allowPrivilegeEscalation"),
        ),
    )


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(str(item) for item in value)


def _parse_mount(raw: Mapping[str, Any], where: str, problems: _Problems) -> VolumeMountSpec:
    mount_path = str(raw.get("mountPath") or "")
    if not mount_path.startswith("/"):
        problems.add(f"{where}.mountPath", f"{mount_path!r} must be an absolute path")
    sub_path = str(raw.get("subPath") or "")
    sub_path_expr = str(raw.get("subPathExpr") or "")
    if sub_path and sub_path_expr:
        problems.add(where, "subPath and subPathExpr are mutually exclusive")
    for value, key in ((sub_path, "subPath"), (sub_path_expr, "subPathExpr")):
        if value and not _is_relative_inside(value):
            problems.add(f"{where}.{key}", f"{value!r} must be relative and may not contain '..'")
    if raw.get("mountPropagation") not in (None, "None"):
        problems.add(f"{where}.mountPropagation", "the emulator supports only None")
    return VolumeMountSpec(
        name=str(raw.get("name") or ""),
        mount_path=posixpath.normpath(mount_path) if mount_path else mount_path,
        read_only=bool(raw.get("readOnly")),
        sub_path=sub_path,
        sub_path_expr=sub_path_expr,
    )


def _is_relative_inside(path: str) -> bool:
    return not path.startswith("/") and ".." not in path.split("/")


def _parse_action(raw: Mapping[str, Any], where: str, problems: _Problems) -> Action | None:
    if "exec" in raw:
        command = _strings((raw["exec"] or {}).get("command")) or ()
        if not command:
            problems.add(f"{where}.exec.command", "Required value")
        return ExecAction(command=command)
    if "httpGet" in raw:
        http: Mapping[str, Any] = raw["httpGet"]
        if str(http.get("scheme", "HTTP")).upper() != "HTTP":
            problems.add(f"{where}.httpGet.scheme", "the emulator probes only plain HTTP")
        return HttpGetAction(
            port=http.get("port", 80),
            path=str(http.get("path") or "/"),
            host=str(http.get("host") or "127.0.0.1"),
            headers=tuple(
                (str(header["name"]), str(header["value"]))
                for header in http.get("httpHeaders") or []
            ),
        )
    if "tcpSocket" in raw:
        tcp: Mapping[str, Any] = raw["tcpSocket"]
        return TcpSocketAction(port=tcp.get("port", 0), host=str(tcp.get("host") or "127.0.0.1"))
    if "sleep" in raw:
        return SleepAction(seconds=int(raw["sleep"].get("seconds", 0)))
    problems.add(where, "needs exactly one of exec, httpGet, tcpSocket, sleep (grpc unsupported)")
    return None


def _parse_probe(raw: Mapping[str, Any], where: str, problems: _Problems) -> ProbeSpec | None:
    action = _parse_action(raw, where, problems)
    if action is None:
        return None
    if isinstance(action, SleepAction):
        problems.add(where, "sleep is a lifecycle hook action, not a probe")
        return None
    probe = ProbeSpec(
        action=action,
        initial_delay_seconds=float(raw.get("initialDelaySeconds", 0)),
        period_seconds=float(raw.get("periodSeconds", 10)),
        timeout_seconds=float(raw.get("timeoutSeconds", 1)),
        failure_threshold=int(raw.get("failureThreshold", 3)),
        success_threshold=int(raw.get("successThreshold", 1)),
    )
    if probe.period_seconds < 1 or probe.timeout_seconds < 1 or probe.failure_threshold < 1:
        problems.add(where, "periodSeconds, timeoutSeconds and failureThreshold must be >= 1")
    return probe


def _parse_hook(raw: Mapping[str, Any] | None, where: str, problems: _Problems) -> Action | None:
    if raw is None:
        return None
    action = _parse_action(raw, where, problems)
    if isinstance(action, TcpSocketAction):
        problems.add(where, "tcpSocket is not a lifecycle hook action")
        return None
    return action


def _parse_volume(raw: Mapping[str, Any], where: str, problems: _Problems) -> VolumeSpec | None:
    name = str(raw.get("name") or "")
    if not _DNS_LABEL.match(name):
        problems.add(f"{where}.name", f"{name!r} is not a DNS-1123 label")
    types = [key for key in raw if key != "name"]
    if len(types) != 1 or types[0] not in _SUPPORTED_VOLUME_TYPES:
        problems.add(
            where, f"volume type {types} unsupported; the emulator runs {_SUPPORTED_VOLUME_TYPES}"
        )
        return None
    kind = types[0]
    body: Mapping[str, Any] = raw[kind] or {}
    if kind == "emptyDir":
        size: int | None = None
        if body.get("sizeLimit") is not None:
            try:
                size = parse_quantity(body["sizeLimit"])
            except InvalidQuantity as error:
                problems.add(f"{where}.emptyDir.sizeLimit", str(error))
        medium = body.get("medium", "")
        if medium not in ("", "Memory"):
            problems.add(f"{where}.emptyDir.medium", f"unsupported medium {medium!r}")
        return VolumeSpec(name, EmptyDirSource(memory=medium == "Memory", size_limit_bytes=size))
    default_mode = int(body.get("defaultMode", DEFAULT_FILE_MODE))
    if kind == "projected":
        sources = tuple(
            source
            for index, item in enumerate(body.get("sources") or [])
            if (source := _parse_projection(item, f"{where}.projected.sources[{index}]", problems))
        )
        return VolumeSpec(name, FilesSource(sources, default_mode), memory_backed=True)
    if kind == "configMap":
        config_map = _parse_config_map(body, f"{where}.configMap", problems)
        return VolumeSpec(name, FilesSource((config_map,), default_mode))
    if kind == "secret":
        secret = _parse_secret(body, f"{where}.secret", problems, name_key="secretName")
        return VolumeSpec(name, FilesSource((secret,), default_mode), memory_backed=True)
    downward_api = _parse_downward_api(body, f"{where}.downwardAPI", problems)
    return VolumeSpec(name, FilesSource((downward_api,), default_mode), memory_backed=True)


def _parse_items(
    raw: Sequence[Mapping[str, Any]], where: str, problems: _Problems
) -> tuple[KeyToPath, ...]:
    items = []
    for index, item in enumerate(raw):
        path = str(item.get("path") or "")
        if not path or not _is_relative_inside(path):
            problems.add(f"{where}.items[{index}].path", f"{path!r} must be relative, no '..'")
        items.append(KeyToPath(key=str(item.get("key") or ""), path=path, mode=item.get("mode")))
    return tuple(items)


def _parse_config_map(raw: Mapping[str, Any], where: str, problems: _Problems) -> ConfigMapSource:
    return ConfigMapSource(
        name=str(raw.get("name") or ""),
        items=_parse_items(raw.get("items") or [], where, problems),
        optional=bool(raw.get("optional")),
    )


def _parse_secret(
    raw: Mapping[str, Any], where: str, problems: _Problems, *, name_key: str
) -> SecretSource:
    return SecretSource(
        name=str(raw.get(name_key) or ""),
        items=_parse_items(raw.get("items") or [], where, problems),
        optional=bool(raw.get("optional")),
    )


def _parse_downward_api(
    raw: Mapping[str, Any], where: str, problems: _Problems
) -> DownwardApiSource:
    items = []
    for index, item in enumerate(raw.get("items") or []):
        field_ref = item.get("fieldRef")
        if not field_ref:
            problems.add(f"{where}.items[{index}]", "only fieldRef is supported")
            continue
        items.append(
            DownwardApiItem(
                path=str(item.get("path") or ""),
                field_path=str(field_ref.get("fieldPath") or ""),
                mode=item.get("mode"),
            )
        )
    return DownwardApiSource(items=tuple(items))


def _parse_projection(
    raw: Mapping[str, Any], where: str, problems: _Problems
) -> ProjectionSource | None:
    if "serviceAccountToken" in raw:
        token: Mapping[str, Any] = raw["serviceAccountToken"]
        expiration = int(token.get("expirationSeconds", DEFAULT_TOKEN_EXPIRATION_SECONDS))
        if expiration < MIN_TOKEN_EXPIRATION_SECONDS:
            problems.add(
                f"{where}.serviceAccountToken.expirationSeconds",
                f"may not be less than {MIN_TOKEN_EXPIRATION_SECONDS} seconds",
            )
        path = str(token.get("path") or "")
        if not path or not _is_relative_inside(path):
            problems.add(f"{where}.serviceAccountToken.path", f"{path!r} must be relative")
        return ServiceAccountTokenSource(
            path=path, audience=token.get("audience") or None, expiration_seconds=expiration
        )
    if "configMap" in raw:
        return _parse_config_map(raw["configMap"], f"{where}.configMap", problems)
    if "secret" in raw:
        return _parse_secret(raw["secret"], f"{where}.secret", problems, name_key="name")
    if "downwardAPI" in raw:
        return _parse_downward_api(raw["downwardAPI"], f"{where}.downwardAPI", problems)
    problems.add(where, f"unsupported projection {sorted(raw)}")
    return None
