"""JSON as Go's encoding/json writes and reads it, for toJSON, toJSONPretty, toUnescapedJSON and
parseJSON.

Encoding follows json.Marshal: object keys sorted, ``<``, ``>`` and ``&`` escaped as ``\\u003c``
(unless HTML escaping is off), U+2028/U+2029 always escaped, control characters as ``\\u00XX``
except ``\\n \\r \\t`` and, since Go 1.22 (the Go current Vault Agent is built with), ``\\b \\f``.
A ``json.Number`` is written as its text; floats as Go formats them. Decoding follows
json.Unmarshal into ``interface{}``: every number is a float64.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from agent.templates.errors import FunctionError
from agent.templates.gofmt import format_float, format_value
from agent.templates.values import (
    MISSING,
    JsonNumber,
    NilPointer,
    NilStringSlice,
    struct_view,
)

_HTML_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def encode_string(text: str, *, escape_html: bool) -> str:
    out = ['"']
    for char in text:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif escape_html and char in _HTML_UNSAFE:
            out.append(_HTML_UNSAFE[char])
        elif "\udc80" <= char <= "\udcff":
            out.append("\\ufffd")  # a byte that is not UTF-8
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def encode_float(value: float) -> str:
    if not math.isfinite(value):
        raise FunctionError(f"json: unsupported value: {format_float(value, 'g')}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = format_float(value, "e")
        # Go writes 1e-07 as 1e-7.
        mantissa, _, exponent = text.partition("e")
        sign, digits = exponent[0], exponent[1:]
        if sign == "-" and len(digits) == 2 and digits[0] == "0":
            digits = digits[1:]
        return f"{mantissa}e{sign}{digits}"
    return format_float(value, "f")


def _struct_fields(value: Any) -> list[tuple[str, Any]] | None:
    view = struct_view(value)
    if view is None:
        return None
    return [(name, getter(value)) for name, getter in view.fields]


def encode(value: Any, *, escape_html: bool = True, indent: str | None = None) -> str:
    """json.Marshal (indent None) or json.MarshalIndent(value, "", indent)."""
    parts: list[str] = []
    _encode_into(parts, value, escape_html=escape_html, indent=indent, depth=0)
    return "".join(parts)


def _encode_into(
    parts: list[str], value: Any, *, escape_html: bool, indent: str | None, depth: int
) -> None:
    if value is None or value is MISSING or isinstance(value, NilPointer | NilStringSlice):
        parts.append("null")
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, int):
        parts.append(str(value))
    elif isinstance(value, float):
        parts.append(encode_float(value))
    elif isinstance(value, JsonNumber):
        parts.append(_json_number_text(value))
    elif isinstance(value, str):
        parts.append(encode_string(value, escape_html=escape_html))
    elif isinstance(value, Mapping):
        items = sorted(
            (
                (key if isinstance(key, str) else format_value(key), item)
                for key, item in value.items()
            ),
            key=lambda pair: pair[0],
        )
        _encode_object(parts, items, escape_html=escape_html, indent=indent, depth=depth)
    elif isinstance(value, list | tuple):
        if not value:
            parts.append("[]")
            return
        parts.append("[")
        for position, item in enumerate(value):
            if position:
                parts.append(",")
            _newline(parts, indent=indent, depth=depth + 1)
            _encode_into(parts, item, escape_html=escape_html, indent=indent, depth=depth + 1)
        _newline(parts, indent=indent, depth=depth)
        parts.append("]")
    else:
        fields = _struct_fields(value)
        if fields is None:
            raise FunctionError(f"json: unsupported type: {type(value).__name__}")
        _encode_object(parts, fields, escape_html=escape_html, indent=indent, depth=depth)


def _encode_object(
    parts: list[str],
    items: list[tuple[str, Any]],
    *,
    escape_html: bool,
    indent: str | None,
    depth: int,
) -> None:
    if not items:
        parts.append("{}")
        return
    parts.append("{")
    for position, (key, item) in enumerate(items):
        if position:
            parts.append(",")
        _newline(parts, indent=indent, depth=depth + 1)
        parts.append(encode_string(key, escape_html=escape_html))
        parts.append(": " if indent is not None else ":")
        _encode_into(parts, item, escape_html=escape_html, indent=indent, depth=depth + 1)
    _newline(parts, indent=indent, depth=depth)
    parts.append("}")


def _newline(parts: list[str], *, indent: str | None, depth: int) -> None:
    if indent is not None:
        parts.append("\n" + indent * depth)


# encoding/json's isValidNumber: JSON's number grammar, nothing around it (no NaN, no spaces).
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _json_number_text(number: JsonNumber) -> str:
    if number == "":
        return "0"
    if not _JSON_NUMBER.fullmatch(number):
        raise FunctionError("json: invalid number literal [redacted]")
    return str(number)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def decode(text: str) -> Any:
    """json.Unmarshal into interface{}: objects, arrays, strings, float64 numbers, bools, nil."""
    try:
        return json.loads(text, parse_int=float, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        if error.pos >= len(text.rstrip()):
            raise FunctionError("unexpected end of JSON input") from None
        raise FunctionError(
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except ValueError as error:
        raise FunctionError(str(error)) from None
