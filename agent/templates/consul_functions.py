"""consul-template's helper functions (template/funcs.go), with their Go signatures.

Behaviour follows consul-template's documentation and source: argument order made for pipes
(``{{ .x | trimPrefix "a" }}`` is ``trimPrefix "a" .x``), empty input conventions (``parseInt ""``
is 0, ``split`` of blank text is an empty list), Go's strconv, strings and regexp semantics.
Error messages never carry the value being parsed; ``[redacted]`` stands in for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from typing import Any

from agent.templates import go_json, go_yaml
from agent.templates.errors import REDACTED, FunctionError
from agent.templates.funcspec import ArgType, Function, RenderContext
from agent.templates.gotime import RFC3339, go_format
from agent.templates.literals import LiteralError, parse_float, parse_int
from agent.templates.values import GoStringSlice, JsonNumber, type_name

S = ArgType.STRING
ANY = ArgType.ANY

# Go's unicode.IsSpace; Python's str.isspace also counts the ASCII separators 0x1c-0x1f.
_NOT_GO_SPACE = frozenset("\x1c\x1d\x1e\x1f")


def go_trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start].isspace() and text[start] not in _NOT_GO_SPACE:
        start += 1
    while end > start and text[end - 1].isspace() and text[end - 1] not in _NOT_GO_SPACE:
        end -= 1
    return text[start:end]


# -- encoding and hashing ---------------------------------------------------------------------


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _base64_decode(text: str, *, name: str, url_safe: bool) -> str:
    alphabet = "-_" if url_safe else "+/"
    valid = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789=" + alphabet)
    # Go skips \r and \n; anything else outside the alphabet, or bad padding, is an error.
    cleaned = text.replace("\r", "").replace("\n", "")
    for position, char in enumerate(cleaned):
        if char not in valid:
            raise FunctionError(f"{name}: illegal base64 data at input byte {position}")
    if len(cleaned) % 4:
        raise FunctionError(f"{name}: illegal base64 data at input byte {len(cleaned) // 4 * 4}")
    try:
        data = (
            base64.urlsafe_b64decode(cleaned)
            if url_safe
            else base64.b64decode(cleaned, validate=True)
        )
    except (binascii.Error, ValueError):
        raise FunctionError(f"{name}: illegal base64 data") from None
    return _text(data)


def _base64_encode(text: str) -> str:
    return base64.b64encode(_bytes(text)).decode("ascii")


def _base64_url_encode(text: str) -> str:
    return base64.urlsafe_b64encode(_bytes(text)).decode("ascii")


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(_bytes(text)).hexdigest()


def _md5sum(text: str) -> str:
    return hashlib.md5(_bytes(text), usedforsecurity=False).hexdigest()


def _hmac_sha256_hex(message: str, key: str) -> str:
    return hmac.new(_bytes(key), _bytes(message), hashlib.sha256).hexdigest()


# -- strings ------------------------------------------------------------------------------------


def _split(separator: str, text: str) -> GoStringSlice:
    text = go_trim_space(text)
    if text == "":
        return GoStringSlice()
    if separator == "":
        return GoStringSlice(text)
    return GoStringSlice(text.split(separator))


def _split_to_map(first_separator: str, second_separator: str, text: str) -> dict[str, str]:
    text = go_trim_space(text)
    result: dict[str, str] = {}
    if text == "":
        return result
    for part in text.split(first_separator) if first_separator else list(text):
        key, found, value = part.partition(second_separator)
        if found:
            result[key] = value
    return result


def _join(separator: str, items: GoStringSlice) -> str:
    return separator.join(items)


def _trim(cutset: str, text: str) -> str:
    return text.strip(cutset) if cutset else text


def _trim_prefix(prefix: str, text: str) -> str:
    return text.removeprefix(prefix)


def _trim_suffix(suffix: str, text: str) -> str:
    return text.removesuffix(suffix)


def _replace_all(old: str, new: str, text: str) -> str:
    if old == "":
        # Go's strings.Replace with an empty old string inserts new around every rune.
        return new + new.join(text) + new if text else new
    return text.replace(old, new)


def go_upper(text: str) -> str:
    """strings.ToUpper: one rune for one rune (Go keeps ß where Python writes SS)."""
    upper = text.upper()
    if len(upper) == len(text):
        return upper
    return "".join(char.upper() if len(char.upper()) == 1 else char for char in text)


def go_lower(text: str) -> str:
    """strings.ToLower: one rune for one rune."""
    lower = text.lower()
    if len(lower) == len(text):
        return lower
    return "".join(char.lower() if len(char.lower()) == 1 else char for char in text)


def _to_title(text: str) -> str:
    """cases.Title(language.Und, cases.NoLower): upper-case each word's first letter only."""
    out = []
    in_word = False
    for position, char in enumerate(text):
        word_char = char.isalnum() or (
            # Apostrophes and dots between letters keep a word going (o'neil, e.g).
            in_word
            and char in "'\u2019."
            and position + 1 < len(text)
            and text[position + 1].isalpha()
        )
        if word_char and not in_word and char.isalpha():
            out.append(char.title())
        else:
            out.append(char)
        in_word = word_char
    return "".join(out)


def _indent(spaces: int, text: str) -> str:
    if spaces < 0:
        raise FunctionError("indent value must be a positive integer")
    prefix = " " * spaces
    out = []
    at_line_start = True
    for char in text:
        if at_line_start and char != "\n":
            out.append(prefix)
        out.append(char)
        at_line_start = char == "\n"
    return "".join(out)


# -- regular expressions ------------------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


def compile_go_regexp(pattern: str) -> re.Pattern[str]:
    """An RE2 pattern as a Python pattern: \\z and [[:class:]] translated; errors in Go's words."""
    translated = pattern.replace("\\z", "\\Z")
    translated = re.sub(
        r"\[:(\^?)([a-z]+):\]",
        lambda match: (
            ("^" if match.group(1) else "") + _POSIX_CLASSES.get(match.group(2), match.group(0))
        ),
        translated,
    )
    try:
        return re.compile(translated)
    except re.error as error:
        raise FunctionError(f"error parsing regexp: {error.msg}") from None


def _go_expand(template: str, match: re.Match[str]) -> str:
    """regexp.Expand: $1, ${1}, $name, ${name} and $$; an unknown group expands to nothing."""
    out = []
    index = 0
    while index < len(template):
        char = template[index]
        if char != "$" or index + 1 >= len(template):
            out.append(char)
            index += 1
            continue
        following = template[index + 1]
        if following == "$":
            out.append("$")
            index += 2
            continue
        if following == "{":
            close = template.find("}", index + 2)
            name = template[index + 2 : close] if close >= 0 else ""
            if close < 0 or not name or not all(c.isalnum() or c == "_" for c in name):
                out.append(char)
                index += 1
                continue
            end = close + 1
        else:
            end = index + 1
            while end < len(template) and (template[end].isalnum() or template[end] == "_"):
                end += 1
            name = template[index + 1 : end]
            if not name:
                out.append(char)
                index += 1
                continue
        out.append(_group_text(match, name))
        index = end
    return "".join(out)


def _group_text(match: re.Match[str], name: str) -> str:
    try:
        group = match.group(int(name)) if name.isdecimal() else match.group(name)
    except IndexError:
        return ""
    return group or ""


def regex_replace_all(pattern: str, replacement: str, text: str) -> str:
    compiled = compile_go_regexp(pattern)
    out = []
    last_end = 0
    previous_match_end = -1
    for match in compiled.finditer(text):
        # Go ignores an empty match right after a previous match; Python keeps it.
        if match.start() == match.end() == previous_match_end:
            continue
        out.append(text[last_end : match.start()])
        out.append(_go_expand(replacement, match))
        last_end = match.end()
        previous_match_end = match.end()
    out.append(text[last_end:])
    return "".join(out)


def _regex_match(pattern: str, text: str) -> bool:
    return compile_go_regexp(pattern).search(text) is not None


# -- membership ---------------------------------------------------------------------------------


def _in(collection: Any, value: Any) -> bool:
    """consul-template's in: list elements of the same Go kind, or a substring of a string."""
    if isinstance(collection, list | tuple):
        for item in collection:
            if isinstance(item, bool) or isinstance(value, bool):
                continue
            if (isinstance(item, int) and isinstance(value, int)) or (
                isinstance(item, float) and isinstance(value, float)
            ):
                if item == value:
                    return True
            elif (
                # Same Go type: a json.Number never equals a string.
                isinstance(item, str) and type(item) is type(value) and item == value
            ):
                return True
        return False
    if isinstance(collection, str) and isinstance(value, str):
        return type(collection) is type(value) and value in collection
    return False


def _contains(value: Any, collection: Any) -> bool:
    return _in(collection, value)


def _contains_some(*, return_when_done: bool, invert: bool) -> Any:
    def check(values: list[Any], collection: Any) -> bool:
        for value in values:
            if _in(collection, value) != invert:
                return not return_when_done
        return return_when_done

    return check


# -- parsing ------------------------------------------------------------------------------------


def _parse_bool(text: str) -> bool:
    if text == "":
        return False
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise FunctionError(f"parseBool: strconv.ParseBool: parsing {REDACTED}: invalid syntax")


def _parse_int(text: str) -> int:
    if text == "":
        return 0
    try:
        return parse_int(text, base=10)
    except LiteralError as error:
        raise FunctionError(f"parseInt: strconv.ParseInt: parsing {REDACTED}: {error}") from None


def _parse_uint(text: str) -> int:
    if text == "":
        return 0
    if text.startswith(("+", "-")):
        raise FunctionError(f"parseUint: strconv.ParseUint: parsing {REDACTED}: invalid syntax")
    try:
        value = parse_int(text, base=10)
    except LiteralError as error:
        reason = "value out of range" if text.isdecimal() else str(error)
        raise FunctionError(f"parseUint: strconv.ParseUint: parsing {REDACTED}: {reason}") from None
    return value


def _parse_float(text: str) -> float:
    if text == "":
        return 0.0
    try:
        return parse_float(text)
    except LiteralError as error:
        raise FunctionError(
            f"parseFloat: strconv.ParseFloat: parsing {REDACTED}: {error}"
        ) from None


def _parse_json(text: str) -> Any:
    if text == "":
        return {}
    return go_json.decode(text)


def _parse_yaml(text: str) -> Any:
    if text == "":
        return {}
    return go_yaml.decode(text)


# -- serialisation ------------------------------------------------------------------------------


def _to_json(value: Any) -> str:
    return go_json.encode(value).strip()


def _to_json_pretty(value: Any) -> str:
    return go_json.encode(value, indent="  ").strip()


def _to_unescaped_json(value: Any) -> str:
    return go_json.encode(value, escape_html=False).rstrip("\r\n")


def _to_unescaped_json_pretty(value: Any) -> str:
    return go_json.encode(value, escape_html=False, indent="  ").rstrip("\r\n")


def _to_yaml(value: Any) -> str:
    return go_yaml.encode(value)


# -- arithmetic ---------------------------------------------------------------------------------


def _number(value: Any, *, name: str) -> int | float:
    """An arithmetic operand: Go ints and floats (json.Number too, which Go refuses)."""
    if isinstance(value, bool):
        raise FunctionError(f"{name}: unknown type for {REDACTED} (bool)")
    if isinstance(value, int | float):
        return value
    if isinstance(value, JsonNumber):
        number = value.as_number()
        if number is not None:
            return number
    raise FunctionError(f"{name}: unknown type for {REDACTED} ({type_name(value)})")


def _operands(right: Any, left: Any, *, name: str) -> tuple[int | float, int | float]:
    # consul-template's arithmetic takes (b, a) so that `{{ a | subtract b }}` is a - b; the
    # left operand is checked first, as in Go.
    left_number = _number(left, name=name)
    right_number = _number(right, name=name)
    if isinstance(left_number, float) or isinstance(right_number, float):
        return float(left_number), float(right_number)
    return left_number, right_number


def _add(right: Any, left: Any) -> int | float:
    a, b = _operands(right, left, name="add")
    return a + b


def _subtract(right: Any, left: Any) -> int | float:
    a, b = _operands(right, left, name="subtract")
    return a - b


def _multiply(right: Any, left: Any) -> int | float:
    a, b = _operands(right, left, name="multiply")
    return a * b


def go_int_divide(left: int, right: int) -> int:
    """Go's integer ``/``: truncates toward zero; dividing by zero is a run-time error."""
    if right == 0:
        raise FunctionError("runtime error: integer divide by zero")
    quotient = abs(left) // abs(right)
    return quotient if (left >= 0) == (right >= 0) else -quotient


def go_int_remainder(left: int, right: int) -> int:
    """Go's integer ``%``: the sign of the dividend; by zero is a run-time error."""
    if right == 0:
        raise FunctionError("runtime error: integer divide by zero")
    remainder = abs(left) % abs(right)
    return remainder if left >= 0 else -remainder


def _divide(right: Any, left: Any) -> int | float:
    a, b = _operands(right, left, name="divide")
    if isinstance(a, int) and isinstance(b, int):
        return go_int_divide(a, b)
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _modulo(right: Any, left: Any) -> int:
    a, b = _operands(right, left, name="modulo")
    if isinstance(a, float) or isinstance(b, float):
        raise FunctionError(f"modulo: unknown type for {REDACTED} (float64)")
    return go_int_remainder(a, b)


def _minimum(right: Any, left: Any) -> int | float:
    a = _number(left, name="minimum")
    b = _number(right, name="minimum")
    return a if a < b else b


def _maximum(right: Any, left: Any) -> int | float:
    a = _number(left, name="maximum")
    b = _number(right, name="maximum")
    return a if a > b else b


def _loop(*bounds: Any) -> list[int]:
    def as_int(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return _parse_int(value)
        raise FunctionError(f"loop: bad argument type: {type_name(value)}")

    if len(bounds) == 1:
        start, stop = 0, as_int(bounds[0])
    elif len(bounds) == 2:
        start, stop = as_int(bounds[0]), as_int(bounds[1])
    else:
        raise FunctionError(
            f"loop: wrong number of arguments, expected 1 or 2, but got {len(bounds)}"
        )
    return list(range(start, stop))


# -- environment, time, files -------------------------------------------------------------------


def _env(context: RenderContext, name: str) -> str:
    return context.environ.get(name, "")


def _must_env(context: RenderContext, name: str) -> str:
    value = context.environ.get(name, "")
    if value == "":
        raise FunctionError(f"required environment variable {name} is empty")
    return value


def _env_or_default(context: RenderContext, name: str, default: str) -> str:
    # A variable that is set wins even when it is empty.
    return context.environ.get(name, default)


def _timestamp(context: RenderContext, *layout: str) -> str:
    now = context.now()
    if len(layout) == 0:
        return go_format(now, RFC3339)
    if len(layout) == 1:
        if layout[0] == "unix":
            return str(int(now.timestamp()))
        return go_format(now, layout[0])
    raise FunctionError(
        f"timestamp: wrong number of arguments, expected 0 or 1, but got {len(layout)}"
    )


def _file(path: str) -> str:
    if path == "":
        return ""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except IsADirectoryError:
        raise FunctionError(f"read {path}: is a directory") from None
    except OSError as error:
        # Go's os.PathError: "open PATH: no such file or directory", "...: not a directory"...
        reason = error.strerror or "input/output error"
        raise FunctionError(f"open {path}: {reason[:1].lower()}{reason[1:]}") from None
    except ValueError:  # a NUL byte in the path, which the system call refuses
        raise FunctionError(f"open {path}: invalid argument") from None


CONSUL_FUNCTIONS: tuple[Function, ...] = (
    Function(
        "base64Decode", lambda text: _base64_decode(text, name="base64Decode", url_safe=False), (S,)
    ),
    Function("base64Encode", _base64_encode, (S,)),
    Function(
        "base64URLDecode",
        lambda text: _base64_decode(text, name="base64URLDecode", url_safe=True),
        (S,),
    ),
    Function("base64URLEncode", _base64_url_encode, (S,)),
    Function("sha256Hex", _sha256_hex, (S,)),
    Function("md5sum", _md5sum, (S,)),
    Function("hmacSHA256Hex", _hmac_sha256_hex, (S, S)),
    Function("contains", _contains, (ANY, ANY)),
    Function(
        "containsAll", _contains_some(return_when_done=True, invert=True), (ArgType.ANY_SLICE, ANY)
    ),
    Function(
        "containsAny",
        _contains_some(return_when_done=False, invert=False),
        (ArgType.ANY_SLICE, ANY),
    ),
    Function(
        "containsNone",
        _contains_some(return_when_done=True, invert=False),
        (ArgType.ANY_SLICE, ANY),
    ),
    Function(
        "containsNotAll",
        _contains_some(return_when_done=False, invert=True),
        (ArgType.ANY_SLICE, ANY),
    ),
    Function("in", _in, (ANY, ANY)),
    Function("env", _env, (S,), needs_context=True),
    Function("mustEnv", _must_env, (S,), needs_context=True),
    Function("envOrDefault", _env_or_default, (S, S), needs_context=True),
    Function("indent", _indent, (ArgType.INT, S)),
    Function("join", _join, (S, ArgType.STRING_SLICE)),
    Function("split", _split, (S, S)),
    Function("splitToMap", _split_to_map, (S, S, S)),
    Function("trim", _trim, (S, S)),
    Function("trimPrefix", _trim_prefix, (S, S)),
    Function("trimSuffix", _trim_suffix, (S, S)),
    Function("trimSpace", go_trim_space, (S,)),
    Function("replaceAll", _replace_all, (S, S, S)),
    Function("regexReplaceAll", regex_replace_all, (S, S, S)),
    Function("regexMatch", _regex_match, (S, S)),
    Function("toLower", go_lower, (S,)),
    Function("toUpper", go_upper, (S,)),
    Function("toTitle", _to_title, (S,)),
    Function("parseBool", _parse_bool, (S,)),
    Function("parseInt", _parse_int, (S,)),
    Function("parseUint", _parse_uint, (S,)),
    Function("parseFloat", _parse_float, (S,)),
    Function("parseJSON", _parse_json, (S,)),
    Function("parseYAML", _parse_yaml, (S,)),
    Function("toJSON", _to_json, (ANY,)),
    Function("toJSONPretty", _to_json_pretty, (ANY,)),
    Function("toUnescapedJSON", _to_unescaped_json, (ANY,)),
    Function("toUnescapedJSONPretty", _to_unescaped_json_pretty, (ANY,)),
    Function("toYAML", _to_yaml, (ANY,)),
    Function("add", _add, (ANY, ANY)),
    Function("subtract", _subtract, (ANY, ANY)),
    Function("multiply", _multiply, (ANY, ANY)),
    Function("divide", _divide, (ANY, ANY)),
    Function("modulo", _modulo, (ANY, ANY)),
    Function("minimum", _minimum, (ANY, ANY)),
    Function("maximum", _maximum, (ANY, ANY)),
    Function("loop", _loop, (), ANY),
    Function("timestamp", _timestamp, (), S, needs_context=True),
    Function("file", _file, (S,)),
)
