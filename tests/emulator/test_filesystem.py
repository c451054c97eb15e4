"""What each container sees: the pod's volumes at its own mount paths, and nothing else."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.emulator.conftest import PodFactory, needs_root
from tests.emulator.manifests import (
    SLEEPER,
    container,
    memory_volume,
    mount,
    pod,
    python,
)
from tests.support.emulator import EmulatorOptions, PodPhase, VolumeBacking, leftovers
from tests.support.emulator.inspection import host_mounts_under

pytestmark = needs_root


def test_a_volume_is_shared_between_containers_at_their_own_mount_paths(
    make_pod: PodFactory,
) -> None:
    manifest = pod(
        "sharing",
        [
            container(
                "reader",
                "print('reader got', open('/etc/app/greeting').read())",
                mounts=[mount("secrets", "/etc/app", readOnly=True)],
            )
        ],
        init_containers=[
            container(
                "writer",
                "open('/vault/secrets/greeting', 'w').write('hello from init')",
                mounts=[mount("secrets", "/vault/secrets")],
            )
        ],
        volumes=[memory_volume("secrets")],
        restartPolicy="Never",
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    assert "reader got hello from init" in emulated.logs("reader")


def _host_filesystem_type(path: Path) -> str:
    """The type of the host filesystem that holds ``path``: its nearest (last) mount point."""
    found = ("", "")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point = fields[4]
        if f"{path}/".startswith(mount_point.rstrip("/") + "/") and len(mount_point) >= len(
            found[0]
        ):
            found = (mount_point, fields[fields.index("-") + 1])
    return found[1]


@pytest.mark.parametrize(
    ("use_tmpfs", "backing"),
    [
        pytest.param(True, VolumeBacking.TMPFS, id="a memory volume is a sized tmpfs"),
        pytest.param(
            False,
            VolumeBacking.DIRECTORY,
            id="without tmpfs a memory volume falls back to a directory of the host",
        ),
    ],
)
def test_a_memory_volume_is_mounted_as_the_backing_says(
    make_pod: PodFactory, workdir: Path, use_tmpfs: bool, backing: VolumeBacking
) -> None:
    # The fallback directory lives on whatever filesystem holds the workdir on this machine.
    filesystem = "tmpfs" if use_tmpfs else _host_filesystem_type(workdir)
    show_mount = """
        for line in open('/proc/self/mountinfo'):
            fields = line.split()
            if fields[4] == '/vault/secrets':
                separator = fields.index('-')
                print('MOUNT', fields[separator + 1], fields[separator + 3], flush=True)
        import time
        time.sleep(60)
    """
    manifest = pod(
        "memory",
        [container("app", show_mount, mounts=[mount("secrets", "/vault/secrets")])],
        volumes=[memory_volume("secrets", size="2Mi")],
    )
    host_filesystem = os.statvfs("/")
    with make_pod(manifest, options=EmulatorOptions(use_tmpfs=use_tmpfs)) as emulated:
        emulated.wait_for(lambda: "MOUNT" in emulated.logs("app"), 10, "the mount line")
        assert emulated.volume_backing("secrets") is backing
        mount_line = next(
            line for line in emulated.logs("app").splitlines() if line.startswith("MOUNT")
        )
        _, fstype, options = mount_line.split()
        assert fstype == filesystem
        assert ("size=2048k" in options) is use_tmpfs
        # The tmpfs exists only in the pod's namespaces, never on the host.
        assert host_mounts_under(workdir) == []
        assert os.statvfs("/").f_blocks == host_filesystem.f_blocks


@pytest.mark.parametrize(
    "workdir_parent",
    [
        pytest.param("/tmp", id="with the workdir under /tmp, which is private per container"),
        pytest.param("/var/tmp", id="with the workdir elsewhere, which is covered up"),
    ],
)
def test_a_container_that_does_not_mount_a_volume_cannot_see_it(
    make_pod: PodFactory, workdir_parent: str
) -> None:
    manifest = pod(
        "isolation",
        [
            container("with-volume", SLEEPER, mounts=[mount("secrets", "/vault/secrets")]),
            container("without-volume", SLEEPER),
        ],
        volumes=[memory_volume("secrets")],
    )
    with tempfile.TemporaryDirectory(dir=workdir_parent) as directory:
        workdir = Path(directory)
        look = python(
            f"""
            import json, os
            workdir = {str(workdir)!r}
            print(json.dumps({{
                "vault": os.path.exists("/vault/secrets"),
                "workdir": os.listdir(workdir) if os.path.isdir(workdir) else [],
                "tmpfs_mounts": [line.split()[4] for line in open("/proc/self/mountinfo")
                                 if " - tmpfs " in line and "/vault" in line],
            }}))
            """
        )
        with make_pod(manifest, workdir=workdir) as emulated:
            emulated.wait_until_running(20)
            emulated.exec(
                "with-volume", ["python", "-c", "open('/vault/secrets/key', 'w').write('s3cret')"]
            )
            assert sorted(os.listdir(workdir)) == ["containers", "logs", "run", "volumes"]
            seen_with = json.loads(emulated.exec("with-volume", look).stdout)
            seen_without = json.loads(emulated.exec("without-volume", look).stdout)
        assert not leftovers(workdir)
    assert seen_with["vault"] is True
    assert seen_with["tmpfs_mounts"] == ["/vault/secrets"]
    assert seen_without == {"vault": False, "workdir": [], "tmpfs_mounts": []}


def test_mount_paths_below_host_directories_exist_only_in_their_container(
    make_pod: PodFactory,
) -> None:
    unique = f"emulator-{uuid.uuid4().hex[:8]}"
    home_target = f"/home/{unique}/data"
    run_target = f"/var/run/{unique}"  # /var/run is a symlink to /run on the host
    assert not os.path.exists(f"/home/{unique}")
    assert not os.path.exists(f"/run/{unique}")
    manifest = pod(
        "targets",
        [
            container(
                "mounter",
                SLEEPER,
                mounts=[mount("data", home_target), mount("data", run_target, readOnly=True)],
            ),
            container("neighbour", SLEEPER),
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    listing = "import os, json; print(json.dumps(sorted(os.listdir('/home'))))"
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        mounter_home = json.loads(emulated.exec("mounter", ["python", "-c", listing]).stdout)
        neighbour_home = json.loads(emulated.exec("neighbour", ["python", "-c", listing]).stdout)
        probe = emulated.exec(
            "mounter", ["python", "-c", f"import os; print(os.path.isdir('/run/{unique}'))"]
        )
        assert not os.path.exists(f"/home/{unique}")
        assert not os.path.exists(f"/run/{unique}")
    host_home = sorted(os.listdir("/home"))
    assert mounter_home == sorted([*host_home, unique])
    assert neighbour_home == host_home
    assert probe.stdout.strip() == "True"


def test_read_only_mounts_refuse_writes_and_sub_paths_mount_part_of_a_volume(
    make_pod: PodFactory,
) -> None:
    check = """
        import os
        print('subpath sees', sorted(os.listdir('/only-part')))
        try:
            open('/read-only/x', 'w')
        except OSError as error:
            print('read-only refused:', error.strerror)
    """
    manifest = pod(
        "readonly",
        [
            container(
                "app",
                check,
                mounts=[
                    mount("data", "/read-only", readOnly=True),
                    mount("data", "/only-part", subPath="part"),
                ],
            )
        ],
        init_containers=[
            container(
                "fill",
                "import os; os.makedirs('/d/part'); open('/d/part/inner', 'w');"
                " open('/d/outer', 'w')",
                mounts=[mount("data", "/d")],
            )
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
        restartPolicy="Never",
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    logs = emulated.logs("app")
    assert "subpath sees ['inner']" in logs
    assert "read-only refused: Read-only file system" in logs


def test_a_read_only_root_filesystem_leaves_only_volumes_writable(make_pod: PodFactory) -> None:
    attempt = """
        for path in ('/tmp/x', '/scratch/x'):
            try:
                open(path, 'w').write('x')
                print(path, 'written')
            except OSError as error:
                print(path, error.strerror)
    """
    manifest = pod(
        "rootfs",
        [
            container(
                "app",
                attempt,
                mounts=[mount("scratch", "/scratch")],
                securityContext={"readOnlyRootFilesystem": True, "runAsUser": 1000},
            )
        ],
        volumes=[{"name": "scratch", "emptyDir": {}}],
        restartPolicy="Never",
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    logs = emulated.logs("app")
    assert "/tmp/x Read-only file system" in logs
    assert "/scratch/x written" in logs


def test_api_data_volumes_hold_the_data_given_with_their_modes(make_pod: PodFactory) -> None:
    describe = """
        import json, os, stat
        found = {}
        for root in ('/etc/projected', '/etc/config'):
            for name in sorted(os.listdir(root)):
                path = os.path.join(root, name)
                if name.startswith('..') or os.path.isdir(path):
                    continue
                mode = stat.S_IMODE(os.stat(path).st_mode)
                found[path] = [open(path).read(), oct(mode)]
        print(json.dumps(found))
    """
    manifest = pod(
        "api-data",
        [
            container(
                "app",
                describe,
                mounts=[mount("projected", "/etc/projected"), mount("config", "/etc/config")],
            )
        ],
        volumes=[
            {
                "name": "projected",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {"secret": {"name": "db", "items": [{"key": "password", "path": "pw"}]}},
                        {
                            "configMap": {
                                "name": "settings",
                                "items": [{"key": "mode", "path": "mode", "mode": 0o400}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                                ]
                            }
                        },
                    ],
                },
            },
            {"name": "config", "configMap": {"name": "settings"}},
        ],
        restartPolicy="Never",
    )
    manifest["metadata"]["labels"] = {"team": "payments", "app": "orders"}
    with make_pod(
        manifest,
        config_maps={"settings": {"mode": "fast", "level": "3"}},
        secrets={"db": {"password": b"not-a-real-password", "user": "ignored"}},
    ) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    assert json.loads(emulated.logs("app")) == {
        "/etc/projected/labels": ['app="orders"\nteam="payments"', "0o440"],
        "/etc/projected/mode": ["fast", "0o400"],
        "/etc/projected/pw": ["not-a-real-password", "0o440"],
        "/etc/config/level": ["3", "0o644"],
        "/etc/config/mode": ["fast", "0o644"],
    }
