"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py.

The real servers are started once per session and shared by every area that needs them (agent,
end to end): tests give their roles, mounts and users unique names instead of fresh servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer


@pytest.fixture
def fake_kube() -> Iterator[FakeKubeApiServer]:
    """A fresh fake kube-apiserver, for tests that inspect its stored objects."""
    with FakeKubeApiServer() as kube:
        yield kube


@pytest.fixture(scope="session")
def kube() -> Iterator[FakeKubeApiServer]:
    """The session's fake kube-apiserver: ServiceAccount tokens and TokenReview for Vault."""
    with FakeKubeApiServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL; a test that stops it must start it again."""
    with PostgresServer() as server:
        yield server
