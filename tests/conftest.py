"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_kube import FakeKubeApiServer


@pytest.fixture
def fake_kube() -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer() as kube:
        yield kube
