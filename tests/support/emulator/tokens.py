"""ServiceAccount tokens for projected volumes, refreshed as the kubelet's token manager does.

The kubelet asks the API server for a token per (audience, expirationSeconds, pod) and replaces it
once it is older than 80% of its lifetime (or 24 hours); the projected volume is then rewritten.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tests.support.emulator.manifest import PodModel, ServiceAccountTokenSource

logger = logging.getLogger(__name__)

REFRESH_AT_FRACTION_OF_LIFETIME = 0.8
MAX_TOKEN_AGE_SECONDS = 24 * 3600


class TokenIssuer(Protocol):
    """What issues ServiceAccount tokens: ``tests.support.fake_kube.FakeKubeApiServer`` does."""

    def issue_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: list[str] | None = None,
        lifetime: datetime.timedelta = datetime.timedelta(hours=1),
        pod_name: str | None = None,
        pod_uid: str | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class IssuedToken:
    token: str
    issued_at: float  # time.monotonic()
    lifetime_seconds: float

    @property
    def refresh_at(self) -> float:
        age_limit = min(
            self.lifetime_seconds * REFRESH_AT_FRACTION_OF_LIFETIME, MAX_TOKEN_AGE_SECONDS
        )
        return self.issued_at + age_limit


class ServiceAccountTokens:
    """Tokens bound to one pod, cached per (audience, expiration) until they are due."""

    def __init__(
        self,
        issuer: TokenIssuer,
        pod: PodModel,
        *,
        max_lifetime: datetime.timedelta | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._pod = pod
        self._max_lifetime = max_lifetime
        self._clock = clock
        self._tokens: dict[tuple[str | None, int], IssuedToken] = {}
        self._lock = threading.Lock()
        self.issued_count = 0

    def token_for(self, source: ServiceAccountTokenSource) -> str:
        key = (source.audience, source.expiration_seconds)
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and self._clock() < current.refresh_at:
                return current.token
            lifetime = datetime.timedelta(seconds=source.expiration_seconds)
            if self._max_lifetime is not None:
                lifetime = min(lifetime, self._max_lifetime)
            token = self._issuer.issue_token(
                self._pod.namespace,
                self._pod.service_account,
                audiences=[source.audience] if source.audience else None,
                lifetime=lifetime,
                pod_name=self._pod.name,
                pod_uid=self._pod.uid,
            )
            self._tokens[key] = IssuedToken(token, self._clock(), lifetime.total_seconds())
            self.issued_count += 1
            logger.debug(
                "issued a token for %s/%s (audience %s, %ss)",
                self._pod.namespace,
                self._pod.service_account,
                source.audience or "default",
                lifetime.total_seconds(),
            )
            return token

    def next_refresh_at(self) -> float | None:
        with self._lock:
            return min((token.refresh_at for token in self._tokens.values()), default=None)
