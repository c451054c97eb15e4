"""Leader election on a coordination.k8s.io/v1 Lease (pure: what to write, given what was read).

It follows client-go's rules. A candidate does not compare the lease's renewTime with its own clock
(replicas' clocks differ); it remembers when it last saw the record change, by its own monotonic
clock, and takes the lease over only when the record has not changed for a whole lease duration.
Every replica of one Deployment shares the same timings, so each uses its configured lease duration;
``leaseDurationSeconds`` in the object (a whole number) is written for humans and other tools.
"""

from __future__ import annotations

import datetime
import enum
import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ElectionTimings:
    """Seconds. The leader renews every ``retry_period`` and gives up leading when it could not
    renew for ``renew_deadline``, well before others may take over after ``lease_duration``."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "election timings: need 0 < retry_period < renew_deadline < lease_duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease, as far as leader election uses it."""

    holder: str
    duration_seconds: int
    acquire_time: datetime.datetime | None
    renew_time: datetime.datetime | None
    transitions: int


@dataclass(frozen=True)
class Observation:
    """A record and the (monotonic) time this candidate first saw it as it is."""

    record: LeaseRecord
    seen_at: float


class Action(enum.Enum):
    CREATE = "create"  # there is no Lease yet
    ACQUIRE = "acquire"  # the Lease is free or its holder stopped renewing it
    RENEW = "renew"  # this candidate holds the Lease
    WAIT = "wait"  # another candidate holds a live Lease


def observe(
    previous: Observation | None, record: LeaseRecord | None, now: float
) -> Observation | None:
    """The observation after reading ``record`` at ``now``; unchanged records keep their age."""
    if record is None:
        return None
    if previous is not None and previous.record == record:
        return previous
    return Observation(record=record, seen_at=now)


def decide(
    observation: Observation | None, *, identity: str, now: float, lease_duration: float
) -> Action:
    if observation is None:
        return Action.CREATE
    holder = observation.record.holder
    if holder == identity:
        return Action.RENEW
    if not holder or now - observation.seen_at >= lease_duration:
        return Action.ACQUIRE
    return Action.WAIT


def next_record(
    current: LeaseRecord | None,
    action: Action,
    *,
    identity: str,
    now: datetime.datetime,
    lease_duration: float,
) -> LeaseRecord:
    """The record to write for ``action`` (not WAIT)."""
    duration_seconds = max(1, math.ceil(lease_duration))
    if action is Action.WAIT:
        raise ValueError("a waiting candidate writes nothing")
    if current is None or action is Action.CREATE:
        return LeaseRecord(identity, duration_seconds, now, now, 0)
    if action is Action.RENEW:
        return replace(current, duration_seconds=duration_seconds, renew_time=now)
    return LeaseRecord(
        holder=identity,
        duration_seconds=duration_seconds,
        acquire_time=now,
        renew_time=now,
        transitions=current.transitions + (1 if current.holder else 0),
    )


def released(current: LeaseRecord, *, now: datetime.datetime) -> LeaseRecord:
    """What a leader that stops on purpose writes, so that another takes over at once."""
    return replace(current, holder="", duration_seconds=1, acquire_time=now, renew_time=now)
