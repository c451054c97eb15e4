"""Go's fmt printing (Sprint, Sprintln, Sprintf) and strconv's float and quote formatting.

Templates print every value through Go's ``%v``, so output must match it byte for byte: maps as
``map[a:1 b:2]`` in sorted key order, lists as ``[a b]``, nil as ``<nil>``, floats in Go's shortest
``%g`` form (``1e+06``, ``0.0001``), ``+Inf``, ``NaN``. The printer follows fmt/print.go and
fmt/format.go, including its in-band errors such as ``%!d(string=x)``, ``%!s(MISSING)`` and
``%!(EXTRA int=1)``.

A ``json.Number`` is a string to fmt, as in Go: ``printf "%d"`` of one prints
``%!d(json.Number=5)``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

from agent.templates.values import (
    MISSING,
    NilPointer,
    sorted_map_items,
    struct_view,
    type_name,
)

_LOWER_DIGITS = "0123456789abcdefx"
_UPPER_DIGITS = "0123456789ABCDEFX"


# ---------------------------------------------------------------------------------------------
# strconv


def quote(text: str, *, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII): a double-quoted Go string literal."""
    out = ['"']
    for char in text:
        out.append(_escape_rune(char, '"', ascii_only=ascii_only))
    out.append('"')
    return "".join(out)


def quote_rune(code: int, *, ascii_only: bool = False) -> str:
    """strconv.QuoteRune: a single-quoted Go character literal."""
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code < 0:
        code = 0xFFFD
    return "'" + _escape_rune(chr(code), "'", ascii_only=ascii_only) + "'"


def is_print(char: str) -> bool:
    """strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return char == " " or (char.isprintable() and char != "\u00a0" and not char.isspace())


def _escape_rune(char: str, quote_char: str, *, ascii_only: bool) -> str:
    if char in (quote_char, "\\"):
        return "\\" + char
    code = ord(char)
    if ascii_only:
        if code < 0x80 and is_print(char):
            return char
    elif is_print(char):
        return char
    simple = _SIMPLE_ESCAPES.get(char)
    if simple is not None:
        return simple
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _shortest_decimal(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of a finite, non-negative float and the decimal point position.

    ``value == 0.DIGITS * 10**point``; Python's repr and Go's strconv both pick the shortest
    digit string that reads back to the same float.
    """
    if value == 0:
        return "", 0
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    stripped = all_digits.lstrip("0")
    leading_zeros = len(all_digits) - len(stripped)
    point = len(whole) - leading_zeros + (int(exponent) if exponent else 0)
    return stripped.rstrip("0"), point


def _float_parts(value: float) -> tuple[bool, int, int]:
    """(negative, mantissa with its implicit bit, unbiased exponent) of a float64."""
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    negative = bool(bits >> 63)
    biased = (bits >> 52) & 0x7FF
    mantissa = bits & ((1 << 52) - 1)
    if biased == 0:
        biased = 1  # A subnormal number.
    else:
        mantissa |= 1 << 52
    return negative, mantissa, biased - 1023


def _format_binary_float(value: float) -> str:
    """strconv's 'b' format: decimal mantissa and binary exponent, -ddddp±ddd."""
    negative, mantissa, exponent = _float_parts(value)
    exponent -= 52
    sign = "-" if negative else ""
    return f"{sign}{mantissa}p{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def _format_hex_float(value: float, precision: int, *, upper: bool) -> str:
    """strconv's 'x' format, -0x1.yyyyp±dd, ported from fmtX."""
    negative, mantissa, exponent = _float_parts(value)
    if mantissa == 0:
        exponent = 0
    mantissa <<= 60 - 52
    while mantissa != 0 and mantissa & (1 << 60) == 0:
        mantissa <<= 1
        exponent -= 1
    mask = (1 << 64) - 1
    if 0 <= precision < 15:
        shift = precision * 4
        extra = (mantissa << shift) & ((1 << 60) - 1)
        mantissa >>= 60 - shift
        if extra | (mantissa & 1) > 1 << 59:
            mantissa += 1
        mantissa = (mantissa << (60 - shift)) & mask
        if mantissa & (1 << 61):
            mantissa >>= 1
            exponent += 1
    digits = _UPPER_DIGITS if upper else _LOWER_DIGITS
    out = ["-" if negative else "", "0", "X" if upper else "x", str((mantissa >> 60) & 1)]
    mantissa = (mantissa << 4) & mask
    if precision < 0 and mantissa != 0:
        out.append(".")
        while mantissa != 0:
            out.append(digits[(mantissa >> 60) & 15])
            mantissa = (mantissa << 4) & mask
    elif precision > 0:
        out.append(".")
        for _ in range(precision):
            out.append(digits[(mantissa >> 60) & 15])
            mantissa = (mantissa << 4) & mask
    out.append("P" if upper else "p")
    out.append("-" if exponent < 0 else "+")
    out.append(f"{abs(exponent):02d}")
    return "".join(out)


def _format_e(digits: str, point: int, *, precision: int, exp_char: str) -> str:
    first = digits[0] if digits else "0"
    rest = digits[1 : 1 + precision].ljust(precision, "0")
    exponent = point - 1 if digits else 0
    sign = "-" if exponent < 0 else "+"
    magnitude = abs(exponent)
    exp_text = f"{magnitude:02d}"
    mantissa = first + ("." + rest if precision > 0 else "")
    return f"{mantissa}{exp_char}{sign}{exp_text}"


def _format_f(digits: str, point: int, *, precision: int) -> str:
    whole = digits[:point].ljust(point, "0") if point > 0 else "0"
    if precision <= 0:
        return whole
    fraction = []
    for index in range(precision):
        position = point + index
        fraction.append(digits[position] if 0 <= position < len(digits) else "0")
    return whole + "." + "".join(fraction)


def format_float(value: float, fmt: str, *, precision: int = -1) -> str:
    """strconv.FormatFloat(value, fmt, precision, 64) for fmt in e E f g G (-1: shortest)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    negative = math.copysign(1.0, value) < 0
    sign = "-" if negative else ""
    magnitude = abs(value)
    if fmt in "xX":
        return _format_hex_float(value, precision, upper=fmt == "X")
    if fmt == "b":
        return _format_binary_float(value)
    if precision >= 0:
        if fmt in "gG" and precision == 0:
            precision = 1
        # Python and Go agree on e, f and g with a precision, down to two-digit exponents.
        return sign + format(magnitude, f".{precision}{fmt}")
    digits, point = _shortest_decimal(magnitude)
    if fmt in "eE":
        return sign + _format_e(digits, point, precision=max(len(digits) - 1, 0), exp_char=fmt)
    if fmt == "f":
        return sign + _format_f(digits, point, precision=max(len(digits) - point, 0))
    exponent = point - 1 if digits else 0
    # Shortest %g uses the exponent form from 1e+06 up and below 1e-04, as strconv decides.
    if exponent < -4 or exponent >= 6:
        exp_char = "e" if fmt == "g" else "E"
        return sign + _format_e(digits, point, precision=max(len(digits) - 1, 0), exp_char=exp_char)
    return sign + _format_f(digits, point, precision=max(len(digits) - point, 0))


# ---------------------------------------------------------------------------------------------
# fmt


class _Flags:
    __slots__ = (
        "minus",
        "plus",
        "plus_v",
        "prec",
        "prec_present",
        "sharp",
        "sharp_v",
        "space",
        "wid",
        "wid_present",
        "zero",
    )

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.wid_present = False
        self.prec_present = False
        self.minus = False
        self.plus = False
        self.sharp = False
        self.space = False
        self.zero = False
        self.plus_v = False
        self.sharp_v = False
        self.wid = 0
        self.prec = 0


class _Printer:
    """One fmt.pp: a buffer and the flags of the verb being printed."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.flags = _Flags()
        self.erroring = False
        # Templates print the struct a pointer points to (text/template's printableValue).
        self.dereference_top = False

    def text(self) -> str:
        return "".join(self.out)

    # -- padding -------------------------------------------------------------------------

    def _padding(self, count: int) -> None:
        if count > 0:
            self.out.append(("0" if self.flags.zero else " ") * count)

    def pad(self, text: str) -> None:
        flags = self.flags
        if not flags.wid_present or flags.wid == 0:
            self.out.append(text)
            return
        width = flags.wid - len(text)
        if not flags.minus:
            self._padding(width)
            self.out.append(text)
        else:
            self.out.append(text)
            self._padding(width)

    # -- argument dispatch -----------------------------------------------------------------

    def print_arg(self, arg: Any, verb: str) -> None:
        if arg is None or arg is MISSING:
            if verb in ("T", "v"):
                self.pad("<nil>")
            else:
                self.bad_verb(verb, None)
            return
        if verb == "T":
            self.fmt_s(type_name(arg))
            return
        if verb == "p":
            if isinstance(arg, NilPointer):
                self.fmt_nil_pointer(arg, verb)
            else:
                # Addresses of maps, slices and pointers are not stable; nothing prints them.
                self.bad_verb(verb, arg)
            return
        self.print_value(arg, verb, depth=0)

    def print_value(self, value: Any, verb: str, *, depth: int) -> None:
        flags = self.flags
        if value is None or value is MISSING:
            # A nil interface inside a map or slice.
            if flags.sharp_v:
                self.out.append("interface {}(nil)")
            elif verb == "v":
                self.out.append("<nil>")
            else:
                self.bad_verb(verb, None)
            return
        if isinstance(value, bool):
            if verb in ("t", "v"):
                self.pad("true" if value else "false")
            else:
                self.bad_verb(verb, value)
            return
        if isinstance(value, int):
            self.fmt_integer(value, verb, arg=value)
            return
        if isinstance(value, float):
            self.fmt_float(value, verb, arg=value)
            return
        if isinstance(value, complex):
            self.fmt_complex(value, verb)
            return
        if isinstance(value, str):
            self.fmt_string(value, verb, arg=value)
            return
        if isinstance(value, Mapping):
            self.print_map(value, verb, depth=depth)
            return
        if isinstance(value, list | tuple):
            self.print_list(value, verb, depth=depth)
            return
        if isinstance(value, NilPointer):
            self.fmt_nil_pointer(value, verb)
            return
        view = struct_view(value)
        if view is not None:
            if view.is_pointer and not (depth == 0 and self.dereference_top):
                self.out.append("&")
            if flags.sharp_v:
                self.out.append(view.type_name.lstrip("*"))
            self.out.append("{")
            for index, (name, getter) in enumerate(view.fields):
                if index:
                    self.out.append(", " if flags.sharp_v else " ")
                if flags.plus_v or flags.sharp_v:
                    self.out.append(name + ":")
                self.print_value(getter(value), verb, depth=depth + 1)
            self.out.append("}")
            return
        # Functions print as their address in Go; there is no stable equivalent.
        self.pad("0x0")

    def fmt_nil_pointer(self, value: NilPointer, verb: str) -> None:
        """fmt's fmtPointer for a nil pointer: <nil>, or its address 0 for the integer verbs."""
        if verb == "v":
            if self.flags.sharp_v:
                self.out.append(f"({value.type_name})(nil)")
            else:
                self.pad("<nil>")
        elif verb == "p":
            self.pad("0x0")
        elif verb in ("b", "o", "d", "x", "X"):
            self.fmt_integer(0, verb, arg=value)
        else:
            self.bad_verb(verb, value)

    def print_map(self, value: Mapping[Any, Any], verb: str, *, depth: int) -> None:
        sharp_v = self.flags.sharp_v
        self.out.append(type_name(value) + "{" if sharp_v else "map[")
        for index, (key, item) in enumerate(sorted_map_items(value)):
            if index:
                self.out.append(", " if sharp_v else " ")
            self.print_value(key, verb, depth=depth + 1)
            self.out.append(":")
            self.print_value(item, verb, depth=depth + 1)
        self.out.append("}" if sharp_v else "]")

    def print_list(self, value: list[Any] | tuple[Any, ...], verb: str, *, depth: int) -> None:
        if self.flags.sharp_v:
            self.out.append(type_name(value) + "{")
            for index, item in enumerate(value):
                if index:
                    self.out.append(", ")
                self.print_value(item, verb, depth=depth + 1)
            self.out.append("}")
            return
        self.out.append("[")
        for index, item in enumerate(value):
            if index:
                self.out.append(" ")
            self.print_value(item, verb, depth=depth + 1)
        self.out.append("]")

    def bad_verb(self, verb: str, arg: Any) -> None:
        self.erroring = True
        self.out.append("%!" + verb + "(")
        if arg is None or arg is MISSING:
            self.out.append("<nil>")
        else:
            # Go keeps the verb's width and flags for the value inside the error.
            self.out.append(type_name(arg) + "=")
            self.print_arg(arg, "v")
        self.out.append(")")
        self.erroring = False

    # -- kinds ----------------------------------------------------------------------------

    def fmt_string(self, value: str, verb: str, *, arg: Any) -> None:
        if verb == "v":
            if self.flags.sharp_v:
                self.fmt_q(value)
            else:
                self.fmt_s(value)
        elif verb == "s":
            self.fmt_s(value)
        elif verb == "x":
            self.fmt_sx(value, _LOWER_DIGITS)
        elif verb == "X":
            self.fmt_sx(value, _UPPER_DIGITS)
        elif verb == "q":
            self.fmt_q(value)
        else:
            self.bad_verb(verb, arg)

    def truncate(self, value: str) -> str:
        if self.flags.prec_present:
            return value[: self.flags.prec]
        return value

    def fmt_s(self, value: str) -> None:
        self.pad(self.truncate(value))

    def fmt_q(self, value: str) -> None:
        value = self.truncate(value)
        if (
            self.flags.sharp
            and "`" not in value
            and all(char == "\t" or (is_print(char) and char != "\ufeff") for char in value)
        ):
            self.pad("`" + value + "`")
            return
        self.pad(quote(value, ascii_only=self.flags.plus))

    def fmt_sx(self, value: str, digits: str) -> None:
        flags = self.flags
        data = value.encode("utf-8", "surrogateescape")
        length = len(data)
        if flags.prec_present and flags.prec < length:
            length = flags.prec
        width = 2 * length
        if width > 0:
            if flags.space:
                if flags.sharp:
                    width *= 2
                width += length - 1
            elif flags.sharp:
                width += 2
        else:
            if flags.wid_present:
                self._padding(flags.wid)
            return
        if flags.wid_present and flags.wid > width and not flags.minus:
            self._padding(flags.wid - width)
        parts: list[str] = []
        if flags.sharp:
            parts.append("0" + digits[16])
        for index in range(length):
            if flags.space and index > 0:
                parts.append(" ")
                if flags.sharp:
                    parts.append("0" + digits[16])
            byte = data[index]
            parts.append(digits[byte >> 4] + digits[byte & 0xF])
        self.out.append("".join(parts))
        if flags.wid_present and flags.wid > width and flags.minus:
            self._padding(flags.wid - width)

    def fmt_integer(self, value: int, verb: str, *, arg: Any) -> None:
        if verb in ("v", "d"):
            self._integer(value, base=10, verb=verb, digits=_LOWER_DIGITS)
        elif verb == "b":
            self._integer(value, base=2, verb=verb, digits=_LOWER_DIGITS)
        elif verb in ("o", "O"):
            self._integer(value, base=8, verb=verb, digits=_LOWER_DIGITS)
        elif verb == "x":
            self._integer(value, base=16, verb=verb, digits=_LOWER_DIGITS)
        elif verb == "X":
            self._integer(value, base=16, verb=verb, digits=_UPPER_DIGITS)
        elif verb == "c":
            self.pad(_rune_text(value))
        elif verb == "q":
            self.pad(quote_rune(value, ascii_only=self.flags.plus))
        elif verb == "U":
            self._unicode(value)
        else:
            self.bad_verb(verb, arg)

    def _integer(self, value: int, *, base: int, verb: str, digits: str) -> None:
        flags = self.flags
        negative = value < 0
        magnitude = -value if negative else value
        precision = 0
        if flags.prec_present:
            precision = flags.prec
            if precision == 0 and magnitude == 0:
                saved_zero = flags.zero
                flags.zero = False
                self._padding(flags.wid)
                flags.zero = saved_zero
                return
        elif flags.zero and flags.wid_present:
            precision = flags.wid
            if negative or flags.plus or flags.space:
                precision -= 1
        if magnitude == 0:
            body = "0"
        else:
            chars = []
            while magnitude:
                chars.append(digits[magnitude % base])
                magnitude //= base
            body = "".join(reversed(chars))
        if len(body) < precision:
            body = "0" * (precision - len(body)) + body
        if flags.sharp:
            if base == 2:
                body = "0b" + body
            elif base == 8 and not body.startswith("0"):
                body = "0" + body
            elif base == 16:
                body = "0" + digits[16] + body
        if verb == "O":
            body = "0o" + body
        if negative:
            body = "-" + body
        elif flags.plus:
            body = "+" + body
        elif flags.space:
            body = " " + body
        saved_zero = flags.zero
        flags.zero = False
        self.pad(body)
        flags.zero = saved_zero

    def _unicode(self, value: int) -> None:
        flags = self.flags
        precision = flags.prec if flags.prec_present and flags.prec > 4 else 4
        text = "U+" + format(value & 0xFFFFFFFFFFFFFFFF, "X").rjust(precision, "0")
        if flags.sharp and 0 <= value <= 0x10FFFF and is_print(chr(value)):
            text += " '" + chr(value) + "'"
        saved_zero = flags.zero
        flags.zero = False
        self.pad(text)
        flags.zero = saved_zero

    def fmt_float(self, value: float, verb: str, *, arg: Any) -> None:
        if verb == "v":
            self._float(value, verb="g", precision=-1)
        elif verb in ("b", "g", "G", "x", "X"):
            self._float(value, verb=verb, precision=-1)
        elif verb in ("f", "e", "E"):
            self._float(value, verb=verb, precision=6)
        elif verb == "F":
            self._float(value, verb="f", precision=6)
        else:
            self.bad_verb(verb, arg)

    def _float(self, value: float, *, verb: str, precision: int) -> None:
        flags = self.flags
        if flags.prec_present:
            precision = flags.prec
        number = format_float(value, verb, precision=precision)
        signed = number if number[0] in "+-" else "+" + number
        if flags.space and signed[0] == "+" and not flags.plus:
            signed = " " + signed[1:]
        if signed[1:] in ("Inf", "NaN"):
            saved_zero = flags.zero
            flags.zero = False
            if signed[1] == "N" and not flags.space and not flags.plus:
                signed = signed[1:]
            self.pad(signed)
            flags.zero = saved_zero
            return
        if flags.sharp and verb != "b":
            signed = _sharp_float(signed, verb=verb, precision=precision)
        if flags.plus or signed[0] != "+":
            if flags.zero and flags.wid_present and flags.wid > len(signed):
                self.out.append(signed[0])
                self._padding(flags.wid - len(signed))
                self.out.append(signed[1:])
                return
            self.pad(signed)
            return
        self.pad(signed[1:])

    def fmt_complex(self, value: complex, verb: str) -> None:
        if verb not in ("v", "b", "g", "G", "x", "X", "f", "F", "e", "E"):
            self.bad_verb(verb, value)
            return
        saved_plus = self.flags.plus
        self.out.append("(")
        self.fmt_float(value.real, verb, arg=value.real)
        self.flags.plus = True
        self.fmt_float(value.imag, verb, arg=value.imag)
        self.out.append("i)")
        self.flags.plus = saved_plus


def _sharp_float(number: str, *, verb: str, precision: int) -> str:
    """The '#' flag (format.go): keep a decimal point, and for %g/%x the trailing zeros."""
    digits = 0
    if verb in ("g", "G", "x"):
        digits = 6 if precision == -1 else precision
    tail = ""
    has_point = False
    seen_nonzero = False
    index = 1
    while index < len(number):
        char = number[index]
        if char == ".":
            has_point = True
        elif char in "pP" or (char in "eE" and verb not in ("x", "X")):
            number, tail = number[:index], number[index:]
            break
        else:
            # As in Go, the x of a 0x prefix counts as a significant digit.
            if char != "0":
                seen_nonzero = True
            if seen_nonzero:
                digits -= 1
        index += 1
    if not has_point:
        if len(number) == 2 and number[1] == "0":
            digits -= 1
        number += "."
    if digits > 0:
        number += "0" * digits
    return number + tail


def _rune_text(value: int) -> str:
    if value < 0 or value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        return "\ufffd"
    return chr(value)


def sprint(args: list[Any] | tuple[Any, ...], *, dereference: bool = False) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    printer = _Printer()
    printer.dereference_top = dereference
    previous_is_string = False
    for index, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if index > 0 and not is_string and not previous_is_string:
            printer.out.append(" ")
        printer.flags.clear()
        printer.print_arg(arg, "v")
        previous_is_string = is_string
    return printer.text()


def sprintln(args: list[Any] | tuple[Any, ...]) -> str:
    """fmt.Sprintln: spaces between all operands and a newline at the end."""
    printer = _Printer()
    for index, arg in enumerate(args):
        if index > 0:
            printer.out.append(" ")
        printer.flags.clear()
        printer.print_arg(arg, "v")
    printer.out.append("\n")
    return printer.text()


def format_value(value: Any, *, dereference: bool = False) -> str:
    """fmt.Fprint of one value; ``dereference`` prints a pointer's struct as ``{{ . }}`` does."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    printer = _Printer()
    printer.dereference_top = dereference
    printer.print_arg(value, "v")
    return printer.text()


def _parse_number(text: str, start: int) -> tuple[int, bool, int]:
    """fmt's parsenum: digits at ``start`` -> (number, present, next index)."""
    index = start
    while index < len(text) and text[index].isdigit() and text[index] in "0123456789":
        index += 1
    if index == start:
        return 0, False, start
    number = int(text[start:index])
    if number > 1_000_000:
        return 0, False, index
    return number, True, index


class _FormatScan:
    """Where Sprintf is in its format and its arguments (the counters of fmt.doPrintf)."""

    def __init__(self, text: str, args: list[Any] | tuple[Any, ...]) -> None:
        self.text = text
        self.args = args
        self.index = 0
        self.arg_num = 0
        self.reordered = False
        self.good_arg_num = True
        self.after_index = False

    def at(self, char: str) -> bool:
        return self.index < len(self.text) and self.text[self.index] == char

    def arg_number(self) -> None:
        """An explicit argument index such as [2] (fmt's argNumber)."""
        text, index = self.text, self.index
        if not self.at("["):
            self.after_index = False
            return
        self.reordered = True
        close = text.find("]", index + 1) if len(text) - index >= 3 else -1
        if close < 0:
            self.index, self.after_index, self.good_arg_num = index + 1, False, False
            return
        number, present, after = _parse_number(text, index + 1)
        self.index = close + 1
        if not present or after != close:
            self.after_index, self.good_arg_num = False, False
            return
        self.after_index = True
        if 0 <= number - 1 < len(self.args):
            self.arg_num = number - 1
        else:
            self.good_arg_num = False

    def star_argument(self) -> tuple[int, bool]:
        """A width or precision given as * (fmt's intFromArg)."""
        if self.arg_num >= len(self.args):
            return 0, False
        value = self.args[self.arg_num]
        self.arg_num += 1
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 1_000_000:
            return value, True
        return 0, False


def _scan_flags(scan: _FormatScan, flags: _Flags) -> None:
    while scan.index < len(scan.text):
        char = scan.text[scan.index]
        if char == "#":
            flags.sharp = True
        elif char == "0":
            flags.zero = not flags.minus  # Only pad with zeros on the left.
        elif char == "+":
            flags.plus = True
        elif char == "-":
            flags.minus = True
            flags.zero = False
        elif char == " ":
            flags.space = True
        else:
            return
        scan.index += 1


def _scan_width_and_precision(scan: _FormatScan, flags: _Flags, *, out: list[str]) -> None:
    if scan.at("*"):
        scan.index += 1
        flags.wid, flags.wid_present = scan.star_argument()
        if not flags.wid_present:
            out.append("%!(BADWIDTH)")
        if flags.wid < 0:
            flags.wid, flags.minus, flags.zero = -flags.wid, True, False
        scan.after_index = False
    else:
        flags.wid, flags.wid_present, scan.index = _parse_number(scan.text, scan.index)
        if scan.after_index and flags.wid_present:
            scan.good_arg_num = False  # "%[3]2d"
    if scan.index + 1 < len(scan.text) and scan.at("."):
        scan.index += 1
        if scan.after_index:
            scan.good_arg_num = False  # "%[3].2d"
        scan.arg_number()
        if scan.at("*"):
            scan.index += 1
            flags.prec, flags.prec_present = scan.star_argument()
            if flags.prec < 0:
                flags.prec, flags.prec_present = 0, False
            if not flags.prec_present:
                out.append("%!(BADPREC)")
            scan.after_index = False
        else:
            flags.prec, flags.prec_present, scan.index = _parse_number(scan.text, scan.index)
            if not flags.prec_present:
                flags.prec, flags.prec_present = 0, True


def sprintf(format_text: str, args: list[Any] | tuple[Any, ...]) -> str:
    """fmt.Sprintf with Go's verbs, flags, width, precision, ``*`` and ``[n]`` argument indexes."""
    printer = _Printer()
    flags = printer.flags
    out = printer.out
    scan = _FormatScan(format_text, args)
    end = len(format_text)
    while scan.index < end:
        scan.good_arg_num = True
        start = scan.index
        scan.index = format_text.find("%", start)
        if scan.index < 0:
            scan.index = end
        if scan.index > start:
            out.append(format_text[start : scan.index])
        if scan.index >= end:
            break
        scan.index += 1
        flags.clear()
        _scan_flags(scan, flags)
        scan.arg_number()
        _scan_width_and_precision(scan, flags, out=out)
        if not scan.after_index:
            scan.arg_number()
        if scan.index >= end:
            out.append("%!(NOVERB)")
            break
        verb = format_text[scan.index]
        scan.index += 1
        if verb == "%":
            out.append("%")
        elif not scan.good_arg_num:
            out.append("%!" + verb + "(BADINDEX)")
        elif scan.arg_num >= len(args):
            out.append("%!" + verb + "(MISSING)")
        else:
            if verb == "v":
                # %#v is Go syntax and %+v names struct fields; neither is the plain flag.
                flags.sharp_v, flags.sharp = flags.sharp, False
                flags.plus_v, flags.plus = flags.plus, False
            printer.print_arg(args[scan.arg_num], verb)
            scan.arg_num += 1

    if not scan.reordered and scan.arg_num < len(args):
        flags.clear()
        out.append("%!(EXTRA ")
        for position, arg in enumerate(args[scan.arg_num :]):
            if position:
                out.append(", ")
            if arg is None or arg is MISSING:
                out.append("<nil>")
            else:
                out.append(type_name(arg) + "=")
                printer.print_arg(arg, "v")
        out.append(")")
    return printer.text()
