"""Commands after a change (no shell, timeout, never concurrent with themselves) and signals to
processes found by command name."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.audit import Audit
from agent.config import PodIdentity
from agent.notify import (
    CommandRunner,
    NotifyError,
    matching_processes,
    parse_command,
    parse_signal,
    send_signal,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("SIGHUP", signal.SIGHUP, id="a full name"),
        pytest.param("hup", signal.SIGHUP, id="a short lower-case name"),
        pytest.param("USR1", signal.SIGUSR1, id="a short name"),
        pytest.param("15", signal.SIGTERM, id="a number"),
    ],
)
def test_signal_names(name: str, expected: signal.Signals) -> None:
    assert parse_signal(name) == expected


@pytest.mark.parametrize("name", ["SIGNOPE", "", "999"])
def test_unknown_signals_are_refused(name: str) -> None:
    with pytest.raises(NotifyError):
        parse_signal(name)


def test_commands_are_split_without_a_shell() -> None:
    assert parse_command("nginx -s reload") == ["nginx", "-s", "reload"]
    assert parse_command("sh -c 'kill -HUP 1'") == ["sh", "-c", "kill -HUP 1"]
    assert parse_command("echo $(id)") == ["echo", "$(id)"]
    with pytest.raises(NotifyError):
        parse_command("")
    with pytest.raises(NotifyError):
        parse_command("echo 'unterminated")


NAMED = """
import sys, time, signal
with open("/proc/self/comm", "w") as comm:
    comm.write(sys.argv[1])
signal.signal(signal.SIGUSR1, lambda *_: open(sys.argv[2], "a").write("usr1\\n"))
open(sys.argv[2], "a").close()
while True:
    time.sleep(0.05)
"""


def test_a_signal_reaches_every_process_with_the_name_and_no_other(tmp_path: Path) -> None:
    targets = [tmp_path / "one", tmp_path / "two", tmp_path / "other"]
    names = ["vsi-notify-app", "vsi-notify-app", "vsi-notify-oth"]
    processes = [
        subprocess.Popen([sys.executable, "-c", NAMED, name, str(target)])
        for name, target in zip(names, targets, strict=True)
    ]
    try:
        deadline = time.monotonic() + 10
        while not all(target.exists() for target in targets):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert matching_processes("vsi-notify-app") == sorted(p.pid for p in processes[:2])
        signalled = send_signal("USR1", "vsi-notify-app")
        assert sorted(signalled) == sorted(p.pid for p in processes[:2])
        deadline = time.monotonic() + 10
        while not all("usr1" in target.read_text() for target in targets[:2]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert targets[2].read_text() == ""
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _runner() -> tuple[CommandRunner, io.StringIO]:
    stream = io.StringIO()
    return CommandRunner(
        audit=Audit(PodIdentity(namespace="ns", service_account="sa"), stream=stream),
        now=time.monotonic,
    ), stream


def _drain(runner: CommandRunner, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while runner.poll() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _results(stream: io.StringIO) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [(line["template"], line["result"]) for line in lines if line["event"] == "command"]


def test_commands_report_success_failure_and_timeout(tmp_path: Path) -> None:
    runner, stream = _runner()
    started = time.monotonic()
    runner.start("ok", ["/bin/true"], timeout=5)
    runner.start("bad", ["/bin/sh", "-c", "exit 3"], timeout=5)
    runner.start("slow", ["/bin/sleep", "30"], timeout=0.5)
    runner.start("missing", [str(tmp_path / "no-such-binary")], timeout=5)
    _drain(runner)
    assert time.monotonic() - started < 5
    assert sorted(_results(stream)) == [
        ("bad", "failed"),
        ("missing", "not started"),
        ("ok", "ok"),
        ("slow", "timed out"),
    ]


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    runner, _ = _runner()
    marker = tmp_path / "child-alive"
    runner.start(
        "tree",
        ["/bin/sh", "-c", f"(sleep 2; touch {marker}) & sleep 30"],
        timeout=0.3,
    )
    _drain(runner)
    time.sleep(2.5)
    assert not marker.exists()


def test_a_command_is_not_run_twice_at_once_but_runs_again_after(tmp_path: Path) -> None:
    runner, stream = _runner()
    log = tmp_path / "log"
    argv = ["/bin/sh", "-c", f"echo start >> {log}; sleep 0.3; echo end >> {log}"]
    runner.start("app", argv, timeout=5)
    runner.start("app", argv, timeout=5)
    runner.start("app", argv, timeout=5)
    _drain(runner)
    assert log.read_text().split() == ["start", "end", "start", "end"]
    assert _results(stream) == [("app", "ok"), ("app", "ok")]


def test_a_commands_output_goes_to_the_log_stream_not_the_audit_trail(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Standard output is the audit trail, one JSON line per event; a command's chatter would
    break it for whoever parses it."""
    runner, _ = _runner()
    runner.start("app", ["/bin/sh", "-c", "echo reloaded; echo warned >&2"], timeout=5)
    _drain(runner)
    captured = capfd.readouterr()
    assert "reloaded" not in captured.out
    assert "reloaded" in captured.err
    assert "warned" in captured.err
