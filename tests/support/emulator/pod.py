"""``EmulatedPod``: runs a Pod manifest as local processes, the way a kubelet would.

One worker thread per pod plays the kubelet's pod worker: it starts the sandbox (the pod's mount
namespace and tmpfs volumes), fills the volumes, runs the init containers in order (a native sidecar
is started and the next init container waits for its startup probe), starts the app containers,
restarts containers as their restart policy says, completes the pod when its app containers are
done, and terminates it on ``stop()``: app containers (classic sidecars among them) get SIGTERM
first, native sidecars only after the apps exited and in reverse order, SIGKILL at the end of the
grace period. Container processes are started from this thread and die with it (parent-death
signal), so even a killed test process leaves nothing running.

Deviations from a kubelet, on purpose: an init container, volume or env reference that cannot work
fails the pod at once instead of retrying forever; restart back-off starts at half a second; no
network namespace (containers share the host's loopback; the pod IP is 127.0.0.1); resource limits
and capabilities are not enforced; this is a test harness, not a security boundary.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import enum
import functools
import logging
import os
import shutil
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.emulator.cluster import ClusterObjects, ObjectData
from tests.support.emulator.expansion import expand
from tests.support.emulator.fields import NodeFacts
from tests.support.emulator.images import ImageTable, UnknownImage
from tests.support.emulator.inspection import host_mounts_under, pod_processes
from tests.support.emulator.manifest import (
    Action,
    ContainerKind,
    ContainerSpec,
    FilesSource,
    InvalidPod,
    PodModel,
    ProbeSpec,
    RestartPolicy,
    parse_pod,
)
from tests.support.emulator.probes import Prober, ProbeVerdict, run_action
from tests.support.emulator.process import (
    ContainerProcess,
    ExecResult,
    LogCallback,
    LogSink,
    Sandbox,
    StartFailed,
    run_in_container,
    signal_group,
)
from tests.support.emulator.runtime_config import (
    ContainerConfigError,
    ProcessConfig,
    process_config,
    service_environment,
)
from tests.support.emulator.tokens import ServiceAccountTokens, TokenIssuer
from tests.support.emulator.volumes import PodVolumes, VolumeBacking, VolumeSetupError

logger = logging.getLogger(__name__)

_TICK_SECONDS = 0.02
_LOG_TAIL_LINES = 20
_AT_EXIT_GRACE_SECONDS = 2.0

# Pods still running when the interpreter exits (a script that never called stop()).
_running_pods: weakref.WeakSet[EmulatedPod] = weakref.WeakSet()


def _stop_running_pods() -> None:
    for pod in list(_running_pods):
        with contextlib.suppress(Exception):
            pod.stop(grace_period_seconds=_AT_EXIT_GRACE_SECONDS)


atexit.register(_stop_running_pods)


class PodPhase(enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class EmulatorError(RuntimeError):
    pass


class PodFailed(EmulatorError):
    """The pod failed, or a container crashed while the caller waited for it to run."""


@dataclass(frozen=True)
class EmulatorOptions:
    """How the emulated node behaves; the defaults are a kubelet's where that makes sense."""

    use_tmpfs: bool = True  # False: memory volumes become plain directories (the fallback)
    max_token_lifetime: datetime.timedelta | None = None  # cap token lifetimes to test refresh
    restart_backoff_seconds: float = 0.5
    max_restart_backoff_seconds: float = 5.0
    node: NodeFacts = field(default_factory=NodeFacts)
    kube_api_url: str | None = None  # KUBERNETES_SERVICE_HOST/PORT for the containers
    start_timeout_seconds: float = 30.0  # sandbox and volume set-up


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    kind: ContainerKind
    state: str  # waiting | running | terminated
    reason: str
    exit_code: int | None
    restart_count: int
    started: bool
    ready: bool
    pid: int | None


@dataclass(frozen=True)
class PodEvent:
    at: float  # time.monotonic()
    container: str | None
    reason: str
    message: str


@dataclass
class _Container:
    spec: ContainerSpec
    log: LogSink
    state: str = "waiting"
    reason: str = "PodInitializing"
    message: str = ""
    exit_code: int | None = None
    restart_count: int = 0
    attempts: int = 0
    started: bool = False
    ready: bool = False
    process: ContainerProcess | None = None
    config: ProcessConfig | None = None
    rootfs: str = ""
    prober: Prober | None = None
    restart_at: float | None = None
    backoff: float = 0.0
    kill_requested: str = ""  # why the worker must kill it (failed startup/liveness probe)
    term_sent_at: float | None = None
    grace_deadline: float | None = None

    @property
    def running(self) -> bool:
        return self.state == "running" and self.process is not None


class _PodFailure(Exception):
    """Ends the pod worker's normal course: the pod fails with this message."""


@dataclass
class _StopRequest:
    grace_period_seconds: float | None = None
    requested: bool = False
    hooks: list[threading.Thread] = field(default_factory=list)


class EmulatedPod:
    """A Pod manifest running as local processes. Use as a context manager.

    ``manifest`` is the Pod as the API server would store it (after the mutating webhook; use
    ``apply_service_account_admission`` for what the API server adds before). ``images`` maps image
    references to commands. ``token_issuer`` issues ServiceAccount tokens for projected volumes
    (``FakeKubeApiServer`` does). ``config_maps``/``secrets`` are the namespace's objects, values
    decoded. ``workdir`` must be an empty directory of the caller's, used for this pod only; after
    the pod stopped it holds only ``logs/<container>.log``. ``on_log`` receives every log line
    with its container's name (see ``prefixed_printer``).
    """

    def __init__(
        self,
        manifest: Mapping[str, Any],
        *,
        images: ImageTable,
        workdir: Path,
        token_issuer: TokenIssuer | None = None,
        config_maps: Mapping[str, ObjectData] | None = None,
        secrets: Mapping[str, ObjectData] | None = None,
        on_log: LogCallback | None = None,
        on_event: Callable[[PodEvent], None] | None = None,
        options: EmulatorOptions | None = None,
    ) -> None:
        self.model: PodModel = parse_pod(manifest)
        self._images = images
        self._check_images()
        self._options = options or EmulatorOptions()
        self._cluster = ClusterObjects(dict(config_maps or {}), dict(secrets or {}))
        self._workdir = workdir.resolve()
        self._run_dir = self._workdir / "run"
        self._on_event = on_event
        self._tokens = (
            ServiceAccountTokens(
                token_issuer, self.model, max_lifetime=self._options.max_token_lifetime
            )
            if token_issuer is not None
            else None
        )
        self._volumes = PodVolumes(
            self.model,
            root=self._workdir / "volumes",
            cluster=self._cluster,
            tokens=self._tokens,
            node=self._options.node,
            use_tmpfs=self._options.use_tmpfs,
        )
        (self._workdir / "logs").mkdir(parents=True, exist_ok=True)
        self._containers = {
            spec.name: _Container(
                spec, LogSink(self._workdir / "logs" / f"{spec.name}.log", spec.name, on_log)
            )
            for spec in self.model.all_containers
        }
        self._changed = threading.Condition()
        self._phase = PodPhase.PENDING
        self._failure = ""
        self._events: list[PodEvent] = []
        self._stop = _StopRequest()
        self._terminating = False
        self._sandbox: Sandbox | None = None
        self._setup_done = threading.Event()
        self._setup_error: BaseException | None = None
        # A daemon, so a forgotten pod cannot hold the interpreter open; atexit stops it first.
        self._worker = threading.Thread(
            target=self._work, name=f"pod-{self.model.name}", daemon=True
        )
        self._refresher: threading.Thread | None = None
        self._started = False

    # Public API -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def namespace(self) -> str:
        return self.model.namespace

    @property
    def uid(self) -> str:
        return self.model.uid

    @property
    def phase(self) -> PodPhase:
        with self._changed:
            return self._phase

    @property
    def failure_message(self) -> str:
        """Why the pod failed (empty unless it did)."""
        with self._changed:
            return self._failure

    @property
    def events(self) -> list[PodEvent]:
        with self._changed:
            return list(self._events)

    @property
    def ready(self) -> bool:
        with self._changed:
            return self._phase is PodPhase.RUNNING and all(
                container.ready
                for container in self._containers.values()
                if container.spec.kind is not ContainerKind.INIT
            )

    def status(self, container: str) -> ContainerStatus:
        with self._changed:
            return self._status_of(self._container(container))

    @property
    def container_statuses(self) -> list[ContainerStatus]:
        with self._changed:
            return [self._status_of(container) for container in self._containers.values()]

    def logs(self, container: str) -> str:
        """Everything the container wrote to stdout and stderr, over all its attempts."""
        return self._container(container).log.text()

    def volume_backing(self, volume: str) -> VolumeBacking:
        """Whether the volume got a real tmpfs or fell back to a directory."""
        return self._volumes.backing(volume)

    def volume_path(self, volume: str) -> Path:
        """The volume's directory as this process can reach it (while the pod runs)."""
        if self._sandbox is None:
            raise EmulatorError("the pod's sandbox is not running")
        return self._sandbox.host_path(self._volumes.path(volume))

    def start(self) -> EmulatedPod:
        """Start the pod; returns once its sandbox and volumes are set up (or raises)."""
        if self._started:
            raise EmulatorError("an EmulatedPod starts once")
        self._started = True
        self._run_dir.mkdir(mode=0o700)
        _running_pods.add(self)
        self._worker.start()
        if not self._setup_done.wait(self._options.start_timeout_seconds):
            self.stop()
            raise EmulatorError("the pod sandbox did not come up in time")
        if self._setup_error is not None:
            self._worker.join()
            raise PodFailed(f"pod {self.name} could not start: {self._setup_error}")
        return self

    def stop(
        self, *, grace_period_seconds: float | None = None, timeout: float | None = None
    ) -> PodPhase:
        """Delete the pod: terminate its containers gracefully, then clean up. Idempotent."""
        with self._changed:
            if not self._stop.requested:
                self._stop.requested = True
                self._stop.grace_period_seconds = grace_period_seconds
            self._changed.notify_all()
        if self._worker.is_alive():
            grace = (
                grace_period_seconds
                if grace_period_seconds is not None
                else self.model.grace_period_seconds
            )
            self._worker.join(timeout if timeout is not None else grace + 30)
            if self._worker.is_alive():
                raise EmulatorError(f"pod {self.name} did not stop in time")
        return self.phase

    def __enter__(self) -> EmulatedPod:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_until_running(self, timeout: float = 30.0, *, tolerate_restarts: bool = False) -> None:
        """Wait until every app container runs. Raises ``PodFailed`` as soon as the pod failed or
        (unless ``tolerate_restarts``) a container exited with an error, with its log's tail."""

        def running() -> bool:
            if self._phase is not PodPhase.PENDING and self._phase is not PodPhase.RUNNING:
                raise PodFailed(self._describe_failure())
            if not tolerate_restarts:
                crashed = self._crashed_container()
                if crashed is not None:
                    raise PodFailed(self._describe_failure(crashed))
            return self._phase is PodPhase.RUNNING and all(
                container.running
                for container in self._containers.values()
                if container.spec.kind is ContainerKind.APP
            )

        self._wait(running, timeout, "every app container running")

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Wait until every app container and native sidecar is ready."""
        self.wait_until_running(timeout)

        def ready() -> bool:
            if self._phase is not PodPhase.RUNNING:
                raise PodFailed(self._describe_failure())
            return all(
                container.ready
                for container in self._containers.values()
                if container.spec.kind is not ContainerKind.INIT
            )

        self._wait(ready, timeout, "every container ready")

    def wait_until_completed(self, timeout: float = 30.0) -> PodPhase:
        """Wait until the pod reached Succeeded or Failed and was cleaned up; return the phase."""
        if not self._started:
            raise EmulatorError("the pod was never started")
        self._worker.join(timeout)
        if self._worker.is_alive():
            raise TimeoutError(f"pod {self.name} did not complete within {timeout}s")
        return self.phase

    def wait_for(self, condition: Callable[[], bool], timeout: float, description: str) -> None:
        """Wait until ``condition()`` (evaluated with the pod's state locked) holds."""
        self._wait(condition, timeout, description)

    def exec(
        self,
        container: str,
        command: Sequence[str],
        *,
        timeout: float = 30.0,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run ``command`` in the running container, like ``kubectl exec``."""
        with self._changed:
            target = self._container(container)
            if not target.running or target.config is None or target.process is None:
                raise EmulatorError(f"container {container!r} is not running")
            spec = self._exec_spec(target, command)
        return run_in_container(self._run_dir, spec, timeout=timeout, stdin=stdin)

    # State helpers (call with self._changed held) ---------------------------------------------

    def _container(self, name: str) -> _Container:
        if name not in self._containers:
            raise KeyError(f"pod {self.name} has no container {name!r}")
        return self._containers[name]

    @staticmethod
    def _status_of(container: _Container) -> ContainerStatus:
        return ContainerStatus(
            name=container.spec.name,
            kind=container.spec.kind,
            state=container.state,
            reason=container.reason,
            exit_code=container.exit_code,
            restart_count=container.restart_count,
            started=container.started,
            ready=container.ready,
            pid=container.process.pid if container.running and container.process else None,
        )

    def _crashed_container(self) -> _Container | None:
        for container in self._containers.values():
            if container.state == "terminated" and container.exit_code not in (None, 0):
                return container
        return None

    def _describe_failure(self, container: _Container | None = None) -> str:
        lines = [f"pod {self.namespace}/{self.name} is {self._phase.value}"]
        if self._failure:
            lines.append(f"reason: {self._failure}")
        suspects = [container] if container else list(self._containers.values())
        for suspect in suspects:
            if suspect.exit_code in (None, 0) and suspect.state != "waiting":
                continue
            if suspect.exit_code is None and not suspect.message:
                continue
            lines.append(
                f"{suspect.spec.kind.value} {suspect.spec.name!r}: {suspect.state} "
                f"({suspect.reason}, exit code {suspect.exit_code}, "
                f"restarts {suspect.restart_count}) {suspect.message}".rstrip()
            )
            tail = suspect.log.text().splitlines()[-_LOG_TAIL_LINES:]
            lines.extend(f"    | {line}" for line in tail)
        return "\n".join(lines)

    def _wait(self, condition: Callable[[], bool], timeout: float, description: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"waited {timeout}s for {description}\n{self._describe_failure()}"
                    )
                self._changed.wait(min(remaining, 0.1))

    def _record(self, container: str | None, reason: str, message: str) -> None:
        event = PodEvent(time.monotonic(), container, reason, message)
        with self._changed:
            self._events.append(event)
        logger.debug("pod %s: %s %s %s", self.name, container or "-", reason, message)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("event callback failed")

    def _check_images(self) -> None:
        problems = []
        for container in self.model.all_containers:
            try:
                self._images.image(container.image)
            except UnknownImage as error:
                problems.append(f"container {container.name!r}: {error.args[0]}")
        if problems:
            raise InvalidPod(problems)

    # The worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._set_up()
        except BaseException as error:
            with self._changed:
                self._setup_error = error
                self._phase = PodPhase.FAILED
                self._failure = str(error)
            self._setup_done.set()
            self._tear_down()
            _running_pods.discard(self)
            return
        self._setup_done.set()
        try:
            if self._run_init_containers() and self._start_app_containers():
                self._supervise()
        except _PodFailure as failure:
            with self._changed:
                self._failure = str(failure)
                self._record(None, "Failed", str(failure))
        except Exception as error:
            logger.exception("pod worker of %s failed", self.name)
            with self._changed:
                self._failure = f"emulator error: {error!r}"
        try:
            self._terminate_everything()
            with self._changed:
                self._phase = self._final_phase()
                self._record(None, self._phase.value, self._failure or "pod finished")
                self._changed.notify_all()
        finally:
            self._tear_down()
            _running_pods.discard(self)

    def _set_up(self) -> None:
        plan = self._volumes.sandbox_plan()
        for volume in plan:
            Path(volume.path).mkdir(parents=True)
        self._sandbox = Sandbox.start(
            self._run_dir,
            [
                {"name": v.name, "path": v.path, "tmpfs": v.tmpfs, "size_bytes": v.size_bytes}
                for v in plan
            ],
        )
        self._volumes.record_backings(self._sandbox.backings)
        self._volumes.populate(self._sandbox.host_path)
        if self._volumes.next_token_refresh_at() is not None:
            self._refresher = threading.Thread(
                target=self._refresh_tokens, name=f"tokens-{self.name}", daemon=True
            )
            self._refresher.start()
        with self._changed:
            self._record(None, "Scheduled", f"sandbox {self._sandbox.pid}, volumes ready")

    def _refresh_tokens(self) -> None:
        while True:
            due = self._volumes.next_token_refresh_at()
            with self._changed:
                if self._terminating or self._stop.requested:
                    return
                delay = (due - time.monotonic()) if due is not None else 1.0
                if delay > 0:
                    self._changed.wait(min(delay, 1.0))
                    continue
            sandbox = self._sandbox
            if sandbox is None:
                return
            try:
                self._volumes.refresh_tokens(sandbox.host_path)
                with self._changed:
                    self._record(None, "TokenRefreshed", "projected ServiceAccount token renewed")
            except Exception as error:  # the issuer may fail in any way; retry like a kubelet
                logger.warning("token refresh for pod %s failed: %s", self.name, error)
                time.sleep(1.0)

    def _wait_in_worker(self, condition: Callable[[], bool]) -> bool:
        """Supervise the pod until ``condition()``; False when a stop was requested first."""
        with self._changed:
            while True:
                self._tick()
                if condition():
                    return True
                if self._stop.requested:
                    return False
                self._changed.wait(_TICK_SECONDS)

    def _run_init_containers(self) -> bool:
        for spec in self.model.init_containers:
            container = self._containers[spec.name]
            with self._changed:
                if self._stop.requested:
                    return False
                self._start(container)
            if spec.kind is ContainerKind.SIDECAR:

                def started(c: _Container = container) -> bool:
                    return c.started

                if not self._wait_in_worker(started):
                    return False
                continue

            def finished(c: _Container = container) -> bool:
                return c.state == "terminated" and (c.exit_code == 0 or c.restart_at is None)

            if not self._wait_in_worker(finished):
                return False
            if container.exit_code != 0:
                raise _PodFailure(
                    f"init container {spec.name!r} failed with exit code {container.exit_code}"
                )
        return True

    def _start_app_containers(self) -> bool:
        with self._changed:
            if self._stop.requested:
                return False
            for spec in self.model.containers:
                self._start(self._containers[spec.name])
            self._phase = PodPhase.RUNNING
            self._record(None, "Running", "all app containers started")
            self._changed.notify_all()
        return True

    def _supervise(self) -> bool:
        """Run until the app containers are done (True) or a stop is requested (False)."""

        def apps_done() -> bool:
            return all(
                container.state == "terminated" and container.restart_at is None
                for container in self._containers.values()
                if container.spec.kind is ContainerKind.APP
            )

        return self._wait_in_worker(apps_done)

    def _final_phase(self) -> PodPhase:
        # Also after a stop: the kubelet gives a deleted pod a terminal phase from its apps' exits.
        if self._failure:
            return PodPhase.FAILED
        apps = [c for c in self._containers.values() if c.spec.kind is ContainerKind.APP]
        if all(container.exit_code == 0 for container in apps):
            return PodPhase.SUCCEEDED
        return PodPhase.FAILED

    # Starting, exits and restarts (with self._changed held) ------------------------------------

    def _start(self, container: _Container) -> None:
        spec = container.spec
        container.restart_at = None
        container.kill_requested = ""
        container.term_sent_at = None
        container.grace_deadline = None
        try:
            config = process_config(
                self.model,
                spec,
                images=self._images,
                cluster=self._cluster,
                node=self._options.node,
                service_env=service_environment(self._options.kube_api_url),
            )
            launch_spec = self._container_spec(container, config)
        except (ContainerConfigError, VolumeSetupError) as error:
            container.reason = "CreateContainerConfigError"
            container.message = str(error)
            self._record(spec.name, "Failed", str(error))
            raise _PodFailure(f"{spec.kind.value} {spec.name!r}: {error}") from None
        if container.attempts > 0:
            container.restart_count += 1
        container.attempts += 1
        container.config = config
        try:
            container.process = ContainerProcess.start(self._run_dir, launch_spec, container.log)
        except StartFailed as error:
            container.process = None
            container.message = str(error)
            self._record(spec.name, "Failed", f"StartError: {error}")
            self._on_exit(container, error.exit_code, reason="StartError")
            return
        container.state = "running"
        container.reason = ""
        container.message = ""
        container.exit_code = None
        self._record(spec.name, "Started", f"Started {spec.kind.value} {spec.name}")
        if spec.post_start is not None and not self._run_hook(container, spec.post_start):
            container.kill_requested = "FailedPostStartHook"
            return
        if spec.kind is ContainerKind.INIT:
            return
        container.prober = Prober(
            spec.name,
            startup=spec.startup_probe,
            readiness=spec.readiness_probe,
            liveness=spec.liveness_probe,
            check=functools.partial(self._probe, container),
            # Bound to this attempt: a late verdict about a previous attempt is ignored.
            on_verdict=functools.partial(self._on_verdict, container, container.process),
            started_at=container.process.started_at,
        )
        container.prober.start()

    def _on_verdict(
        self, container: _Container, attempt: ContainerProcess | None, verdict: ProbeVerdict
    ) -> None:
        with self._changed:
            if container.process is not attempt or not container.running:
                return  # a verdict about an attempt that is gone
            if verdict is ProbeVerdict.STARTED and not container.started:
                container.started = True
                if container.spec.startup_probe is not None:
                    self._record(container.spec.name, "Started", "startup probe succeeded")
            elif verdict is ProbeVerdict.READY and not container.ready:
                container.ready = True
                self._record(container.spec.name, "Ready", "container is ready")
            elif verdict is ProbeVerdict.NOT_READY and container.ready:
                container.ready = False
                self._record(container.spec.name, "Unhealthy", "readiness probe failed")
            elif verdict in (ProbeVerdict.STARTUP_FAILED, ProbeVerdict.LIVENESS_FAILED):
                container.kill_requested = verdict.value
                self._record(container.spec.name, "Unhealthy", f"{verdict.value}, will restart")
            self._changed.notify_all()

    def _on_exit(self, container: _Container, exit_code: int, *, reason: str = "") -> None:
        container.state = "terminated"
        container.exit_code = exit_code
        container.reason = reason or ("Completed" if exit_code == 0 else "Error")
        container.started = False
        container.ready = False
        if container.prober is not None:
            container.prober.stop(timeout=0)
        self._record(container.spec.name, "Terminated", f"exit code {exit_code}")
        if self._terminating or self._stop.requested:
            return
        if self._may_restart(container.spec.kind, exit_code):
            base = self._options.restart_backoff_seconds
            container.backoff = (
                min(container.backoff * 2, self._options.max_restart_backoff_seconds)
                if container.backoff
                else base
            )
            container.restart_at = time.monotonic() + container.backoff
            self._record(container.spec.name, "BackOff", f"restarting in {container.backoff:.1f}s")
        self._changed.notify_all()

    def _may_restart(self, kind: ContainerKind, exit_code: int) -> bool:
        if kind is ContainerKind.SIDECAR:
            return True
        policy = self.model.restart_policy
        if kind is ContainerKind.INIT:
            return exit_code != 0 and policy is not RestartPolicy.NEVER
        if policy is RestartPolicy.ALWAYS:
            return True
        return policy is RestartPolicy.ON_FAILURE and exit_code != 0

    def _tick(self) -> None:
        now = time.monotonic()
        for container in self._containers.values():
            process = container.process
            if container.running and process is not None:
                exit_code = process.poll()
                if exit_code is not None:
                    self._on_exit(container, exit_code)
                    continue
                if container.kill_requested and container.term_sent_at is None:
                    self._record(container.spec.name, "Killing", container.kill_requested)
                    self._send_term(container, now + self.model.grace_period_seconds)
                if container.grace_deadline is not None and now >= container.grace_deadline:
                    process.signal(signal.SIGKILL)
            elif (
                container.state == "terminated"
                and container.restart_at is not None
                and now >= container.restart_at
                and not self._terminating
                and not self._stop.requested
            ):
                self._start(container)

    def _send_term(self, container: _Container, deadline: float) -> None:
        assert container.process is not None
        if container.prober is not None:
            container.prober.stop(timeout=0)
        container.term_sent_at = time.monotonic()
        container.grace_deadline = deadline
        container.process.signal(signal.SIGTERM)

    # Probes and hooks (outside the lock) ------------------------------------------------------

    def _probe(self, container: _Container, probe: ProbeSpec) -> bool:
        return self._run_action_in(container, probe.action, probe.timeout_seconds)

    def _run_hook(self, container: _Container, action: Action, timeout: float = 30.0) -> bool:
        succeeded = self._run_action_in(container, action, timeout)
        if not succeeded:
            self._record(container.spec.name, "FailedHook", f"{type(action).__name__} failed")
        return succeeded

    def _run_action_in(self, container: _Container, action: Action, timeout: float) -> bool:
        def exec_in_container(command: Sequence[str], limit: float) -> ExecResult:
            with self._changed:
                if not container.running:
                    return ExecResult(exit_code=128, stdout="", stderr="container not running")
                spec = self._exec_spec(container, command)
            return run_in_container(self._run_dir, spec, timeout=limit)

        return run_action(
            action,
            exec_in_container=exec_in_container,
            named_ports=container.spec.ports,
            timeout=timeout,
        )

    # Termination ------------------------------------------------------------------------------

    def _terminate_everything(self) -> None:
        with self._changed:
            self._terminating = True
            for container in self._containers.values():
                container.restart_at = None
            requested = self._stop.grace_period_seconds
            grace = requested if requested is not None else self.model.grace_period_seconds
        deadline = time.monotonic() + grace
        first = [
            c
            for c in self._containers.values()
            if c.spec.kind is not ContainerKind.SIDECAR and c.running
        ]
        self._terminate_group(first, deadline)
        sidecars = [c for c in self._containers.values() if c.spec.kind is ContainerKind.SIDECAR]
        for sidecar in reversed(sidecars):
            if sidecar.running:
                self._terminate_group([sidecar], deadline)

    def _terminate_group(self, group: list[_Container], deadline: float) -> None:
        """preStop hooks, then SIGTERM, for every container of the group at once; then wait for
        them until the deadline, and SIGKILL what is left."""

        def stop_one(container: _Container) -> None:
            hook = container.spec.pre_stop
            if hook is not None:
                self._run_hook(container, hook, timeout=max(deadline - time.monotonic(), 0.1))
            with self._changed:
                if container.running:
                    self._record(container.spec.name, "Killing", "Stopping container")
                    self._send_term(container, deadline)

        threads = [
            threading.Thread(target=stop_one, args=(c,), name=f"stop-{c.spec.name}") for c in group
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0) + 5)
        with self._changed:
            while True:
                self._tick()
                alive = [container for container in group if container.running]
                if not alive:
                    return
                if time.monotonic() >= deadline:
                    for container in alive:
                        assert container.process is not None
                        self._record(container.spec.name, "Killing", "grace period over: SIGKILL")
                        exit_code = container.process.kill_and_wait()
                        self._on_exit(container, exit_code if exit_code is not None else 137)
                    return
                self._changed.wait(_TICK_SECONDS)

    def _tear_down(self) -> None:
        with self._changed:
            self._terminating = True
            self._changed.notify_all()
        for container in self._containers.values():
            if container.prober is not None:
                container.prober.stop()
            if container.process is not None and container.process.poll() is None:
                container.process.kill_and_wait()
            elif container.process is not None:
                signal_group(container.process.pid, signal.SIGKILL)
        self._kill_strays()
        if self._refresher is not None:
            self._refresher.join(5)
        if self._sandbox is not None:
            self._sandbox.stop()
        for container in self._containers.values():
            container.log.close()
        for leftover in ("run", "containers", "volumes"):
            shutil.rmtree(self._workdir / leftover, ignore_errors=True)
        mounts = host_mounts_under(self._workdir)
        if mounts:
            logger.error("mounts left on the host under %s: %s", self._workdir, mounts)

    def _kill_strays(self) -> None:
        """Processes that left their container's process group but still live in its root."""
        containers_dir = self._workdir / "containers"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            strays = pod_processes(containers_dir) if containers_dir.exists() else []
            if not strays:
                return
            for pid in strays:
                signal_group(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        logger.error("processes of pod %s survived SIGKILL", self.name)

    # Launch specifications --------------------------------------------------------------------

    def _container_spec(self, container: _Container, config: ProcessConfig) -> dict[str, Any]:
        assert self._sandbox is not None
        spec = container.spec
        mounts = []
        for mount in spec.volume_mounts:
            volume = self.model.volume(mount.name)
            sub_path = mount.sub_path
            if mount.sub_path_expr:
                sub_path = expand(mount.sub_path_expr, config.env)
            source = self._volumes.subpath_source(self._sandbox.host_path, mount.name, sub_path)
            mounts.append(
                {
                    "source": source,
                    "target": mount.mount_path,
                    # The kubelet mounts API-data volumes read-only whatever the pod says.
                    "read_only": mount.read_only or isinstance(volume.source, FilesSource),
                }
            )
        rootfs = self._workdir / "containers" / f"{spec.name}-{container.attempts}" / "rootfs"
        rootfs.mkdir(parents=True)
        container.rootfs = str(rootfs)
        identity = config.identity
        return {
            "mode": "container",
            "sandbox_pid": self._sandbox.pid,
            "rootfs": str(rootfs),
            "hidden_path": str(self._workdir),
            "exposed_host_paths": self._images.exposed_host_paths(),
            "programs": dict(self._images.executables),
            "mounts": mounts,
            "read_only_root": config.read_only_root,
            "cwd": config.working_dir,
            "uid": identity.uid,
            "gid": identity.gid,
            "groups": list(identity.groups),
            "no_new_privs": identity.no_new_privs,
            "argv": list(config.argv),
            "env": dict(config.env),
        }

    def _exec_spec(self, container: _Container, command: Sequence[str]) -> dict[str, Any]:
        assert container.config is not None
        assert container.process is not None
        config = container.config
        return {
            "mode": "exec",
            "target_pid": container.process.pid,
            "rootfs": container.rootfs,
            "cwd": config.working_dir,
            "uid": config.identity.uid,
            "gid": config.identity.gid,
            "groups": list(config.identity.groups),
            "no_new_privs": config.identity.no_new_privs,
            "argv": self._images.resolve_argv(command),
            "env": dict(config.env),
        }


def prefixed_printer(write: Callable[[str], object] = print) -> LogCallback:
    """An ``on_log`` callback printing ``[container] line``."""

    def show(container: str, line: str) -> None:
        write(f"[{container}] {line}")

    return show
