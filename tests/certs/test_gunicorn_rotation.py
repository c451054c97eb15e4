"""Rotation keeps clients connected: a client that trusts only the published caBundle keeps getting
answers from a real gunicorn, served from a follower's files, across serving renewals and a CA
rollover."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from certs.authority import fingerprint, load_certificates
from certs.rotation import RotationPolicy
from tests.certs.kube_support import add_webhook_configuration, published_bundles, replicas
from tests.certs.tls_support import client_context
from tests.support.fake_kube import FakeKubeApiServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SERVER_NAME = "injector.vsi.svc"
SECOND = datetime.timedelta(seconds=1)
# Seconds instead of days: a serving renewal every ~1.5 s, a CA rollover ~4 s after each CA starts.
FAST_ROTATION = RotationPolicy(
    ca_lifetime=12 * SECOND,
    ca_renew_before=8 * SECOND,
    serving_lifetime=4 * SECOND,
    serving_renew_before=2.5 * SECOND,
    publish_delay=0.3 * SECOND,
    retire_delay=1.0 * SECOND,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gunicorn(cert_dir: Path, *, workers: int = 2) -> Iterator[int]:
    """A real gunicorn serving ``cert_dir``'s files over TLS; yields its port, always stopped."""
    port = _free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TEST_TLS_CERT_FILE": str(cert_dir / "tls.crt"),
        "TEST_TLS_KEY_FILE": str(cert_dir / "tls.key"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:tests.certs.gunicorn_tls_app",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--certfile", str(cert_dir / "tls.crt"), "--keyfile", str(cert_dir / "tls.key"),
         "tests.certs.gunicorn_tls_app:app"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"gunicorn did not start: {process.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
                    ) from None
                time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        assert process.stderr is not None
        process.stderr.close()


@dataclass
class ClientLog:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    serving: set[str] = field(default_factory=set)
    authorities: set[str] = field(default_factory=set)
    bundle_sizes: list[int] = field(default_factory=list)


def _request(port: int, bundle: bytes) -> tuple[str, bytes]:
    """One HTTPS request trusting only ``bundle``; the served certificate's fingerprint and body."""
    context: ssl.SSLContext = client_context(bundle)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    assert der is not None
    return fingerprint(x509.load_der_x509_certificate(der)), answer


def test_clients_trusting_the_published_bundle_stay_connected_across_rotations(
    fake_kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    add_webhook_configuration(fake_kube, entries=2)
    log = ClientLog()
    with replicas(fake_kube, tmp_path, policy=FAST_ROTATION) as group:
        leader = group.start("injector-a")
        assert leader.wait_ready(10)
        follower = group.start("injector-b")
        assert follower.wait_ready(10)
        assert group.leaders() == ["injector-a"]
        with gunicorn(follower.settings.cert_dir) as port:
            deadline = time.monotonic() + 30
            rollover_seen = False
            while time.monotonic() < deadline:
                bundles = published_bundles(fake_kube)
                assert len(set(bundles)) == 1, "every webhook entry holds the same bundle"
                bundle = bundles[0]
                authorities = load_certificates(bundle)
                log.bundle_sizes.append(len(authorities))
                log.authorities.update(fingerprint(ca) for ca in authorities)
                log.requests += 1
                try:
                    served, answer = _request(port, bundle)
                except (ssl.SSLError, OSError) as error:
                    log.failures.append(f"request {log.requests}: {type(error).__name__}: {error}")
                    continue
                assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
                log.serving.add(served)
                # A full rollover: two CAs published together, then one again, with a new CA.
                rollover_seen = (
                    len(log.authorities) >= 2
                    and 2 in log.bundle_sizes
                    and log.bundle_sizes[-1] == 1
                    and log.bundle_sizes.index(2) < len(log.bundle_sizes) - 1
                )
                if rollover_seen and len(log.serving) >= 4:
                    break
                time.sleep(0.01)
    assert log.failures == []
    assert rollover_seen, f"no complete CA rollover seen; bundle sizes {set(log.bundle_sizes)}"
    assert len(log.serving) >= 4, "serving certificates were renewed several times"
    assert log.requests >= 100
