"""Init order, native sidecars and their startup probes, completion, restarts and termination."""

from __future__ import annotations

import time

import pytest

from tests.emulator.conftest import PodFactory, needs_root
from tests.emulator.manifests import (
    SLEEPER,
    container,
    exec_probe,
    memory_volume,
    mount,
    pod,
)
from tests.support.emulator import PodFailed, PodPhase, prefixed_printer

pytestmark = needs_root

SHARED = [mount("shared", "/shared")]


def _marks(log: str, word: str) -> list[float]:
    """The monotonic times a container printed after ``word`` (see SLEEPER)."""
    return [float(line.split()[1]) for line in log.splitlines() if line.startswith(word + " ")]


def test_init_containers_run_in_order_before_the_app(make_pod: PodFactory) -> None:
    append = "open('/shared/order', 'a').write('{}')"
    manifest = pod(
        "ordered",
        [container("app", "print('order', open('/shared/order').read())", mounts=SHARED)],
        init_containers=[
            container("first", append.format("1"), mounts=SHARED),
            container("second", append.format("2"), mounts=SHARED),
            container("third", append.format("3"), mounts=SHARED),
        ],
        volumes=[memory_volume("shared")],
        restartPolicy="Never",
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    assert "order 123" in emulated.logs("app")


@pytest.mark.parametrize(
    ("restart_policy", "expected_phase"),
    [
        pytest.param("Never", PodPhase.FAILED, id="with restartPolicy Never the pod fails"),
        pytest.param(
            "Always", PodPhase.PENDING, id="with restartPolicy Always the init container retries"
        ),
    ],
)
def test_a_failing_init_container_stops_the_pod_with_its_log(
    make_pod: PodFactory, restart_policy: str, expected_phase: PodPhase
) -> None:
    manifest = pod(
        "broken-init",
        [container("app", "print('app must not run')")],
        init_containers=[
            container("vault-agent-init", "import sys; sys.exit('permission denied on secret/db')")
        ],
        restartPolicy=restart_policy,
    )
    with make_pod(manifest) as emulated:
        with pytest.raises(PodFailed) as failure:
            emulated.wait_until_running(20)
        assert emulated.phase is expected_phase
        assert "vault-agent-init" in str(failure.value)
        assert "permission denied on secret/db" in str(failure.value)
        assert emulated.status("app").state == "waiting"
        if restart_policy == "Always":
            emulated.wait_for(
                lambda: emulated.status("vault-agent-init").restart_count >= 1, 10, "a retry"
            )
    assert "permission denied on secret/db" in emulated.logs("vault-agent-init")
    assert emulated.logs("app") == ""
    assert emulated.phase is PodPhase.FAILED


def test_a_native_sidecar_startup_probe_gates_the_next_init_container(
    make_pod: PodFactory,
) -> None:
    becomes_ready_late = """
        import os, time
        time.sleep(1.0)
        open('/shared/ready', 'w').write('yes')
        while True:
            time.sleep(0.1)
    """
    manifest = pod(
        "gated",
        [container("app", SLEEPER, mounts=SHARED)],
        init_containers=[
            container(
                "agent",
                becomes_ready_late,
                mounts=SHARED,
                restartPolicy="Always",
                startupProbe=exec_probe(
                    "import os, sys; sys.exit(0 if os.path.exists('/shared/ready') else 1)",
                    periodSeconds=1,
                    failureThreshold=10,
                ),
            ),
            container(
                "needs-agent",
                "import os, sys; sys.exit(0 if os.path.exists('/shared/ready') else 3)",
                mounts=SHARED,
            ),
        ],
        volumes=[memory_volume("shared")],
    )
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        assert emulated.status("needs-agent").exit_code == 0
        assert emulated.status("agent").state == "running"
        assert emulated.status("agent").started
        events = [(event.container, event.message) for event in emulated.events]
    probe_passed = events.index(("agent", "startup probe succeeded"))
    next_started = events.index(("needs-agent", "Started init container needs-agent"))
    assert probe_passed < next_started


def test_a_startup_probe_that_keeps_failing_restarts_the_native_sidecar(
    make_pod: PodFactory,
) -> None:
    manifest = pod(
        "never-starts",
        [container("app", SLEEPER)],
        init_containers=[
            container(
                "agent",
                SLEEPER,
                restartPolicy="Always",
                startupProbe=exec_probe(
                    "import sys; sys.exit(1)", periodSeconds=1, failureThreshold=1
                ),
            )
        ],
    )
    with make_pod(manifest) as emulated:
        emulated.wait_for(lambda: emulated.status("agent").restart_count >= 1, 15, "a restart")
        assert emulated.status("app").state == "waiting"
    assert len(_marks(emulated.logs("agent"), "TERM")) >= 1


def test_a_job_completes_while_its_native_sidecar_still_runs(make_pod: PodFactory) -> None:
    manifest = pod(
        "job",
        [container("work", "import time; time.sleep(0.3); print('work done')")],
        init_containers=[container("agent", SLEEPER, restartPolicy="Always")],
        restartPolicy="Never",
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is PodPhase.SUCCEEDED
    assert "work done" in emulated.logs("work")
    assert len(_marks(emulated.logs("agent"), "TERM")) == 1
    assert emulated.status("agent").exit_code == 0


@pytest.mark.parametrize(
    ("restart_policy", "expected_phase", "restarted"),
    [
        pytest.param("Never", PodPhase.FAILED, False, id="Never: a failing app fails the pod"),
        pytest.param(
            "OnFailure", PodPhase.SUCCEEDED, True, id="OnFailure: a failing app is restarted"
        ),
    ],
)
def test_app_exits_follow_the_restart_policy(
    make_pod: PodFactory, restart_policy: str, expected_phase: PodPhase, restarted: bool
) -> None:
    fails_first_time = """
        import os, sys
        if not os.path.exists('/shared/tried'):
            open('/shared/tried', 'w')
            sys.exit(2)
        print('second attempt fine')
    """
    manifest = pod(
        "policy",
        [container("app", fails_first_time, mounts=SHARED)],
        volumes=[memory_volume("shared")],
        restartPolicy=restart_policy,
    )
    with make_pod(manifest) as emulated:
        assert emulated.wait_until_completed(20) is expected_phase
    assert (emulated.status("app").restart_count == 1) is restarted
    assert ("second attempt fine" in emulated.logs("app")) is restarted


def test_stop_terminates_apps_first_and_native_sidecars_after_in_reverse_order(
    make_pod: PodFactory,
) -> None:
    exit_after = "time.sleep({}); print('EXIT', time.monotonic(), flush=True); sys.exit(0)"
    slow_to_exit = SLEEPER.replace("sys.exit(0)", exit_after.format(0.5))
    sidecar = SLEEPER.replace("sys.exit(0)", exit_after.format(0.2))
    manifest = pod(
        "ordered-stop",
        [container("app", slow_to_exit), container("classic-sidecar", SLEEPER)],
        init_containers=[
            container("first-native", sidecar, restartPolicy="Always"),
            container("second-native", sidecar, restartPolicy="Always"),
        ],
    )
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        emulated.wait_for(lambda: "up" in emulated.logs("app"), 10, "the app's handler")
        emulated.wait_for(lambda: "up" in emulated.logs("classic-sidecar"), 10, "its handler")
        emulated.stop()
    app_term = _marks(emulated.logs("app"), "TERM")[0]
    app_exit = _marks(emulated.logs("app"), "EXIT")[0]
    classic_term = _marks(emulated.logs("classic-sidecar"), "TERM")[0]
    second_term = _marks(emulated.logs("second-native"), "TERM")[0]
    second_exit = _marks(emulated.logs("second-native"), "EXIT")[0]
    first_term = _marks(emulated.logs("first-native"), "TERM")[0]
    # Classic sidecars are ordinary containers: they get SIGTERM together with the app.
    assert classic_term < app_exit
    assert abs(classic_term - app_term) < 0.4
    assert app_exit < second_term < second_exit < first_term
    assert emulated.phase is PodPhase.SUCCEEDED


def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(
    make_pod: PodFactory,
) -> None:
    stubborn = """
        import signal, time
        signal.signal(signal.SIGTERM, lambda *_: print('ignoring TERM', flush=True))
        print('up', flush=True)
        while True:
            time.sleep(0.05)
    """
    manifest = pod("stubborn", [container("app", stubborn)], terminationGracePeriodSeconds=1)
    with make_pod(manifest) as emulated:
        emulated.wait_for(lambda: "up" in emulated.logs("app"), 20, "the handler")
        started = time.monotonic()
        assert emulated.stop() is PodPhase.FAILED
        took = time.monotonic() - started
    assert 1.0 <= took < 5.0
    assert emulated.status("app").exit_code == 137
    assert "ignoring TERM" in emulated.logs("app")


def test_exec_runs_in_the_container_and_logs_stream_with_a_prefix(
    make_pod: PodFactory,
) -> None:
    lines: list[str] = []
    manifest = pod(
        "exec",
        [container("app", "print('hello from app', flush=True); import time; time.sleep(60)")],
    )
    with make_pod(manifest, on_log=prefixed_printer(lines.append)) as emulated:
        emulated.wait_for(lambda: "[app] hello from app" in lines, 20, "the streamed line")
        result = emulated.exec("app", ["python", "-c", "import sys; print('out'); sys.exit(4)"])
        assert (result.exit_code, result.stdout.strip()) == (4, "out")
        missing = emulated.exec("app", ["no-such-program"])
        assert missing.exit_code == 127
        assert "executable file not found" in missing.stderr
    assert emulated.logs("app").startswith("hello from app")
