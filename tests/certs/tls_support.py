"""Loopback TLS helpers for the certs tests: a tiny server and a client that trusts given CAs."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client that trusts only ``ca_pem`` and checks the host name, as the API server does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_pem.decode())
    return context


def served_certificate(port: int, *, ca_pem: bytes, server_name: str) -> x509.Certificate:
    """Connect, verify, and return the certificate the server presented."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client_context(ca_pem).wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """Accept TLS connections on a free loopback port until the block ends; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                try:
                    with context.wrap_socket(connection, server_side=True) as tls:
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    continue  # a client that refused our certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        listener.close()
