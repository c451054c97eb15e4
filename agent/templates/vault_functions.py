"""secret, secrets and pkiCert: the template functions that reach Vault, through the agent.

Arguments are handled as consul-template handles them: the path is trimmed of spaces and
slashes; further arguments are ``k=v`` pairs (trimmed, empty ones skipped) and make ``secret`` a
write. Each distinct call is answered once per render. Exceptions from the backend are not
template errors: they propagate to the caller of ``render`` unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agent.templates.backend import Secret
from agent.templates.errors import REDACTED, FunctionError
from agent.templates.funcspec import ArgType, Function, RenderContext
from agent.templates.gofmt import quote
from agent.templates.values import GoStringSlice, NilStringSlice, PemEncoded, from_vault


def normalize_path(path: str) -> str:
    return path.strip(" \t\n\r\v\f").strip("/")


def parse_params(arguments: tuple[str, ...] | list[str]) -> dict[str, str]:
    """consul-template's k=v arguments; raises FunctionError for one without '='."""
    params: dict[str, str] = {}
    for argument in arguments:
        if argument == "":
            continue
        key, found, value = argument.partition("=")
        if not found:
            raise FunctionError(f"not k=v pair {REDACTED}")
        params[key.strip()] = value.strip()
    return params


def _checked_path(path: str, *, operation: str) -> str:
    normalized = normalize_path(path)
    if normalized == "":
        raise FunctionError(f"vault.{operation}: invalid format: {quote(normalized)}")
    return normalized


def _answer(
    context: RenderContext, key: tuple[str, str, tuple[tuple[str, str], ...]], *, fetch: Any
) -> Any:
    if key not in context.vault_answers:
        context.vault_answers[key] = fetch()
    return context.vault_answers[key]


def _secret(context: RenderContext, *arguments: str) -> Any:
    if not arguments:
        return None
    params = parse_params(arguments[1:])
    path = _checked_path(arguments[0], operation="write" if params else "read")
    key = ("secret", path, tuple(sorted(params.items())))

    def fetch() -> Secret:
        secret = context.backend.secret(path, params)
        return dataclasses.replace(secret, data=from_vault(secret.data))

    return _answer(context, key, fetch=fetch)


def _secrets(context: RenderContext, path: str) -> GoStringSlice:
    if path == "":
        return NilStringSlice()
    normalized = _checked_path(path, operation="list")
    return _answer(  # type: ignore[no-any-return]
        context,
        ("secrets", normalized, ()),
        fetch=lambda: GoStringSlice(context.backend.secrets(normalized)),
    )


def pem_encoded(data: Mapping[str, Any]) -> PemEncoded:
    """The PemEncoded a template sees from a pkiCert answer (Vault's own names accepted too)."""

    def text(*names: str) -> str:
        for name in names:
            value = data.get(name)
            if isinstance(value, str):
                return value
        return ""

    chain = data.get("CAChain", data.get("ca_chain", ()))
    return PemEncoded(
        cert=text("Cert", "certificate"),
        key=text("Key", "private_key"),
        ca=text("CA", "issuing_ca"),
        ca_chain=tuple(item for item in chain if isinstance(item, str))
        if isinstance(chain, list | tuple)
        else (),
    )


def _pki_cert(context: RenderContext, *arguments: str) -> Any:
    if not arguments:
        return None
    params = parse_params(arguments[1:])
    path = _checked_path(arguments[0], operation="read")
    key = ("pkiCert", path, tuple(sorted(params.items())))
    return _answer(
        context, key, fetch=lambda: pem_encoded(context.backend.pki_cert(path, params).data)
    )


VAULT_FUNCTIONS: tuple[Function, ...] = (
    Function("secret", _secret, (), ArgType.STRING, needs_context=True),
    Function("secrets", _secrets, (ArgType.STRING,), needs_context=True),
    Function("pkiCert", _pki_cert, (), ArgType.STRING, needs_context=True),
)
