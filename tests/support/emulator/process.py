"""Starting the launcher: the pod sandbox, container processes and commands run inside containers.

Every process is started through ``launcher.py`` (as root, with ``python -I -S``), in a new session
so a container's whole process group can be signalled. Container output (stdout and stderr merged,
as ``kubectl logs`` shows it) goes through a pipe to a ``LogSink``: a file per container, plus an
optional callback per line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("launcher.py")
LAUNCH_TIMEOUT_SECONDS = 30.0
_spec_numbers = itertools.count()

LogCallback = Callable[[str, str], None]  # (container name, line without newline)


class StartFailed(RuntimeError):
    """The launcher could not start the process (StartError)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_of(returncode: int) -> int:
    """A process's status as Kubernetes reports it: 128 + signal when killed by a signal."""
    return 128 - returncode if returncode < 0 else returncode


class LogSink:
    """One container's log: every attempt appends to the same file, like ``kubectl logs``."""

    def __init__(self, path: Path, container: str, on_line: LogCallback | None) -> None:
        self.path = path
        self._container = container
        self._on_line = on_line
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")
        self._pumps: list[threading.Thread] = []

    def attach(self, stream: IO[bytes]) -> None:
        pump = threading.Thread(
            target=self._pump, args=(stream,), name=f"log-{self._container}", daemon=True
        )
        self._pumps.append(pump)
        pump.start()

    def _pump(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace")
                with self._lock:
                    if self._file.closed:
                        return
                    self._file.write(line)
                    self._file.flush()
                if self._on_line is not None:
                    try:
                        self._on_line(self._container, line.rstrip("\n"))
                    except Exception:
                        logger.exception("log callback failed for %s", self._container)

    def text(self) -> str:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
        return self.path.read_text(encoding="utf-8", errors="replace")

    def close(self, timeout: float = 5.0) -> None:
        for pump in self._pumps:
            pump.join(timeout)
        with self._lock:
            self._file.close()


def _write_spec(run_dir: Path, spec: Mapping[str, Any]) -> Path:
    path = run_dir / f"spec-{os.getpid()}-{next(_spec_numbers)}.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    return path


def _launch(
    run_dir: Path, spec: Mapping[str, Any], *, stdin: int | None, stdout: int, stderr: int
) -> tuple[subprocess.Popen[bytes], int]:
    spec_path = _write_spec(run_dir, spec)
    report_read, report_write = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LAUNCHER), str(spec_path), str(report_write)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(report_write,),
            start_new_session=True,
        )
    except BaseException:
        os.close(report_read)
        spec_path.unlink(missing_ok=True)
        raise
    finally:
        os.close(report_write)
    return process, report_read


def _read_report(descriptor: int, timeout: float) -> dict[str, str] | None:
    """The launcher's failure report, or None once it exec'd (the pipe closed empty)."""
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"reason": "StartError", "message": "the launcher did not start in time"}
            ready, _, _ = select.select([descriptor], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(descriptor, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    if not chunks:
        return None
    report: dict[str, str] = json.loads(b"".join(chunks))
    return report


def signal_group(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal_number)


class ContainerProcess:
    """One attempt of a container: the process that became the container's command."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.pid = process.pid
        self.started_at = time.monotonic()

    @classmethod
    def start(cls, run_dir: Path, spec: Mapping[str, Any], log: LogSink) -> ContainerProcess:
        process, report_read = _launch(
            run_dir,
            spec,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        log.attach(process.stdout)
        report = _read_report(report_read, LAUNCH_TIMEOUT_SECONDS)
        if report is not None:
            signal_group(process.pid, signal.SIGKILL)
            returncode = process.wait()
            raise StartFailed(report["message"], exit_code_of(returncode))
        return cls(process)

    def poll(self) -> int | None:
        returncode = self._process.poll()
        return None if returncode is None else exit_code_of(returncode)

    def signal(self, signal_number: int) -> None:
        """Signal the container's process group (its command and whatever it started)."""
        signal_group(self.pid, signal_number)

    def kill_and_wait(self, timeout: float = 10.0) -> int | None:
        self.signal(signal.SIGKILL)
        try:
            return exit_code_of(self._process.wait(timeout))
        except subprocess.TimeoutExpired:
            logger.error("container process %s did not die after SIGKILL", self.pid)
            return None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


def run_in_container(
    run_dir: Path, spec: Mapping[str, Any], *, timeout: float, stdin: bytes | None = None
) -> ExecResult:
    """Run a command in a running container's namespace and root; wait for it (or kill it)."""
    process, report_read = _launch(
        run_dir,
        spec,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    timed_out = False
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        signal_group(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    finally:
        signal_group(process.pid, signal.SIGKILL)  # anything it left behind in its group
        os.close(report_read)
    return ExecResult(
        exit_code=exit_code_of(process.returncode),
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=stderr.decode("utf-8", errors="replace"),
        timed_out=timed_out,
    )


class Sandbox:
    """The pod sandbox: holds the pod's mount namespace and its tmpfs volumes."""

    def __init__(self, process: subprocess.Popen[bytes], backings: dict[str, str]) -> None:
        self._process = process
        self.pid = process.pid
        self.backings = backings

    @classmethod
    def start(cls, run_dir: Path, volumes: Sequence[Mapping[str, Any]]) -> Sandbox:
        process, report_read = _launch(
            run_dir,
            {"mode": "sandbox", "volumes": volumes},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], LAUNCH_TIMEOUT_SECONDS)
        line = process.stdout.readline() if ready else b""
        if not line:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
            report = _read_report(report_read, 1.0)
            reason = report["message"] if report else "the sandbox did not start"
            raise StartFailed(f"pod sandbox: {reason}", exit_code_of(process.returncode))
        os.close(report_read)
        return cls(process, json.loads(line)["backings"])

    def host_path(self, path: str) -> Path:
        """``path`` of the sandbox's mount namespace, reachable from this process."""
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")

    def stop(self, timeout: float = 5.0) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(self.pid, signal.SIGKILL)
            self._process.wait(timeout)
        if self._process.stdout is not None:
            self._process.stdout.close()
