"""``python -m webhook serve``: the Flask app under gunicorn over TLS, embedded (no config file).

The serving certificate is loaded through ``certs.reload`` from gunicorn's ``ssl_context`` server
hook, so a renewed certificate on disk is served from the next handshake on without a restart.
Missing or mismatched files stop the start-up with a message naming them.

Automatic in-cluster certificates (AGENT_INJECT_TLS_AUTO): ``certificate_files`` starts
``certs.kube.run_auto_tls`` in the gunicorn master before the workers fork. Its thread keeps
``tls.crt``/``tls.key`` up to date in the directory of AGENT_INJECT_TLS_CERT_FILE (the leader issues
and publishes the caBundle, followers copy the Secret), and the workers' reloading TLS context picks
every renewal up on the next handshake.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from certs.reload import (
    TLS_VERSIONS,
    CertificateLoadError,
    gunicorn_ssl_context,
    load_server_context,
)
from webhook import logs
from webhook.admission import Reviewer
from webhook.annotations import default_annotation_problems
from webhook.settings import Settings

logger = logging.getLogger(__name__)

WsgiApp = Callable[..., Any]
AppFactory = Callable[[], WsgiApp]
# As in webhook.metrics, which cannot be imported here: prometheus_client reads it at import.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# gunicorn's heartbeat file; the root filesystem of the webhook's container is read-only.
SHARED_MEMORY = "/dev/shm"  # noqa: S108 - a tmpfs private to the container


class ServeError(RuntimeError):
    """The server cannot start; the message says why and names the files or variables."""


class WebhookApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn with options from code; each worker builds the WSGI app itself (no preload)."""

    def __init__(self, app_factory: AppFactory, options: Mapping[str, Any]) -> None:
        self._app_factory = app_factory
        self._options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            # Options newer than the installed gunicorn (control_socket_disable: 25.1) are skipped.
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        return self._app_factory()


# Where automatic TLS keeps its files when AGENT_INJECT_TLS_CERT_FILE does not say.
DEFAULT_AUTO_TLS_DIR = "/var/run/vault-sidecar-injector/tls"
AUTO_TLS_READY_TIMEOUT_SECONDS = 120.0


def resolve_certificate_files(settings: Settings) -> tuple[str, str]:
    """The certificate and key files given by the admin (not automatic TLS)."""
    if settings.tls_cert_file and settings.tls_key_file:
        return settings.tls_cert_file, settings.tls_key_file
    if settings.tls_cert_file or settings.tls_key_file:
        raise ServeError(
            "AGENT_INJECT_TLS_CERT_FILE and AGENT_INJECT_TLS_KEY_FILE: set both or neither"
        )
    raise ServeError(
        "no TLS certificate: set AGENT_INJECT_TLS_CERT_FILE and AGENT_INJECT_TLS_KEY_FILE, "
        "or AGENT_INJECT_TLS_AUTO (the API server only calls webhooks over HTTPS)"
    )


def auto_tls_directory(settings: Settings) -> Path:
    """The directory automatic TLS writes to: that of the configured files, which must then be
    named as certs.kube writes them."""
    if not (settings.tls_cert_file or settings.tls_key_file):
        return Path(DEFAULT_AUTO_TLS_DIR)
    from certs.storage import SERVING_CERT, SERVING_KEY  # noqa: PLC0415 - only for automatic TLS

    cert_file = Path(settings.tls_cert_file or "")
    key_file = Path(settings.tls_key_file or "")
    if (
        cert_file.parent != key_file.parent
        or cert_file.name != SERVING_CERT
        or key_file.name != SERVING_KEY
    ):
        raise ServeError(
            "AGENT_INJECT_TLS_CERT_FILE and AGENT_INJECT_TLS_KEY_FILE: with AGENT_INJECT_TLS_AUTO "
            f"they must be {SERVING_CERT} and {SERVING_KEY} in one directory"
        )
    return cert_file.parent


@contextmanager
def certificate_files(settings: Settings, *, api_client: Any = None) -> Iterator[tuple[str, str]]:
    """Yield the certificate and key files to serve; with AGENT_INJECT_TLS_AUTO, keep them
    current through leader election until the server stops, then hand the Lease over."""
    if not settings.tls_auto:
        yield resolve_certificate_files(settings)
        return
    from certs.kube import AutoTlsSettings, run_auto_tls  # noqa: PLC0415 - kubernetes is heavy

    if not settings.namespace:
        raise ServeError("NAMESPACE: required with AGENT_INJECT_TLS_AUTO (the downward API)")
    if not settings.tls_auto_hosts:
        raise ServeError("AGENT_INJECT_TLS_AUTO_HOSTS: required with AGENT_INJECT_TLS_AUTO")
    try:
        auto_settings = AutoTlsSettings(
            namespace=settings.namespace,
            webhook_configuration=settings.tls_auto,
            hosts=settings.tls_auto_hosts,
            identity=settings.pod_name or socket.gethostname(),
            cert_dir=auto_tls_directory(settings),
        )
        auto_tls = run_auto_tls(auto_settings, api_client=api_client)
    except (ValueError, OSError) as error:
        raise ServeError(f"AGENT_INJECT_TLS_AUTO: {error}") from None
    try:
        if not auto_tls.wait_ready(AUTO_TLS_READY_TIMEOUT_SECONDS):
            raise ServeError(
                "AGENT_INJECT_TLS_AUTO: no certificate within "
                f"{AUTO_TLS_READY_TIMEOUT_SECONDS:.0f}s (is the Kubernetes API reachable?)"
            )
        yield str(auto_tls.cert_file), str(auto_tls.key_file)
    finally:
        auto_tls.stop(release=True, timeout=10)


def check_certificate_files(cert_file: str, key_file: str) -> None:
    for path in (cert_file, key_file):
        if not Path(path).is_file():
            raise ServeError(f"TLS file not found: {path}")
    try:
        load_server_context(cert_file, key_file)
    except CertificateLoadError as error:
        raise ServeError(str(error)) from None


def _child_exit(_server: Any, worker: Any) -> None:
    # Imported late: prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported.
    from webhook.metrics import mark_worker_dead  # noqa: PLC0415

    mark_worker_dead(worker.pid)


def gunicorn_options(
    settings: Settings, *, cert_file: str, key_file: str, bind: str | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": bind or settings.bind,
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        # The API server keeps connections to webhooks open; reuse saves a TLS handshake each.
        "keepalive": 30,
        # Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
        # connections over them. On one shared socket the worker that wakes first takes the
        # connection, and a few long-lived ones can all land on one worker while the other
        # idles: seen here, 16 of 16 benchmark connections on one worker, half the throughput.
        "reuse_port": True,
        "timeout": 30,
        "graceful_timeout": 10,
        # gunicorn checks certfile/keyfile to decide it serves TLS; the hook builds the context.
        "certfile": cert_file,
        "keyfile": key_file,
        "ssl_context": gunicorn_ssl_context(
            cert_file, key_file, minimum_version=TLS_VERSIONS[settings.tls_min_version]
        ),
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning" if settings.log_level in ("warn", "warning") else "info",
        "proc_name": "vault-sidecar-injector",
        "child_exit": _child_exit,
        # gunicorn >= 25.1 opens a control socket under $HOME by default; nothing here uses it.
        "control_socket_disable": True,
    }
    if os.path.isdir(SHARED_MEMORY):
        options["worker_tmp_dir"] = SHARED_MEMORY
    return options


def webhook_app_factory(settings: Settings) -> AppFactory:
    def factory() -> WsgiApp:
        # Imported in the worker, inside metrics_directory (see _child_exit).
        from webhook.app import create_app  # noqa: PLC0415

        logs.configure(settings.log_level, settings.log_format)
        app = create_app(Reviewer(settings))
        freeze_startup_objects()
        return app

    return factory


def freeze_startup_objects() -> None:
    """Take what the worker has built so far (modules, Flask, the Reviewer and its tables) out of
    the cyclic collector's sight for good: they live as long as the worker, and every full
    collection would walk them again. An admission's own objects are freed by reference
    counting; the collector still sees them. (gc.freeze's documentation suggests it for forked
    workers; here it is done in the worker, after the app is built.)"""
    gc.collect()
    gc.freeze()


@contextmanager
def metrics_directory() -> Iterator[str]:
    """Worker processes share metric values through files; must be entered before
    prometheus_client is imported, which reads the variable at import time.

    A directory made here is removed when the server stops. gunicorn's workers leave through
    SystemExit, which unwinds this block in them too: only the process that made it removes it.
    """
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        yield directory
        return
    base = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None
    directory = tempfile.mkdtemp(prefix="vsi-webhook-metrics-", dir=base)
    owner = os.getpid()
    os.environ[MULTIPROCESS_ENV] = directory
    try:
        yield directory
    finally:
        if os.getpid() == owner:
            os.environ.pop(MULTIPROCESS_ENV, None)
            shutil.rmtree(directory, ignore_errors=True)


def serve(
    settings: Settings,
    *,
    cert_file: str,
    key_file: str,
    bind: str | None = None,
    app_factory: AppFactory | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. Raises ServeError before starting when something is missing."""
    check_certificate_files(cert_file, key_file)
    if app_factory is None:
        if not settings.vault_address:
            raise ServeError("AGENT_INJECT_VAULT_ADDR: required (the Vault address for agents)")
        # Fail here, not in every worker, on bad AGENT_INJECT_DEFAULT_ANNOTATIONS.
        problems = default_annotation_problems(settings.default_annotations)
        if problems:
            raise ServeError("AGENT_INJECT_DEFAULT_ANNOTATIONS: " + "; ".join(problems))
        # Settings that would refuse every pod stop the start instead (AGENT_INJECT_* variables
        # and default annotations, named by the annotation they stand for).
        problems = list(Reviewer(settings).settings_errors())
        if problems:
            raise ServeError("the settings would refuse every pod: " + "; ".join(problems))
        app_factory = webhook_app_factory(settings)
    with metrics_directory():
        options = gunicorn_options(settings, cert_file=cert_file, key_file=key_file, bind=bind)
        logger.info("serving on %s with %d worker(s)", options["bind"], settings.workers)
        WebhookApplication(app_factory, options).run()
