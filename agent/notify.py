"""Tell the app a file changed: run its command, or signal its process.

Commands run without a shell (``shlex.split``): a rendered value can never become shell syntax,
and the agent image needs no shell. Whoever needs one writes ``sh -c '...'`` explicitly. Each
command runs in its own process group so a timeout kills it and its children. The runner polls
``CommandRunner.poll`` from its scheduler: nothing here blocks or starts a thread. A command still
running when its file changes again is not started twice; it runs once more after it ends.

Signals go to every process in the pod (shareProcessNamespace) whose command name matches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.audit import Audit

logger = logging.getLogger(__name__)

# Linux keeps the first 15 bytes of a command name in /proc/<pid>/comm.
_COMM_LENGTH = 15
_STDERR = 2


class NotifyError(ValueError):
    """A command or a signal name that cannot be used; says which, never with file contents."""


def parse_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise NotifyError(f"command cannot be split into arguments: {error}") from None
    if not argv:
        raise NotifyError("command is empty")
    return argv


def parse_signal(name: str) -> signal.Signals:
    text = name.strip().upper()
    if text.isdigit():
        try:
            return signal.Signals(int(text))
        except ValueError:
            raise NotifyError(f"unknown signal {name!r}") from None
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise NotifyError(f"unknown signal {name!r}") from None


def matching_processes(process_name: str, *, proc_root: str = "/proc") -> list[int]:
    """Pids whose command name (``comm``, or the base name of ``argv[0]``) is ``process_name``."""
    wanted_comm = process_name[:_COMM_LENGTH]
    own = os.getpid()
    found: list[int] = []
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        if comm == wanted_comm or (argv0 and os.path.basename(argv0) == process_name):
            found.append(int(entry.name))
    return sorted(found)


def send_signal(signal_name: str, process_name: str, *, proc_root: str = "/proc") -> list[int]:
    """Signal every matching process; returns the pids signalled."""
    signum = parse_signal(signal_name)
    signalled = []
    for pid in matching_processes(process_name, proc_root=proc_root):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue
        except PermissionError:
            logger.warning("not allowed to signal process %d (%s)", pid, process_name)
            continue
        signalled.append(pid)
    return signalled


@dataclass
class _Running:
    template: str
    process: subprocess.Popen[bytes]
    deadline: float
    killed: bool = False


class CommandRunner:
    """Starts commands and reaps them from the scheduler's loop; at most one per template."""

    def __init__(self, *, audit: Audit, now: Callable[[], float]) -> None:
        self._audit = audit
        self._now = now
        self._running: dict[str, _Running] = {}
        # Templates whose command must run again once the current run ends.
        self._again: dict[str, tuple[list[str], float]] = {}

    def start(self, template: str, argv: list[str], *, timeout: float) -> None:
        if template in self._running:
            self._again[template] = (argv, timeout)
            return
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                # Standard output is the audit trail (one JSON line per event): the command's
                # output joins the agent's logs on standard error instead.
                stdout=_STDERR,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            logger.warning("command of template %s could not start: %s", template, error.strerror)
            self._audit.event("command", template=template, result="not started")
            return
        self._running[template] = _Running(template, process, self._now() + timeout)

    def poll(self) -> float | None:
        """Reap finished commands, kill overdue ones; the next time to poll, or None if idle."""
        now = self._now()
        for template, run in list(self._running.items()):
            code = run.process.poll()
            if code is None:
                if now >= run.deadline and not run.killed:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(run.process.pid, signal.SIGKILL)
                    run.killed = True
                continue
            del self._running[template]
            result = "timed out" if run.killed else ("ok" if code == 0 else "failed")
            self._audit.event("command", template=template, result=result, exit_code=code)
            if result != "ok":
                logger.warning("command of template %s %s (exit %d)", template, result, code)
            again = self._again.pop(template, None)
            if again is not None:
                self.start(template, again[0], timeout=again[1])
        if not self._running:
            return None
        # Poll often enough to notice an exit promptly, and exactly at the nearest deadline.
        next_check = now + 0.2
        deadlines = [run.deadline for run in self._running.values() if not run.killed]
        return min([next_check, *deadlines])

    def stop_all(self) -> None:
        for run in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(5)
        self._running.clear()
        self._again.clear()
