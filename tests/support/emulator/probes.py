"""Probes and lifecycle-hook actions, timed as the kubelet's prober workers time them.

A ``Prober`` runs in its own thread per container attempt. The startup probe runs first; readiness
and liveness start once it succeeded (at once when there is none). Attempts happen every
``periodSeconds`` from the container's start, skipped while it is younger than
``initialDelaySeconds``; each attempt is bounded by ``timeoutSeconds``; ``failureThreshold``
consecutive failures make the verdict (startup: kill and restart; liveness: kill and restart;
readiness: not ready) and ``successThreshold`` consecutive successes make a container ready.
"""

from __future__ import annotations

import enum
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tests.support.emulator.manifest import (
    Action,
    ExecAction,
    HttpGetAction,
    ProbeSpec,
    SleepAction,
    TcpSocketAction,
)
from tests.support.emulator.process import ExecResult

logger = logging.getLogger(__name__)

HTTP_SUCCESS = range(200, 400)

ExecInContainer = Callable[[Sequence[str], float], ExecResult]


class ProbeVerdict(enum.Enum):
    STARTED = "started"
    STARTUP_FAILED = "startup probe failed"
    READY = "ready"
    NOT_READY = "not ready"
    LIVENESS_FAILED = "liveness probe failed"


def _port(port: int | str, named_ports: Mapping[str, int]) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if port not in named_ports:
        raise ValueError(f"no container port named {port!r}")
    return named_ports[port]


def run_action(
    action: Action,
    *,
    exec_in_container: ExecInContainer,
    named_ports: Mapping[str, int],
    timeout: float,
) -> bool:
    """Whether the action succeeded within ``timeout`` seconds."""
    try:
        if isinstance(action, ExecAction):
            result = exec_in_container(action.command, timeout)
            return result.exit_code == 0 and not result.timed_out
        if isinstance(action, HttpGetAction):
            url = f"http://{action.host}:{_port(action.port, named_ports)}{action.path}"
            request = urllib.request.Request(url, headers=dict(action.headers))
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status in HTTP_SUCCESS
        if isinstance(action, TcpSocketAction):
            address = (action.host, _port(action.port, named_ports))
            with socket.create_connection(address, timeout=timeout):
                return True
        if isinstance(action, SleepAction):
            time.sleep(min(action.seconds, timeout))
            return True
    except urllib.error.HTTPError as error:
        return error.code in HTTP_SUCCESS
    except (OSError, ValueError) as error:
        logger.debug("probe action failed: %s", error)
        return False
    return False


@dataclass
class _Schedule:
    name: str
    spec: ProbeSpec
    next_attempt: float
    successes: int = 0
    failures: int = 0


class Prober:
    """Probes one container attempt; reports verdicts through ``on_verdict``."""

    def __init__(
        self,
        container: str,
        *,
        startup: ProbeSpec | None,
        readiness: ProbeSpec | None,
        liveness: ProbeSpec | None,
        check: Callable[[ProbeSpec], bool],
        on_verdict: Callable[[ProbeVerdict], None],
        started_at: float,
    ) -> None:
        self._startup = startup
        self._readiness = readiness
        self._liveness = liveness
        self._check = check
        self._on_verdict = on_verdict
        self._started_at = started_at
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{container}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        startup = self._startup
        if startup is not None and not self._loop(
            [_Schedule("startup", startup, self._started_at)]
        ):
            return
        self._on_verdict(ProbeVerdict.STARTED)
        schedules = []
        now = time.monotonic()
        if self._readiness is not None:
            schedules.append(_Schedule("readiness", self._readiness, now))
        else:
            self._on_verdict(ProbeVerdict.READY)
        if self._liveness is not None:
            schedules.append(_Schedule("liveness", self._liveness, now))
        if schedules:
            self._loop(schedules)

    def _loop(self, schedules: list[_Schedule]) -> bool:
        """Probe until a startup probe succeeds (True) or a fatal verdict or stop (False)."""
        while not self._stop.is_set():
            now = time.monotonic()
            due = [schedule for schedule in schedules if schedule.next_attempt <= now]
            if not due:
                wait = min(schedule.next_attempt for schedule in schedules) - now
                self._stop.wait(wait)
                continue
            for schedule in due:
                schedule.next_attempt += schedule.spec.period_seconds
                if schedule.next_attempt <= now:  # fell behind: do not fire a burst
                    schedule.next_attempt = now + schedule.spec.period_seconds
                if now - self._started_at < schedule.spec.initial_delay_seconds:
                    continue
                succeeded = self._check(schedule.spec)
                if self._stop.is_set():
                    return False
                if succeeded:
                    schedule.successes += 1
                    schedule.failures = 0
                else:
                    schedule.failures += 1
                    schedule.successes = 0
                verdict = self._judge(schedule)
                if schedule.name == "startup" and verdict is ProbeVerdict.STARTED:
                    return True
                if verdict is not None:
                    self._on_verdict(verdict)
                    if verdict in (ProbeVerdict.STARTUP_FAILED, ProbeVerdict.LIVENESS_FAILED):
                        return False
        return False

    @staticmethod
    def _judge(schedule: _Schedule) -> ProbeVerdict | None:
        spec = schedule.spec
        if schedule.name == "startup":
            if schedule.successes >= 1:
                return ProbeVerdict.STARTED
            if schedule.failures >= spec.failure_threshold:
                return ProbeVerdict.STARTUP_FAILED
            return None
        if schedule.name == "readiness":
            if schedule.successes >= spec.success_threshold:
                return ProbeVerdict.READY
            if schedule.failures >= spec.failure_threshold:
                return ProbeVerdict.NOT_READY
            return None
        if schedule.failures >= spec.failure_threshold:
            return ProbeVerdict.LIVENESS_FAILED
        return None
