"""The server context picks up renewed files on the next handshake and refuses bad ones clearly."""

from __future__ import annotations

import datetime
import logging
import ssl
from pathlib import Path

import pytest

from certs.authority import KeyPair, generate_ca, issue_serving_certificate, utcnow
from certs.files import publish_files
from certs.reload import CertificateLoadError, ReloadingServerContext, gunicorn_ssl_context
from tests.certs.tls_support import served_certificate, tls_server

HOST = "injector.vsi.svc"


def _write(directory: Path, pair: KeyPair) -> None:
    publish_files(directory, {"tls.crt": (pair.cert_pem, 0o644), "tls.key": (pair.key_pem, 0o600)})


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    ca = generate_ca()
    first = issue_serving_certificate(ca, [HOST])
    second = issue_serving_certificate(ca, [HOST])
    _write(tmp_path, first)
    reloading = ReloadingServerContext(
        str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), check_interval=0.0
    )
    with tls_server(reloading.context) as port:
        assert served_certificate(port, ca_pem=ca.cert_pem, server_name=HOST) == first.certificate
        _write(tmp_path, second)
        assert served_certificate(port, ca_pem=ca.cert_pem, server_name=HOST) == second.certificate


def test_a_mismatched_update_keeps_the_loaded_pair(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = generate_ca()
    good = issue_serving_certificate(ca, [HOST])
    other = issue_serving_certificate(ca, [HOST])
    _write(tmp_path, good)
    reloading = ReloadingServerContext(
        str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), check_interval=0.0
    )
    with tls_server(reloading.context) as port, caplog.at_level(logging.WARNING):
        _write(tmp_path, KeyPair(other.cert_pem, good.key_pem))
        assert served_certificate(port, ca_pem=ca.cert_pem, server_name=HOST) == good.certificate
    assert "keeping the loaded TLS certificate" in caplog.text
    assert "PRIVATE KEY" not in caplog.text


@pytest.mark.parametrize(
    ("files", "named"),
    [
        pytest.param(("missing.crt", "tls.key"), "missing.crt", id="a missing certificate"),
        pytest.param(("tls.crt", "other.key"), "other.key", id="a key of another certificate"),
    ],
)
def test_bad_files_refuse_to_start_naming_them(
    tmp_path: Path, files: tuple[str, str], named: str
) -> None:
    ca = generate_ca()
    _write(tmp_path, issue_serving_certificate(ca, [HOST]))
    (tmp_path / "other.key").write_bytes(issue_serving_certificate(ca, [HOST]).key_pem)
    cert_file, key_file = (str(tmp_path / name) for name in files)
    with pytest.raises(CertificateLoadError, match=named):
        ReloadingServerContext(cert_file, key_file)


def test_an_expiring_certificate_is_logged_when_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = generate_ca()
    # Valid for 1 hour (plus the 5 minutes of skew allowance), issued 1 hour ago.
    nearly_gone = issue_serving_certificate(
        ca,
        [HOST],
        lifetime=datetime.timedelta(hours=1),
        now=utcnow() - datetime.timedelta(minutes=59),
    )
    _write(tmp_path, nearly_gone)
    with caplog.at_level(logging.WARNING, logger="certs.reload"):
        ReloadingServerContext(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    assert f"TLS certificate {tmp_path / 'tls.crt'}" in caplog.text
    assert "expires at" in caplog.text
    assert len(caplog.records) == 1, "one load, one warning"


def test_the_gunicorn_hook_keeps_one_context_per_process(tmp_path: Path) -> None:
    _write(tmp_path, issue_serving_certificate(generate_ca(), [HOST]))
    hook = gunicorn_ssl_context(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))

    def refuse() -> ssl.SSLContext:
        raise AssertionError("the default factory must not be used")

    first = hook(None, refuse)
    assert hook(None, refuse) is first
    assert first.sni_callback is not None
