"""Downward API field paths (``fieldRef.fieldPath``) resolved against the emulated pod."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tests.support.emulator.manifest import PodModel

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class UnsupportedField(ValueError):
    pass


@dataclass(frozen=True)
class NodeFacts:
    """What the node knows and a pod can ask for: its IP, the node's name and IP."""

    pod_ip: str = "127.0.0.1"
    node_name: str = "emulated-node"
    host_ip: str = "127.0.0.1"


def _format_map(values: Mapping[str, str]) -> str:
    # The kubelet writes one key="value" per line, sorted, values quoted like Go's %q.
    return "\n".join(f"{key}={json.dumps(values[key])}" for key in sorted(values))


def resolve_field(pod: PodModel, field_path: str, node: NodeFacts) -> str:
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.serviceAccountName": pod.service_account,
        "spec.nodeName": node.node_name,
        "status.podIP": node.pod_ip,
        "status.podIPs": node.pod_ip,
        "status.hostIP": node.host_ip,
        "status.hostIPs": node.host_ip,
    }
    if field_path in simple:
        return simple[field_path]
    if field_path == "metadata.labels":
        return _format_map(pod.labels)
    if field_path == "metadata.annotations":
        return _format_map(pod.annotations)
    subscript = _SUBSCRIPT.match(field_path)
    if subscript:
        source = pod.labels if subscript.group(1) == "labels" else pod.annotations
        return source.get(subscript.group(2), "")
    raise UnsupportedField(f"field path {field_path!r} is not supported")
