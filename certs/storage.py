"""How the automatic TLS state is laid out in a Kubernetes Secret (pure: data in, data out).

The Secret is of type ``kubernetes.io/tls``, so ``tls.crt`` and ``tls.key`` are where every tool
expects them, and ``ca.crt`` is the bundle that is published as caBundle. The CA keys and the
rollover's bookkeeping sit beside them. Values are base64, as in a Secret's ``data``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping

from certs.authority import KeyPair, key_matches
from certs.rotation import TlsState

SECRET_TYPE = "kubernetes.io/tls"  # noqa: S105 - a type name
SERVING_CERT = "tls.crt"
SERVING_KEY = "tls.key"
CA_BUNDLE = "ca.crt"
SIGNING_CA_CERT = "signing-ca.crt"
SIGNING_CA_KEY = "signing-ca.key"
NEXT_CA_CERT = "next-ca.crt"
NEXT_CA_KEY = "next-ca.key"
PHASE_SINCE = "phase-since"

# What a replica writes to its certificate directory, and with which file mode.
SERVING_FILES = {SERVING_CERT: 0o644, SERVING_KEY: 0o600, CA_BUNDLE: 0o644}


class StoredStateError(ValueError):
    """The Secret exists but its content is unusable; the message names a key, never a value."""


def _encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _decode(data: Mapping[str, str], key: str) -> bytes:
    value = data.get(key)
    if not value:
        raise StoredStateError(f"the Secret has no {key}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise StoredStateError(f"the Secret's {key} is not base64") from None


def state_to_data(state: TlsState) -> dict[str, str]:
    data = {
        SERVING_CERT: _encode(state.serving.cert_pem),
        SERVING_KEY: _encode(state.serving.key_pem),
        CA_BUNDLE: _encode(state.trusted_pem),
        SIGNING_CA_CERT: _encode(state.signing_ca.cert_pem),
        SIGNING_CA_KEY: _encode(state.signing_ca.key_pem),
        PHASE_SINCE: _encode(state.phase_since.isoformat().encode()),
    }
    if state.next_ca is not None:
        data[NEXT_CA_CERT] = _encode(state.next_ca.cert_pem)
        data[NEXT_CA_KEY] = _encode(state.next_ca.key_pem)
    return data


def state_from_data(data: Mapping[str, str] | None) -> TlsState | None:
    """The state kept in a Secret's data; None for an empty Secret, StoredStateError if damaged."""
    if not data:
        return None
    raw_phase_since = _decode(data, PHASE_SINCE)
    try:
        phase_since = datetime.datetime.fromisoformat(raw_phase_since.decode())
    except (UnicodeDecodeError, ValueError):
        raise StoredStateError(f"the Secret's {PHASE_SINCE} is not a timestamp") from None
    if phase_since.tzinfo is None:
        raise StoredStateError(f"the Secret's {PHASE_SINCE} has no time zone")
    next_ca = None
    if NEXT_CA_CERT in data or NEXT_CA_KEY in data:
        next_ca = KeyPair(_decode(data, NEXT_CA_CERT), _decode(data, NEXT_CA_KEY))
    return TlsState(
        signing_ca=KeyPair(_decode(data, SIGNING_CA_CERT), _decode(data, SIGNING_CA_KEY)),
        serving=KeyPair(_decode(data, SERVING_CERT), _decode(data, SERVING_KEY)),
        trusted_pem=_decode(data, CA_BUNDLE),
        phase_since=phase_since,
        next_ca=next_ca,
    )


def state_files(state: TlsState) -> dict[str, bytes]:
    """The files a replica serves from, for the leader's own state."""
    return {
        SERVING_CERT: state.serving.cert_pem,
        SERVING_KEY: state.serving.key_pem,
        CA_BUNDLE: state.trusted_pem,
    }


def serving_files(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """The files a follower writes from the Secret's data: only what serving needs, checked."""
    if not data:
        raise StoredStateError("the Secret holds no certificate yet")
    files = {name: _decode(data, name) for name in SERVING_FILES}
    if not key_matches(KeyPair(files[SERVING_CERT], files[SERVING_KEY])):
        raise StoredStateError(f"the Secret's {SERVING_CERT} and {SERVING_KEY} do not match")
    return files
