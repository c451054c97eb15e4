"""The pod's volumes: where each lives, how it is backed, and what files the kubelet writes in it.

Every volume is a directory ``<workdir>/volumes/<name>``. Memory-backed ones (emptyDir with medium
Memory, and secret, downwardAPI and projected volumes, which a kubelet backs with tmpfs too) get a
tmpfs mounted there inside the pod sandbox's mount namespace, never on the host; the host reaches
their content through ``/proc/<sandbox pid>/root``. ``PodVolumes`` fills the file volumes
(ConfigMap and Secret data, downward API fields, ServiceAccount tokens) with the kubelet's atomic
writer and rewrites them when a token is due for refresh.
"""

from __future__ import annotations

import enum
import logging
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.emulator.atomic_writer import FileContent, write_payload
from tests.support.emulator.cluster import ClusterObjects, as_bytes
from tests.support.emulator.fields import NodeFacts, UnsupportedField, resolve_field
from tests.support.emulator.manifest import (
    ConfigMapSource,
    DownwardApiSource,
    EmptyDirSource,
    FilesSource,
    KeyToPath,
    PodModel,
    SecretSource,
    ServiceAccountTokenSource,
    VolumeSpec,
)
from tests.support.emulator.tokens import ServiceAccountTokens

logger = logging.getLogger(__name__)

HostView = Callable[[str], Path]  # a path in the sandbox's namespace -> the same file from here


class VolumeBacking(enum.Enum):
    TMPFS = "tmpfs"
    DIRECTORY = "directory"


class VolumeSetupError(RuntimeError):
    """A volume cannot be set up (what a kubelet reports as FailedMount)."""


@dataclass(frozen=True)
class SandboxVolume:
    """What the sandbox must create for a volume."""

    name: str
    path: str
    tmpfs: bool
    size_bytes: int | None


class PodVolumes:
    def __init__(
        self,
        pod: PodModel,
        *,
        root: Path,
        cluster: ClusterObjects,
        tokens: ServiceAccountTokens | None,
        node: NodeFacts,
        use_tmpfs: bool,
    ) -> None:
        self._pod = pod
        self._root = root
        self._cluster = cluster
        self._tokens = tokens
        self._node = node
        self._use_tmpfs = use_tmpfs
        self._backings: dict[str, VolumeBacking] = {}

    def path(self, name: str) -> str:
        """The volume's directory, in the sandbox's mount namespace."""
        self._pod.volume(name)
        return str(self._root / name)

    def sandbox_plan(self) -> list[SandboxVolume]:
        plan = []
        for volume in self._pod.volumes:
            size = None
            memory = volume.memory_backed
            if isinstance(volume.source, EmptyDirSource):
                memory = volume.source.memory
                size = volume.source.size_limit_bytes if memory else None
            plan.append(
                SandboxVolume(
                    name=volume.name,
                    path=self.path(volume.name),
                    tmpfs=memory and self._use_tmpfs,
                    size_bytes=size,
                )
            )
        return plan

    def record_backings(self, backings: dict[str, str]) -> None:
        self._backings = {name: VolumeBacking(value) for name, value in backings.items()}

    def backing(self, name: str) -> VolumeBacking:
        self._pod.volume(name)
        return self._backings[name]

    def populate(self, view: HostView) -> None:
        """Set up every volume's permissions and files; raises ``VolumeSetupError``."""
        fs_group = self._pod.security.fs_group
        for volume in self._pod.volumes:
            directory = view(self.path(volume.name))
            if isinstance(volume.source, EmptyDirSource):
                # emptyDir is world-writable; fsGroup makes it group-owned and setgid, so files
                # created in it by any container belong to the pod's group.
                if fs_group is not None:
                    os.chown(directory, 0, fs_group)
                    os.chmod(directory, 0o2777)  # noqa: S103
                else:
                    os.chmod(directory, 0o777)  # noqa: S103
                continue
            os.chmod(directory, 0o1777)  # noqa: S103  # what the kubelet's tmpfs shows
            self._write_files(volume, directory)

    def refresh_tokens(self, view: HostView) -> None:
        """Rewrite the volumes holding a ServiceAccount token (the token manager decides when)."""
        for volume in self._pod.volumes:
            source = volume.source
            if isinstance(source, FilesSource) and any(
                isinstance(item, ServiceAccountTokenSource) for item in source.sources
            ):
                self._write_files(volume, view(self.path(volume.name)))

    def next_token_refresh_at(self) -> float | None:
        return self._tokens.next_refresh_at() if self._tokens is not None else None

    def subpath_source(self, view: HostView, name: str, sub_path: str) -> str:
        """The subPath's path in the sandbox namespace, created as a directory when missing."""
        base = self.path(name)
        if not sub_path:
            return base
        source = posixpath.join(base, sub_path)
        host_side = view(source)
        if not os.path.lexists(host_side):
            if not isinstance(self._pod.volume(name).source, EmptyDirSource):
                raise VolumeSetupError(f"subPath {sub_path!r} does not exist in volume {name!r}")
            host_side.mkdir(parents=True, mode=0o777)
        return source

    def _write_files(self, volume: VolumeSpec, directory: Path) -> None:
        assert isinstance(volume.source, FilesSource)
        payload: dict[str, FileContent] = {}
        default_mode = volume.source.default_mode
        for source in volume.source.sources:
            for path, content in self._files_of(source, default_mode, volume.name).items():
                if path in payload:
                    raise VolumeSetupError(f"volume {volume.name!r}: two sources write {path!r}")
                payload[path] = content
        write_payload(directory, payload, group=self._pod.security.fs_group)

    def _files_of(
        self,
        source: ConfigMapSource | SecretSource | DownwardApiSource | ServiceAccountTokenSource,
        default_mode: int,
        volume: str,
    ) -> dict[str, FileContent]:
        if isinstance(source, ServiceAccountTokenSource):
            if self._tokens is None:
                raise VolumeSetupError(
                    f"volume {volume!r} projects a ServiceAccount token but the emulator was "
                    "given no token_issuer"
                )
            token = self._tokens.token_for(source)
            return {source.path: FileContent(token.encode(), default_mode)}
        if isinstance(source, DownwardApiSource):
            fields = {}
            for field_item in source.items:
                try:
                    value = resolve_field(self._pod, field_item.field_path, self._node)
                except UnsupportedField as error:
                    raise VolumeSetupError(f"volume {volume!r}: {error}") from None
                fields[field_item.path] = FileContent(
                    value.encode(), field_item.mode or default_mode
                )
            return fields
        kind = "configmap" if isinstance(source, ConfigMapSource) else "secret"
        data = (
            self._cluster.config_map(source.name)
            if isinstance(source, ConfigMapSource)
            else self._cluster.secret(source.name)
        )
        if data is None:
            if source.optional:
                return {}
            raise VolumeSetupError(f'volume {volume!r}: {kind} "{source.name}" not found')
        items = source.items or tuple(KeyToPath(key=key, path=key) for key in sorted(data))
        files = {}
        for item in items:
            if item.key not in data:
                if source.optional:
                    continue
                raise VolumeSetupError(
                    f'volume {volume!r}: {kind} "{source.name}" has no key {item.key!r}'
                )
            files[item.path] = FileContent(as_bytes(data[item.key]), item.mode or default_mode)
        return files
