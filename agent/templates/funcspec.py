"""How a template function is declared: Go parameter types, and what a call can reach.

Go checks each argument against the function's parameter type before the call (a number where a
string is wanted is ``wrong type for value; expected string; got int``), and template literals
are converted by that type. Declaring the Go signature lets the executor do the same.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.templates.backend import SecretBackend


class ArgType(enum.Enum):
    """A Go parameter type, named as Go error messages name it."""

    ANY = "interface {}"
    # reflect.Value: the builtins that see missing and nil values as they are.
    VALUE = "reflect.Value"
    STRING = "string"
    INT = "int"
    FLOAT = "float64"
    BOOL = "bool"
    STRING_SLICE = "[]string"
    ANY_SLICE = "[]interface {}"
    MAP = "map[string]interface {}"


@dataclass(frozen=True)
class RenderContext:
    """What functions may use during one render; never shared between renders."""

    backend: SecretBackend
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    now: Callable[[], datetime] = field(default_factory=lambda: _utc_now)
    # One backend call per distinct Vault dependency per render, as consul-template's brain.
    vault_answers: dict[tuple[str, str, tuple[tuple[str, str], ...]], Any] = field(
        default_factory=dict
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Function:
    """A template function with its Go signature.

    ``impl`` receives the arguments positionally, in the Go function's parameter order, already
    checked and converted; with ``needs_context`` it receives the :class:`RenderContext` first.
    It raises ``FunctionError`` for what Go would return as an error.
    """

    name: str
    impl: Callable[..., Any]
    params: tuple[ArgType, ...] = ()
    variadic: ArgType | None = None
    needs_context: bool = False
