"""text/template's builtin functions (funcs.go): and or not len index slice print printf println
eq ne lt le gt ge html js urlquery call.

Arguments declared ``VALUE`` arrive as Go's reflect.Value would: ``MISSING`` for an invalid value,
``None`` for a nil interface, else the value. Errors that Go would word with the value itself are
redacted. One leniency: comparing a ``json.Number`` with a number compares the numbers, where Go
stops with ``incompatible types for comparison``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from agent.templates.errors import REDACTED, FunctionError
from agent.templates.funcspec import ArgType, Function
from agent.templates.gofmt import is_print, sprint, sprintf, sprintln
from agent.templates.values import (
    MISSING,
    GoStringSlice,
    JsonNumber,
    NilPointer,
    is_true,
    pointee_type_name,
    struct_view,
    type_name,
)

_ZERO_VALUE_TYPE = "reflect: call of reflect.Value.Type on zero Value"


def _indirect_interface(value: Any) -> Any:
    return MISSING if value is None else value


def _not(value: Any) -> bool:
    return not is_true(value)


def _len(item: Any) -> int:
    if item is None or isinstance(item, NilPointer):
        raise FunctionError("len of nil pointer")
    if item is MISSING:
        raise FunctionError(_ZERO_VALUE_TYPE)
    if isinstance(item, str):
        # Go strings are bytes.
        return len(item.encode("utf-8", "surrogateescape"))
    if isinstance(item, list | tuple | Mapping):
        return len(item)
    raise FunctionError(f"len of type {pointee_type_name(item)}")


def _index_arg(index: Any, cap: int) -> int:
    if index is MISSING:
        raise FunctionError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FunctionError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise FunctionError(f"index out of range: {index}")
    return index


def _index(item: Any, *indexes: Any) -> Any:
    item = _indirect_interface(item)
    if item is MISSING:
        raise FunctionError("index of untyped nil")
    for raw_index in indexes:
        index = _indirect_interface(raw_index)
        if item is None or isinstance(item, NilPointer):
            raise FunctionError("index of nil pointer")
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogateescape")
            position = _index_arg(index, len(data))
            if position == len(data):
                raise FunctionError("reflect: string index out of range")
            item = data[position]
        elif isinstance(item, list | tuple):
            position = _index_arg(index, len(item))
            if position == len(item):
                raise FunctionError("reflect: slice index out of range")
            item = item[position]
        elif isinstance(item, Mapping):
            if index is MISSING:
                raise FunctionError("value is nil; should be of type string")
            if isinstance(index, JsonNumber) or not isinstance(index, str):
                raise FunctionError(f"value has type {type_name(index)}; should be string")
            # A missing key gives the zero value of the element type: a nil interface.
            item = item.get(index)
        else:
            raise FunctionError(f"can't index item of type {pointee_type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    item = _indirect_interface(item)
    if item is MISSING:
        raise FunctionError("slice of untyped nil")
    if len(indexes) > 3:
        raise FunctionError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FunctionError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogateescape")
        length = len(data)
    elif isinstance(item, list | tuple):
        length = len(item)
    else:
        raise FunctionError(f"can't slice item of type {type_name(item)}")
    bounds = [0, length, 0]
    for position, index in enumerate(indexes):
        bounds[position] = _index_arg(_indirect_interface(index), length)
    if bounds[0] > bounds[1]:
        raise FunctionError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if len(indexes) == 3 and bounds[1] > bounds[2]:
        raise FunctionError(f"invalid slice index: {bounds[1]} > {bounds[2]}")
    if isinstance(item, str):
        return data[bounds[0] : bounds[1]].decode("utf-8", "surrogateescape")
    sliced = item[bounds[0] : bounds[1]]
    return GoStringSlice(sliced) if isinstance(item, GoStringSlice) else list(sliced)


def _call(function: Any, *args: Any) -> Any:
    function = _indirect_interface(function)
    if function is MISSING:
        raise FunctionError("call of nil")
    if not callable(function) or struct_view(function) is not None:
        raise FunctionError(f"non-function of type {type_name(function)}")
    return function(*args)


# -- comparison ---------------------------------------------------------------------------------


def _basic_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, complex):
        return "complex"
    if isinstance(value, str):
        return "string"
    return None


def _numeric_pair(first: Any, second: Any) -> tuple[float | int, float | int] | None:
    """Both as numbers when one is a json.Number and the other a number (the leniency)."""
    if isinstance(first, JsonNumber) and _basic_kind(second) in ("int", "float"):
        number = first.as_number()
        return None if number is None else (number, second)
    if isinstance(second, JsonNumber) and _basic_kind(first) in ("int", "float"):
        number = second.as_number()
        return None if number is None else (first, number)
    return None


def _reflect_kind(value: Any) -> str:
    if value is MISSING:
        return "invalid"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    if isinstance(value, NilPointer):
        return "ptr"
    view = struct_view(value)
    if view is not None:
        return "ptr" if view.is_pointer else "struct"
    return "func"


def _equal(first: Any, second: Any, *, first_kind: str | None) -> bool:
    second_kind = _basic_kind(second)
    if first_kind != second_kind:
        numbers = _numeric_pair(first, second)
        if numbers is not None:
            return numbers[0] == numbers[1]
        if first is not MISSING and second is not MISSING:
            raise FunctionError("incompatible types for comparison")
        return False
    if first_kind is not None:
        if first_kind == "string":
            return str(first) == str(second)
        return bool(first == second)
    first_reflect, second_reflect = _reflect_kind(first), _reflect_kind(second)
    if first_reflect != second_reflect and "invalid" not in (first_reflect, second_reflect):
        raise FunctionError(
            f"non-comparable types {REDACTED}: {type_name(first)}, {type_name(second)}: {REDACTED}"
        )
    first_nil = first is MISSING or isinstance(first, NilPointer)
    second_nil = second is MISSING or isinstance(second, NilPointer)
    if first_nil or second_nil:
        return first_nil == second_nil
    if second_reflect in ("map", "slice", "func"):
        raise FunctionError(f"non-comparable type {REDACTED}: {type_name(second)}")
    if second_reflect == "ptr":
        return first is second
    return bool(first == second)


def _eq(first: Any, *others: Any) -> bool:
    first = _indirect_interface(first)
    if not others:
        raise FunctionError("missing argument for comparison")
    first_kind = _basic_kind(first)
    return any(_equal(first, _indirect_interface(other), first_kind=first_kind) for other in others)


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second)


def _lt(first: Any, second: Any) -> bool:
    first = _indirect_interface(first)
    first_kind = _basic_kind(first)
    if first_kind is None:
        raise FunctionError("invalid type for comparison")
    second = _indirect_interface(second)
    second_kind = _basic_kind(second)
    if second_kind is None:
        raise FunctionError("invalid type for comparison")
    if first_kind != second_kind:
        numbers = _numeric_pair(first, second)
        if numbers is not None:
            return numbers[0] < numbers[1]
        raise FunctionError("incompatible types for comparison")
    if first_kind in ("bool", "complex"):
        raise FunctionError("invalid type for comparison")
    if first_kind == "string":
        return str(first) < str(second)
    return bool(first < second)


def _le(first: Any, second: Any) -> bool:
    return _lt(first, second) or _eq(first, second)


def _gt(first: Any, second: Any) -> bool:
    return not _le(first, second)


def _ge(first: Any, second: Any) -> bool:
    return not _lt(first, second)


# -- escaping -----------------------------------------------------------------------------------


def eval_args(args: tuple[Any, ...]) -> str:
    """text/template's evalArgs: Sprint of the arguments, missing ones as <no value>."""
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    printable = ["<no value>" if arg is None or arg is MISSING else arg for arg in args]
    return sprint(printable, dereference=True)


_HTML_ESCAPES = {
    "\0": "\ufffd",
    '"': "&#34;",
    "'": "&#39;",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
}


def html_escape(text: str) -> str:
    if not any(char in text for char in _HTML_ESCAPES):
        return text
    return "".join(_HTML_ESCAPES.get(char, char) for char in text)


def _html(*args: Any) -> str:
    return html_escape(eval_args(args))


_JS_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def js_escape(text: str) -> str:
    out = []
    for char in text:
        escaped = _JS_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " " or (ord(char) >= 0x80 and not is_print(char)):
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def _js(*args: Any) -> str:
    return js_escape(eval_args(args))


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(eval_args(args).encode("utf-8", "surrogateescape"), safe="")


def _print(*args: Any) -> str:
    return sprint(args)


def _println(*args: Any) -> str:
    return sprintln(args)


def _printf(format_text: str, *args: Any) -> str:
    return sprintf(format_text, args)


def _unreachable(*_args: Any) -> Any:
    # and/or are evaluated by the executor, which short-circuits them.
    raise AssertionError("and/or are special-cased by the executor")


V = ArgType.VALUE

GO_BUILTINS: tuple[Function, ...] = (
    Function("and", _unreachable, (V,), V),
    Function("or", _unreachable, (V,), V),
    Function("not", _not, (V,)),
    Function("len", _len, (V,)),
    Function("index", _index, (V,), V),
    Function("slice", _slice, (V,), V),
    Function("call", _call, (V,), V),
    Function("print", _print, (), ArgType.ANY),
    Function("printf", _printf, (ArgType.STRING,), ArgType.ANY),
    Function("println", _println, (), ArgType.ANY),
    Function("html", _html, (), ArgType.ANY),
    Function("js", _js, (), ArgType.ANY),
    Function("urlquery", _urlquery, (), ArgType.ANY),
    Function("eq", _eq, (V,), V),
    Function("ne", _ne, (V, V)),
    Function("lt", _lt, (V, V)),
    Function("le", _le, (V, V)),
    Function("gt", _gt, (V, V)),
    Function("ge", _ge, (V, V)),
)
