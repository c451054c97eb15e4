"""YAML as consul-template's toYAML and parseYAML see it (gopkg.in/yaml.v2 2.4).

Writing follows yaml.v2's choices, emitted by PyYAML's port of the same libyaml emitter: keys in
yaml.v2's natural order (``a2`` before ``a10``, non-letters first), block style, strings plain
when they read back as strings, double-quoted when they would read back as something else
(``"true"``, ``"1.5"``, ``""``), literal blocks for multi-line text, floats in Go's ``%g`` form.
Reading follows yaml.v2 into ``interface{}``: YAML 1.1 booleans, timestamps left as strings.

PyYAML is imported only when a template uses these functions: most agents never need it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache, cmp_to_key
from types import ModuleType
from typing import Any

from agent.templates.errors import FunctionError
from agent.templates.gofmt import format_float
from agent.templates.literals import LiteralError, parse_int, parse_uint
from agent.templates.values import MISSING, JsonNumber, NilPointer, struct_view

_STR_TAG = "tag:yaml.org,2002:str"
_BOOL_WORDS = frozenset(
    [
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "on",
        "On",
        "ON",
        "true",
        "True",
        "TRUE",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "off",
        "Off",
        "OFF",
        "false",
        "False",
        "FALSE",
    ]
)
_NULL_WORDS = frozenset(["~", "null", "Null", "NULL", ""])
_SPECIAL_FLOATS = frozenset(
    [
        ".inf",
        ".Inf",
        ".INF",
        "+.inf",
        "+.Inf",
        "+.INF",
        "-.inf",
        "-.Inf",
        "-.INF",
        ".nan",
        ".NaN",
        ".NAN",
    ]
)
_YAML_STYLE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_BASE60_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?$"
)


def _resolves_to_non_string(text: str) -> bool:
    """Whether yaml.v2 would read plain ``text`` back as something other than a string."""
    if text in _BOOL_WORDS or text in _NULL_WORDS or text in _SPECIAL_FLOATS or text == "<<":
        return True
    if _BASE60_FLOAT.match(text) or _TIMESTAMP.match(text):
        return True
    if text[0] in "0123456789+-.":
        plain = text.replace("_", "")
        for parse in (parse_int, parse_uint):
            try:
                parse(plain)
            except LiteralError:
                continue
            return True
        if _YAML_STYLE_FLOAT.match(plain):
            return True
        if plain.startswith(("0b", "-0b")):
            return True
    return False


def _float_text(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return format_float(value, "g")


def _natural_less(first: str, second: str) -> bool:
    """yaml.v2's keyList.Less for two strings: digit runs compare as numbers."""
    a, b = list(first), list(second)
    for index in range(min(len(a), len(b))):
        if a[index] == b[index]:
            continue
        a_letter, b_letter = a[index].isalpha(), b[index].isalpha()
        if a_letter and b_letter:
            return a[index] < b[index]
        if a_letter or b_letter:
            return b_letter
        a_number = b_number = 0
        if a[index] == "0" or b[index] == "0":
            back = index - 1
            while back >= 0 and a[back].isdecimal():
                if a[back] != "0":
                    a_number = b_number = 1
                    break
                back -= 1
        a_end = index
        while a_end < len(a) and a[a_end].isdecimal():
            a_number = a_number * 10 + int(a[a_end])
            a_end += 1
        b_end = index
        while b_end < len(b) and b[b_end].isdecimal():
            b_number = b_number * 10 + int(b[b_end])
            b_end += 1
        if a_number != b_number:
            return a_number < b_number
        if a_end != b_end:
            return a_end < b_end
        return a[index] < b[index]
    return len(a) < len(b)


def _compare_keys(first: Any, second: Any) -> int:
    if isinstance(first, str) and isinstance(second, str):
        if _natural_less(first, second):
            return -1
        if _natural_less(second, first):
            return 1
        return 0
    if isinstance(first, str) != isinstance(second, str):
        # yaml.v2 orders by reflect.Kind: numbers and bools before strings.
        return 1 if isinstance(first, str) else -1
    try:
        return -1 if first < second else (1 if second < first else 0)
    except TypeError:
        return 0


def _yaml() -> ModuleType:
    # Imported on first use: most agents never render YAML and should not carry PyYAML.
    import yaml  # noqa: PLC0415

    return yaml


def _scalar(text: str, style: str | None = None) -> Any:
    return _yaml().ScalarNode(_STR_TAG, text, style=style)


def _node(value: Any) -> Any:
    yaml = _yaml()
    if value is None or value is MISSING or isinstance(value, NilPointer):
        return _scalar("null")
    if isinstance(value, bool):
        return _scalar("true" if value else "false")
    if isinstance(value, int):
        return _scalar(str(value))
    if isinstance(value, float):
        return _scalar(_float_text(value))
    if isinstance(value, JsonNumber):
        number = value.as_number()
        if isinstance(number, int) and -(2**63) <= number < 2**63:
            return _scalar(str(number))
        if number is not None:
            return _scalar(_float_text(float(number)))
        return _string_node(str(value))
    if isinstance(value, str):
        return _string_node(value)
    if isinstance(value, Mapping):
        keys = sorted(value.keys(), key=cmp_to_key(_compare_keys))
        pairs = [(_node(key), _node(value[key])) for key in keys]
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs, flow_style=not pairs)
    if isinstance(value, list | tuple):
        items = [_node(item) for item in value]
        return yaml.SequenceNode("tag:yaml.org,2002:seq", items, flow_style=not items)
    view = struct_view(value)
    if view is not None:
        # yaml.v2 names struct fields in lower case, in declaration order.
        pairs = [(_scalar(name.lower()), _node(getter(value))) for name, getter in view.fields]
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs, flow_style=False)
    raise FunctionError(f"cannot marshal type: {type(value).__name__}")


def _string_node(text: str) -> Any:
    if "\n" in text:
        return _scalar(text, "|")
    if _resolves_to_non_string(text):
        return _scalar(text, '"')
    return _scalar(text)


@cache
def _dumper() -> type:
    # No implicit resolvers: every scalar is written as the string it is, in the style chosen
    # here, never quoted again by PyYAML because it reads as a number.
    return type("GoYamlDumper", (_yaml().SafeDumper,), {"yaml_implicit_resolvers": {}})


@cache
def _loader() -> type:
    # yaml.v2 keeps timestamp-looking values as strings when decoding into interface{}.
    safe_loader = _yaml().SafeLoader
    resolvers = {
        first: [(tag, regexp) for tag, regexp in rules if not tag.endswith(":timestamp")]
        for first, rules in safe_loader.yaml_implicit_resolvers.items()
    }
    return type("GoYamlLoader", (safe_loader,), {"yaml_implicit_resolvers": resolvers})


def encode(value: Any) -> str:
    """yaml.Marshal(value), without the trailing newline (toYAML trims it)."""
    yaml = _yaml()
    text: str = yaml.serialize(_node(value), Dumper=_dumper(), allow_unicode=True)
    if text.endswith("\n...\n"):
        text = text[: -len("...\n")]
    return text.strip()


def decode(text: str) -> Any:
    """yaml.Unmarshal into interface{}."""
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise FunctionError(f"yaml: invalid YAML{where}") from None
