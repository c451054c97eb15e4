"""Pure timing: when to renew, when to issue anew, how long to back off. No I/O, no clock reads.

Times are seconds on one monotonic clock chosen by the caller; randomness comes from the
``random.Random`` passed in, so tests can pin it.

The rules, and why:

- A credential's *lifetime* runs from its issue to its hard expiry (max TTL, a certificate's
  NotAfter, or the expiry of the token that issued it, since leases die with their token). It is
  replaced once ``1 - min_remaining_fraction`` of its lifetime has passed, with jitter that only
  ever makes it earlier, so the credential on disk always has at least that fraction left.
- Vault tells a lease's hard expiry only by capping a renewal. Until it is known, a renewal asks
  for ``ttl / min_remaining_fraction``: Vault honours an increment above the role's TTL up to
  the max TTL, so a max TTL within that reach is revealed at the first renewal, in time (a longer
  one still leaves the first credential more than its TTL). The lifetime learned for a secret
  predicts the next credential's, so later rotations need no probe and keep the full fraction.
  The price of the probe: if the pod dies without revoking, a credential outlives it by up to
  ``ttl / min_remaining_fraction`` instead of ``ttl``.
- Renewals happen when ``1 - min_remaining_fraction`` of the granted window has passed (with
  jitter, earlier only), so a failed renewal still leaves time for retries.
- Every retry backs off exponentially, capped, randomised downwards by up to a fifth so agents
  that failed together do not retry together.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Generic, Literal, TypeVar

# Never schedule Vault work closer than this to now: a tiny TTL must not become a busy loop.
MIN_DELAY_SECONDS = 1.0
BACKOFF_JITTER = 0.2
VAULT_CLOCK_GRANULARITY = 1.0
# How far past a predicted hard expiry a renewal may reach before the prediction is dropped:
# a lifetime learned from a capped renewal is short by up to two clock granules.
PREDICTION_SLACK_SECONDS = 2 * VAULT_CLOCK_GRANULARITY
# Fractions of the allowed span at which work happens: early enough for retries, late enough
# not to churn.
RENEW_WINDOW = (0.80, 0.95)
REISSUE_WINDOW = (0.85, 0.95)
STATIC_WINDOW = (0.90, 1.00)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff from ``initial`` seconds, doubling per attempt, at most ``cap``."""

    initial: float
    cap: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry number ``attempt`` (0 for the first retry)."""
        base = min(self.cap, self.initial * math.pow(2.0, min(max(attempt, 0), 60)))
        return base * (1.0 - BACKOFF_JITTER * rng.random())


@dataclass(frozen=True)
class RetryPolicy:
    """Backoffs for each kind of failure."""

    # Vault unreachable, 5xx, 429: the same request may work soon.
    transient: Backoff
    # 403 with a valid token, 404: a human has to change a policy or write a secret.
    denied: Backoff
    # Login failures (auth-min-backoff / auth-max-backoff).
    login: Backoff

    @classmethod
    def from_auth_backoff(cls, minimum: float, maximum: float) -> RetryPolicy:
        # However low auth-min-backoff is set, no retry comes sooner than MIN_DELAY_SECONDS:
        # an agent under persistent errors sends at most about one request a second.
        minimum = max(minimum, MIN_DELAY_SECONDS)
        maximum = max(maximum, minimum)
        return cls(
            transient=Backoff(minimum, min(60.0, maximum)),
            denied=Backoff(min(30.0, maximum), maximum),
            login=Backoff(minimum, maximum),
        )


@dataclass(frozen=True)
class LeaseClock:
    """How long a credential (a lease, a certificate or a token) lives, as far as we know."""

    issued_at: float
    # Duration granted at issue: the increment a renewal asks for once the lifetime is known.
    ttl: float
    # Start and end of the window granted by the latest issue or renewal.
    renewed_at: float
    expires_at: float
    renewable: bool
    # The credential cannot live past this (max TTL, NotAfter): known or predicted; None: unknown.
    hard_expires_at: float | None = None
    # Where in REISSUE_WINDOW this credential is replaced: drawn once, so that the renewal
    # planned for it and the reissue that follows agree on the moment.
    reissue_point: float = 0.9

    @classmethod
    def issued(
        cls,
        now: float,
        ttl: float,
        *,
        renewable: bool,
        known_lifetime: float | None = None,
        rng: random.Random | None = None,
    ) -> LeaseClock:
        """A fresh credential. Without renewal its first window is also its whole life."""
        hard: float | None = None
        if not renewable:
            hard = now + ttl
        elif known_lifetime is not None and known_lifetime >= ttl:
            hard = now + known_lifetime
        return cls(
            issued_at=now,
            ttl=ttl,
            renewed_at=now,
            expires_at=now + ttl,
            renewable=renewable,
            hard_expires_at=hard,
            reissue_point=_uniform(REISSUE_WINDOW, rng) if rng is not None else 0.9,
        )

    @property
    def lifetime(self) -> float | None:
        if self.hard_expires_at is None:
            return None
        return self.hard_expires_at - self.issued_at

    def renewal_increment(self, min_remaining_fraction: float) -> int:
        """What to ask Vault for: enough to reveal an unknown max TTL in time, else the TTL."""
        if self.hard_expires_at is None:
            return max(1, math.ceil(self.ttl / min_remaining_fraction))
        return max(1, math.ceil(self.ttl))

    def after_renewal(self, now: float, *, ttl: float, capped: bool, renewable: bool) -> LeaseClock:
        expires_at = now + ttl
        hard = self.hard_expires_at
        if capped or not renewable:
            # Vault computes the capped remainder from a clock truncated to whole seconds, so
            # it can be up to a second longer than the truth: count that second as gone.
            hard = expires_at = now + max(0.0, ttl - VAULT_CLOCK_GRANULARITY)
        elif hard is not None and expires_at > hard + PREDICTION_SLACK_SECONDS:
            # The prediction was too short (the role's max TTL grew): it is only a guess.
            # Within the slack it is the second a capped renewal counts as gone (and Vault's
            # truncation): keep it, as the end of the credential is near all the same.
            hard = None
        return replace(
            self, renewed_at=now, expires_at=expires_at, renewable=renewable, hard_expires_at=hard
        )


Action = Literal["renew", "reissue"]


def _uniform(window: tuple[float, float], rng: random.Random) -> float:
    low, high = window
    return low + (high - low) * rng.random()


def reissue_time(
    issued_at: float, hard_expires_at: float, min_remaining_fraction: float, point: float
) -> float:
    """When to replace a credential so that it keeps at least the fraction of its lifetime:
    at ``point`` (within REISSUE_WINDOW, below 1) of the span that leaves exactly that."""
    lifetime = max(0.0, hard_expires_at - issued_at)
    return issued_at + lifetime * (1.0 - min_remaining_fraction) * point


def renewal_time(clock: LeaseClock, min_remaining_fraction: float, rng: random.Random) -> float:
    window = max(0.0, clock.expires_at - clock.renewed_at)
    return clock.renewed_at + window * (1.0 - min_remaining_fraction) * _uniform(RENEW_WINDOW, rng)


def effective_hard_expiry(clock: LeaseClock, bound: float | None) -> float | None:
    """A credential dies at its own hard expiry or its issuing token's, whichever is first."""
    if clock.hard_expires_at is None:
        return bound
    if bound is None:
        return clock.hard_expires_at
    return min(clock.hard_expires_at, bound)


@dataclass(frozen=True)
class Plan:
    """The next thing to do for a credential: when, what, and for a renewal the increment."""

    when: float
    action: Action
    increment: int = 0


def next_lease_action(
    clock: LeaseClock,
    *,
    now: float,
    min_remaining_fraction: float,
    rng: random.Random,
    token_hard_expiry: float | None = None,
) -> Plan:
    """The next step for a leased credential (never sooner than ``MIN_DELAY_SECONDS``).

    Once the lifetime is known, the last renewal before the planned re-issue asks for a window
    that reaches a fraction of the lifetime past the re-issue: the replaced credential is not
    renewed any more, and an app that has not re-read its file yet must still be able to use
    it for that long. Earlier renewals ask for the TTL only, so a pod that dies without
    revoking leaves a credential alive for one TTL, not for its whole lifetime.
    """
    fraction = min_remaining_fraction
    hard = effective_hard_expiry(clock, token_hard_expiry)
    reissue_at = (
        reissue_time(clock.issued_at, hard, fraction, clock.reissue_point)
        if hard is not None
        else math.inf
    )
    can_extend = clock.renewable and (
        clock.hard_expires_at is None or clock.expires_at < clock.hard_expires_at
    )
    renew_at = renewal_time(clock, fraction, rng) if can_extend else math.inf
    if renew_at < reissue_at:
        when = max(renew_at, now + MIN_DELAY_SECONDS)
        increment = clock.renewal_increment(fraction)
        if hard is not None and clock.hard_expires_at is not None:
            # If the next renewal may fall after the reissue, this one is the last before it.
            latest_next_renewal = when + clock.ttl * (1.0 - fraction) * RENEW_WINDOW[1]
            if latest_next_renewal >= reissue_at:
                keep_until = min(hard, reissue_at + fraction * (hard - clock.issued_at))
                increment = max(increment, math.ceil(keep_until - when))
        return Plan(when, "renew", increment)
    if math.isinf(reissue_at):
        # Neither renewable nor bounded: issue anew before the window ends, like a renewal.
        reissue_at = renewal_time(clock, fraction, rng)
    return Plan(max(reissue_at, now + MIN_DELAY_SECONDS), "reissue")


def static_refresh_time(
    fetched_at: float, interval: float, *, now: float, rng: random.Random
) -> float:
    """Re-read a static secret (KV) about every ``interval`` seconds."""
    return max(fetched_at + interval * _uniform(STATIC_WINDOW, rng), now + MIN_DELAY_SECONDS)


K = TypeVar("K", bound=Hashable)


class DeadlineQueue(Generic[K]):
    """At most one pending deadline per key; setting a key again replaces its deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._current: dict[K, tuple[float, int]] = {}
        self._sequence = itertools.count()

    def set(self, key: K, when: float) -> None:
        entry = (when, next(self._sequence))
        self._current[key] = entry
        heapq.heappush(self._heap, (entry[0], entry[1], key))

    def set_earlier(self, key: K, when: float) -> None:
        """Set ``key`` to ``when`` unless it is already due sooner."""
        current = self._current.get(key)
        if current is None or when < current[0]:
            self.set(key, when)

    def cancel(self, key: K) -> None:
        self._current.pop(key, None)

    def when(self, key: K) -> float | None:
        entry = self._current.get(key)
        return entry[0] if entry else None

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def __len__(self) -> int:
        return len(self._current)

    def _drop_stale(self) -> None:
        while self._heap:
            when, sequence, key = self._heap[0]
            if self._current.get(key) == (when, sequence):
                return
            heapq.heappop(self._heap)

    def next_time(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        """Every key whose deadline is at or before ``now``, earliest first; they are removed."""
        due: list[K] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return due
            _when, _sequence, key = heapq.heappop(self._heap)
            del self._current[key]
            due.append(key)


class FailureGate:
    """One agent-wide brake for transient failures (Vault down, 5xx, 429).

    After such a failure no request is sent before ``closed_until``; each further failure doubles
    the wait (capped), any answer from Vault resets it (a 403 or 404 too: Vault is up). However
    many secrets are due, a Vault in trouble sees at most one request per wait from this agent:
    about one a second at worst, then fewer.
    """

    def __init__(self, backoff: Backoff, rng: random.Random) -> None:
        self._backoff = backoff
        self._rng = rng
        self.failures = 0
        self.closed_until = -math.inf

    def is_open(self, now: float) -> bool:
        return now >= self.closed_until

    def failed(self, now: float, *, retry_after: float | None = None) -> float:
        wait = self._backoff.delay(self.failures, self._rng)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self._backoff.cap))
        self.failures += 1
        self.closed_until = now + wait
        return self.closed_until

    def succeeded(self) -> None:
        self.failures = 0
        self.closed_until = -math.inf
