"""The CA and serving certificates: chain, names, key usages, bundles and validity warnings."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.authority import (
    KeyPair,
    ca_bundle,
    dns_names,
    fingerprint,
    generate_ca,
    issue_serving_certificate,
    issued_by,
    key_matches,
    load_certificates,
    service_hosts,
    validity_warnings,
)
from tests.certs.conftest import HOSTS, NOW


def test_service_hosts_cover_every_name_of_the_service() -> None:
    assert service_hosts("injector", "vsi") == [
        "injector",
        "injector.vsi",
        "injector.vsi.svc",
        "injector.vsi.svc.cluster.local",
    ]


def test_the_serving_certificate_chains_to_the_ca(ca: KeyPair, serving: KeyPair) -> None:
    assert issued_by(serving.certificate, ca.certificate)
    assert serving.certificate.issuer == ca.certificate.subject
    assert not issued_by(serving.certificate, generate_ca(now=NOW).certificate)


def test_keys_are_ecdsa_p256_and_match(ca: KeyPair, serving: KeyPair) -> None:
    for pair in (ca, serving):
        public_key = pair.certificate.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert public_key.curve.name == "secp256r1"
        assert key_matches(pair)
    assert not key_matches(KeyPair(serving.cert_pem, ca.key_pem))


def test_the_serving_certificate_names_every_host(serving: KeyPair) -> None:
    assert dns_names(serving.certificate) == list(HOSTS)


def test_ip_addresses_become_ip_sans(ca: KeyPair) -> None:
    pair = issue_serving_certificate(ca, ["injector", "127.0.0.1"], now=NOW)
    names = pair.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["injector"]


def test_key_usages_fit_a_ca_and_a_tls_server(ca: KeyPair, serving: KeyPair) -> None:
    ca_constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ca_constraints.critical
    assert ca_constraints.value.ca
    ca_usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign
    assert ca_usage.crl_sign
    leaf_constraints = serving.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert not leaf_constraints.value.ca
    leaf_usage = serving.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert leaf_usage.digital_signature
    assert not leaf_usage.key_cert_sign
    extended = serving.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    short_ca = generate_ca(lifetime=datetime.timedelta(days=10), now=NOW)
    pair = issue_serving_certificate(
        short_ca, ["injector"], lifetime=datetime.timedelta(days=90), now=NOW
    )
    assert pair.certificate.not_valid_after_utc == short_ca.certificate.not_valid_after_utc


def test_no_hosts_is_refused(ca: KeyPair) -> None:
    with pytest.raises(ValueError, match="at least one"):
        issue_serving_certificate(ca, [], now=NOW)


def test_a_bundle_keeps_order_and_drops_duplicates(ca: KeyPair) -> None:
    other = generate_ca(now=NOW)
    bundle = ca_bundle(ca.cert_pem, other.cert_pem, ca.cert_pem)
    assert [fingerprint(c) for c in load_certificates(bundle)] == [
        fingerprint(ca.certificate),
        fingerprint(other.certificate),
    ]
    assert load_certificates(b"") == []


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(NOW + datetime.timedelta(days=30), None, id="a fresh certificate is quiet"),
        pytest.param(
            NOW + datetime.timedelta(days=85), "expires at", id="five days before the end warns"
        ),
        pytest.param(NOW + datetime.timedelta(days=91), "expired at", id="an expired one warns"),
        pytest.param(
            NOW - datetime.timedelta(hours=1), "not valid before", id="a future one warns"
        ),
    ],
)
def test_validity_warnings(serving: KeyPair, at: datetime.datetime, expected: str | None) -> None:
    warnings = validity_warnings(serving.certificate, now=at, label="serving certificate")
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert expected in warnings[0]
        assert "serving certificate" in warnings[0]


def test_a_short_lived_certificate_warns_only_in_its_last_tenth(ca: KeyPair) -> None:
    hourly = issue_serving_certificate(
        ca, ["injector"], lifetime=datetime.timedelta(hours=1), now=NOW
    )
    # 1 hour plus 5 minutes of clock-skew allowance before NOW: the last tenth is 6.5 minutes.
    quiet = validity_warnings(
        hourly.certificate, now=NOW + datetime.timedelta(minutes=50), label="x"
    )
    loud = validity_warnings(
        hourly.certificate, now=NOW + datetime.timedelta(minutes=55), label="x"
    )
    assert quiet == []
    assert len(loud) == 1
