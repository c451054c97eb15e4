"""Nothing outlives a pod: no process, no mount, no file but the logs; even when a test fails."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest

from tests.emulator.conftest import PodFactory, needs_root
from tests.emulator.manifests import SLEEPER, container, memory_volume, mount, pod
from tests.support.emulator import leftovers
from tests.support.emulator.process import Sandbox, StartFailed

pytestmark = needs_root

# Double fork and a new session: escapes the container's process group, like a daemon would.
DAEMONIZES = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            open('/data/daemon-pid', 'w').write(str(os.getpid()))
            while True:
                time.sleep(0.1)
        os._exit(0)
    while True:
        time.sleep(0.1)
"""


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def test_a_failure_inside_the_with_block_still_cleans_up_everything(
    make_pod: PodFactory, workdir: Path
) -> None:
    manifest = pod(
        "failing-test",
        [
            container("app", SLEEPER, mounts=[mount("data", "/data")]),
            container("daemon", DAEMONIZES, mounts=[mount("data", "/data")]),
        ],
        volumes=[memory_volume("data")],
    )
    pids: list[int] = []

    def fail_while_running() -> None:
        with make_pod(manifest) as emulated:
            emulated.wait_until_running(20)
            daemon_pid_file = emulated.volume_path("data") / "daemon-pid"
            emulated.wait_for(daemon_pid_file.exists, 10, "the daemon's pid")
            pids.extend(status.pid for status in emulated.container_statuses if status.pid)
            pids.append(int(daemon_pid_file.read_text()))
            assert all(_running(pid) for pid in pids)
            raise RuntimeError("the test failed here")

    with pytest.raises(RuntimeError, match="the test failed here"):
        fail_while_running()
    assert len(pids) == 3
    assert [pid for pid in pids if _running(pid)] == []
    assert not leftovers(workdir)
    assert sorted(path.name for path in workdir.iterdir()) == ["logs"]


def test_a_sandbox_that_cannot_start_leaves_no_pipe_open(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    impossible = {"name": "v", "path": "/proc/1/no/such/dir", "tmpfs": False, "size_bytes": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(StartFailed, match="pod sandbox"):
            Sandbox.start(run_dir, [impossible])
        gc.collect()
    assert [str(warning.message) for warning in caught] == []
