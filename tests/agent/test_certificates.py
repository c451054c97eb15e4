"""NotAfter read by agent.certificates agrees with the cryptography library on real certificates."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509

from agent.certificates import certificate_not_after
from certs.authority import generate_ca, issue_serving_certificate

NOW = datetime.datetime(2031, 5, 4, 3, 2, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    "lifetime",
    [
        pytest.param(datetime.timedelta(minutes=1), id="a one-minute certificate"),
        pytest.param(datetime.timedelta(days=90), id="a serving certificate"),
        pytest.param(datetime.timedelta(days=365 * 40), id="a GeneralizedTime after 2049"),
    ],
)
def test_not_after_matches_the_crypto_library(lifetime: datetime.timedelta) -> None:
    ca = generate_ca(lifetime=datetime.timedelta(days=365 * 50), now=NOW)
    leaf = issue_serving_certificate(ca, ["app.example.test"], lifetime=lifetime, now=NOW)
    for pem in (leaf.cert_pem, ca.cert_pem):
        expected = x509.load_pem_x509_certificate(pem).not_valid_after_utc
        assert certificate_not_after(pem.decode()) == expected


def test_the_first_certificate_of_a_chain_counts() -> None:
    ca = generate_ca(now=NOW)
    leaf = issue_serving_certificate(ca, ["a.test"], lifetime=datetime.timedelta(hours=1), now=NOW)
    chain = (leaf.cert_pem + ca.cert_pem).decode()
    assert certificate_not_after(chain) == NOW + datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="nothing"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----", id="bad base64"
        ),
        pytest.param("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", id="not DER"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----",
            id="a sequence that is no certificate",
        ),
    ],
)
def test_unreadable_input_gives_none(text: str) -> None:
    assert certificate_not_after(text) is None
