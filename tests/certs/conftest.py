"""Fixtures for the certs tests: a fixed clock, a reusable CA (key generation is the slow part)."""

from __future__ import annotations

import datetime

import pytest

from certs.authority import KeyPair, generate_ca, issue_serving_certificate, service_hosts
from certs.rotation import RotationPolicy

NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
HOSTS = tuple(service_hosts("injector", "vsi"))
DAY = datetime.timedelta(days=1)
# Days instead of years, so a test clock can walk through renewals and rollovers.
POLICY = RotationPolicy(
    ca_lifetime=100 * DAY,
    ca_renew_before=30 * DAY,
    serving_lifetime=10 * DAY,
    serving_renew_before=4 * DAY,
    publish_delay=datetime.timedelta(minutes=1),
    retire_delay=datetime.timedelta(minutes=10),
)


@pytest.fixture(scope="session")
def ca() -> KeyPair:
    return generate_ca(now=NOW)


@pytest.fixture(scope="session")
def serving(ca: KeyPair) -> KeyPair:
    return issue_serving_certificate(ca, list(HOSTS), now=NOW)
