"""A trivial WSGI app and gunicorn configuration serving a reloading certificate.

Used as both ``-c python:tests.certs.gunicorn_tls_app`` (gunicorn reads the lower-case settings
below) and the app ``tests.certs.gunicorn_tls_app:app``, exactly as the webhook wires its server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from certs.reload import gunicorn_ssl_context

ssl_context = gunicorn_ssl_context(
    os.environ["TEST_TLS_CERT_FILE"],
    os.environ["TEST_TLS_KEY_FILE"],
    check_interval=float(os.environ.get("TEST_TLS_CHECK_INTERVAL", "0.1")),
)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = f"ok {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
