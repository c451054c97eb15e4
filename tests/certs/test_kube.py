"""Automatic TLS against the loopback kube-apiserver: election, Secret, caBundle, files."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import pytest

from certs.authority import issued_by, load_certificates
from certs.storage import StoredStateError, state_from_data
from tests.certs.kube_support import (
    FAST_ELECTION,
    LEASE_KEY,
    SECRET_KEY,
    add_webhook_configuration,
    lease_holder,
    published_bundles,
    replicas,
    wait_for,
)
from tests.support.fake_kube import FakeKubeApiServer

READY_TIMEOUT = 10.0


def _files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in ("tls.crt", "tls.key", "ca.crt")}


def test_two_replicas_elect_one_leader_and_serve_one_trusted_certificate(
    fake_kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    add_webhook_configuration(fake_kube, entries=3)
    with replicas(fake_kube, tmp_path) as group:
        first, second = group.start("injector-a"), group.start("injector-b")
        assert first.wait_ready(READY_TIMEOUT)
        assert second.wait_ready(READY_TIMEOUT)
        leaders = wait_for(group.leaders, timeout=5, what="a leader")
        assert leaders in (["injector-a"], ["injector-b"])
        assert lease_holder(fake_kube) == leaders[0]

        secret = fake_kube.get_object(SECRET_KEY)
        assert secret is not None
        assert secret["type"] == "kubernetes.io/tls"
        state = state_from_data(secret["data"])
        assert state is not None
        # Followers and leader serve the very same pair; every webhook entry trusts its CA.
        wait_for(
            lambda: _files(first.settings.cert_dir) == _files(second.settings.cert_dir),
            timeout=5,
            what="both replicas to hold the same files",
        )
        assert _files(first.settings.cert_dir)["tls.crt"] == state.serving.cert_pem
        bundles = wait_for(
            lambda: [b for b in published_bundles(fake_kube) if b] or None,
            timeout=5,
            what="the caBundle",
        )
        assert published_bundles(fake_kube) == [state.trusted_pem] * 3
        assert len(bundles) == 3
        served = load_certificates(state.serving.cert_pem)[0]
        assert any(issued_by(served, ca) for ca in load_certificates(bundles[0]))


def test_when_the_leader_dies_the_other_takes_over_and_keeps_the_ca(
    fake_kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    add_webhook_configuration(fake_kube)
    with replicas(fake_kube, tmp_path) as group:
        for name in ("injector-a", "injector-b"):
            assert group.start(name).wait_ready(READY_TIMEOUT)
        leader = wait_for(group.leaders, timeout=5, what="a leader")[0]
        follower = next(name for name in group.running if name != leader)
        secret_before = fake_kube.get_object(SECRET_KEY)
        assert secret_before is not None
        transitions = fake_kube.get_object(LEASE_KEY)["spec"]["leaseTransitions"]  # type: ignore[index]

        died_at = time.monotonic()
        group.running[leader].stop(release=False)  # a crash: the Lease is not handed over
        wait_for(lambda: group.leaders() == [follower], timeout=5, what="the takeover")
        took = time.monotonic() - died_at
        # Not before the lease expired, and soon after.
        assert FAST_ELECTION.lease_duration * 0.9 <= took < FAST_ELECTION.lease_duration + 2
        lease = fake_kube.get_object(LEASE_KEY)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == follower
        assert lease["spec"]["leaseTransitions"] == transitions + 1
        time.sleep(0.3)  # a few of the new leader's passes
        secret_after = fake_kube.get_object(SECRET_KEY)
        assert secret_after is not None
        # No CA drift: the new leader keeps the certificate the old one stored.
        assert secret_after["data"] == secret_before["data"]


def test_a_leader_that_stops_cleanly_hands_over_at_once(
    fake_kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    add_webhook_configuration(fake_kube)
    slow = FAST_ELECTION.__class__(lease_duration=5.0, renew_deadline=3.0, retry_period=0.1)
    with replicas(fake_kube, tmp_path) as group:
        for name in ("injector-a", "injector-b"):
            assert group.start(name, election=slow).wait_ready(READY_TIMEOUT)
        leader = wait_for(group.leaders, timeout=10, what="a leader")[0]
        other = next(name for name in group.running if name != leader)
        stopped_at = time.monotonic()
        group.running[leader].stop(release=True)
        # The other one must lead: had nothing been released, the stopped one would still count
        # as the one leader until its renew deadline.
        wait_for(lambda: group.leaders() == [other], timeout=3, what="the handover")
        assert time.monotonic() - stopped_at < slow.lease_duration


@pytest.mark.parametrize(
    ("damage", "healed"),
    [
        pytest.param(
            {"tls.key": base64.b64encode(b"garbage").decode()},
            "do not match: new CA and serving certificate",
            id="a Secret whose key does not match is replaced by a fresh CA and certificate",
        ),
        pytest.param(
            {"phase-since": base64.b64encode(b"garbage").decode()},
            "replacing an unusable Secret: the Secret's phase-since is not a timestamp",
            id="a Secret that cannot be read is replaced",
        ),
        pytest.param(
            None,
            "caBundle differs",
            id="a caBundle wiped by a re-applied manifest is patched again",
        ),
    ],
)
def test_the_leader_heals(
    fake_kube: FakeKubeApiServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: dict[str, str] | None,
    healed: str,
) -> None:
    add_webhook_configuration(fake_kube)
    with replicas(fake_kube, tmp_path) as group, caplog.at_level(logging.INFO, logger="certs"):
        replica = group.start("injector-a")
        assert replica.wait_ready(READY_TIMEOUT)
        wait_for(lambda: all(published_bundles(fake_kube)), timeout=5, what="the caBundle")
        secret = fake_kube.get_object(SECRET_KEY)
        assert secret is not None
        if damage is not None:
            secret["data"].update(damage)
            fake_kube.put_object(SECRET_KEY, secret)
        else:
            add_webhook_configuration(fake_kube)  # as `kubectl apply` of the bare manifest
        wait_for(lambda: healed in caplog.text, timeout=5, what=healed)

        def settled() -> bool:
            stored = fake_kube.get_object(SECRET_KEY)
            try:
                state = state_from_data(stored["data"]) if stored else None
            except StoredStateError:
                return False  # not replaced yet
            return (
                state is not None
                and published_bundles(fake_kube) == [state.trusted_pem] * 3
                and _files(replica.settings.cert_dir)["tls.crt"] == state.serving.cert_pem
            )

        wait_for(settled, timeout=5, what="Secret, caBundle and files to agree again")
    assert "garbage" not in caplog.text
    assert "PRIVATE KEY" not in caplog.text


def test_without_a_webhook_configuration_the_replica_still_serves_and_warns(
    fake_kube: FakeKubeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with replicas(fake_kube, tmp_path) as group, caplog.at_level(logging.WARNING):
        assert group.start("injector-a").wait_ready(READY_TIMEOUT)
    assert "MutatingWebhookConfiguration vault-sidecar-injector-cfg not found" in caplog.text


def test_an_unreachable_api_server_leaves_the_replica_not_ready(tmp_path: Path) -> None:
    kube = FakeKubeApiServer().start()
    kube.stop()  # the port is closed now: every request fails to connect
    with replicas(kube, tmp_path) as group:
        replica = group.start("injector-a", request_timeout=0.5)
        assert not replica.wait_ready(0.5)
        assert not replica.is_leader
        assert not (tmp_path / "injector-a" / "tls.crt").exists()
