"""The server's own housekeeping, in process: the metrics directory it shares with its workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from webhook.server import MULTIPROCESS_ENV, metrics_directory


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
