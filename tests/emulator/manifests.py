"""Small builders for the pods the emulator's tests run; containers are tiny Python scripts."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

TOOL_IMAGE = "registry.example/tool:1.0"


def python(script: str) -> list[str]:
    """A ``command:`` running ``script`` with the image's python."""
    return ["python", "-c", textwrap.dedent(script).strip()]


def container(
    name: str,
    script: str,
    *,
    mounts: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> dict[str, Any]:
    built: dict[str, Any] = {"name": name, "image": TOOL_IMAGE, "command": python(script)}
    if mounts:
        built["volumeMounts"] = list(mounts)
    built.update(fields)
    return built


def mount(volume: str, path: str, **fields: Any) -> dict[str, Any]:
    return {"name": volume, "mountPath": path, **fields}


def memory_volume(name: str, size: str | None = None) -> dict[str, Any]:
    empty_dir: dict[str, Any] = {"medium": "Memory"}
    if size is not None:
        empty_dir["sizeLimit"] = size
    return {"name": name, "emptyDir": empty_dir}


def exec_probe(script: str, **timing: Any) -> dict[str, Any]:
    return {"exec": {"command": python(script)}, **timing}


def pod(
    name: str,
    containers: Sequence[dict[str, Any]],
    *,
    init_containers: Sequence[dict[str, Any]] = (),
    volumes: Sequence[dict[str, Any]] = (),
    namespace: str = "shop",
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": list(containers), **spec}
    if init_containers:
        body["initContainers"] = list(init_containers)
    if volumes:
        body["volumes"] = list(volumes)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-of-{name}"},
        "spec": body,
    }


# A container that runs until SIGTERM, announcing what happened on its log.
SLEEPER = """
    import signal, sys, time
    def stop(*_):
        print("TERM", time.monotonic(), flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print("up", flush=True)
    while True:
        time.sleep(0.05)
"""
