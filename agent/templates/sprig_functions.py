"""The cheap, pure part of Sprig v3, which consul-template offers as ``sprig_<name>``.

Left out: dates, crypto (certificates, bcrypt, AES), semver, network and paths. Sprig's own
conventions are kept: string conversion with ``%v`` (strval), emptiness as in ``default``/``empty``,
``cast``'s forgiving number conversion (unparsable text is 0), 64-bit integer arithmetic, and
swallowed errors where Sprig swallows them (``b64dec`` returns the error text, ``toJson`` "").
Where Go's map order is random (``keys``, ``values``) insertion order is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agent.templates import go_json
from agent.templates.consul_functions import (
    CONSUL_FUNCTIONS,
    compile_go_regexp,
    go_int_divide,
    go_int_remainder,
    go_lower,
    go_trim_space,
    go_upper,
    regex_replace_all,
)
from agent.templates.errors import FunctionError
from agent.templates.funcspec import ArgType, Function
from agent.templates.gofmt import format_value, quote
from agent.templates.literals import LiteralError, parse_float, parse_int
from agent.templates.values import MISSING, GoStringSlice, is_true, struct_view, type_name

S = ArgType.STRING
I = ArgType.INT  # noqa: E741 - reads like the Go signature it mirrors
ANY = ArgType.ANY


def strval(value: Any) -> str:
    """Sprig's strval: strings as they are, anything else as fmt's %v."""
    if isinstance(value, str):
        return str(value)
    if value is MISSING:
        return "<nil>"
    return format_value(value)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def empty(value: Any) -> bool:
    """Sprig's empty: the zero value of its type; structs are never empty."""
    if struct_view(value) is not None:
        return False
    return not is_true(value)


# -- strings ------------------------------------------------------------------------------------


def _go_title(text: str) -> str:
    """strings.Title: upper-case letters that follow a separator (space, punctuation)."""

    def is_separator(char: str) -> bool:
        if char.isascii():
            return not (char.isalnum() or char == "_")
        if char.isalpha() or char.isdigit():
            return False
        return char.isspace()

    out = []
    previous = " "
    for char in text:
        out.append(char.title() if is_separator(previous) and len(char.title()) == 1 else char)
        previous = char
    return "".join(out)


def _untitle(text: str) -> str:
    out = []
    at_word_start = True
    for char in text:
        out.append(char.lower() if at_word_start and len(char.lower()) == 1 else char)
        at_word_start = char.isspace()
    return "".join(out)


def _byte_slice(text: str, *, start: int, end: int) -> str:
    data = _bytes(text)
    if start < 0 or end > len(data) or start > end:
        raise FunctionError(f"runtime error: slice bounds out of range [{start}:{end}]")
    return _text(data[start:end])


def _substr(start: int, end: int, text: str) -> str:
    length = len(_bytes(text))
    if start < 0:
        return _byte_slice(text, start=0, end=end)
    if end < 0 or end > length:
        return _byte_slice(text, start=start, end=length)
    return _byte_slice(text, start=start, end=end)


def _trunc(count: int, text: str) -> str:
    length = len(_bytes(text))
    if count < 0 and length + count > 0:
        return _byte_slice(text, start=length + count, end=length)
    if count >= 0 and length > count:
        return _byte_slice(text, start=0, end=count)
    return text


def _repeat(count: int, text: str) -> str:
    if count < 0:
        raise FunctionError("strings: negative Repeat count")
    return text * count


def _nospace(text: str) -> str:
    return "".join(char for char in text if not char.isspace())


def _quote(*values: Any) -> str:
    return " ".join(quote(strval(value)) for value in values if value is not None)


def _squote(*values: Any) -> str:
    return " ".join(f"'{format_value(value)}'" for value in values if value is not None)


def _cat(*values: Any) -> str:
    return " ".join(format_value(value) for value in values if value is not None)


def _indent(spaces: int, text: str) -> str:
    pad = " " * max(spaces, 0)
    return pad + text.replace("\n", "\n" + pad)


def _nindent(spaces: int, text: str) -> str:
    return "\n" + _indent(spaces, text)


def _plural(one: str, many: str, count: int) -> str:
    return one if count == 1 else many


# -- conversion ---------------------------------------------------------------------------------

_ZERO_DECIMAL = re.compile(r"^(-?\d+)\.0+$")


def to_int64(value: Any) -> int:
    """cast.ToInt64: forgiving; text that is not a number gives 0."""
    if value is None or value is MISSING:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = str(value)
        match = _ZERO_DECIMAL.match(text)
        if match:
            text = match.group(1)
        try:
            return parse_int(text)
        except LiteralError:
            return 0
    return 0


def to_float64(value: Any) -> float:
    """cast.ToFloat64: forgiving; text that is not a number gives 0."""
    if value is None or value is MISSING:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_float(str(value))
        except LiteralError:
            return 0.0
    return 0.0


def _atoi(text: str) -> int:
    try:
        return parse_int(text, base=10)
    except LiteralError:
        return 0


def strslice(value: Any) -> GoStringSlice:
    if isinstance(value, list | tuple):
        return GoStringSlice(strval(item) for item in value if item is not None)
    if value is None or value is MISSING:
        return GoStringSlice()
    return GoStringSlice([strval(value)])


def _sort_alpha(value: Any) -> GoStringSlice:
    if isinstance(value, list | tuple):
        return GoStringSlice(sorted(strslice(value), key=_bytes))
    return GoStringSlice([strval(value)])


# -- defaults -----------------------------------------------------------------------------------


def _default(default: Any, *given: Any) -> Any:
    if not given or empty(given[0]):
        return default
    return given[0]


def _coalesce(*values: Any) -> Any:
    for value in values:
        if not empty(value):
            return value
    return None


def _ternary(if_true: Any, if_false: Any, condition: bool) -> Any:
    return if_true if condition else if_false


def _to_json(value: Any) -> str:
    try:
        return go_json.encode(value)
    except FunctionError:
        return ""


def _to_pretty_json(value: Any) -> str:
    try:
        return go_json.encode(value, indent="  ")
    except FunctionError:
        return ""


def _to_raw_json(value: Any) -> str:
    try:
        return go_json.encode(value, escape_html=False)
    except FunctionError:
        return ""


def _from_json(text: str) -> Any:
    try:
        return go_json.decode(text)
    except FunctionError:
        return None


# -- encoding -----------------------------------------------------------------------------------


def _b64dec(text: str) -> str:
    try:
        return _text(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        # Sprig returns the decoding error as the result.
        return "illegal base64 data at input byte 0"


def _b32dec(text: str) -> str:
    try:
        return _text(base64.b32decode(text))
    except (binascii.Error, ValueError):
        return "illegal base32 data at input byte 0"


# -- lists and dicts ----------------------------------------------------------------------------


def _require_list(value: Any, action: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise FunctionError(f"Cannot {action} on type {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    name = type_name(value)
    if name.startswith("map["):
        return "map"
    if name in ("json.Number", "string"):
        return "string"
    if name == "float64":
        return "float64"
    return name


def _first(value: Any) -> Any:
    items = _require_list(value, "find first")
    return items[0] if items else None


def _last(value: Any) -> Any:
    items = _require_list(value, "find last")
    return items[-1] if items else None


def _rest(value: Any) -> Any:
    items = _require_list(value, "find rest")
    return list(items[1:]) if items else None


def _initial(value: Any) -> Any:
    items = _require_list(value, "find initial")
    return list(items[:-1]) if items else None


def _reverse(value: Any) -> list[Any]:
    return list(reversed(_require_list(value, "find reverse")))


def _deep_equal(first: Any, second: Any) -> bool:
    # reflect.DeepEqual: same Go type, then equal content.
    return type_name(first) == type_name(second) and bool(first == second)


def _uniq(value: Any) -> list[Any]:
    unique: list[Any] = []
    for item in _require_list(value, "find uniq"):
        if not any(_deep_equal(item, seen) for seen in unique):
            unique.append(item)
    return unique


def _compact(value: Any) -> list[Any]:
    return [item for item in _require_list(value, "compact") if not empty(item)]


def _has(needle: Any, haystack: Any) -> bool:
    return any(_deep_equal(needle, item) for item in _require_list(haystack, "find has"))


def _dict(*pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for index in range(0, len(pairs), 2):
        key = strval(pairs[index])
        result[key] = pairs[index + 1] if index + 1 < len(pairs) else ""
    return result


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    return mapping.get(key, "")


def _has_key(mapping: Mapping[str, Any], key: str) -> bool:
    return key in mapping


def _keys(*mappings: Mapping[str, Any]) -> GoStringSlice:
    return GoStringSlice(key for mapping in mappings for key in mapping)


def _values(mapping: Mapping[str, Any]) -> list[Any]:
    return list(mapping.values())


def _until(count: int) -> list[int]:
    return list(range(0, count, 1 if count >= 0 else -1))


# -- arithmetic (int64) -------------------------------------------------------------------------


def _add(*values: Any) -> int:
    return sum(to_int64(value) for value in values)


def _mul(first: Any, *values: Any) -> int:
    product = to_int64(first)
    for value in values:
        product *= to_int64(value)
    return product


def _max(first: Any, *values: Any) -> int:
    return max([to_int64(first), *(to_int64(value) for value in values)])


def _min(first: Any, *values: Any) -> int:
    return min([to_int64(first), *(to_int64(value) for value in values)])


# -- random and regular expressions -------------------------------------------------------------


def _random_string(alphabet: str, count: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(max(count, 0)))


def _regex_find(pattern: str, text: str) -> str:
    match = compile_go_regexp(pattern).search(text)
    return match.group(0) if match else ""


def _regex_find_all(pattern: str, text: str, limit: int) -> GoStringSlice:
    found = [match.group(0) for match in compile_go_regexp(pattern).finditer(text)]
    return GoStringSlice(found if limit < 0 else found[:limit])


def _regex_replace_all(pattern: str, text: str, replacement: str) -> str:
    # Sprig's argument order differs from consul-template's.
    return regex_replace_all(pattern, replacement, text)


def _fail(message: str) -> str:
    raise FunctionError(message)


# The ones that are consul-template's under the same name or another, arguments in the same order.
_CONSUL = {function.name: function for function in CONSUL_FUNCTIONS}

_SPRIG: tuple[Function, ...] = (
    Function("trim", go_trim_space, (S,)),
    Function("upper", go_upper, (S,)),
    Function("lower", go_lower, (S,)),
    Function("title", _go_title, (S,)),
    Function("untitle", _untitle, (S,)),
    Function("substr", _substr, (I, I, S)),
    Function("repeat", _repeat, (I, S)),
    replace(_CONSUL["trim"], name="trimAll"),
    _CONSUL["trimSuffix"],
    _CONSUL["trimPrefix"],
    Function("nospace", _nospace, (S,)),
    Function("trunc", _trunc, (I, S)),
    Function("contains", lambda part, text: part in text, (S, S)),
    Function("hasPrefix", lambda prefix, text: text.startswith(prefix), (S, S)),
    Function("hasSuffix", lambda suffix, text: text.endswith(suffix), (S, S)),
    Function("quote", _quote, (), ANY),
    Function("squote", _squote, (), ANY),
    Function("cat", _cat, (), ANY),
    Function("indent", _indent, (I, S)),
    Function("nindent", _nindent, (I, S)),
    Function("replace", lambda old, new, text: text.replace(old, new) if old else text, (S, S, S)),
    Function("plural", _plural, (S, S, I)),
    Function(
        "sha1sum", lambda text: hashlib.sha1(_bytes(text), usedforsecurity=False).hexdigest(), (S,)
    ),
    Function("sha256sum", lambda text: hashlib.sha256(_bytes(text)).hexdigest(), (S,)),
    Function("toString", strval, (ANY,)),
    Function("atoi", _atoi, (S,)),
    Function("int", to_int64, (ANY,)),
    Function("int64", to_int64, (ANY,)),
    Function("float64", to_float64, (ANY,)),
    Function(
        "splitList",
        lambda separator, text: GoStringSlice(text.split(separator) if separator else list(text)),
        (S, S),
    ),
    Function("join", lambda separator, value: separator.join(strslice(value)), (S, ANY)),
    Function("sortAlpha", _sort_alpha, (ANY,)),
    Function("default", _default, (ANY,), ANY),
    Function("empty", empty, (ANY,)),
    Function("coalesce", _coalesce, (), ANY),
    Function("all", lambda *values: all(not empty(value) for value in values), (), ANY),
    Function("any", lambda *values: any(not empty(value) for value in values), (), ANY),
    Function("ternary", _ternary, (ANY, ANY, ArgType.BOOL)),
    Function("toJson", _to_json, (ANY,)),
    Function("toPrettyJson", _to_pretty_json, (ANY,)),
    Function("toRawJson", _to_raw_json, (ANY,)),
    Function("fromJson", _from_json, (S,)),
    Function("b64enc", lambda text: base64.b64encode(_bytes(text)).decode("ascii"), (S,)),
    Function("b64dec", _b64dec, (S,)),
    Function("b32enc", lambda text: base64.b32encode(_bytes(text)).decode("ascii"), (S,)),
    Function("b32dec", _b32dec, (S,)),
    Function("list", lambda *values: list(values), (), ANY),
    Function("dict", _dict, (), ANY),
    Function("get", _get, (ArgType.MAP, S)),
    Function("hasKey", _has_key, (ArgType.MAP, S)),
    Function("keys", _keys, (), ArgType.MAP),
    Function("values", _values, (ArgType.MAP,)),
    Function("first", _first, (ANY,)),
    Function("last", _last, (ANY,)),
    Function("rest", _rest, (ANY,)),
    Function("initial", _initial, (ANY,)),
    Function("reverse", _reverse, (ANY,)),
    Function("uniq", _uniq, (ANY,)),
    Function("compact", _compact, (ANY,)),
    Function("has", _has, (ANY, ANY)),
    Function("until", _until, (I,)),
    Function("add", _add, (), ANY),
    Function("add1", lambda value: to_int64(value) + 1, (ANY,)),
    Function("sub", lambda left, right: to_int64(left) - to_int64(right), (ANY, ANY)),
    Function("mul", _mul, (ANY,), ANY),
    Function("div", lambda left, right: go_int_divide(to_int64(left), to_int64(right)), (ANY, ANY)),
    Function(
        "mod", lambda left, right: go_int_remainder(to_int64(left), to_int64(right)), (ANY, ANY)
    ),
    Function("max", _max, (ANY,), ANY),
    Function("min", _min, (ANY,), ANY),
    Function("uuidv4", lambda: str(uuid.uuid4())),
    Function(
        "randAlphaNum",
        lambda count: _random_string(string.ascii_letters + string.digits, count),
        (I,),
    ),
    Function("randAlpha", lambda count: _random_string(string.ascii_letters, count), (I,)),
    Function("randNumeric", lambda count: _random_string(string.digits, count), (I,)),
    _CONSUL["regexMatch"],
    Function("regexFind", _regex_find, (S, S)),
    Function("regexFindAll", _regex_find_all, (S, S, I)),
    Function("regexReplaceAll", _regex_replace_all, (S, S, S)),
    _CONSUL["env"],
    Function("fail", _fail, (S,)),
)

SPRIG_FUNCTIONS: tuple[Function, ...] = tuple(
    Function(
        "sprig_" + function.name,
        function.impl,
        function.params,
        function.variadic,
        needs_context=function.needs_context,
    )
    for function in _SPRIG
)
