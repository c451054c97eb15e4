"""A loopback HTTP proxy in front of Vault that counts requests and injects faults.

The agent under test is pointed at ``proxy.url``; the test flips the proxy's ``mode``:

- ``pass``: forward to Vault.
- ``drop``: close the connection without an answer (Vault unreachable, as the agent sees it).
- ``status``: answer every request with ``status_code`` (500, 429, 503...) and Vault's error shape.
- ``delays``: hold requests whose path holds a fragment for some seconds before forwarding.
- ``statuses``: answer requests whose path holds a fragment with that status instead of
  forwarding them.
- ``drops``: close the connection of requests whose path holds one of these fragments, without
  an answer (as ``drop`` does for every request).

``requests`` records (time, method, path, answered status) for every request received, so a
test can measure how many requests the agent sent while Vault was in trouble.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import requests

Mode = Literal["pass", "drop", "status"]


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic()
    method: str
    path: str
    status: int | None  # None: dropped


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode: Mode = "pass"
        self.status_code = 500
        self.retry_after: str | None = None
        self.delays: dict[str, float] = {}
        self.statuses: dict[str, int] = {}
        self.drops: set[str] = set()
        self.requests: list[Seen] = []
        # Paths of requests received and not yet answered.
        self.in_flight: list[str] = []
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def between(self, start: float, end: float) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.requests if start <= seen.at < end]

    def count(self, path_fragment: str = "") -> int:
        with self._lock:
            return sum(1 for seen in self.requests if path_fragment in seen.path)

    def injected_status(self, path: str) -> int | None:
        """The status to answer ``path`` with instead of forwarding it, if any."""
        if self.mode == "status":
            return self.status_code
        for fragment, status in list(self.statuses.items()):
            if fragment in path:
                return status
        return None

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        for fragment, seconds in list(self.delays.items()):
            if fragment in path:
                time.sleep(seconds)
        answer = self._session.request(
            method,
            self.upstream + path,
            headers=headers,
            data=body,
            timeout=60,
            allow_redirects=False,
        )
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name.lower() in ("content-type", "retry-after")
        }
        return answer.status_code, kept, answer.content


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``proxy.requests``."""

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and
            # the client's delayed ACK add 40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle(self) -> None:
            # The agent may close its connection at any time: nothing is left to answer then.
            with contextlib.suppress(ConnectionError):
                super().handle()

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            if self.path.startswith("http://"):
                # Used as a forward proxy: the request line holds the absolute URL.
                self.path = "/" + self.path.split("/", 3)[3]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            now = time.monotonic()
            if proxy.mode == "drop" or any(fragment in self.path for fragment in proxy.drops):
                proxy.record(Seen(now, self.command, self.path, None))
                self.close_connection = True
                return
            injected = proxy.injected_status(self.path)
            if injected is not None:
                proxy.record(Seen(now, self.command, self.path, injected))
                headers = {"Content-Type": "application/json"}
                if proxy.retry_after is not None:
                    headers["Retry-After"] = proxy.retry_after
                payload = json.dumps({"errors": ["injected by the test proxy"]}).encode()
                self._answer(injected, headers, payload)
                return
            forwarded = {
                name: value
                for name, value in self.headers.items()
                if name.lower().startswith("x-vault-") or name.lower() == "content-type"
            }
            proxy.in_flight.append(self.path)
            try:
                status, headers, payload = proxy.forward(self.command, self.path, forwarded, body)
            except requests.RequestException:
                proxy.record(Seen(now, self.command, self.path, None))
                self.close_connection = True
                return
            finally:
                proxy.in_flight.remove(self.path)
            proxy.record(Seen(now, self.command, self.path, status))
            self._answer(status, headers, payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _serve

    return Handler
