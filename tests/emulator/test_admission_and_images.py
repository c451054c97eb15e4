"""The ServiceAccount admission helper and the image table."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.manifests import container, mount, pod
from tests.support.emulator import (
    TOKEN_MOUNT_PATH,
    Image,
    ImageTable,
    UnknownImage,
    apply_service_account_admission,
    this_python,
)


def _token_mounts(manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    spec = manifest["spec"]
    return {
        c["name"]: [m for m in c.get("volumeMounts", []) if m["mountPath"] == TOKEN_MOUNT_PATH]
        for c in spec.get("initContainers", []) + spec["containers"]
    }


def test_admission_adds_the_token_volume_and_mounts_it_everywhere() -> None:
    bare = pod("app", [container("app", "pass")], init_containers=[container("init", "pass")])
    admitted = apply_service_account_admission(bare)
    volumes = admitted["spec"]["volumes"]
    assert len(volumes) == 1
    name = volumes[0]["name"]
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    sources = volumes[0]["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    expected = [{"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]
    assert _token_mounts(admitted) == {"init": expected, "app": expected}
    assert admitted["spec"]["serviceAccountName"] == "default"
    assert "volumes" not in bare["spec"], "the input pod is left untouched"


@pytest.mark.parametrize(
    ("pod_setting", "account_setting", "mounted"),
    [
        pytest.param(None, True, True, id="mounted by default"),
        pytest.param(False, True, False, id="the pod can opt out"),
        pytest.param(None, False, False, id="the ServiceAccount can opt out"),
        pytest.param(True, False, True, id="the pod's choice wins over the ServiceAccount's"),
    ],
)
def test_admission_honours_automount_settings(
    pod_setting: bool | None, account_setting: bool, mounted: bool
) -> None:
    spec: dict[str, Any] = {}
    if pod_setting is not None:
        spec["automountServiceAccountToken"] = pod_setting
    admitted = apply_service_account_admission(
        pod("app", [container("app", "pass")], **spec), service_account_automount=account_setting
    )
    assert bool(admitted["spec"].get("volumes")) is mounted
    assert bool(_token_mounts(admitted)["app"]) is mounted


def test_admission_leaves_a_container_that_already_mounts_the_path() -> None:
    own = mount("my-token", TOKEN_MOUNT_PATH)
    bare = pod("app", [container("custom", "pass", mounts=[own]), container("plain", "pass")])
    admitted = apply_service_account_admission(bare, volume_suffix="abcde")
    assert _token_mounts(admitted)["custom"] == [own]
    assert _token_mounts(admitted)["plain"][0]["name"] == "kube-api-access-abcde"


def test_admission_reuses_an_existing_kube_api_access_volume() -> None:
    once = apply_service_account_admission(pod("app", [container("app", "pass")]))
    once["spec"]["containers"].append(container("added-later", "pass"))
    twice = apply_service_account_admission(once)
    assert len(twice["spec"]["volumes"]) == 1
    assert _token_mounts(twice)["added-later"] == _token_mounts(twice)["app"]


@pytest.mark.parametrize(
    ("reference", "found"),
    [
        pytest.param("tool:1.0", "exact", id="an exact reference"),
        pytest.param("registry.example:5000/agent:2.0", "agent", id="a tag not in the table"),
        pytest.param("registry.example:5000/agent@sha256:abc123", "agent", id="a digest"),
    ],
)
def test_image_references_resolve_like_a_registry_would(reference: str, found: str) -> None:
    table = ImageTable(
        images={
            "tool:1.0": Image(cmd=("exact",)),
            "registry.example:5000/agent": Image(cmd=("agent",)),
        }
    )
    assert table.image(reference).cmd == (found,)


def test_an_unknown_image_is_refused() -> None:
    with pytest.raises(UnknownImage):
        ImageTable(images={}).image("nowhere:1")


def test_mapped_executables_replace_the_program_and_expose_their_symlink_chain(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real" / "python3.11"
    real.parent.mkdir()
    real.write_text("")
    hop = tmp_path / "bin" / "python3"
    hop.parent.mkdir()
    hop.symlink_to(real)
    entry = tmp_path / "venv-python"
    entry.symlink_to(hop)
    table = ImageTable(images={}, executables={"python": str(entry)})
    assert table.resolve_argv(["python", "-c", "pass"]) == [str(entry), "-c", "pass"]
    assert table.resolve_argv(["/bin/sh", "-c", "true"]) == ["/bin/sh", "-c", "true"]
    assert table.exposed_host_paths() == [str(entry), str(hop), str(real)]


def test_this_python_is_the_running_interpreter() -> None:
    assert this_python()["python"] == sys.executable
    assert os.access(sys.executable, os.X_OK)
