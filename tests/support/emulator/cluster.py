"""The API objects a pod refers to, as the caller supplies them: ConfigMaps and Secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.support.emulator.serviceaccount import (
    ROOT_CA_CONFIG_MAP,
    ROOT_CA_KEY,
    cluster_root_ca_pem,
)

ObjectData = Mapping[str, str | bytes]


@dataclass(frozen=True)
class ClusterObjects:
    """ConfigMaps and Secrets of the pod's namespace, by name; values as plain (decoded) data.

    ``kube-root-ca.crt`` exists in every namespace of a cluster (the root CA publisher creates
    it), so it is provided with a generated CA when the caller does not give one.
    """

    config_maps: Mapping[str, ObjectData] = field(default_factory=dict)
    secrets: Mapping[str, ObjectData] = field(default_factory=dict)

    def config_map(self, name: str) -> ObjectData | None:
        if name in self.config_maps:
            return self.config_maps[name]
        if name == ROOT_CA_CONFIG_MAP:
            return {ROOT_CA_KEY: cluster_root_ca_pem()}
        return None

    def secret(self, name: str) -> ObjectData | None:
        return self.secrets.get(name)


def as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
