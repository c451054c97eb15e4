"""JSON on the wire: a strict reading of the request, and a patch every pod gets."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.wire import NotJsonError, decode_request, encode_json, encode_patch

REVIEW = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u"}}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps(REVIEW).encode(), id="UTF-8"),
        pytest.param(b"\xef\xbb\xbf" + json.dumps(REVIEW).encode(), id="UTF-8 with a BOM"),
        pytest.param(json.dumps(REVIEW).encode("utf-16"), id="UTF-16"),
        pytest.param(json.dumps(REVIEW).encode("utf-32-le"), id="UTF-32"),
    ],
)
def test_reads_what_json_loads_reads(body: bytes) -> None:
    assert decode_request(body) == json.loads(body) == REVIEW


def test_keeps_numbers_exact() -> None:
    body = b'{"big": 123456789012345678901234567890, "fraction": 1.5, "exponent": 2e3}'
    assert decode_request(body) == {
        "big": 123456789012345678901234567890,
        "fraction": 1.5,
        "exponent": 2000.0,
    }
    # One document each: a body with one long number goes to the stdlib whole.
    for edge in (2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 10**18, -(10**18)):
        read = decode_request(json.dumps({"n": edge}).encode())["n"]
        assert type(read) is int
        assert read == edge


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def _typed(value: Any) -> Any:
    """The value with every leaf's type beside it: == alone takes True for 1 and 1 for 1.0."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_reads_any_json_document_as_the_stdlib_does(value: Any) -> None:
    for body in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        assert _typed(decode_request(body)) == _typed(json.loads(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": NaN}', "NaN is not a JSON value"),
        (b'{"a": [Infinity]}', "Infinity is not a JSON value"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"a": 1e400}', "a number is too large for a double"),
    ],
)
def test_refuses_what_rfc_8259_has_no_place_for(body: bytes, message: str) -> None:
    json.loads(body)  # which the stdlib alone would have taken
    with pytest.raises(NotJsonError, match=f"^{message}$"):
        decode_request(body)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"name": "vault-agent", "args": ["--mode", "init"], "n": 3}, id="plain"),
        pytest.param({"text": "grüße/秘密/\u2028", "emoji": "\U0001f511"}, id="non-ASCII"),
        pytest.param({"limit": 2**70, "negative": -(2**64)}, id="integers beyond 64 bits"),
        pytest.param({"lone": "\ud800"}, id="a lone surrogate"),
        pytest.param({"floats": [0.1, 1e16, -2.5e-7, 1.0]}, id="floats"),
    ],
)
def test_the_patch_decodes_to_the_operations_whatever_they_hold(value: Any) -> None:
    operations = [{"op": "add", "path": "/spec/x", "value": value}]
    written = encode_json(operations)
    assert isinstance(written, bytes)
    assert b", " not in written  # compact
    assert b": " not in written
    assert json.loads(written.decode("utf-8", "surrogatepass")) == operations


def test_keys_that_are_not_strings_still_make_a_patch() -> None:
    operations: list[dict[str, Any]] = [{"op": "add", "path": "/x", "value": {1: "one"}}]
    assert json.loads(encode_json(operations)) == [
        {"op": "add", "path": "/x", "value": {"1": "one"}}
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_the_encoded_patch_is_the_standard_base64_of_its_json(text: str) -> None:
    # Texts of every length put every padding (none, "=", "==") and both 62nd and 63rd
    # characters of the alphabet ("+", "/") to the test.
    operations: list[dict[str, Any]] = [{"op": "add", "path": "/x", "value": text}]
    encoded = encode_patch(operations)
    assert encoded == base64.b64encode(encode_json(operations)).decode("ascii")
    decoded = base64.b64decode(encoded, validate=True).decode("utf-8", "surrogatepass")
    assert json.loads(decoded) == operations


@pytest.mark.parametrize(
    "warning",
    [
        pytest.param("vault.hashicorp.com/agent-inject-secrets-db: unknown", id="ASCII"),
        pytest.param("grüße: 秘密", id="non-ASCII"),
        pytest.param("a lone \ud800 from a request the stdlib read", id="a lone surrogate"),
    ],
)
def test_the_answer_decodes_to_the_review(warning: str) -> None:
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u", "allowed": True, "patch": "W10=", "warnings": [warning]},
    }
    written = encode_json(review)
    assert written.startswith(b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"')
    assert json.loads(written.decode("utf-8", "surrogatepass")) == review
