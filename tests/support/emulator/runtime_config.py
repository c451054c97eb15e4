"""What a container's process gets: argv, environment, identity, working directory.

This is the kubelet's ``makeEnvironmentVariables`` and ``generateContainerConfig`` plus the
runtime's image defaults: env from envFrom then env (each value expanded against the variables
defined before it), command/args over the image's ENTRYPOINT/CMD with ``$(VAR)`` expansion, uid and
gids from the container's securityContext over the pod's over the image's USER, fsGroup and
supplementalGroups as supplementary groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tests.support.emulator.cluster import ClusterObjects, as_bytes
from tests.support.emulator.expansion import expand
from tests.support.emulator.fields import NodeFacts, UnsupportedField, resolve_field
from tests.support.emulator.images import DEFAULT_PATH, Image, ImageTable
from tests.support.emulator.manifest import ContainerSpec, PodModel


class ContainerConfigError(RuntimeError):
    """The container cannot be created as specified (CreateContainerConfigError)."""


@dataclass(frozen=True)
class ProcessIdentity:
    uid: int
    gid: int
    groups: tuple[int, ...]
    no_new_privs: bool


@dataclass(frozen=True)
class ProcessConfig:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    identity: ProcessIdentity
    working_dir: str
    read_only_root: bool


def service_environment(kube_api_url: str | None) -> dict[str, str]:
    """The variables the kubelet adds for the ``kubernetes`` Service, pointing at ``url``."""
    if not kube_api_url:
        return {}
    host_port = kube_api_url.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
    }


def process_identity(pod: PodModel, container: ContainerSpec, image: Image) -> ProcessIdentity:
    own, shared = container.security, pod.security
    uid = next(v for v in (own.run_as_user, shared.run_as_user, image.user) if v is not None)
    gid = next(v for v in (own.run_as_group, shared.run_as_group, image.group) if v is not None)
    non_root = own.run_as_non_root if own.run_as_non_root is not None else shared.run_as_non_root
    if non_root and uid == 0:
        raise ContainerConfigError(
            f"container {container.name!r} has runAsNonRoot and image will run as root"
        )
    groups = list(shared.supplemental_groups)
    if shared.fs_group is not None:
        groups.append(shared.fs_group)
    return ProcessIdentity(
        uid=uid,
        gid=gid,
        groups=tuple(dict.fromkeys(groups)),
        no_new_privs=own.allow_privilege_escalation is False,
    )


def container_environment(
    pod: PodModel,
    container: ContainerSpec,
    *,
    cluster: ClusterObjects,
    node: NodeFacts,
    service_env: Mapping[str, str],
) -> dict[str, str]:
    """The variables Kubernetes defines for the container (image ENV not included)."""
    env: dict[str, str] = dict(service_env)
    for source in container.env_from:
        prefix = str(source.get("prefix") or "")
        reference = source.get("configMapRef") or source.get("secretRef") or {}
        is_config_map = "configMapRef" in source
        data = (cluster.config_map if is_config_map else cluster.secret)(str(reference["name"]))
        if data is None:
            if reference.get("optional"):
                continue
            kind = "configmap" if is_config_map else "secret"
            raise ContainerConfigError(f'{kind} "{reference["name"]}" not found')
        for key, value in data.items():
            env[prefix + key] = as_bytes(value).decode()
    for variable in container.env:
        name = str(variable["name"])
        if "valueFrom" in variable:
            env[name] = _value_from(pod, variable["valueFrom"], cluster=cluster, node=node)
        else:
            env[name] = expand(str(variable.get("value", "")), env)
    return env


def _value_from(
    pod: PodModel, source: Mapping[str, object], *, cluster: ClusterObjects, node: NodeFacts
) -> str:
    field_ref = source.get("fieldRef")
    if isinstance(field_ref, Mapping):
        try:
            return resolve_field(pod, str(field_ref.get("fieldPath")), node)
        except UnsupportedField as error:
            raise ContainerConfigError(str(error)) from None
    for key, kind, lookup in (
        ("configMapKeyRef", "configmap", cluster.config_map),
        ("secretKeyRef", "secret", cluster.secret),
    ):
        reference = source.get(key)
        if isinstance(reference, Mapping):
            data = lookup(str(reference.get("name")))
            value = None if data is None else data.get(str(reference.get("key")))
            if value is None:
                if reference.get("optional"):
                    return ""
                raise ContainerConfigError(
                    f'{kind} "{reference.get("name")}" has no key {reference.get("key")!r}'
                )
            return as_bytes(value).decode()
    raise ContainerConfigError(f"unsupported valueFrom {sorted(source)}")


def process_config(
    pod: PodModel,
    container: ContainerSpec,
    *,
    images: ImageTable,
    cluster: ClusterObjects,
    node: NodeFacts,
    service_env: Mapping[str, str],
) -> ProcessConfig:
    image = images.image(container.image)
    kube_env = container_environment(
        pod, container, cluster=cluster, node=node, service_env=service_env
    )
    if container.command is not None:
        argv = [*container.command, *(container.args or ())]
    else:
        argv = [*image.entrypoint, *(container.args if container.args is not None else image.cmd)]
    argv = [expand(item, kube_env) for item in argv]
    if not argv:
        raise ContainerConfigError(f"container {container.name!r}: no command specified")
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": pod.name, "HOME": "/"}
    env.update(image.env)
    env.update(kube_env)
    return ProcessConfig(
        argv=tuple(images.resolve_argv(argv)),
        env=env,
        identity=process_identity(pod, container, image),
        working_dir=container.working_dir or image.working_dir,
        read_only_root=container.security.read_only_root_filesystem,
    )
