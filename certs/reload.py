"""A server-side TLS context that picks up a renewed certificate from disk without a restart.

Kubernetes updates a mounted Secret by swapping a symlink, and cert-manager or our own leader renews
the certificate in place. Each TLS handshake checks (at most once per ``check_interval`` seconds)
whether the certificate or key file changed; if so, a fresh context is loaded and used for that and
every later connection. Connections already open keep their session. A pair that fails to load (a
half-written update, a key that does not match) is logged and the previous pair keeps serving.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certs.authority import load_certificates, utcnow, validity_warnings

logger = logging.getLogger(__name__)

TLS_VERSIONS = {
    "tls12": ssl.TLSVersion.TLSv1_2,
    "tls13": ssl.TLSVersion.TLSv1_3,
}


class CertificateLoadError(ValueError):
    """The certificate or key cannot be loaded; the message names the files."""


@dataclass(frozen=True)
class _FileStamp:
    cert: tuple[int, int, int]
    key: tuple[int, int, int]


def _stamp(cert_file: str, key_file: str) -> _FileStamp:
    def one(path: str) -> tuple[int, int, int]:
        status = os.stat(path)  # follows the ..data symlink of a Secret volume
        return (status.st_ino, status.st_size, status.st_mtime_ns)

    return _FileStamp(one(cert_file), one(key_file))


def load_server_context(
    cert_file: str, key_file: str, *, minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = minimum_version
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as error:
        raise CertificateLoadError(f"TLS file not found: {error.filename}") from None
    except ssl.SSLError as error:
        raise CertificateLoadError(
            f"cannot load TLS certificate {cert_file} with key {key_file}: {error.reason or error}"
        ) from None
    _warn_about_validity(cert_file)
    return context


def _warn_about_validity(cert_file: str) -> None:
    """Log a warning for an expired or nearly expired certificate, before clients start failing."""
    try:
        with open(cert_file, "rb") as handle:
            certificates = load_certificates(handle.read())
    except (OSError, ValueError):
        return  # load_cert_chain accepted it; a parse difference must not stop serving
    for certificate in certificates[:1]:
        for warning in validity_warnings(
            certificate, now=utcnow(), label=f"TLS certificate {cert_file}"
        ):
            logger.warning("%s", warning)


class ReloadingServerContext:
    """Holds the current context; ``context`` is what to give the server socket."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        *,
        minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        check_interval: float = 1.0,
    ) -> None:
        self._cert_file = cert_file
        self._key_file = key_file
        self._minimum_version = minimum_version
        self._check_interval = check_interval
        self._lock = threading.Lock()
        try:
            self._stamp = _stamp(cert_file, key_file)
        except OSError as error:
            raise CertificateLoadError(
                f"TLS file not readable: {error.filename}: {error.strerror}"
            ) from None
        self._current = self._load()
        self._next_check = time.monotonic() + check_interval
        # The socket is wrapped with this context; the SNI callback switches each new connection to
        # the newest context. OpenSSL calls it for every ClientHello, with or without a server name.
        self.context = self._current
        self.context.sni_callback = self._on_client_hello

    def _load(self) -> ssl.SSLContext:
        return load_server_context(
            self._cert_file, self._key_file, minimum_version=self._minimum_version
        )

    def current(self) -> ssl.SSLContext:
        """The newest successfully loaded context, re-checking the files if it is time to."""
        now = time.monotonic()
        if now < self._next_check:
            return self._current
        with self._lock:
            if now < self._next_check:
                return self._current
            self._next_check = now + self._check_interval
            try:
                stamp = _stamp(self._cert_file, self._key_file)
            except OSError as error:
                logger.warning("TLS files unreadable, keeping the loaded certificate: %s", error)
                return self._current
            if stamp != self._stamp:
                try:
                    self._current = self._load()
                    self._stamp = stamp
                    logger.info("reloaded TLS certificate from %s", self._cert_file)
                except CertificateLoadError as error:
                    logger.warning("keeping the loaded TLS certificate: %s", error)
            return self._current

    def _on_client_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None, _: ssl.SSLContext
    ) -> None:
        connection.context = self.current()


GunicornSslContextHook = Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]


def gunicorn_ssl_context(
    cert_file: str,
    key_file: str,
    *,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    check_interval: float = 1.0,
) -> GunicornSslContextHook:
    """A value for gunicorn's ``ssl_context`` server hook that serves a reloading certificate.

    gunicorn calls the hook for every accepted connection, so the hook keeps one
    ``ReloadingServerContext`` per worker process, made in the worker itself: a lock or an OpenSSL
    context inherited across fork is not safe to share.
    """
    by_process: dict[int, ReloadingServerContext] = {}

    def ssl_context(_config: Any, _default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        reloading = by_process.get(os.getpid())
        if reloading is None:
            reloading = ReloadingServerContext(
                cert_file, key_file, minimum_version=minimum_version, check_interval=check_interval
            )
            by_process[os.getpid()] = reloading
        return reloading.context

    return ssl_context
