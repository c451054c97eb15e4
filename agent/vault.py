"""The agent's only door to Vault (or OpenBao): its HTTP API, answers as typed values.

Every failure becomes one of this module's exceptions, chosen by what the caller should do next:

- ``VaultUnavailable``: the server could not answer (connection, timeout, 5xx, 429, sealed):
  back off and try again, the same request may succeed later.
- ``PermissionDenied``: 403. Not transient: either the token is no longer valid (log in again)
  or the policy does not allow the path (back off long; a human must act).
- ``NotFound``: 404, the path holds nothing.
- ``RequestRejected``: any other 4xx, e.g. a lease that Vault no longer knows.

Only ``VaultUnavailable`` closes the agent-wide ``FailureGate``; any answer, a refusal
included, proves Vault is up and resets it.

Messages name the operation, the Vault path (or a lease reference, never a lease id) and the
HTTP status. They never hold a token, a JWT, a secret value or Vault's own error text, which can
echo request data.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from agent.config import AuthConfig, VaultConnection
from agent.schedule import FailureGate
from agent.transport import Response, Transport, TransportError

logger = logging.getLogger(__name__)


class VaultError(Exception):
    """A Vault request failed. ``status`` is the HTTP status, or None without an answer."""

    def __init__(self, message: str, *, operation: str, path: str, status: int | None) -> None:
        super().__init__(message)
        self.operation = operation
        self.path = path
        self.status = status


class VaultUnavailable(VaultError):
    """Transient: no answer, 5xx, 429 or sealed. ``retry_after`` is the server's hint, if any."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        path: str,
        status: int | None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, path=path, status=status)
        self.retry_after = retry_after


class PermissionDenied(VaultError):
    """403: an invalid token or a policy that does not allow the path; never retried quickly."""


class NotFound(VaultError):
    """404: nothing at this path."""


class RequestRejected(VaultError):
    """Another 4xx: the request itself is wrong, e.g. a lease Vault no longer knows."""


class BackingOff(VaultUnavailable):
    """Not sent: the agent is waiting out earlier failures (see ``schedule.FailureGate``)."""


class LoginError(VaultError):
    """The login request could not even be made, e.g. the ServiceAccount token file is missing."""


@dataclass(frozen=True)
class VaultSecret:
    """A Vault answer with data: a read, a write, a dynamic credential. Integers stay ``int``."""

    request_id: str = ""
    lease_id: str = ""
    lease_duration: int = 0
    renewable: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthToken:
    """A login's result. ``token`` is kept out of ``repr`` so it cannot slip into a log line."""

    token: str = field(repr=False)
    accessor: str
    ttl: int
    renewable: bool
    policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Renewal:
    """A lease or token extended to ``ttl`` seconds from now. ``capped``: Vault gave less than
    asked because the credential reached its max TTL, so ``ttl`` is what it has left, for good."""

    ttl: int
    renewable: bool
    capped: bool


@dataclass(frozen=True)
class Mount:
    """The secrets engine a path belongs to. ``kv_version`` is 1 or 2 for KV, else 0."""

    path: str
    type: str
    kv_version: int = 0


def lease_reference(lease_id: str) -> str:
    """A lease's loggable name: its path and a hash of its id, which alone can renew or revoke."""
    prefix, _, _ = lease_id.rpartition("/")
    digest = hashlib.sha256(lease_id.encode()).hexdigest()[:12]
    return f"{prefix}/sha256:{digest}" if prefix else f"sha256:{digest}"


def token_reference(accessor: str) -> str:
    """A token's loggable name: a hash of its accessor (the token itself never appears)."""
    return "accessor-sha256:" + hashlib.sha256(accessor.encode()).hexdigest()[:12]


def build_ssl_context(connection: VaultConnection) -> ssl.SSLContext:
    tls = connection.tls
    context = ssl.create_default_context()
    if tls.ca_cert_file or tls.ca_cert_dir or tls.ca_cert_pem:
        # A CA of our own replaces the system store: trust exactly what the config names.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(
            cafile=tls.ca_cert_file, capath=tls.ca_cert_dir, cadata=tls.ca_cert_pem
        )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.client_cert_file:
        context.load_cert_chain(tls.client_cert_file, tls.client_key_file)
    if tls.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.datetime.now(datetime.UTC)).total_seconds())


_REASONS = {
    400: "rejected by Vault",
    401: "permission denied",
    403: "permission denied",
    404: "not found",
    405: "method not allowed",
    412: "not yet replicated",
    429: "rate limited",
    500: "Vault internal error",
    501: "Vault not initialised",
    502: "bad gateway",
    503: "Vault sealed or unavailable",
    504: "gateway timeout",
}


class VaultClient:
    """A Vault session for one agent: the token it holds and the calls the agent makes."""

    def __init__(
        self,
        connection: VaultConnection,
        *,
        gate: FailureGate | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self._gate = gate
        self._now = now
        self._token: str | None = None
        # True while a request is on the wire: a shutdown signal may abort it.
        self.in_request = False
        # Requests sent, for metrics and the request-rate tests.
        self.requests_sent = 0
        if connection.tls.skip_verify:
            logger.warning("TLS verification of Vault is disabled (tls-skip-verify)")
        self._transport = Transport(
            connection.address,
            ssl_context=(
                build_ssl_context(connection) if connection.address.startswith("https") else None
            ),
            server_name=connection.tls.server_name,
            proxy=connection.proxy_address,
            timeout=connection.timeout_seconds,
            max_retries=connection.max_retries,
            keep_alive=not connection.disable_keep_alives,
        )

    @property
    def token(self) -> str | None:
        return self._token

    def use_token(self, token: str | None) -> None:
        self._token = token or None

    def close(self) -> None:
        self._transport.close()

    # Transport -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        shown_path: str | None = None,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """One HTTP request to ``/v1/<path>``; the decoded JSON body ({} when empty)."""
        shown = shown_path if shown_path is not None else path
        if self._gate is not None and not self._gate.is_open(self._now()):
            raise BackingOff(
                f"{operation} {shown}: not sent, backing off after Vault failures",
                operation=operation,
                path=shown,
                status=None,
                retry_after=self._gate.closed_until - self._now(),
            )
        try:
            answer = self._send(
                method, path, operation=operation, shown=shown, token=token, body=body, query=query
            )
        except VaultUnavailable as error:
            if self._gate is not None:
                self._gate.failed(self._now(), retry_after=error.retry_after)
            raise
        except VaultError:
            # A refusal (403, 404, another 4xx) is still an answer: Vault is up, so the
            # agent-wide brake lifts. The error stays permanent for this request's caller.
            if self._gate is not None:
                self._gate.succeeded()
            raise
        if self._gate is not None:
            self._gate.succeeded()
        return answer

    def _send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        shown: str,
        token: str | None,
        body: Mapping[str, Any] | None,
        query: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        headers = {"X-Vault-Request": "true", "Accept": "application/json"}
        use_token = self._token if token is None else token
        if use_token:
            headers["X-Vault-Token"] = use_token
        if self._connection.namespace:
            headers["X-Vault-Namespace"] = self._connection.namespace
        payload = None
        if body is not None:
            payload = json.dumps(dict(body)).encode()
            headers["Content-Type"] = "application/json"
        target = "/v1/" + urllib.parse.quote(path, safe="/:@-._~")
        if query:
            target += "?" + urllib.parse.urlencode(dict(query))
        self.requests_sent += 1
        self.in_request = True
        try:
            response = self._transport.request(method, target, headers=headers, body=payload)
        except TransportError as error:
            reason = "TLS handshake with Vault failed" if error.tls else "Vault did not answer"
            raise VaultUnavailable(
                f"{operation} {shown}: {reason}", operation=operation, path=shown, status=None
            ) from None
        finally:
            self.in_request = False
        status = response.status
        content = response.body
        if status < 300:
            if not content:
                return {}
            try:
                decoded = json.loads(content)
            except ValueError:
                raise VaultUnavailable(
                    f"{operation} {shown}: Vault's answer is not JSON (HTTP {status})",
                    operation=operation,
                    path=shown,
                    status=status,
                ) from None
            if not isinstance(decoded, dict):
                raise RequestRejected(
                    f"{operation} {shown}: unexpected answer shape (HTTP {status})",
                    operation=operation,
                    path=shown,
                    status=status,
                )
            return decoded
        reason = _REASONS.get(status, "unexpected answer")
        message = f"{operation} {shown}: {reason} (HTTP {status})"
        if status in (401, 403):
            raise PermissionDenied(message, operation=operation, path=shown, status=status)
        if status == 404:
            raise NotFound(message, operation=operation, path=shown, status=status)
        if status in (412, 429) or status >= 500:
            raise VaultUnavailable(
                message,
                operation=operation,
                path=shown,
                status=status,
                retry_after=_retry_after(response),
            )
        raise RequestRejected(message, operation=operation, path=shown, status=status)

    # Auth ------------------------------------------------------------------------------------

    def login(self, auth: AuthConfig) -> AuthToken:
        """Log in with the ServiceAccount token, read afresh so a rotated token is used."""
        token_path = auth.params.get("token_path") or auth.params.get("path") or auth.token_file
        role = auth.params.get("role") or auth.role
        try:
            with open(token_path, encoding="utf-8") as handle:
                jwt = handle.read().strip()
        except OSError as error:
            raise LoginError(
                f"login: cannot read the ServiceAccount token file {token_path} ({error.strerror})",
                operation="login",
                path=token_path,
                status=None,
            ) from None
        if not jwt:
            raise LoginError(
                f"login: the ServiceAccount token file {token_path} is empty",
                operation="login",
                path=token_path,
                status=None,
            )
        mount = auth.mount_path.strip("/")
        answer = self._request(
            "POST",
            f"{mount}/login",
            operation="login",
            body={"role": role, "jwt": jwt},
            token="",
        )
        token = _auth_token(answer, operation="login", path=f"{mount}/login")
        self.use_token(token.token)
        return token

    def renew_self(self, increment: int) -> Renewal:
        answer = self._request(
            "POST",
            "auth/token/renew-self",
            operation="renew token",
            body={"increment": f"{int(increment)}s"},
        )
        auth = answer.get("auth") or {}
        ttl = int(auth.get("lease_duration", 0))
        return Renewal(
            ttl=ttl,
            renewable=bool(auth.get("renewable", False)),
            capped=ttl < increment or _mentions_cap(answer.get("warnings")),
        )

    def lookup_self(self) -> Mapping[str, Any]:
        answer = self._request("GET", "auth/token/lookup-self", operation="look up token")
        data: Mapping[str, Any] = answer.get("data") or {}
        return data

    def revoke_self(self) -> None:
        self._request("POST", "auth/token/revoke-self", operation="revoke token")

    def revoke_token(self, token: str) -> None:
        """Revoke another token we hold (an earlier login), with that token's own authority."""
        self._request("POST", "auth/token/revoke-self", operation="revoke token", token=token)

    # Secrets ---------------------------------------------------------------------------------

    def read(self, path: str) -> VaultSecret:
        return _secret(self._request("GET", path.strip("/"), operation="read"))

    def write(self, path: str, params: Mapping[str, Any]) -> VaultSecret:
        return _secret(self._request("PUT", path.strip("/"), operation="write", body=params))

    def list_keys(self, path: str) -> list[str]:
        answer = self._request("GET", path.strip("/"), operation="list", query={"list": "true"})
        keys = (answer.get("data") or {}).get("keys") or []
        return [str(key) for key in keys]

    def renew_lease(self, lease_id: str, increment: int) -> Renewal:
        answer = self._request(
            "PUT",
            "sys/leases/renew",
            operation="renew lease",
            shown_path=lease_reference(lease_id),
            body={"lease_id": lease_id, "increment": int(increment)},
        )
        ttl = int(answer.get("lease_duration", 0))
        return Renewal(
            ttl=ttl,
            renewable=bool(answer.get("renewable", False)),
            capped=ttl < increment or _mentions_cap(answer.get("warnings")),
        )

    def lease_alive(self, lease_id: str) -> bool:
        """Whether the lease is still usable: Vault knows it and it has not expired (a lease
        whose revocation failed stays listed, expired). A failed renewal of a live lease is the
        engine's fault (its database is down, say), not the lease's."""
        try:
            answer = self._request(
                "PUT",
                "sys/leases/lookup",
                operation="look up lease",
                shown_path=lease_reference(lease_id),
                body={"lease_id": lease_id},
            )
        except (RequestRejected, NotFound):
            return False
        return int((answer.get("data") or {}).get("ttl") or 0) > 0

    def revoke_lease(self, lease_id: str) -> None:
        self._request(
            "PUT",
            "sys/leases/revoke",
            operation="revoke lease",
            shown_path=lease_reference(lease_id),
            body={"lease_id": lease_id},
        )

    def mount(self, path: str) -> Mount | None:
        """The engine ``path`` is on, or None when Vault does not tell this token."""
        try:
            answer = self._request(
                "GET",
                f"sys/internal/ui/mounts/{path.strip('/')}",
                operation="find mount",
                shown_path=path,
            )
        except (PermissionDenied, NotFound, RequestRejected):
            return None
        data = answer.get("data") or {}
        mount_path = str(data.get("path") or "")
        if not mount_path:
            return None
        engine = str(data.get("type") or "")
        version = 0
        if engine in ("kv", "generic"):
            options = data.get("options") or {}
            version = 2 if str(options.get("version") or "1") == "2" else 1
        return Mount(path=mount_path, type=engine, kv_version=version)


def _mentions_cap(warnings: Any) -> bool:
    if not isinstance(warnings, list):
        return False
    return any("max_ttl" in str(warning) or "capped" in str(warning) for warning in warnings)


def _auth_token(answer: Mapping[str, Any], *, operation: str, path: str) -> AuthToken:
    auth = answer.get("auth")
    if not isinstance(auth, Mapping) or not auth.get("client_token"):
        raise RequestRejected(
            f"{operation} {path}: Vault's answer has no token",
            operation=operation,
            path=path,
            status=200,
        )
    return AuthToken(
        token=str(auth["client_token"]),
        accessor=str(auth.get("accessor", "")),
        ttl=int(auth.get("lease_duration", 0)),
        renewable=bool(auth.get("renewable", False)),
        policies=tuple(str(policy) for policy in auth.get("policies") or ()),
    )


def _secret(answer: Mapping[str, Any]) -> VaultSecret:
    data = answer.get("data")
    warnings = answer.get("warnings") or ()
    return VaultSecret(
        request_id=str(answer.get("request_id") or ""),
        lease_id=str(answer.get("lease_id") or ""),
        lease_duration=int(answer.get("lease_duration") or 0),
        renewable=bool(answer.get("renewable", False)),
        data=data if isinstance(data, dict) else {},
        warnings=tuple(str(warning) for warning in warnings),
    )
