"""The contract between the engine and the agent: what a template asks Vault for, and the answers.

The engine never talks to Vault. Templates call ``secret``, ``secrets`` and ``pkiCert``; those calls
go to a :class:`SecretBackend` that the agent implements (and usually serves from the secrets it
already fetched, once each, after reading :meth:`Template.dependencies`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

DependencyKind = Literal["secret", "secrets", "pkiCert"]


@dataclass(frozen=True)
class Dependency:
    """One Vault call a template makes, found without executing it.

    ``path`` is trimmed of spaces and slashes as consul-template trims it; ``params`` come from
    ``k=v`` arguments (a write for ``secret``), sorted by key.
    """

    kind: DependencyKind
    path: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Secret:
    """consul-template's ``dependency.Secret``; templates see the Go field names.

    ``.RequestID .LeaseID .LeaseDuration .Renewable .Data .Warnings`` (and ``.Auth``/``.WrapInfo``,
    always nil here). Any other field is an execution error, as in Go. Numbers inside ``data``
    behave as Vault Agent's ``json.Number`` values (see ``values.JsonNumber``).
    """

    request_id: str = ""
    lease_id: str = ""
    lease_duration: int = 0
    renewable: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class SecretBackend(Protocol):
    """Answers the Vault calls of a template. Exceptions propagate out of ``render`` unchanged."""

    def secret(self, path: str, params: Mapping[str, str]) -> Secret:
        """Read ``path``; a write of ``params`` when they are not empty."""
        ...

    def secrets(self, path: str) -> list[str]:
        """List the keys under ``path``."""
        ...

    def pki_cert(self, path: str, params: Mapping[str, str]) -> Secret:
        """Issue a certificate; ``data`` holds ``Cert``, ``Key``, ``CA`` and ``CAChain``."""
        ...
