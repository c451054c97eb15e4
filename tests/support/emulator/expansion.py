"""Kubernetes ``$(VAR)`` expansion, as the kubelet applies it to env values, command and args.

A port of ``third_party/forked/golang/expansion``: ``$(NAME)`` becomes the variable's value when it
is defined and stays as written when it is not; ``$$`` is an escaped ``$``; any other ``$`` is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


def expand(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with every ``$(NAME)`` whose NAME is in ``variables`` replaced by its value."""
    pieces: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == _OPERATOR and cursor + 1 < len(text):
            pieces.append(text[checkpoint:cursor])
            read, is_variable, advance = _read_variable_name(text[cursor + 1 :])
            if is_variable:
                pieces.append(variables.get(read, f"{_OPERATOR}{_OPENER}{read}{_CLOSER}"))
            else:
                pieces.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(pieces) + text[checkpoint:]


def _read_variable_name(rest: str) -> tuple[str, bool, int]:
    """(text read, whether it is a variable name, characters consumed after the operator)."""
    first = rest[0]
    if first == _OPERATOR:
        return first, False, 1
    if first == _OPENER:
        closing = rest.find(_CLOSER, 1)
        if closing != -1:
            return rest[1:closing], True, closing + 1
        return _OPERATOR + _OPENER, False, 1
    return _OPERATOR + first, False, 1
