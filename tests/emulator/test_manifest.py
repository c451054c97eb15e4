"""The emulator refuses pods the API server would reject, or that it cannot run, listing why."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.manifests import container, memory_volume, mount, pod
from tests.support.emulator import EmulatedPod, Image, ImageTable, InvalidPod, this_python
from tests.support.emulator.manifest import (
    ContainerKind,
    EmptyDirSource,
    RestartPolicy,
    parse_pod,
)


def _valid() -> dict[str, Any]:
    return pod(
        "valid",
        [container("app", "pass", mounts=[mount("data", "/data")])],
        init_containers=[
            container("agent", "pass", restartPolicy="Always"),
            container("init", "pass"),
        ],
        volumes=[memory_volume("data", size="1Mi")],
    )


def test_a_valid_pod_reads_into_typed_values() -> None:
    model = parse_pod(_valid())
    assert [(c.name, c.kind) for c in model.all_containers] == [
        ("agent", ContainerKind.SIDECAR),
        ("init", ContainerKind.INIT),
        ("app", ContainerKind.APP),
    ]
    assert model.restart_policy is RestartPolicy.ALWAYS
    assert model.grace_period_seconds == 30
    assert model.service_account == "default"
    assert model.volume("data").source == EmptyDirSource(memory=True, size_limit_bytes=2**20)


def _broken(change: str) -> dict[str, Any]:
    manifest = copy.deepcopy(_valid())
    spec = manifest["spec"]
    app = spec["containers"][0]
    if change == "missing volume":
        app["volumeMounts"].append(mount("nowhere", "/nowhere"))
    elif change == "relative mount path":
        app["volumeMounts"][0]["mountPath"] = "data"
    elif change == "escaping subPath":
        app["volumeMounts"][0]["subPath"] = "../etc"
    elif change == "duplicate container":
        spec["initContainers"][1]["name"] = "app"
    elif change == "restartPolicy on an app container":
        app["restartPolicy"] = "Always"
    elif change == "probe on a plain init container":
        spec["initContainers"][1]["startupProbe"] = {"exec": {"command": ["true"]}}
    elif change == "short token":
        spec["volumes"].append(
            {
                "name": "token",
                "projected": {
                    "sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 60}}]
                },
            }
        )
    elif change == "hostPath volume":
        spec["volumes"].append({"name": "host", "hostPath": {"path": "/etc"}})
    elif change == "bad size":
        spec["volumes"][0]["emptyDir"]["sizeLimit"] = "64MB"
    elif change == "no containers":
        spec["containers"] = []
    return manifest


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param("missing volume", "names no volume", id="a mount must name a volume"),
        pytest.param("relative mount path", "absolute path", id="mount paths are absolute"),
        pytest.param("escaping subPath", "may not contain '..'", id="subPath stays inside"),
        pytest.param("duplicate container", "duplicate container", id="names are unique"),
        pytest.param(
            "restartPolicy on an app container",
            "only be set on init containers",
            id="only init containers can be native sidecars",
        ),
        pytest.param(
            "probe on a plain init container",
            "may not be set for init containers",
            id="plain init containers have no probes",
        ),
        pytest.param("short token", "less than 600", id="tokens live ten minutes at least"),
        pytest.param("hostPath volume", "unsupported", id="unsupported volume types are refused"),
        pytest.param("bad size", "not a Kubernetes quantity", id="sizes are quantities"),
        pytest.param("no containers", "spec.containers: Required", id="a pod has containers"),
    ],
)
def test_an_invalid_pod_is_refused_with_the_reason(change: str, problem: str) -> None:
    with pytest.raises(InvalidPod) as refusal:
        parse_pod(_broken(change))
    assert any(problem in item for item in refusal.value.problems), refusal.value.problems


def test_every_problem_is_reported_at_once() -> None:
    manifest = _broken("missing volume")
    manifest["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = "relative"
    with pytest.raises(InvalidPod) as refusal:
        parse_pod(manifest)
    assert len(refusal.value.problems) == 2


def test_an_image_missing_from_the_table_is_refused(tmp_path: Path) -> None:
    images = ImageTable(images={"other:1": Image()}, executables=this_python())
    with pytest.raises(InvalidPod, match="not in the emulator's image table"):
        EmulatedPod(_valid(), images=images, workdir=tmp_path)
