"""HTTP/1.1 for the agent's Vault traffic, on the standard library alone. Only agent.vault uses it.

One keep-alive connection (the agent makes one request at a time), TLS with the agent's own
context (CA file, directory or PEM, client certificate, a server name other than the host,
skip-verify), an optional proxy (absolute URLs for http, CONNECT for https), a timeout per
socket operation, and retries of *connection* failures only: a request that never reached Vault
cannot have issued a credential, so retrying it cannot issue a second one.

Why not hvac and requests: measured in scripts/bench_agent.py, importing them costs about 90 ms
of start-up and 10 MiB of memory in every pod, which the init container pays before the app can
start; this module costs a few milliseconds and about 1 MiB.
"""

from __future__ import annotations

import http.client
import logging
import select
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

USER_AGENT = "vault-sidecar-injector-agent"


class TransportError(Exception):
    """No answer from the server. ``tls``: the TLS handshake failed (a trust problem, usually)."""

    def __init__(self, reason: str, *, tls: bool = False) -> None:
        super().__init__(reason)
        self.tls = tls


@dataclass(frozen=True)
class Response:
    status: int
    # Lower-case header names.
    headers: Mapping[str, str]
    body: bytes


class _HTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that may verify the certificate against another name (SNI too)."""

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        context: ssl.SSLContext,
        timeout: float,
        server_name: str | None,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._tls_context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and the CONNECT tunnel if any
        server_hostname = self._server_name or getattr(self, "_tunnel_host", None) or self.host
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=server_hostname)


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by the server meanwhile."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # an idle connection has nothing to read unless it was closed


class Transport:
    def __init__(
        self,
        address: str,
        *,
        ssl_context: ssl.SSLContext | None,
        server_name: str | None = None,
        proxy: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        keep_alive: bool = True,
    ) -> None:
        target = urllib.parse.urlsplit(address)
        self._https = target.scheme == "https"
        self._host = target.hostname or ""
        self._port = target.port or (443 if self._https else 80)
        self._base_path = target.path.rstrip("/")
        self._origin = f"{target.scheme}://{target.netloc}"
        self._ssl_context = ssl_context
        self._server_name = server_name
        self._proxy = urllib.parse.urlsplit(proxy) if proxy else None
        self._timeout = timeout
        self._max_retries = max_retries
        self._keep_alive = keep_alive
        self._connection: http.client.HTTPConnection | None = None

    def _new_connection(self) -> http.client.HTTPConnection:
        host, port = self._host, self._port
        if self._proxy is not None:
            host = self._proxy.hostname or ""
            port = self._proxy.port or 80
        connection: http.client.HTTPConnection
        if self._https:
            assert self._ssl_context is not None
            connection = _HTTPSConnection(
                host,
                port,
                context=self._ssl_context,
                timeout=self._timeout,
                server_name=self._server_name,
            )
            if self._proxy is not None:
                connection.set_tunnel(self._host, self._port)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
        return connection

    def _connected(self) -> http.client.HTTPConnection:
        if self._connection is not None and not _dropped(self._connection):
            return self._connection
        self.close()
        attempt = 0
        while True:
            connection = self._new_connection()
            try:
                connection.connect()
            except ssl.SSLError:
                connection.close()
                raise TransportError("TLS handshake with Vault failed", tls=True) from None
            except OSError as error:
                connection.close()
                if attempt >= self._max_retries:
                    raise TransportError(f"cannot connect ({error.strerror or error})") from None
                time.sleep(0.2 * 2**attempt)
                attempt += 1
                continue
            self._connection = connection
            return connection

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Response:
        """``path`` is relative to the address (e.g. ``/v1/sys/health?x=1``)."""
        connection = self._connected()
        target = self._base_path + path
        all_headers = {"User-Agent": USER_AGENT, **headers}
        if self._proxy is not None and not self._https:
            # A plain-HTTP proxy takes the absolute URL and forwards to its Host.
            target = self._origin + target
            all_headers["Host"] = urllib.parse.urlsplit(self._origin).netloc
        if not self._keep_alive:
            all_headers["Connection"] = "close"
        try:
            connection.request(method, target, body=body, headers=all_headers)
            answer = connection.getresponse()
            payload = answer.read()
        except ssl.SSLError:
            self.close()
            raise TransportError("TLS error talking to Vault", tls=True) from None
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise TransportError(f"no answer ({type(error).__name__})") from None
        except BaseException:
            # Interrupted mid-request (a shutdown signal): the connection state is unknown.
            self.close()
            raise
        if answer.will_close or not self._keep_alive:
            self.close()
        return Response(
            status=answer.status,
            headers={name.lower(): value for name, value in answer.getheaders()},
            body=payload,
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
