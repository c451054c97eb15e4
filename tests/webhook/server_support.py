"""A real ``python -m webhook serve`` (gunicorn over TLS) on a free loopback port, for tests and
the benchmark: certificates from certs.authority written to files, the process always stopped."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from certs.authority import KeyPair, generate_ca, issue_serving_certificate

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def write_tls_files(directory: Path, *, ca: KeyPair | None = None) -> TlsFiles:
    ca = ca or generate_ca()
    pair = issue_serving_certificate(ca, ["127.0.0.1", "localhost"])
    files = TlsFiles(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    files.ca_file.write_bytes(ca.cert_pem)
    files.cert_file.write_bytes(pair.cert_pem)
    files.key_file.write_bytes(pair.key_pem)
    return files


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_tls(port: int, process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early with code {process.returncode}")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                context.wrap_socket(raw),
            ):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"no TLS listener on port {port} after {timeout}s")


def server_environment(tls: TlsFiles, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AGENT_INJECT_", "PROMETHEUS_"))
    }
    env.update(
        {
            "AGENT_INJECT_VAULT_ADDR": "https://vault.vault.svc:8200",
            "AGENT_INJECT_TLS_CERT_FILE": str(tls.cert_file),
            "AGENT_INJECT_TLS_KEY_FILE": str(tls.key_file),
            "AGENT_INJECT_LOG_LEVEL": "warn",
            "PYTHONPATH": str(REPOSITORY),
        }
    )
    env.update(extra)
    return env


@contextmanager
def running_server(
    env: dict[str, str], *, command: Sequence[str] | None = None, port: int | None = None
) -> Iterator[int]:
    """Start the server, yield its port once TLS answers, then stop it (SIGTERM, then SIGKILL)."""
    port = port or free_port()
    argv = list(command or [sys.executable, "-m", "webhook", "serve"])
    argv += ["--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_tls(port, process)
        yield port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
