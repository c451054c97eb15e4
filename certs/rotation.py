"""When to issue, roll over and retire the webhook's certificates (pure: state in, plan out).

The leader calls ``plan`` with what it read (the stored state, the caBundle of every webhook entry,
the wanted hosts, the time) and carries out the result: save the new state, then publish the bundle.

A serving certificate is re-issued from the same CA well before it expires; nothing else changes.
A CA is replaced by a rollover in three steps, so that no replica ever serves a certificate the API
server does not trust yet, and no client is left trusting only a CA that nothing serves with:

1. *publish*: a new CA is generated and added to the bundle beside the signing CA. The serving
   certificate is still signed by the old CA, which the bundle still holds.
2. *switch*: once every webhook entry holds the bundle with the new CA, and it has been there for
   ``publish_delay`` (API servers watch the configuration; give them time to see it), the serving
   certificate is re-issued from the new CA. The old CA stays in the bundle.
3. *retire*: after ``retire_delay`` (every replica has picked up the new serving certificate), the
   old CA is dropped from the bundle.

A state that cannot be used (missing, damaged, a key that does not match, an expired CA) is replaced
by a fresh CA and serving certificate at once: there is nothing valid left to keep trusting.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives import serialization

from certs.authority import (
    DEFAULT_CA_LIFETIME,
    DEFAULT_SERVING_LIFETIME,
    KeyPair,
    ca_bundle,
    dns_names,
    generate_ca,
    issue_serving_certificate,
    issued_by,
    key_matches,
    load_certificates,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationPolicy:
    """Lifetimes and delays of the automatic certificates. The defaults suit a real cluster."""

    ca_lifetime: datetime.timedelta = DEFAULT_CA_LIFETIME
    # A rollover starts when the signing CA has less than this left.
    ca_renew_before: datetime.timedelta = datetime.timedelta(days=365)
    serving_lifetime: datetime.timedelta = DEFAULT_SERVING_LIFETIME
    # The serving certificate is re-issued when it has less than this left.
    serving_renew_before: datetime.timedelta = datetime.timedelta(days=30)
    # How long a bundle with a new CA is published before any certificate it signs is served.
    publish_delay: datetime.timedelta = datetime.timedelta(seconds=30)
    # How long a retired CA stays in the bundle after the serving certificate left it: longer than
    # it takes every follower to read the Secret and reload its files.
    retire_delay: datetime.timedelta = datetime.timedelta(minutes=5)

    def __post_init__(self) -> None:
        problems = []
        if not datetime.timedelta(0) < self.ca_renew_before < self.ca_lifetime:
            problems.append("ca_renew_before must be positive and shorter than ca_lifetime")
        if not datetime.timedelta(0) < self.serving_renew_before < self.serving_lifetime:
            problems.append(
                "serving_renew_before must be positive and shorter than serving_lifetime"
            )
        if self.publish_delay < datetime.timedelta(0) or self.retire_delay < datetime.timedelta(0):
            problems.append("publish_delay and retire_delay must not be negative")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class TlsState:
    """What the leader keeps in the Secret.

    ``trusted_pem`` is the bundle to publish as caBundle: the signing CA, plus the next CA during a
    rollover's first step or the retiring CA during its last. ``phase_since`` is when the bundle or
    the signing CA last changed; the rollover's delays count from it.
    """

    signing_ca: KeyPair
    serving: KeyPair
    trusted_pem: bytes
    phase_since: datetime.datetime
    next_ca: KeyPair | None = None


@dataclass(frozen=True)
class Plan:
    """What to do: save ``save`` (if set), then make every webhook entry hold ``publish``."""

    state: TlsState
    save: bool
    publish: bytes | None
    reasons: tuple[str, ...] = field(default=())


def _remaining(pair: KeyPair, now: datetime.datetime) -> datetime.timedelta:
    return pair.certificate.not_valid_after_utc - now


def _der(pem: bytes) -> set[bytes]:
    return {
        certificate.public_bytes(serialization.Encoding.DER)
        for certificate in load_certificates(pem)
    }


def unusable_reason(state: TlsState, *, now: datetime.datetime) -> str | None:
    """Why ``state`` cannot be kept (a damaged or expired Secret), or None when it can."""
    pairs = {"signing CA": state.signing_ca, "serving certificate": state.serving}
    if state.next_ca is not None:
        pairs["next CA"] = state.next_ca
    for label, pair in pairs.items():
        try:
            pair.certificate  # noqa: B018 - parsing is the check
        except ValueError:
            return f"the {label} cannot be parsed"
        if not key_matches(pair):
            return f"the {label} and its key do not match"
    for label in ("signing CA", "next CA"):
        if label in pairs and _remaining(pairs[label], now) <= datetime.timedelta(0):
            return f"the {label} has expired"
    try:
        trusted = _der(state.trusted_pem)
    except ValueError:
        return "the CA bundle cannot be parsed"
    if not _der(state.signing_ca.cert_pem) <= trusted:
        return "the CA bundle does not hold the signing CA"
    return None


def bootstrap(hosts: Sequence[str], *, now: datetime.datetime, policy: RotationPolicy) -> TlsState:
    ca = generate_ca(lifetime=policy.ca_lifetime, now=now)
    serving = issue_serving_certificate(ca, list(hosts), lifetime=policy.serving_lifetime, now=now)
    return TlsState(
        signing_ca=ca, serving=serving, trusted_pem=ca_bundle(ca.cert_pem), phase_since=now
    )


def _bundle_in_place(published: Sequence[bytes] | None, ca: KeyPair) -> bool:
    if not published:
        return False
    wanted = _der(ca.cert_pem)
    for bundle in published:
        try:
            if not wanted <= _der(bundle):
                return False
        except ValueError:
            return False
    return True


def _serving_renewal_reason(
    state: TlsState, hosts: Sequence[str], *, now: datetime.datetime, policy: RotationPolicy
) -> str | None:
    serving = state.serving.certificate
    if not issued_by(serving, state.signing_ca.certificate):
        return "the serving certificate is not signed by the signing CA"
    if sorted(dns_names(serving)) != sorted(hosts):
        return "the serving certificate's hosts differ from the wanted hosts"
    capped_by_ca = serving.not_valid_after_utc >= state.signing_ca.certificate.not_valid_after_utc
    # A certificate already as long-lived as its CA allows would be re-issued on every pass; the CA
    # rollover renews it instead.
    if _remaining(state.serving, now) < policy.serving_renew_before and not capped_by_ca:
        return f"the serving certificate expires at {serving.not_valid_after_utc.isoformat()}"
    return None


def plan(
    state: TlsState | None,
    *,
    published: Sequence[bytes] | None,
    hosts: Sequence[str],
    now: datetime.datetime,
    policy: RotationPolicy,
) -> Plan:
    """The next step for the leader.

    ``published`` is the caBundle (decoded PEM, empty when unset) of every webhook entry of the
    MutatingWebhookConfiguration, or None when it does not exist (nothing to publish to, so a
    rollover waits).
    """
    reasons: list[str] = []
    problem = "the Secret holds no certificate yet" if state is None else None
    if state is not None:
        problem = unusable_reason(state, now=now)
    if state is None or problem is not None:
        state = bootstrap(hosts, now=now, policy=policy)
        reasons.append(f"{problem}: new CA and serving certificate")
    else:
        others = _der(state.trusted_pem) - _der(state.signing_ca.cert_pem)
        if state.next_ca is None and _remaining(state.signing_ca, now) < policy.ca_renew_before:
            next_ca = generate_ca(lifetime=policy.ca_lifetime, now=now)
            state = replace(
                state,
                next_ca=next_ca,
                trusted_pem=ca_bundle(state.trusted_pem, next_ca.cert_pem),
                phase_since=now,
            )
            reasons.append("CA rollover: the signing CA expires soon; new CA added to the bundle")
        elif (
            state.next_ca is not None
            and _bundle_in_place(published, state.next_ca)
            and now - state.phase_since >= policy.publish_delay
        ):
            state = replace(
                state,
                signing_ca=state.next_ca,
                next_ca=None,
                serving=issue_serving_certificate(
                    state.next_ca, list(hosts), lifetime=policy.serving_lifetime, now=now
                ),
                phase_since=now,
            )
            reasons.append(
                "CA rollover: every webhook trusts the new CA; serving certificate now signed by it"
            )
        elif state.next_ca is None and others and now - state.phase_since >= policy.retire_delay:
            state = replace(
                state, trusted_pem=ca_bundle(state.signing_ca.cert_pem), phase_since=now
            )
            reasons.append("CA rollover: old CA retired from the bundle")
        renewal = _serving_renewal_reason(state, hosts, now=now, policy=policy)
        if renewal is not None:
            state = replace(
                state,
                serving=issue_serving_certificate(
                    state.signing_ca, list(hosts), lifetime=policy.serving_lifetime, now=now
                ),
            )
            reasons.append(f"{renewal}: serving certificate re-issued")
    save = bool(reasons)
    publish = None
    if published is not None and any(bundle != state.trusted_pem for bundle in published):
        publish = state.trusted_pem
        reasons.append("a webhook entry's caBundle differs from the bundle")
    return Plan(state=state, save=save, publish=publish, reasons=tuple(reasons))
