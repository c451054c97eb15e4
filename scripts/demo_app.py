"""The demo's app: reads what the agent rendered in /vault/secrets and uses it, like a real app.

- ``DB_FILE`` (default ``/vault/secrets/db``): a libpq connection string. The app logs in to
  PostgreSQL with it and runs a query; when the file changes (a rotation) it logs in with the new
  credential and keeps checking that the previous one is still accepted, until PostgreSQL refuses
  it.
- ``CONFIG_FILE`` (optional): JSON of a KV v2 answer (``data`` and ``metadata``); the app logs the
  version and the ``message`` field whenever it changes.
- ``MODE``: ``serve`` (default) runs until SIGTERM; ``once`` uses the files once and exits (a Job).

It prints usernames, versions and messages, never a password or another secret value. It starts
only if the files are already there: an app started before its secrets fails at once, as many do.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

POLL_SECONDS = 0.5
OLD_CREDENTIAL_CHECK_SECONDS = 1.0


def say(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class Credential:
    conninfo: str

    @property
    def user(self) -> str:
        return str(conninfo_to_dict(self.conninfo).get("user", "?"))


def log_in(credential: Credential) -> str:
    """Log in and ask the server who we are; returns the answer. Raises psycopg.Error."""
    with psycopg.connect(credential.conninfo, connect_timeout=5, autocommit=True) as connection:
        row = connection.execute("SELECT current_user, current_database()").fetchone()
    if row is None:
        raise psycopg.DatabaseError("no answer to SELECT current_user")
    return f"current_user={row[0]} database={row[1]}"


def short_reason(error: psycopg.Error) -> str:
    """The server's own words (they name the user, never the password), without libpq's
    "connection to server at ... failed" preamble."""
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first_line.rpartition("FATAL:")[2].strip() or first_line


class App:
    def __init__(self, db_file: Path, config_file: Path | None) -> None:
        self.db_file = db_file
        self.config_file = config_file
        self.credential: Credential | None = None
        self.previous: Credential | None = None
        self.previous_checked_at = 0.0
        self.previous_reported = False
        self.config_text: str | None = None
        self.stopping = False

    def read(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except FileNotFoundError:
            return None

    def check_files_exist(self) -> bool:
        missing = [
            str(path) for path in (self.db_file, self.config_file) if path and not path.exists()
        ]
        if missing:
            say(f"app: cannot start, missing {', '.join(missing)}")
            return False
        return True

    def poll_database(self) -> bool:
        text = self.read(self.db_file)
        if text is None or not text.strip():
            say(f"db: {self.db_file} is missing or empty")
            return False
        if self.credential is None or text != self.credential.conninfo:
            fresh = Credential(text)
            if self.credential is not None:
                say(f"db: {self.db_file} changed: new user {fresh.user}")
                self.previous = self.credential
                self.previous_reported = False
                self.previous_checked_at = 0.0
            self.credential = fresh
            try:
                say(f"db: logged in as {fresh.user}: {log_in(fresh)}")
            except psycopg.Error as error:
                say(f"db: login as {fresh.user} FAILED: {short_reason(error)}")
                return False
        self.check_previous()
        return True

    def check_previous(self) -> None:
        """After a rotation: is the previous credential still accepted? Said once each way."""
        previous = self.previous
        now = time.monotonic()
        if previous is None or now - self.previous_checked_at < OLD_CREDENTIAL_CHECK_SECONDS:
            return
        self.previous_checked_at = now
        try:
            log_in(previous)
        except psycopg.Error as error:
            say(f"db: previous user {previous.user} is now refused: {short_reason(error)}")
            self.previous = None
            return
        if not self.previous_reported:
            say(f"db: previous user {previous.user} still accepted")
            self.previous_reported = True

    def poll_config(self) -> None:
        if self.config_file is None:
            return
        text = self.read(self.config_file)
        if text is None or text == self.config_text:
            return
        self.config_text = text
        try:
            document: Any = json.loads(text)
            version = document["metadata"]["version"]
            message = document["data"].get("message", "")
        except (ValueError, KeyError, TypeError) as error:
            say(f"config: cannot read {self.config_file}: {type(error).__name__}")
            return
        say(f"config: version {version}, message {message!r}")

    def run(self, *, once: bool) -> int:
        if not self.check_files_exist():
            return 1
        while not self.stopping:
            healthy = self.poll_database()
            self.poll_config()
            if once:
                return 0 if healthy else 1
            time.sleep(POLL_SECONDS)
        say("app: stopping")
        return 0


def main() -> int:
    config = os.environ.get("CONFIG_FILE")
    app = App(
        Path(os.environ.get("DB_FILE", "/vault/secrets/db")),
        Path(config) if config else None,
    )

    def stop(_signum: int, _frame: FrameType | None) -> None:
        app.stopping = True

    signal.signal(signal.SIGTERM, stop)
    return app.run(once=os.environ.get("MODE", "serve") == "once")


if __name__ == "__main__":
    sys.exit(main())
