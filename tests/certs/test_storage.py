"""The Secret layout: a state survives the round trip; damage is named, never shown."""

from __future__ import annotations

import base64

import pytest

from certs.authority import KeyPair, generate_ca
from certs.rotation import TlsState, bootstrap
from certs.storage import (
    SERVING_KEY,
    StoredStateError,
    serving_files,
    state_from_data,
    state_to_data,
)
from tests.certs.conftest import HOSTS, NOW, POLICY


@pytest.fixture(scope="module")
def state() -> TlsState:
    return bootstrap(HOSTS, now=NOW, policy=POLICY)


def test_a_state_survives_the_round_trip(state: TlsState) -> None:
    assert state_from_data(state_to_data(state)) == state
    rolling = TlsState(
        signing_ca=state.signing_ca,
        serving=state.serving,
        trusted_pem=state.trusted_pem,
        phase_since=state.phase_since,
        next_ca=generate_ca(now=NOW),
    )
    assert state_from_data(state_to_data(rolling)) == rolling


def test_an_empty_secret_holds_no_state() -> None:
    assert state_from_data(None) is None
    assert state_from_data({}) is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        pytest.param("signing-ca.key", None, "has no signing-ca.key", id="a missing key is named"),
        pytest.param("tls.crt", "%%%", "tls.crt is not base64", id="bad base64 is named"),
        pytest.param("phase-since", "bm90IGEgdGltZQ==", "not a timestamp", id="a bad time"),
        pytest.param("next-ca.crt", "QQ==", "has no next-ca.key", id="half a next CA"),
    ],
)
def test_damage_is_reported_by_key(
    state: TlsState, key: str, value: str | None, message: str
) -> None:
    data = state_to_data(state)
    if value is None:
        del data[key]
    else:
        data[key] = value
    with pytest.raises(StoredStateError, match=message) as raised:
        state_from_data(data)
    assert state.signing_ca.key_pem.decode() not in str(raised.value)


def test_followers_get_only_what_serving_needs(state: TlsState) -> None:
    files = serving_files(state_to_data(state))
    assert files == {
        "tls.crt": state.serving.cert_pem,
        "tls.key": state.serving.key_pem,
        "ca.crt": state.trusted_pem,
    }


def test_followers_refuse_a_key_that_does_not_match(state: TlsState) -> None:
    data = state_to_data(state)
    data[SERVING_KEY] = base64.b64encode(KeyPair(b"", state.signing_ca.key_pem).key_pem).decode()
    with pytest.raises(StoredStateError, match="do not match"):
        serving_files(data)
    with pytest.raises(StoredStateError, match="no certificate yet"):
        serving_files(None)
