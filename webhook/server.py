"""``python -m webhook serve``: the Flask app under gunicorn over TLS, embedded (no config file).

The serving certificate is loaded through ``certs.reload`` from gunicorn's ``ssl_context`` server
hook, so a renewed certificate on disk is served from the next handshake on without a restart.
Missing or mismatched files stop the start-up with a message naming them.

Seam for automatic in-cluster certificates (AGENT_INJECT_TLS_AUTO, written by ``certs.kube``):
``serve`` takes the certificate and key paths; ``resolve_certificate_files`` is where the auto TLS
files (``AutoTls.cert_file`` / ``key_file``) plug in.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
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


def resolve_certificate_files(settings: Settings) -> tuple[str, str]:
    if settings.tls_cert_file and settings.tls_key_file:
        return settings.tls_cert_file, settings.tls_key_file
    if settings.tls_cert_file or settings.tls_key_file:
        raise ServeError(
            "AGENT_INJECT_TLS_CERT_FILE and AGENT_INJECT_TLS_KEY_FILE: set both or neither"
        )
    if settings.tls_auto:
        raise ServeError(
            "AGENT_INJECT_TLS_AUTO: automatic certificates (certs.kube) are not wired into "
            "`serve` yet; set AGENT_INJECT_TLS_CERT_FILE and AGENT_INJECT_TLS_KEY_FILE"
        )
    raise ServeError(
        "no TLS certificate: set AGENT_INJECT_TLS_CERT_FILE and AGENT_INJECT_TLS_KEY_FILE "
        "(the API server only calls webhooks over HTTPS)"
    )


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
        # Imported in the worker, after prepare_metrics_directory (see _child_exit).
        from webhook.app import create_app  # noqa: PLC0415

        logs.configure(settings.log_level, settings.log_format)
        return create_app(Reviewer(settings))

    return factory


def prepare_metrics_directory() -> str:
    """Worker processes share metric values through files; must run before prometheus_client
    is imported, which reads the variable at import time."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        base = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None
        directory = tempfile.mkdtemp(prefix="vsi-webhook-metrics-", dir=base)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


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
        app_factory = webhook_app_factory(settings)
    prepare_metrics_directory()
    options = gunicorn_options(settings, cert_file=cert_file, key_file=key_file, bind=bind)
    logger.info("serving on %s with %d worker(s)", options["bind"], settings.workers)
    WebhookApplication(app_factory, options).run()
