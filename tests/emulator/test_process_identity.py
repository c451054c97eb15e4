"""The container process: uid, gids, env, command expansion and working directory as specified."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from tests.emulator.conftest import PodFactory, needs_root
from tests.emulator.manifests import container, memory_volume, mount, pod
from tests.support.emulator import (
    EmulatorOptions,
    Image,
    ImageTable,
    PodFailed,
    PodPhase,
    this_python,
)

pytestmark = needs_root

REPORT_IDENTITY = """
    import json, os
    info = os.stat('/data')
    print(json.dumps({
        'uid': os.getuid(), 'gid': os.getgid(), 'groups': sorted(os.getgroups()),
        'volume_gid': info.st_gid, 'volume_setgid': bool(info.st_mode & 0o2000),
    }))
"""


@pytest.mark.parametrize(
    ("pod_context", "container_context", "expected"),
    [
        pytest.param(
            {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
            {},
            {"uid": 1000, "gid": 3000, "groups": [2000], "volume_gid": 2000, "setgid": True},
            id="the pod's user, group and fsGroup apply to every container",
        ),
        pytest.param(
            {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [4000]},
            {"runAsUser": 100, "runAsGroup": 1000},
            {"uid": 100, "gid": 1000, "groups": [2000, 4000], "volume_gid": 2000, "setgid": True},
            id="the container's securityContext overrides the pod's",
        ),
        pytest.param(
            {},
            {},
            {"uid": 0, "gid": 0, "groups": [], "volume_gid": 0, "setgid": False},
            id="without securityContext the image's user runs",
        ),
    ],
)
def test_the_process_runs_as_the_security_context_says(
    make_pod: PodFactory,
    pod_context: dict[str, Any],
    container_context: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    manifest = pod(
        "identity",
        [
            container(
                "app",
                REPORT_IDENTITY,
                mounts=[mount("data", "/data")],
                securityContext=container_context,
            )
        ],
        volumes=[memory_volume("data")],
        securityContext=pod_context,
        restartPolicy="Never",
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    seen = json.loads(emulated.logs("app"))
    assert seen == {
        "uid": expected["uid"],
        "gid": expected["gid"],
        "groups": expected["groups"],
        "volume_gid": expected["volume_gid"],
        "volume_setgid": expected["setgid"],
    }


@pytest.mark.parametrize(
    ("app_fields", "pod_fields", "reason"),
    [
        pytest.param(
            {"securityContext": {"runAsNonRoot": True}},
            {},
            "runAsNonRoot and image will run as root",
            id="runAsNonRoot refuses an image that runs as root",
        ),
        pytest.param(
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]},
            {},
            "secret \"db\" has no key 'pw'",
            id="an env reference to a missing secret key",
        ),
        pytest.param(
            {"command": ["no-such-program"]},
            {},
            "executable file not found in $PATH",
            id="a command that is not in the image",
        ),
        pytest.param(
            {"volumeMounts": [{"name": "settings", "mountPath": "/etc/settings"}]},
            {"volumes": [{"name": "settings", "configMap": {"name": "absent"}}]},
            'configmap "absent" not found',
            id="a volume from a missing ConfigMap",
        ),
    ],
)
def test_a_container_that_cannot_start_fails_the_pod_with_the_reason(
    make_pod: PodFactory, app_fields: dict[str, Any], pod_fields: dict[str, Any], reason: str
) -> None:
    manifest = pod(
        "cannot-start",
        [container("app", "print('must not run')", **app_fields)],
        restartPolicy="Never",
        **pod_fields,
    )
    emulated = make_pod(manifest)

    def start_and_wait() -> None:
        # A volume problem fails start() itself; a container problem fails the wait.
        with emulated:
            emulated.wait_until_running(20)

    with pytest.raises(PodFailed) as failure:
        start_and_wait()
    assert reason in str(failure.value)
    assert emulated.phase is PodPhase.FAILED
    assert "must not run" not in emulated.logs("app")


def test_env_command_and_working_dir_are_resolved_as_kubernetes_does(
    make_pod: PodFactory,
) -> None:
    show = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(),"
    show += (
        " 'env': {k: v for k, v in os.environ.items() if k.startswith(('X_', 'KUBERNETES_'))}}))"
    )
    manifest = pod(
        "env",
        [
            {
                "name": "app",
                "image": "registry.example/tool:1.0",
                "command": ["python", "-c", show],
                "args": ["$(X_NAME)", "$$(X_NAME)", "$(X_UNDEFINED)", "in-$(X_NAMESPACE)"],
                "workingDir": "/work-here",
                "env": [
                    {"name": "X_PLAIN", "value": "plain"},
                    {"name": "X_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {
                        "name": "X_NAMESPACE",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    },
                    {"name": "X_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {
                        "name": "X_SA",
                        "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}},
                    },
                    {"name": "X_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "X_COMPOSED", "value": "$(X_NAME).$(X_NAMESPACE).$(X_LATER)"},
                    {"name": "X_LATER", "value": "defined-after"},
                    {
                        "name": "X_FROM_MAP",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                    },
                ],
            }
        ],
        restartPolicy="Never",
        serviceAccountName="orders",
    )
    options = EmulatorOptions(kube_api_url="http://127.0.0.1:6443")
    with make_pod(
        manifest, config_maps={"settings": {"mode": "fast"}}, options=options
    ) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    seen = json.loads(emulated.logs("app"))
    assert seen["argv"] == ["env", "$(X_NAME)", "$(X_UNDEFINED)", "in-shop"]
    assert seen["cwd"] == "/work-here"
    assert seen["env"] == {
        "X_PLAIN": "plain",
        "X_NAME": "env",
        "X_NAMESPACE": "shop",
        "X_UID": "uid-of-env",
        "X_SA": "orders",
        "X_IP": "127.0.0.1",
        "X_COMPOSED": "env.shop.$(X_LATER)",
        "X_LATER": "defined-after",
        "X_FROM_MAP": "fast",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
        "KUBERNETES_PORT": "tcp://127.0.0.1:6443",
    }


def test_an_image_entrypoint_and_cmd_apply_unless_the_pod_overrides_them(
    make_pod: PodFactory,
) -> None:
    images = ImageTable(
        images={
            "echo:1": Image(
                entrypoint=("python", "-c", "import sys; print('ARGS', sys.argv[1:])"),
                cmd=("from-image-cmd",),
                env={"X_IMAGE": "image-env"},
            )
        },
        executables=this_python(),
    )
    manifest = pod(
        "entrypoint",
        [
            {"name": "defaults", "image": "echo:1"},
            {"name": "args-only", "image": "echo:1", "args": ["from-pod-args"]},
            {
                "name": "command",
                "image": "echo:1",
                "command": ["python", "-c", "import os; print('ENV', os.environ['X_IMAGE'])"],
            },
        ],
        restartPolicy="Never",
    )
    with make_pod(manifest, images=images) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    assert emulated.logs("defaults").strip() == "ARGS ['from-image-cmd']"
    assert emulated.logs("args-only").strip() == "ARGS ['from-pod-args']"
    assert emulated.logs("command").strip() == "ENV image-env"


def test_mapped_programs_are_on_the_path_of_every_container(make_pod: PodFactory) -> None:
    host_programs = sorted(os.listdir("/usr/local/bin"))
    shell_wrapped = "python -c 'import sys; print(\"via PATH\", sys.prefix)'"
    manifest = pod(
        "path",
        [
            {
                "name": "app",
                "image": "registry.example/tool:1.0",
                "command": ["/bin/sh", "-ec", shell_wrapped],
                "securityContext": {"runAsUser": 1000},
            }
        ],
        init_containers=[
            container(
                "sidecar",
                "import time; time.sleep(60)",
                restartPolicy="Always",
                startupProbe={"exec": {"command": ["sh", "-c", "python -c 'print(1)'"]}},
            )
        ],
        restartPolicy="Never",
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    assert emulated.logs("app").strip() == f"via PATH {sys.prefix}"
    assert sorted(os.listdir("/usr/local/bin")) == host_programs
