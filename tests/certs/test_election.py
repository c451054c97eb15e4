"""Lease election rules: who may create, take, renew, or must wait."""

from __future__ import annotations

import datetime

import pytest

from certs.election import (
    Action,
    ElectionTimings,
    LeaseRecord,
    Observation,
    decide,
    next_record,
    observe,
    released,
)

WALL = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
HELD_BY_A = LeaseRecord("a", 15, WALL, WALL, 3)


@pytest.mark.parametrize(
    ("observation", "identity", "now", "expected"),
    [
        pytest.param(None, "b", 0.0, Action.CREATE, id="no lease: create it"),
        pytest.param(Observation(HELD_BY_A, 0.0), "a", 100.0, Action.RENEW, id="holder renews"),
        pytest.param(
            Observation(HELD_BY_A, 10.0),
            "b",
            20.0,
            Action.WAIT,
            id="a live lease makes others wait",
        ),
        pytest.param(
            Observation(HELD_BY_A, 10.0),
            "b",
            25.0,
            Action.ACQUIRE,
            id="a lease unchanged for a whole duration is taken",
        ),
        pytest.param(
            Observation(released(HELD_BY_A, now=WALL), 10.0),
            "b",
            10.0,
            Action.ACQUIRE,
            id="a released lease is taken at once",
        ),
    ],
)
def test_decide(
    observation: Observation | None, identity: str, now: float, expected: Action
) -> None:
    assert decide(observation, identity=identity, now=now, lease_duration=15.0) is expected


def test_the_age_of_a_lease_counts_from_its_last_change_not_its_renew_time() -> None:
    # The holder's clock is an hour behind ours: renewTime says nothing about liveness.
    skewed = LeaseRecord("a", 15, WALL, WALL - datetime.timedelta(hours=1), 0)
    seen = observe(None, skewed, 100.0)
    assert decide(seen, identity="b", now=101.0, lease_duration=15.0) is Action.WAIT
    assert observe(seen, skewed, 110.0) is seen
    renewed = LeaseRecord("a", 15, WALL, WALL - datetime.timedelta(minutes=59), 0)
    assert observe(seen, renewed, 110.0) == Observation(renewed, 110.0)


def test_records_written_for_each_action() -> None:
    later = WALL + datetime.timedelta(seconds=30)
    created = next_record(None, Action.CREATE, identity="b", now=WALL, lease_duration=0.4)
    assert created == LeaseRecord("b", 1, WALL, WALL, 0)
    renewed = next_record(HELD_BY_A, Action.RENEW, identity="a", now=later, lease_duration=15)
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (WALL, later, 3)
    taken = next_record(HELD_BY_A, Action.ACQUIRE, identity="b", now=later, lease_duration=15)
    assert (taken.holder, taken.acquire_time, taken.transitions) == ("b", later, 4)
    with pytest.raises(ValueError, match="writes nothing"):
        next_record(HELD_BY_A, Action.WAIT, identity="b", now=later, lease_duration=15)


@pytest.mark.parametrize(
    "timings",
    [
        pytest.param((15.0, 15.0, 2.0), id="renew deadline not shorter than the lease"),
        pytest.param((15.0, 10.0, 10.0), id="retry period not shorter than the deadline"),
        pytest.param((1.0, 0.5, 0.0), id="a zero retry period"),
    ],
)
def test_impossible_timings_are_refused(timings: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        ElectionTimings(*timings)
