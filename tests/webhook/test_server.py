"""The server's own housekeeping, in process: the metrics directory it shares with its workers."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

import pytest
from flask import Flask

from webhook.server import MULTIPROCESS_ENV, metrics_directory, webhook_app_factory
from webhook.settings import Settings


def test_a_metrics_directory_made_for_the_server_is_removed_when_it_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    with metrics_directory() as directory:
        assert os.environ[MULTIPROCESS_ENV] == directory
        (Path(directory) / "counter_1.db").write_bytes(b"\0")
    assert not Path(directory).exists()
    assert MULTIPROCESS_ENV not in os.environ


def test_a_metrics_directory_given_by_the_admin_is_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))
    with metrics_directory() as directory:
        assert directory == str(tmp_path)
    assert tmp_path.is_dir()
    assert os.environ[MULTIPROCESS_ENV] == str(tmp_path)


def test_a_worker_leaving_the_block_leaves_the_directory_to_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # gunicorn forks its workers inside the block, and they leave it through SystemExit.
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    server = os.getpid()
    try:
        with metrics_directory() as directory:
            worker = os.fork()
            if worker == 0:
                raise SystemExit(0)
            _, status = os.waitpid(worker, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert Path(directory).is_dir()
    finally:
        if os.getpid() != server:
            os._exit(0)  # the worker, once out of the block
    assert not Path(directory).exists()


def test_a_worker_builds_its_app_and_then_freezes_what_start_up_made() -> None:
    settings = Settings.from_env({"AGENT_INJECT_VAULT_ADDR": "https://vault:8200"})
    root_handlers = list(logging.getLogger().handlers)
    frozen_before = gc.get_freeze_count()
    try:
        app = webhook_app_factory(settings)()
        assert isinstance(app, Flask)
        assert gc.get_freeze_count() > frozen_before + 1000
        # gc.get_objects lists what collections walk: the app's routes are no longer among them.
        routes = app.view_functions
        assert "mutate" in routes
        assert not any(candidate is routes for candidate in gc.get_objects())
    finally:
        gc.unfreeze()
        logging.getLogger().handlers[:] = root_handlers
