"""Lexer for Go templates, a port of text/template/parse/lex.go.

It follows Go's state machine closely because the details are visible to users: where ``{{-`` and
``-}}`` trim, which line an error names, and the exact wording of lexical errors. Positions are
indexes into the Python string; error columns are converted to bytes where they are reported.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from agent.templates.gofmt import is_print, quote


class ItemType(enum.IntEnum):
    ERROR = 0
    BOOL = enum.auto()
    CHAR = enum.auto()
    CHAR_CONSTANT = enum.auto()
    COMMENT = enum.auto()
    COMPLEX = enum.auto()
    ASSIGN = enum.auto()
    DECLARE = enum.auto()
    EOF = enum.auto()
    FIELD = enum.auto()
    IDENTIFIER = enum.auto()
    LEFT_DELIM = enum.auto()
    LEFT_PAREN = enum.auto()
    NUMBER = enum.auto()
    PIPE = enum.auto()
    RAW_STRING = enum.auto()
    RIGHT_DELIM = enum.auto()
    RIGHT_PAREN = enum.auto()
    SPACE = enum.auto()
    STRING = enum.auto()
    TEXT = enum.auto()
    VARIABLE = enum.auto()
    # Keywords come after everything else, as in Go: item.String() shows them as <word>.
    KEYWORD = enum.auto()
    BLOCK = enum.auto()
    BREAK = enum.auto()
    CONTINUE = enum.auto()
    DOT = enum.auto()
    DEFINE = enum.auto()
    ELSE = enum.auto()
    END = enum.auto()
    IF = enum.auto()
    NIL = enum.auto()
    RANGE = enum.auto()
    TEMPLATE = enum.auto()
    WITH = enum.auto()


KEYWORDS = {
    ".": ItemType.DOT,
    "block": ItemType.BLOCK,
    "break": ItemType.BREAK,
    "continue": ItemType.CONTINUE,
    "define": ItemType.DEFINE,
    "else": ItemType.ELSE,
    "end": ItemType.END,
    "if": ItemType.IF,
    "range": ItemType.RANGE,
    "nil": ItemType.NIL,
    "template": ItemType.TEMPLATE,
    "with": ItemType.WITH,
}

_SPACE_CHARS = " \t\r\n"
_TRIM_MARKER_LEN = 2  # "-" plus the space before or after it
_LEFT_COMMENT = "/*"
_RIGHT_COMMENT = "*/"
_EOF = ""


@dataclass(frozen=True, slots=True)
class Item:
    typ: ItemType
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == ItemType.EOF:
            return "EOF"
        if self.typ == ItemType.ERROR:
            return self.val
        if self.typ > ItemType.KEYWORD:
            return f"<{self.val}>"
        if len(self.val.encode("utf-8")) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def format_rune_hash_u(char: str) -> str:
    """Go's %#U: ``U+0021 '!'``."""
    code = ord(char)
    text = f"U+{code:04X}"
    if is_print(char):
        text += f" '{char}'"
    return text


def is_space(char: str) -> bool:
    return char != _EOF and char in _SPACE_CHARS


def is_alphanumeric(char: str) -> bool:
    return char == "_" or char.isalpha() or char.isdecimal()


def _has_left_trim_marker(text: str, pos: int) -> bool:
    return len(text) - pos >= 2 and text[pos] == "-" and text[pos + 1] in _SPACE_CHARS


def _has_right_trim_marker(text: str, pos: int) -> bool:
    return len(text) - pos >= 2 and text[pos] in _SPACE_CHARS and text[pos + 1] == "-"


_State = Callable[["Lexer"], "_StateResult"]
_StateResult = _State | None


class Lexer:
    """Scans the whole input into items up to EOF or the first error."""

    def __init__(
        self, text: str, *, left_delimiter: str = "{{", right_delimiter: str = "}}"
    ) -> None:
        self.input = text
        self.left_delim = left_delimiter or "{{"
        self.right_delim = right_delimiter or "}}"
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.line = 1
        self.start_line = 1
        self.items: list[Item] = []

    def run(self) -> list[Item]:
        state: _StateResult = _lex_text
        while state is not None:
            state = state(self)
        return self.items

    # -- primitives, as in Go ---------------------------------------------------------------

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.at_eof = True
            return _EOF
        char = self.input[self.pos]
        self.pos += 1
        if char == "\n":
            self.line += 1
        return char

    def peek(self) -> str:
        char = self.next()
        self.backup()
        return char

    def backup(self) -> None:
        if not self.at_eof and self.pos > 0:
            self.pos -= 1
            if self.input[self.pos] == "\n":
                self.line -= 1

    def emit(self, typ: ItemType) -> None:
        self.items.append(Item(typ, self.start, self.input[self.start : self.pos], self.start_line))
        self.start = self.pos
        self.start_line = self.line

    def ignore(self) -> None:
        self.line += self.input.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def accept(self, valid: str) -> bool:
        char = self.next()
        if char != _EOF and char in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            char = self.next()
            if char == _EOF or char not in valid:
                break
        self.backup()

    def errorf(self, message: str) -> None:
        self.items.append(Item(ItemType.ERROR, self.start, message, self.start_line))

    def at_right_delim(self) -> tuple[bool, bool]:
        """(at a right delimiter, with a trim marker before it)."""
        if _has_right_trim_marker(self.input, self.pos) and self.input.startswith(
            self.right_delim, self.pos + _TRIM_MARKER_LEN
        ):
            return True, True
        if self.input.startswith(self.right_delim, self.pos):
            return True, False
        return False, False

    def at_terminator(self) -> bool:
        char = self.peek()
        if is_space(char):
            return True
        if char in (_EOF, ".", ",", "|", ":", ")", "("):
            return True
        return self.input.startswith(self.right_delim, self.pos)


# -- states ------------------------------------------------------------------------------------


def _lex_text(lexer: Lexer) -> _StateResult:
    found = lexer.input.find(lexer.left_delim, lexer.pos)
    if found >= 0:
        delim_length = len(lexer.left_delim)
        lexer.pos = found
        trim_length = 0
        if _has_left_trim_marker(lexer.input, lexer.pos + delim_length):
            preceding = lexer.input[lexer.start : lexer.pos]
            trim_length = len(preceding) - len(preceding.rstrip(_SPACE_CHARS))
        lexer.pos -= trim_length
        if lexer.pos > lexer.start:
            lexer.line += lexer.input.count("\n", lexer.start, lexer.pos)
            lexer.emit(ItemType.TEXT)
        lexer.pos += trim_length
        lexer.ignore()
        return _lex_left_delim
    lexer.pos = len(lexer.input)
    if lexer.pos > lexer.start:
        lexer.line += lexer.input.count("\n", lexer.start, lexer.pos)
        lexer.emit(ItemType.TEXT)
    lexer.emit(ItemType.EOF)
    return None


def _lex_left_delim(lexer: Lexer) -> _StateResult:
    lexer.pos += len(lexer.left_delim)
    trim_space = _has_left_trim_marker(lexer.input, lexer.pos)
    after_marker = _TRIM_MARKER_LEN if trim_space else 0
    if lexer.input.startswith(_LEFT_COMMENT, lexer.pos + after_marker):
        lexer.pos += after_marker
        lexer.ignore()
        return _lex_comment
    lexer.emit(ItemType.LEFT_DELIM)
    lexer.pos += after_marker
    lexer.ignore()
    lexer.paren_depth = 0
    return _lex_inside_action


def _lex_comment(lexer: Lexer) -> _StateResult:
    lexer.pos += len(_LEFT_COMMENT)
    found = lexer.input.find(_RIGHT_COMMENT, lexer.pos)
    if found < 0:
        lexer.errorf("unclosed comment")
        return None
    lexer.pos = found + len(_RIGHT_COMMENT)
    delim, trim_space = lexer.at_right_delim()
    if not delim:
        lexer.errorf("comment ends before closing delimiter")
        return None
    if trim_space:
        lexer.pos += _TRIM_MARKER_LEN
    lexer.pos += len(lexer.right_delim)
    if trim_space:
        following = lexer.input[lexer.pos :]
        lexer.pos += len(following) - len(following.lstrip(_SPACE_CHARS))
    lexer.ignore()
    return _lex_text


def _lex_right_delim(lexer: Lexer) -> _StateResult:
    trim_space = _has_right_trim_marker(lexer.input, lexer.pos)
    if trim_space:
        lexer.pos += _TRIM_MARKER_LEN
        lexer.ignore()
    lexer.pos += len(lexer.right_delim)
    lexer.emit(ItemType.RIGHT_DELIM)
    if trim_space:
        following = lexer.input[lexer.pos :]
        lexer.pos += len(following) - len(following.lstrip(_SPACE_CHARS))
        lexer.ignore()
    return _lex_text


def _lex_inside_action(lexer: Lexer) -> _StateResult:
    delim, _trim = lexer.at_right_delim()
    if delim:
        if lexer.paren_depth == 0:
            return _lex_right_delim
        lexer.errorf("unclosed left paren")
        return None
    char = lexer.next()
    if char == _EOF:
        lexer.errorf("unclosed action")
        return None
    if is_space(char):
        lexer.backup()  # Put the space back in case it starts " -}}".
        return _lex_space
    if char == "=":
        lexer.emit(ItemType.ASSIGN)
    elif char == ":":
        if lexer.next() != "=":
            lexer.errorf("expected :=")
            return None
        lexer.emit(ItemType.DECLARE)
    elif char == "|":
        lexer.emit(ItemType.PIPE)
    elif char == '"':
        return _lex_quote
    elif char == "`":
        return _lex_raw_quote
    elif char == "$":
        return _lex_variable
    elif char == "'":
        return _lex_char
    elif char == "." and (
        lexer.pos < len(lexer.input) and not ("0" <= lexer.input[lexer.pos] <= "9")
    ):
        return _lex_field
    elif char in ".+-" or "0" <= char <= "9":
        lexer.backup()
        return _lex_number
    elif is_alphanumeric(char):
        lexer.backup()
        return _lex_identifier
    elif char == "(":
        lexer.emit(ItemType.LEFT_PAREN)
        lexer.paren_depth += 1
    elif char == ")":
        lexer.emit(ItemType.RIGHT_PAREN)
        lexer.paren_depth -= 1
        if lexer.paren_depth < 0:
            lexer.errorf(f"unexpected right paren {format_rune_hash_u(char)}")
            return None
    elif ord(char) < 0x80 and char.isprintable():
        lexer.emit(ItemType.CHAR)
    else:
        lexer.errorf(f"unrecognized character in action: {format_rune_hash_u(char)}")
        return None
    return _lex_inside_action


def _lex_space(lexer: Lexer) -> _StateResult:
    num_spaces = 0
    while is_space(lexer.peek()):
        lexer.next()
        num_spaces += 1
    # A trim-marked right delimiter starts with a space: leave it for lexRightDelim.
    if _has_right_trim_marker(lexer.input, lexer.pos - 1) and lexer.input.startswith(
        lexer.right_delim, lexer.pos - 1 + _TRIM_MARKER_LEN
    ):
        lexer.backup()
        if num_spaces == 1:
            return _lex_right_delim
    lexer.emit(ItemType.SPACE)
    return _lex_inside_action


def _lex_identifier(lexer: Lexer) -> _StateResult:
    while True:
        char = lexer.next()
        if is_alphanumeric(char):
            continue
        lexer.backup()
        word = lexer.input[lexer.start : lexer.pos]
        if not lexer.at_terminator():
            lexer.errorf(f"bad character {format_rune_hash_u(char)}")
            return None
        keyword = KEYWORDS.get(word)
        if keyword is not None and keyword > ItemType.KEYWORD:
            lexer.emit(keyword)
        elif word[0] == ".":
            lexer.emit(ItemType.FIELD)
        elif word in ("true", "false"):
            lexer.emit(ItemType.BOOL)
        else:
            lexer.emit(ItemType.IDENTIFIER)
        return _lex_inside_action


def _lex_field(lexer: Lexer) -> _StateResult:
    return _lex_field_or_variable(lexer, ItemType.FIELD)


def _lex_variable(lexer: Lexer) -> _StateResult:
    if lexer.at_terminator():
        lexer.emit(ItemType.VARIABLE)
        return _lex_inside_action
    return _lex_field_or_variable(lexer, ItemType.VARIABLE)


def _lex_field_or_variable(lexer: Lexer, typ: ItemType) -> _StateResult:
    if lexer.at_terminator():
        lexer.emit(ItemType.VARIABLE if typ == ItemType.VARIABLE else ItemType.DOT)
        return _lex_inside_action
    while True:
        char = lexer.next()
        if not is_alphanumeric(char):
            lexer.backup()
            break
    if not lexer.at_terminator():
        lexer.errorf(f"bad character {format_rune_hash_u(char)}")
        return None
    lexer.emit(typ)
    return _lex_inside_action


def _lex_char(lexer: Lexer) -> _StateResult:
    return _lex_escaped(
        lexer, closing="'", item=ItemType.CHAR_CONSTANT, error="unterminated character constant"
    )


def _lex_escaped(lexer: Lexer, *, closing: str, item: ItemType, error: str) -> _StateResult:
    """A quoted string or character with backslash escapes; the opening quote is consumed."""
    while True:
        char = lexer.next()
        if char == "\\":
            following = lexer.next()
            if following not in (_EOF, "\n"):
                continue
            lexer.errorf(error)
            return None
        if char in (_EOF, "\n"):
            lexer.errorf(error)
            return None
        if char == closing:
            break
    lexer.emit(item)
    return _lex_inside_action


def _lex_number(lexer: Lexer) -> _StateResult:
    if not _scan_number(lexer):
        lexer.errorf(f"bad number syntax: {quote(lexer.input[lexer.start : lexer.pos])}")
        return None
    sign = lexer.peek()
    if sign in ("+", "-") and sign != _EOF:
        # A complex number such as 1+2i: no spaces, ends in 'i'.
        if not _scan_number(lexer) or lexer.input[lexer.pos - 1] != "i":
            lexer.errorf(f"bad number syntax: {quote(lexer.input[lexer.start : lexer.pos])}")
            return None
        lexer.emit(ItemType.COMPLEX)
    else:
        lexer.emit(ItemType.NUMBER)
    return _lex_inside_action


def _scan_number(lexer: Lexer) -> bool:
    lexer.accept("+-")
    digits = "0123456789_"
    if lexer.accept("0"):
        if lexer.accept("xX"):
            digits = "0123456789abcdefABCDEF_"
        elif lexer.accept("oO"):
            digits = "01234567_"
        elif lexer.accept("bB"):
            digits = "01_"
    lexer.accept_run(digits)
    if lexer.accept("."):
        lexer.accept_run(digits)
    if len(digits) == 10 + 1 and lexer.accept("eE"):
        lexer.accept("+-")
        lexer.accept_run("0123456789_")
    if len(digits) == 16 + 6 + 1 and lexer.accept("pP"):
        lexer.accept("+-")
        lexer.accept_run("0123456789_")
    lexer.accept("i")
    if is_alphanumeric(lexer.peek()):
        lexer.next()
        return False
    return True


def _lex_quote(lexer: Lexer) -> _StateResult:
    return _lex_escaped(
        lexer, closing='"', item=ItemType.STRING, error="unterminated quoted string"
    )


def _lex_raw_quote(lexer: Lexer) -> _StateResult:
    while True:
        char = lexer.next()
        if char == _EOF:
            lexer.errorf("unterminated raw quoted string")
            return None
        if char == "`":
            break
    lexer.emit(ItemType.RAW_STRING)
    return _lex_inside_action


def lex(text: str, *, left_delimiter: str = "{{", right_delimiter: str = "}}") -> list[Item]:
    return Lexer(text, left_delimiter=left_delimiter, right_delimiter=right_delimiter).run()
