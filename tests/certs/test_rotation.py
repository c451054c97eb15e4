"""The rotation plan: bootstrap, serving renewal and the three steps of a CA rollover."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from certs.authority import (
    KeyPair,
    ca_bundle,
    fingerprint,
    generate_ca,
    issue_serving_certificate,
    issued_by,
    load_certificates,
)
from certs.rotation import Plan, TlsState, plan
from tests.certs.conftest import DAY, HOSTS, NOW, POLICY


def _fingerprints(bundle: bytes) -> list[str]:
    return [fingerprint(certificate) for certificate in load_certificates(bundle)]


def _run(
    state: TlsState | None,
    at: datetime.datetime,
    *,
    published: list[bytes] | None = None,
    hosts: tuple[str, ...] = HOSTS,
) -> Plan:
    """One leader pass, with every webhook entry holding what the leader last published."""
    if published is None:
        published = [state.trusted_pem, state.trusted_pem] if state else [b"", b""]
    return plan(state, published=published, hosts=hosts, now=at, policy=POLICY)


@pytest.fixture(scope="module")
def settled() -> TlsState:
    first = _run(None, NOW)
    return first.state


def test_an_empty_secret_gets_a_ca_and_serving_certificate_published() -> None:
    first = _run(None, NOW)
    assert first.save
    assert first.publish == first.state.trusted_pem
    assert _fingerprints(first.state.trusted_pem) == [
        fingerprint(first.state.signing_ca.certificate)
    ]
    assert issued_by(first.state.serving.certificate, first.state.signing_ca.certificate)


def test_a_settled_state_needs_nothing(settled: TlsState) -> None:
    again = _run(settled, NOW + DAY)
    assert (again.save, again.publish, again.reasons) == (False, None, ())
    assert again.state == settled


@pytest.mark.parametrize(
    "published",
    [
        pytest.param([b""], id="an entry whose caBundle was wiped gets it back"),
        pytest.param(None, id="every entry is checked, not only the first"),
    ],
)
def test_a_drifted_cabundle_is_published_again(
    settled: TlsState, published: list[bytes] | None
) -> None:
    entries = published if published is not None else [settled.trusted_pem, b"garbage"]
    again = _run(settled, NOW + DAY, published=entries)
    assert not again.save
    assert again.publish == settled.trusted_pem


def test_the_serving_certificate_is_renewed_from_the_same_ca(settled: TlsState) -> None:
    at = NOW + 7 * DAY  # 3 days left, renewal starts at 4
    renewed = _run(settled, at)
    assert renewed.save
    assert renewed.publish is None
    assert renewed.state.signing_ca == settled.signing_ca
    assert renewed.state.trusted_pem == settled.trusted_pem
    assert renewed.state.serving != settled.serving
    assert renewed.state.serving.certificate.not_valid_after_utc > at + 9 * DAY


def test_changed_hosts_reissue_the_serving_certificate(settled: TlsState) -> None:
    renewed = _run(settled, NOW + DAY, hosts=(*HOSTS, "injector.example"))
    assert renewed.save
    assert "injector.example" in str(renewed.state.serving.certificate.extensions)


def test_a_ca_rollover_never_serves_an_untrusted_certificate(settled: TlsState) -> None:
    old_ca = settled.signing_ca
    start = NOW + 71 * DAY  # the CA has 29 days left: rollover
    # A serving certificate that is not due for renewal, so only the rollover acts.
    state = dataclasses.replace(
        settled,
        serving=issue_serving_certificate(
            old_ca, list(HOSTS), lifetime=POLICY.serving_lifetime, now=start
        ),
    )

    # Step 1: the new CA joins the bundle; the serving certificate still comes from the old one.
    publish = _run(state, start, published=[state.trusted_pem, state.trusted_pem])
    new_ca = publish.state.next_ca
    assert new_ca is not None
    assert publish.save
    assert publish.publish == publish.state.trusted_pem
    assert _fingerprints(publish.state.trusted_pem) == [
        fingerprint(old_ca.certificate),
        fingerprint(new_ca.certificate),
    ]
    assert publish.state.serving == state.serving

    # Not switched while an entry still holds the old bundle, even long after.
    stale = _run(
        publish.state,
        start + datetime.timedelta(hours=1),
        published=[publish.state.trusted_pem, state.trusted_pem],
    )
    assert stale.state.signing_ca == old_ca
    assert stale.publish == publish.state.trusted_pem
    # Not switched before the publish delay, even with the bundle in place.
    early = _run(publish.state, start + datetime.timedelta(seconds=30))
    assert early.state.signing_ca == old_ca
    assert not early.save

    # Step 2: switch; the old CA stays trusted.
    switch_at = start + datetime.timedelta(minutes=2)
    switch = _run(publish.state, switch_at)
    assert switch.state.signing_ca == new_ca
    assert switch.state.next_ca is None
    assert issued_by(switch.state.serving.certificate, new_ca.certificate)
    assert switch.state.trusted_pem == publish.state.trusted_pem
    assert switch.save
    assert switch.publish is None

    # Not retired before the retire delay.
    assert not _run(switch.state, switch_at + datetime.timedelta(minutes=5)).save

    # Step 3: the old CA leaves the bundle.
    retire = _run(switch.state, switch_at + datetime.timedelta(minutes=11))
    assert _fingerprints(retire.state.trusted_pem) == [fingerprint(new_ca.certificate)]
    assert retire.save
    assert retire.publish == retire.state.trusted_pem
    assert retire.state.serving == switch.state.serving


def test_a_rollover_waits_while_the_webhook_configuration_is_missing(settled: TlsState) -> None:
    start = NOW + 71 * DAY
    publish = plan(settled, published=None, hosts=HOSTS, now=start, policy=POLICY)
    assert publish.publish is None
    assert publish.state.next_ca is not None
    later = plan(publish.state, published=None, hosts=HOSTS, now=start + DAY, policy=POLICY)
    assert later.state.signing_ca == settled.signing_ca


def test_a_serving_certificate_capped_by_its_ca_is_not_reissued_every_pass(
    settled: TlsState,
) -> None:
    near_ca_end = NOW + 97 * DAY  # the CA ends at 100 days; its rollover is stuck
    stuck = plan(settled, published=None, hosts=HOSTS, now=near_ca_end, policy=POLICY).state
    capped = plan(
        stuck,
        published=None,
        hosts=HOSTS,
        now=near_ca_end + datetime.timedelta(seconds=1),
        policy=POLICY,
    )
    assert capped.state.serving.certificate.not_valid_after_utc == (
        settled.signing_ca.certificate.not_valid_after_utc
    )
    again = plan(
        capped.state,
        published=None,
        hosts=HOSTS,
        now=near_ca_end + 2 * datetime.timedelta(seconds=1),
        policy=POLICY,
    )
    assert again.state.serving == capped.state.serving
    assert not again.save


def _damaged(settled: TlsState, other: KeyPair) -> dict[str, TlsState]:
    expired_ca = generate_ca(lifetime=DAY, now=NOW - 10 * DAY)
    return {
        "mismatched key": dataclasses.replace(
            settled, serving=KeyPair(settled.serving.cert_pem, other.key_pem)
        ),
        "unparseable certificate": dataclasses.replace(
            settled, signing_ca=KeyPair(b"not a certificate", settled.signing_ca.key_pem)
        ),
        "expired CA": dataclasses.replace(
            settled,
            signing_ca=expired_ca,
            serving=issue_serving_certificate(expired_ca, list(HOSTS), now=NOW - 10 * DAY),
            trusted_pem=ca_bundle(expired_ca.cert_pem),
        ),
        "bundle without the signing CA": dataclasses.replace(settled, trusted_pem=other.cert_pem),
    }


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param("mismatched key", id="a key that does not match is replaced"),
        pytest.param("unparseable certificate", id="an unparseable certificate is replaced"),
        pytest.param("expired CA", id="an expired CA is replaced, not rolled over"),
        pytest.param("bundle without the signing CA", id="a bundle missing the CA is replaced"),
    ],
)
def test_an_unusable_state_is_replaced(settled: TlsState, damage: str) -> None:
    state = _damaged(settled, generate_ca(now=NOW))[damage]
    fresh = _run(state, NOW + DAY)
    assert fresh.save
    assert fresh.publish is not None
    assert fresh.state.signing_ca != state.signing_ca
    assert fresh.reasons
    assert "new CA" in fresh.reasons[0]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ca_renew_before": 200 * DAY}, id="ca renewal longer than its life"),
        pytest.param({"serving_renew_before": datetime.timedelta(0)}, id="zero serving renewal"),
        pytest.param({"retire_delay": -DAY}, id="a negative delay"),
    ],
)
def test_a_policy_that_cannot_work_is_refused(changes: dict[str, datetime.timedelta]) -> None:
    with pytest.raises(ValueError, match="must"):
        dataclasses.replace(POLICY, **changes)
