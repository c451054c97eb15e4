"""How Go values look in Python, so the engine can follow Go's rules for each kind.

Plain Python values stand for the Go values a consul-template template sees:

=====================  ==============================  ===============================
Python                 Go                              notes
=====================  ==============================  ===============================
``MISSING``            the invalid ``reflect.Value``   a missing value; prints ``<no value>``
``None``               nil ``interface{}``             JSON null; ``<nil>`` inside a map
``bool``               ``bool``
``int``                ``int``                         literals, ``len``, arithmetic
``float``              ``float64``                     literals like ``1.5``, ``parseFloat``
``str``                ``string``
``JsonNumber``         ``json.Number``                 every number in a Vault response
``dict``/``Mapping``   ``map[string]interface {}``     ranges in sorted key order
``list``/``tuple``     ``[]interface {}``
``GoStringSlice``      ``[]string``                    ``secrets``, ``split``, ``.Warnings``
``Secret``             ``*dependency.Secret``          fields ``.Data``, ``.LeaseID``...
``PemEncoded``         ``dependency.PemEncoded``       what ``pkiCert`` returns
=====================  ==============================  ===============================

Vault's Go client decodes responses with ``UseNumber``, so under Vault Agent a number in a secret
is a ``json.Number``: a string holding the literal text. It prints that text, is true when not
empty (so ``0`` is true!), and compares as a string. :func:`from_vault` turns the agent's ``int``
and ``float`` values into :class:`JsonNumber` so templates behave the same here. An ``int`` gives
its exact text; a ``float`` gives Python's shortest repr, which is the literal for every plain
decimal such as ``1.0``, ``0.25`` or ``3.14`` but not for ``1.50`` or ``1e3`` (the text Vault sent
is gone once decoded; pass a ``JsonNumber`` in ``Secret.data`` to keep it exactly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agent.templates.backend import Secret


class _Missing:
    """The invalid ``reflect.Value``: a value that does not exist (not even nil)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class JsonNumber(str):
    """Go's ``json.Number``: a number kept as its JSON text."""

    __slots__ = ()

    def as_number(self) -> int | float | None:
        """The numeric value, or None when the text is not a number."""
        try:
            return int(self)
        except ValueError:
            pass
        try:
            return float(self)
        except ValueError:
            return None


class GoStringSlice(list[str]):
    """A Go ``[]string`` (as opposed to ``[]interface {}``); only its type name differs."""

    __slots__ = ()


class NilStringSlice(GoStringSlice):
    """A nil ``[]string``: empty, but JSON ``null`` (a Secret's Warnings when Vault sent none)."""

    __slots__ = ()


@dataclass(frozen=True)
class NilPointer:
    """A typed nil pointer to a struct, such as ``Secret.Auth``: prints ``<nil>``, is false."""

    type_name: str
    # The struct's fields: reading one is a nil pointer error, reading another field is not.
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class PemEncoded:
    """consul-template's ``dependency.PemEncoded``; ``.Data`` returns itself, as in Go."""

    cert: str = ""
    key: str = ""
    ca: str = ""
    ca_chain: tuple[str, ...] = ()


@dataclass(frozen=True)
class StructView:
    """How a Python object shows up as a Go struct: its type name, fields and methods."""

    type_name: str
    # Field order matters: Go prints a struct's fields in declaration order.
    fields: tuple[tuple[str, Callable[[Any], Any]], ...]
    methods: Mapping[str, Callable[[Any], Any]]
    is_pointer: bool

    def field(self, obj: Any, name: str) -> Any:
        for field_name, getter in self.fields:
            if field_name == name:
                return getter(obj)
        raise KeyError(name)


def _string_slice(items: tuple[str, ...]) -> GoStringSlice:
    return GoStringSlice(items) if items else NilStringSlice()


_SECRET_AUTH = NilPointer(
    "*dependency.SecretAuth",
    ("ClientToken", "Accessor", "Policies", "Metadata", "LeaseDuration", "Renewable"),
)
_SECRET_WRAP_INFO = NilPointer(
    "*dependency.SecretWrapInfo", ("Token", "TTL", "CreationTime", "WrappedAccessor")
)

STRUCT_VIEWS: Final[dict[type, StructView]] = {
    Secret: StructView(
        type_name="*dependency.Secret",
        fields=(
            ("RequestID", lambda secret: secret.request_id),
            ("LeaseID", lambda secret: secret.lease_id),
            ("LeaseDuration", lambda secret: secret.lease_duration),
            ("Renewable", lambda secret: secret.renewable),
            ("Data", lambda secret: secret.data),
            ("Warnings", lambda secret: _string_slice(secret.warnings)),
            ("Auth", lambda _secret: _SECRET_AUTH),
            ("WrapInfo", lambda _secret: _SECRET_WRAP_INFO),
        ),
        methods={},
        is_pointer=True,
    ),
    PemEncoded: StructView(
        type_name="dependency.PemEncoded",
        fields=(
            ("Cert", lambda pem: pem.cert),
            ("Key", lambda pem: pem.key),
            ("CA", lambda pem: pem.ca),
            ("CAChain", lambda pem: _string_slice(pem.ca_chain)),
        ),
        # consul-template gives PemEncoded a Data method so `.Data.Cert` works like `.Cert`.
        methods={"Data": lambda pem: pem},
        is_pointer=False,
    ),
}


def struct_view(value: Any) -> StructView | None:
    return STRUCT_VIEWS.get(type(value))


def pointee_type_name(value: Any) -> str:
    """The type name after Go's indirect(): a pointer to a struct names the struct."""
    view = struct_view(value)
    if view is not None:
        return view.type_name.lstrip("*")
    return type_name(value)


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def type_name(value: Any) -> str:
    """Go's name for the type of ``value``, as ``%T`` and error messages print it."""
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, JsonNumber):
        return "json.Number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, GoStringSlice):
        return "[]string"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, NilPointer):
        return value.type_name
    view = struct_view(value)
    if view is not None:
        return view.type_name
    if callable(value):
        return "func()"
    return type(value).__name__


def is_true(value: Any) -> bool:
    """Go's truth for if/with/and/or/not: the zero value of its type (and nil) is false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | complex):
        return value != 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    # Structs and pointers to structs are always true; a nil pointer is not.
    return not isinstance(value, NilPointer)


def from_vault(value: Any) -> Any:
    """A value from a Vault response as Vault Agent's templates see it: numbers as json.Number."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return JsonNumber(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return JsonNumber(repr(value))
        return value
    if isinstance(value, Mapping):
        return {key: from_vault(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [from_vault(item) for item in value]
    return value


def sorted_map_items(value: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Items in Go's fmtsort order: strings by bytes (the same as code points), numbers by value."""
    items = list(value.items())
    try:
        items.sort(key=lambda item: item[0])
    except TypeError:
        # Keys of mixed types (from parseYAML): order by type, then value, as fmtsort does.
        items.sort(key=lambda item: (type(item[0]).__name__, str(item[0])))
    return items
