"""The init-to-sidecar handoff: private, read once, clocks carried across processes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.handoff import Handoff, HandoffError, HeldToken, handoff_path, save, take
from agent.schedule import LeaseClock
from agent.store import Held
from agent.templates import Dependency, Secret
from agent.vault import AuthToken

TOKEN = "s.handoff-token-value"


def sample(now: float) -> Handoff:
    lease = LeaseClock.issued(now, 30, renewable=True, known_lifetime=90)
    dependency = Dependency("secret", "database/creds/app", ())
    return Handoff(
        token=HeldToken(
            auth=AuthToken(token=TOKEN, accessor="acc", ttl=3600, renewable=True, policies=("a",)),
            clock=LeaseClock.issued(now, 3600, renewable=True),
            generation=1,
        ),
        held=(
            Held(
                dependency=dependency,
                category="lease",
                secret=Secret(
                    request_id="r",
                    lease_id="database/creds/app/xyz",
                    lease_duration=30,
                    renewable=True,
                    data={"username": "u", "port": 5432},
                ),
                keys=(),
                fetched_at=now,
                clock=lease,
                generation=1,
            ),
            Held(
                dependency=Dependency("secrets", "secret/team", ()),
                category="list",
                secret=Secret(),
                keys=("a", "b/"),
                fetched_at=now,
                clock=None,
                generation=1,
            ),
        ),
        learned_lifetimes=((dependency, 90.0),),
        learned_token_lifetime=None,
    )


def test_round_trip_across_processes_with_different_monotonic_clocks(tmp_path: Path) -> None:
    init_offset = 1_000_000.0  # wall = monotonic + offset, in the init container
    sidecar_offset = 1_000_500.0  # the sidecar's monotonic clock reads 500 less for one moment
    original = sample(now=100.0)
    save(str(tmp_path), original, monotonic_to_wall=init_offset)
    adopted = take(str(tmp_path), monotonic_to_wall=sidecar_offset)
    assert adopted is not None
    shift = init_offset - sidecar_offset
    assert adopted.token.auth == original.token.auth
    assert adopted.token.clock.expires_at == pytest.approx(original.token.clock.expires_at + shift)
    lease = adopted.held[0]
    assert lease.secret == original.held[0].secret
    assert type(lease.secret.data["port"]) is int
    assert lease.clock is not None
    assert original.held[0].clock is not None
    assert lease.clock.hard_expires_at == pytest.approx(
        original.held[0].clock.hard_expires_at + shift  # type: ignore[operator]
    )
    assert adopted.held[1].keys == ("a", "b/")
    assert adopted.learned_lifetimes == original.learned_lifetimes


def test_the_file_is_private_and_read_only_once(tmp_path: Path) -> None:
    path = save(str(tmp_path), sample(now=0.0), monotonic_to_wall=0.0)
    assert path == handoff_path(str(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert take(str(tmp_path), monotonic_to_wall=0.0) is not None
    assert not path.exists()
    assert take(str(tmp_path), monotonic_to_wall=0.0) is None


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b'{"version": 99}', id="another version"),
        pytest.param(b'{"version": 1, "token": {"token": "s.leaky"}}', id="missing fields"),
    ],
)
def test_a_bad_file_is_refused_without_quoting_it_and_deleted(
    tmp_path: Path, content: bytes
) -> None:
    handoff_path(str(tmp_path)).write_bytes(content)
    with pytest.raises(HandoffError) as raised:
        take(str(tmp_path), monotonic_to_wall=0.0)
    assert "leaky" not in str(raised.value)
    assert not handoff_path(str(tmp_path)).exists()
