"""Go literal syntax: strconv's ParseInt/ParseUint/ParseFloat (base 0) and Unquote/UnquoteChar.

Template numbers, strings and characters are Go literals; parseInt and friends in
consul-template are strconv calls. Both need Go's rules (``017`` is octal, ``0x1p-2`` is a float,
``'\\x41'`` is a rune) rather than Python's.

Go strings are bytes: ``"\\xff"`` is one byte that is not UTF-8. Python strings are text, so such a
byte becomes the surrogate-escaped character U+DCFF, which ``str.encode("utf-8",
"surrogateescape")`` turns back into the same byte.
"""

from __future__ import annotations

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


class LiteralError(ValueError):
    """Not a valid Go literal; the message is strconv's reason (e.g. ``invalid syntax``)."""


def _digits_value(text: str, base: int) -> int:
    if not text or text.startswith("_") or text.endswith("_") or "__" in text:
        raise LiteralError("invalid syntax")
    try:
        return int(text.replace("_", ""), base)
    except ValueError:
        raise LiteralError("invalid syntax") from None


def _unsigned_base0(text: str) -> int:
    """The magnitude of an unsigned Go integer literal with an optional base prefix."""
    if len(text) > 1 and text[0] == "0":
        prefix = text[1].lower()
        if prefix == "x":
            return _digits_value(text[2:].removeprefix("_"), 16)
        if prefix == "o":
            return _digits_value(text[2:].removeprefix("_"), 8)
        if prefix == "b":
            return _digits_value(text[2:].removeprefix("_"), 2)
        # A leading 0 means octal, as in C.
        return _digits_value(text[1:].removeprefix("_"), 8)
    return _digits_value(text, 10)


def parse_uint(text: str) -> int:
    """strconv.ParseUint(text, 0, 64)."""
    if not text or text[0] in "+-":
        raise LiteralError("invalid syntax")
    value = _unsigned_base0(text)
    if value > _UINT64_MAX:
        raise LiteralError("value out of range")
    return value


def parse_int(text: str, *, base: int = 0) -> int:
    """strconv.ParseInt(text, base, 64) for base 0 (Go syntax) or 10."""
    if not text:
        raise LiteralError("invalid syntax")
    sign = 1
    body = text
    if body[0] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        raise LiteralError("invalid syntax")
    if base == 10:
        if not body.isascii() or not body.isdigit():
            raise LiteralError("invalid syntax")
        magnitude = int(body)
    else:
        magnitude = _unsigned_base0(body)
    value = sign * magnitude
    if value < _INT64_MIN or value > _INT64_MAX:
        raise LiteralError("value out of range")
    return value


def parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64): decimal or hexadecimal, underscores as in Go syntax."""
    body = text
    sign = ""
    if body[:1] in ("+", "-"):
        sign, body = body[0], body[1:]
    lowered = body.lower()
    if lowered in ("inf", "infinity"):
        return float(sign + "inf")
    if lowered == "nan":
        return float("nan")
    if lowered.startswith("0x"):
        if "p" not in lowered:
            raise LiteralError("invalid syntax")
        try:
            return float.fromhex(sign + body.replace("_", ""))
        except (ValueError, OverflowError):
            raise LiteralError("invalid syntax") from None
    if not body or not all(char in "0123456789._eE+-" for char in body):
        raise LiteralError("invalid syntax")
    try:
        value = float(sign + body)
    except ValueError:
        raise LiteralError("invalid syntax") from None
    if value in (float("inf"), float("-inf")):
        raise LiteralError("value out of range")
    return value


_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def _byte_char(value: int) -> str:
    # Bytes >= 0x80 from \x or octal escapes are not text: keep them as surrogate escapes.
    return chr(value) if value < 0x80 else chr(0xDC00 + value)


def unquote_char(text: str, index: int, *, quote_char: str) -> tuple[str, int, bool]:
    """strconv.UnquoteChar at ``text[index]``: (char, next index, is a raw byte)."""
    char = text[index]
    if char == quote_char and quote_char in "'\"":
        raise LiteralError("invalid syntax")
    if char != "\\":
        return char, index + 1, False
    if index + 1 >= len(text):
        raise LiteralError("invalid syntax")
    escape = text[index + 1]
    index += 2
    if escape in _SIMPLE:
        return _SIMPLE[escape], index, False
    if escape in ("x", "u", "U"):
        size = {"x": 2, "u": 4, "U": 8}[escape]
        digits = text[index : index + size]
        if len(digits) < size or not all(char in "0123456789abcdefABCDEF" for char in digits):
            raise LiteralError("invalid syntax")
        value = int(digits, 16)
        index += size
        if escape == "x":
            return _byte_char(value), index, True
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise LiteralError("invalid syntax")
        return chr(value), index, False
    if escape in "01234567":
        digits = text[index - 1 : index + 2]
        if len(digits) < 3 or not all(char in "01234567" for char in digits):
            raise LiteralError("invalid syntax")
        value = int(digits, 8)
        if value > 255:
            raise LiteralError("invalid syntax")
        return _byte_char(value), index + 2, True
    if escape in ("'", '"'):
        if escape != quote_char:
            raise LiteralError("invalid syntax")
        return escape, index, False
    raise LiteralError("invalid syntax")


def unquote(literal: str) -> str:
    """strconv.Unquote of a "double-quoted" or `raw` Go string literal."""
    if len(literal) < 2 or literal[0] != literal[-1]:
        raise LiteralError("invalid syntax")
    quote_char = literal[0]
    body = literal[1:-1]
    if quote_char == "`":
        if "`" in body:
            raise LiteralError("invalid syntax")
        # Go drops carriage returns from raw strings.
        return body.replace("\r", "")
    if quote_char != '"':
        raise LiteralError("invalid syntax")
    if "\\" not in body and '"' not in body and "\n" not in body:
        return body
    out = []
    index = 0
    while index < len(body):
        if body[index] == "\n":
            raise LiteralError("invalid syntax")
        char, index, _raw = unquote_char(body, index, quote_char='"')
        out.append(char)
    return "".join(out)


def char_constant_value(literal: str) -> int:
    """The rune value of a 'c' character constant (NumberNode from itemCharConstant)."""
    char, index, is_byte = unquote_char(literal, 1, quote_char="'")
    if literal[index:] != "'":
        raise LiteralError(f"malformed character constant: {literal}")
    if is_byte:
        code = ord(char)
        return code - 0xDC00 if code >= 0xDC00 else code
    return ord(char)
