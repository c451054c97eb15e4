"""Certificate authority and serving certificates for the webhook's TLS (pure: no I/O).

ECDSA P-256 keys. The CA signs a serving certificate whose SANs cover every name the API server may
use for the webhook's Service. Rotation (in ``certs.rotation``) keeps the previous CA in the bundle
during the overlap, so a replica never serves a certificate the API server does not trust yet.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Allow for clocks that are a little behind ours (API server, other replicas).
CLOCK_SKEW = datetime.timedelta(minutes=5)
DEFAULT_CA_LIFETIME = datetime.timedelta(days=365 * 5)
DEFAULT_SERVING_LIFETIME = datetime.timedelta(days=90)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def service_hosts(service: str, namespace: str) -> list[str]:
    """Every DNS name under which the API server may reach the webhook's Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_ca(
    common_name: str = "vault-sidecar-injector-ca",
    *,
    lifetime: datetime.timedelta = DEFAULT_CA_LIFETIME,
    now: datetime.datetime | None = None,
) -> KeyPair:
    now = now or utcnow()
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_serving_certificate(
    ca: KeyPair,
    hosts: list[str],
    *,
    lifetime: datetime.timedelta = DEFAULT_SERVING_LIFETIME,
    now: datetime.datetime | None = None,
) -> KeyPair:
    """A TLS server certificate for ``hosts`` (DNS names or IP addresses), signed by ``ca``."""
    if not hosts:
        raise ValueError("hosts: at least one DNS name or IP address is required")
    now = now or utcnow()
    ca_certificate = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("ca: the CA key is not an ECDSA key")
    key = _new_key()
    alternative_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alternative_names.append(x509.DNSName(host))
    not_after = min(now + lifetime, ca_certificate.not_valid_after_utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


# Inspection ---------------------------------------------------------------------------------------

# A certificate closer than this to its end is reported, unless that is most of its life anyway.
NEAR_EXPIRY = datetime.timedelta(days=7)
NEAR_EXPIRY_FRACTION = 0.1


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; an empty bundle gives an empty list."""
    if not pem.strip():
        return []
    return x509.load_pem_x509_certificates(pem)


def ca_bundle(*ca_pems: bytes) -> bytes:
    """One PEM bundle of the given CA certificates, without duplicates, in the given order."""
    seen: set[bytes] = set()
    parts: list[bytes] = []
    for pem in ca_pems:
        for certificate in load_certificates(pem):
            der = certificate.public_bytes(serialization.Encoding.DER)
            if der not in seen:
                seen.add(der)
                parts.append(certificate.public_bytes(serialization.Encoding.PEM))
    return b"".join(parts)


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, hex: safe to log, names one certificate exactly."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def key_matches(pair: KeyPair) -> bool:
    """Whether the private key of ``pair`` belongs to its certificate."""
    try:
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
        certificate = pair.certificate
    except ValueError:
        return False
    return key.public_key() == certificate.public_key()


def issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` signed ``certificate`` (signature and issuer name both match)."""
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def dns_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses in the certificate's SubjectAlternativeName, in order."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in names if isinstance(name, x509.DNSName | x509.IPAddress)]


def validity_warnings(
    certificate: x509.Certificate, *, now: datetime.datetime, label: str
) -> list[str]:
    """Human-readable warnings when ``certificate`` is expired, not yet valid, or about to expire.

    "About to expire" is within ``NEAR_EXPIRY`` of the end, or within the last
    ``NEAR_EXPIRY_FRACTION`` of a short-lived certificate's life, so a certificate renewed on time
    never warns and one whose renewal is failing warns before it bites.
    """
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    subject = certificate.subject.rfc4514_string()
    if now >= not_after:
        return [f"{label} ({subject}) expired at {not_after.isoformat()}"]
    if now < not_before:
        return [f"{label} ({subject}) is not valid before {not_before.isoformat()}"]
    remaining = not_after - now
    if remaining < min(NEAR_EXPIRY, (not_after - not_before) * NEAR_EXPIRY_FRACTION):
        return [
            f"{label} ({subject}) expires at {not_after.isoformat()}, "
            f"in {int(remaining.total_seconds())} seconds"
        ]
    return []
