"""Readiness and liveness probes, HTTP and TCP probes, postStart and preStop hooks."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.emulator.conftest import PodFactory, needs_root
from tests.emulator.manifests import (
    SLEEPER,
    container,
    exec_probe,
    memory_volume,
    mount,
    pod,
    python,
)
from tests.support.emulator import PodPhase

pytestmark = needs_root

SHARED = [mount("shared", "/shared")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_readiness_follows_the_probe_and_a_failing_liveness_probe_restarts(
    make_pod: PodFactory,
) -> None:
    manifest = pod(
        "health",
        [
            container(
                "app",
                SLEEPER,
                mounts=SHARED,
                readinessProbe=exec_probe(
                    "import os, sys; sys.exit(0 if os.path.exists('/shared/ready') else 1)",
                    periodSeconds=1,
                    failureThreshold=1,
                ),
                livenessProbe=exec_probe(
                    "import os, sys; sys.exit(1 if os.path.exists('/shared/sick') else 0)",
                    periodSeconds=1,
                    failureThreshold=1,
                ),
            )
        ],
        volumes=[memory_volume("shared")],
    )
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        assert not emulated.ready
        emulated.exec("app", python("open('/shared/ready', 'w')"))
        emulated.wait_until_ready(10)
        emulated.exec("app", python("open('/shared/sick', 'w')"))
        emulated.wait_for(lambda: emulated.status("app").restart_count == 1, 10, "a restart")
        emulated.exec("app", python("import os; os.remove('/shared/sick')"))
        emulated.wait_until_ready(10)
    assert "TERM" in emulated.logs("app")
    assert any(event.message.startswith("liveness probe failed") for event in emulated.events)


@pytest.mark.parametrize(
    "probe",
    [
        pytest.param({"httpGet": {"path": "/healthz", "port": "web"}}, id="an HTTP probe"),
        pytest.param({"tcpSocket": {"port": "web"}}, id="a TCP probe"),
    ],
)
def test_network_probes_reach_the_container_on_the_pod_ip(
    make_pod: PodFactory, probe: dict[str, Any]
) -> None:
    port = _free_port()
    serve = f"""
        import http.server, time
        time.sleep(0.5)
        class Health(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == '/healthz' else 404)
                self.end_headers()
            def log_message(self, *_):
                print('probed', self.path, flush=True)
        http.server.HTTPServer(('127.0.0.1', {port}), Health).serve_forever()
    """
    manifest = pod(
        "network",
        [container("app", "import time; time.sleep(60)")],
        init_containers=[
            container(
                "server",
                serve,
                restartPolicy="Always",
                ports=[{"name": "web", "containerPort": port}],
                startupProbe={**probe, "periodSeconds": 1, "failureThreshold": 10},
            )
        ],
    )
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        assert emulated.status("server").started
    if "httpGet" in probe:
        assert "probed /healthz" in emulated.logs("server")


def test_hooks_run_in_the_container_around_start_and_stop(make_pod: PodFactory) -> None:
    notes_on_term = SLEEPER.replace(
        'print("TERM"',
        "print('preStop ran first:', open('/shared/hooks').read() == 'start,stop', flush=True)"
        '; print("TERM"',
    )
    manifest = pod(
        "hooks",
        [
            container(
                "app",
                notes_on_term,
                mounts=SHARED,
                lifecycle={
                    "postStart": {
                        "exec": {"command": python("open('/shared/hooks', 'a').write('start')")}
                    },
                    "preStop": {
                        "exec": {"command": python("open('/shared/hooks', 'a').write(',stop')")}
                    },
                },
            )
        ],
        volumes=[memory_volume("shared")],
    )
    with make_pod(manifest) as emulated:
        emulated.wait_until_running(20)
        written = (emulated.volume_path("shared") / "hooks").read_text()
        assert written == "start"
        assert emulated.stop() is PodPhase.SUCCEEDED
    assert "preStop ran first: True" in emulated.logs("app")
