"""Timing rules: credentials on disk keep their fraction of life; retries back off; the queue."""

from __future__ import annotations

import math
import random

import pytest

from agent.schedule import (
    MIN_DELAY_SECONDS,
    Backoff,
    DeadlineQueue,
    LeaseClock,
    RetryPolicy,
    next_lease_action,
    reissue_time,
    static_refresh_time,
)

FRACTION = 1.0 / 3.0


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible jitter, not cryptography


def test_backoff_doubles_until_the_cap_and_only_jitters_downwards() -> None:
    backoff = Backoff(initial=1.0, cap=60.0)
    rng = seeded(7)
    for attempt, ceiling in enumerate([1, 2, 4, 8, 16, 32, 60, 60, 60]):
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert ceiling * 0.8 <= delay <= ceiling
    assert backoff.delay(10_000, rng) <= 60.0


def test_backoff_spreads_agents_that_failed_together() -> None:
    delays = {round(Backoff(1.0, 60.0).delay(3, seeded(seed)), 6) for seed in range(20)}
    assert len(delays) > 10


def test_retry_policy_never_retries_a_denial_as_fast_as_an_outage() -> None:
    policy = RetryPolicy.from_auth_backoff(1.0, 300.0)
    assert policy.denied.initial >= 30 * policy.transient.initial
    assert policy.login == Backoff(1.0, 300.0)
    assert policy.transient.cap <= 60.0


@pytest.mark.parametrize(
    ("ttl", "max_ttl"),
    [
        pytest.param(10, 30, id="database creds of ttl 10s and max ttl 30s"),
        pytest.param(3600, 86400, id="an hour renewable to a day"),
        pytest.param(60, 60, id="a max ttl equal to the ttl"),
        pytest.param(5, 1000, id="a tiny ttl with a long max ttl"),
        pytest.param(20, 70, id="a max ttl just beyond the first probe"),
    ],
)
@pytest.mark.parametrize("seed", range(12))
def test_simulated_vault_rotation_keeps_a_third_of_the_lifetime(
    ttl: int, max_ttl: int, seed: int
) -> None:
    """Drive the rules against a model of Vault's renewal answers: Vault caps a renewal at the
    lease's max TTL and honours any increment below it.

    Once a secret's lifetime is learned (from the first capped renewal) every rotation leaves at
    least a third of it. The first rotation does too when the max TTL is within the probe's reach
    (ttl / fraction); beyond it, it still leaves more than the credential's own TTL."""
    rng = seeded(seed)
    now = 0.0
    clock = LeaseClock.issued(now, ttl, renewable=True, rng=rng)
    hard = now + max_ttl
    learned: float | None = None
    renewals = 0
    for rotation in range(5):
        while True:
            plan = next_lease_action(clock, now=now, min_remaining_fraction=FRACTION, rng=rng)
            assert plan.when >= now
            now = plan.when
            assert now < clock.expires_at, "the credential expired before the agent acted"
            if plan.action == "reissue":
                # What the replaced credential really has left: it is not renewed any more, so
                # its current window, not its max TTL, is the end of it.
                left = clock.expires_at - now
                if rotation > 0 or max_ttl <= ttl / FRACTION:
                    assert left >= FRACTION * max_ttl - 1.0  # Vault counts whole seconds
                else:
                    assert left >= min(FRACTION * max_ttl, ttl) - 1.0
                learned = clock.lifetime
                break
            granted = min(plan.increment, hard - now)
            clock = clock.after_renewal(
                now, ttl=granted, capped=granted < plan.increment, renewable=True
            )
            renewals += 1
        clock = LeaseClock.issued(now, ttl, renewable=True, known_lifetime=learned, rng=rng)
        hard = now + max_ttl
    # Renewals are not a busy loop: about one per half ttl at most.
    assert renewals <= 5 * (max_ttl / (ttl * 0.5) + 1)


@pytest.mark.parametrize(
    ("ttl", "max_ttl"),
    [
        pytest.param(3, 8, id="a token of ttl 3s and max ttl 8s"),
        pytest.param(3, 9, id="database creds of ttl 3s and max ttl 9s"),
        pytest.param(10, 30, id="database creds of ttl 10s and max ttl 30s"),
    ],
)
@pytest.mark.parametrize("seed", range(12))
def test_vaults_whole_seconds_do_not_undo_a_learned_lifetime(
    ttl: int, max_ttl: int, seed: int
) -> None:
    """Vault answers a capped renewal in whole seconds (what is left, truncated), so a lifetime
    learned from it is a second or two short. A later renewal that reaches a little past the
    predicted end must not make the agent forget where the end is: it then renewed until
    Vault capped it again, and replaced the credential with a second of it left."""
    rng = seeded(seed)
    now = 0.37 * seed  # off the whole second, as a real clock is
    clock = LeaseClock.issued(now, ttl, renewable=True, rng=rng)
    hard = now + max_ttl
    learned: float | None = None
    for rotation in range(4):
        while True:
            plan = next_lease_action(clock, now=now, min_remaining_fraction=FRACTION, rng=rng)
            now = plan.when
            end = min(clock.expires_at, hard)
            assert now < end, "the credential expired before the agent acted"
            if plan.action == "reissue":
                if rotation > 0:
                    assert end - now >= FRACTION * max_ttl - 1.0
                learned = clock.lifetime
                break
            remaining = hard - now
            capped = plan.increment > remaining
            granted = math.floor(remaining) if capped else plan.increment
            clock = clock.after_renewal(now, ttl=granted, capped=capped, renewable=True)
        clock = LeaseClock.issued(now, ttl, renewable=True, known_lifetime=learned, rng=rng)
        hard = now + max_ttl


def test_renewals_ask_for_the_ttl_until_the_last_one_before_the_reissue() -> None:
    """Short windows while the credential is on disk (a pod that dies without revoking leaves
    it alive for one TTL); the last renewal covers a third of the lifetime past the reissue."""
    rng = seeded(9)
    clock = LeaseClock.issued(0.0, 10, renewable=True, known_lifetime=300, rng=rng)
    now, increments = 0.0, []
    while True:
        plan = next_lease_action(clock, now=now, min_remaining_fraction=FRACTION, rng=rng)
        now = plan.when
        if plan.action == "reissue":
            break
        increments.append(plan.increment)
        clock = clock.after_renewal(now, ttl=plan.increment, capped=False, renewable=True)
    assert set(increments[:-1]) == {10}
    assert increments[-1] > 10
    assert clock.expires_at - now >= FRACTION * 300


def test_an_unknown_max_ttl_is_probed_with_a_longer_increment() -> None:
    clock = LeaseClock.issued(0.0, 10, renewable=True)
    assert clock.renewal_increment(FRACTION) == 30
    known = LeaseClock.issued(0.0, 10, renewable=True, known_lifetime=30)
    assert known.renewal_increment(FRACTION) == 10
    assert known.hard_expires_at == 30


def test_a_non_renewable_credential_is_reissued_before_two_thirds_of_its_ttl() -> None:
    rng = seeded(1)
    clock = LeaseClock.issued(100.0, 30, renewable=False, rng=rng)
    plan = next_lease_action(clock, now=100.0, min_remaining_fraction=FRACTION, rng=rng)
    assert plan.action == "reissue"
    assert 100.0 + 30 * (2 / 3) * 0.85 <= plan.when <= 100.0 + 30 * (2 / 3) * 0.95


def test_the_issuing_tokens_expiry_bounds_a_credential() -> None:
    rng = seeded(3)
    clock = LeaseClock.issued(0.0, 20, renewable=True, known_lifetime=1000)
    now = 0.0
    actions = []
    while True:
        plan = next_lease_action(
            clock, now=now, min_remaining_fraction=FRACTION, rng=rng, token_hard_expiry=60.0
        )
        now = plan.when
        actions.append(plan.action)
        if plan.action == "reissue":
            break
        clock = clock.after_renewal(now, ttl=plan.increment, capped=False, renewable=True)
    assert actions[0] == "renew"
    assert now <= 60.0 - 60.0 * FRACTION


def test_a_renewal_past_a_predicted_expiry_forgets_the_prediction() -> None:
    clock = LeaseClock.issued(0.0, 10, renewable=True, known_lifetime=30)
    renewed = clock.after_renewal(25.0, ttl=10, capped=False, renewable=True)
    assert renewed.hard_expires_at is None
    capped = clock.after_renewal(25.0, ttl=4, capped=True, renewable=True)
    # Vault's capped remainder may be a second long (its clock is truncated to seconds).
    assert capped.hard_expires_at == 28.0


def test_work_is_never_scheduled_closer_than_the_minimum_delay() -> None:
    clock = LeaseClock.issued(0.0, 0.5, renewable=False)
    plan = next_lease_action(clock, now=10.0, min_remaining_fraction=FRACTION, rng=seeded(0))
    assert plan.when == 10.0 + MIN_DELAY_SECONDS


def test_reissue_time_is_jittered_only_earlier() -> None:
    times = [
        LeaseClock.issued(0.0, 30, renewable=False, rng=seeded(seed)).reissue_point
        for seed in range(100)
    ]
    times = [reissue_time(0.0, 30.0, FRACTION, point) for point in times]
    assert max(times) <= 20.0
    assert min(times) >= 20.0 * 0.85
    assert len(set(times)) > 50


def test_static_secrets_are_reread_about_every_interval() -> None:
    rng = seeded(5)
    times = [static_refresh_time(10.0, 300.0, now=10.0, rng=rng) for _ in range(100)]
    assert all(280.0 <= when <= 310.0 for when in times)


def test_deadline_queue_keeps_one_deadline_per_key() -> None:
    queue: DeadlineQueue[str] = DeadlineQueue()
    queue.set("token", 10.0)
    queue.set("db", 5.0)
    queue.set("db", 20.0)
    assert queue.next_time() == 10.0
    assert queue.pop_due(15.0) == ["token"]
    assert queue.pop_due(15.0) == []
    queue.set_earlier("db", 30.0)
    assert queue.when("db") == 20.0
    queue.set_earlier("db", 12.0)
    assert queue.when("db") == 12.0
    queue.cancel("db")
    assert queue.next_time() is None
    assert len(queue) == 0


def test_deadline_queue_returns_due_keys_earliest_first() -> None:
    queue: DeadlineQueue[int] = DeadlineQueue()
    for key, when in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 9.0)]:
        queue.set(key, when)
    assert queue.pop_due(5.0) == [2, 3, 1]
    assert 4 in queue


def test_a_tiny_auth_backoff_never_retries_faster_than_once_a_second() -> None:
    policy = RetryPolicy.from_auth_backoff(0.05, 0.2)
    for backoff in (policy.transient, policy.denied, policy.login):
        assert backoff.initial >= MIN_DELAY_SECONDS
        assert backoff.cap >= backoff.initial
