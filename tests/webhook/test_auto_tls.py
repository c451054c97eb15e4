"""`serve` with AGENT_INJECT_TLS_AUTO: certificates come from leader election, not the admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tests.certs.kube_support import (
    HOSTS,
    LEASE_KEY,
    NAMESPACE,
    WEBHOOK_CONFIGURATION,
    add_webhook_configuration,
    api_client,
    lease_holder,
    published_bundles,
)
from tests.support.fake_kube import FakeKubeApiServer
from webhook.server import ServeError, auto_tls_directory, certificate_files
from webhook.settings import Settings


def _settings(tmp_path: Path, **extra: str) -> Settings:
    env = {
        "AGENT_INJECT_VAULT_ADDR": "https://vault:8200",
        "AGENT_INJECT_TLS_AUTO": WEBHOOK_CONFIGURATION,
        "AGENT_INJECT_TLS_AUTO_HOSTS": ",".join(HOSTS),
        "AGENT_INJECT_TLS_CERT_FILE": str(tmp_path / "tls.crt"),
        "AGENT_INJECT_TLS_KEY_FILE": str(tmp_path / "tls.key"),
        "NAMESPACE": NAMESPACE,
        "POD_NAME": "injector-0",
    }
    env.update(extra)
    return Settings.from_env(env)


def test_auto_tls_yields_files_the_published_bundle_trusts(
    fake_kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    add_webhook_configuration(fake_kube)
    with certificate_files(_settings(tmp_path), api_client=api_client(fake_kube)) as (cert, key):
        assert (cert, key) == (str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
        served = x509.load_pem_x509_certificate(Path(cert).read_bytes())
        names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(names.get_values_for_type(x509.DNSName)) == set(HOSTS)
        bundles = published_bundles(fake_kube)
        assert len(bundles) == 3
        assert bundles[0]
        # Every entry publishes the CA that issued the certificate the server will present.
        assert len(set(bundles)) == 1
        served.verify_directly_issued_by(x509.load_pem_x509_certificates(bundles[0])[0])
        assert lease_holder(fake_kube) == "injector-0"
    # Stopping hands the Lease over at once instead of making the other replica wait it out.
    assert lease_holder(fake_kube) in ("", None)
    assert fake_kube.get_object(LEASE_KEY) is not None


def test_auto_tls_needs_its_files_named_as_it_writes_them(tmp_path: Path) -> None:
    settings = _settings(tmp_path, AGENT_INJECT_TLS_CERT_FILE=str(tmp_path / "server.pem"))
    with pytest.raises(ServeError, match=r"tls\.crt and tls\.key in one directory"):
        auto_tls_directory(settings)


def test_auto_tls_without_a_namespace_is_refused_by_name(tmp_path: Path) -> None:
    settings = _settings(tmp_path, NAMESPACE="")
    with pytest.raises(ServeError, match="NAMESPACE: required"), certificate_files(settings):
        pass


def test_admin_files_are_used_as_given_without_automatic_tls(tmp_path: Path) -> None:
    settings = _settings(tmp_path, AGENT_INJECT_TLS_AUTO="")
    with certificate_files(settings) as files:
        assert files == (str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
