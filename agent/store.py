"""The secrets the agent holds: one fetch per distinct Vault call, shared by every template.

A *dependency* is one call a template makes: ``secret`` (a read, or a write with parameters),
``secrets`` (a list) or ``pkiCert``. The store fetches each dependency once, remembers the answer
and how long it lives (a ``LeaseClock``), and serves templates from memory; the runner decides
when to renew or fetch again. KV paths are resolved as consul-template does: on a KV v2 mount
``secret/app`` and ``secret/data/app`` are the same secret (detected through
``sys/internal/ui/mounts``), and lists go to ``metadata/``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from agent.audit import Audit
from agent.certificates import certificate_not_after
from agent.schedule import LeaseClock
from agent.templates import Dependency, Secret
from agent.templates.vault_functions import normalize_path
from agent.vault import Mount, RequestRejected, VaultClient, VaultSecret, lease_reference

logger = logging.getLogger(__name__)

# static: re-read on an interval (KV, lease-less answers); lease: renew / issue anew;
# certificate: issue anew by its NotAfter; list: re-list on the interval.
Category = Literal["static", "lease", "certificate", "list"]


@dataclass(frozen=True)
class Held:
    """What the store holds for one dependency."""

    dependency: Dependency
    category: Category
    secret: Secret
    keys: tuple[str, ...]
    fetched_at: float
    # For leases and certificates; None for static secrets and lists.
    clock: LeaseClock | None
    # The login (token generation) whose token issued it: leases die with their token.
    generation: int


def dependency_for(
    kind: Literal["secret", "secrets", "pkiCert"], path: str, params: Mapping[str, str]
) -> Dependency:
    """The dependency of a call, its path trimmed as the engine trims it, so equal calls (and
    the dependency a template lists before it renders) are one."""
    return Dependency(kind, normalize_path(path), tuple(sorted(params.items())))


def _within_mount(mount_path: str, path: str) -> tuple[str, str]:
    """(``mount/``, the path inside the mount without slashes at either end)."""
    mount = mount_path.strip("/") + "/"
    candidate = path.strip("/") + "/"
    rest = candidate[len(mount) :] if candidate.startswith(mount) else candidate
    return mount, rest.strip("/")


def kv2_data_path(mount_path: str, path: str) -> str:
    """``secret/app`` -> ``secret/data/app`` on a v2 mount ``secret/``; a data path is kept."""
    mount, rest = _within_mount(mount_path, path)
    if rest == "data" or rest.startswith("data/"):
        return mount + rest
    return mount + "data/" + rest


def kv2_metadata_path(mount_path: str, path: str) -> str:
    """``secret/team`` -> ``secret/metadata/team``: listing a v2 mount goes through metadata."""
    mount, rest = _within_mount(mount_path, path)
    if rest == "metadata" or rest.startswith("metadata/"):
        return mount + rest
    return (mount + "metadata/" + rest).rstrip("/")


def _template_secret(answer: VaultSecret, data: Mapping[str, Any] | None = None) -> Secret:
    return Secret(
        request_id=answer.request_id,
        lease_id=answer.lease_id,
        lease_duration=answer.lease_duration,
        renewable=answer.renewable,
        data=dict(answer.data if data is None else data),
        warnings=answer.warnings,
    )


class SecretStore:
    """Fetches and holds dependencies. Not thread-safe: the runner's one loop drives it."""

    def __init__(
        self,
        vault: VaultClient,
        *,
        audit: Audit,
        now: Callable[[], float] = time.monotonic,
        wall_now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._vault = vault
        self._rng = rng or random.SystemRandom()
        self._audit = audit
        self._now = now
        self._wall_now = wall_now
        self._held: dict[Dependency, Held] = {}
        self._mounts: list[Mount] = []
        self._unmounted: set[str] = set()
        # Lifetime (issue to hard expiry) learned per dependency: predicts the next credential's.
        self.learned_lifetimes: dict[Dependency, float] = {}
        # Current login; set by the runner after each login.
        self.generation = 0

    # Access ----------------------------------------------------------------------------------

    def held(self, dependency: Dependency) -> Held | None:
        return self._held.get(dependency)

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self._held.values()))

    def __len__(self) -> int:
        return len(self._held)

    def get(self, dependency: Dependency) -> Held:
        """The held answer, fetched first if the store does not have it."""
        found = self._held.get(dependency)
        return found if found is not None else self.fetch(dependency)

    def adopt(self, held: Held) -> None:
        """Take over an answer fetched by another process (the init container's handoff)."""
        self._held[held.dependency] = held

    def forget(self, dependency: Dependency) -> None:
        self._held.pop(dependency, None)

    def forget_generation(self, generation: int) -> list[Dependency]:
        """Drop every lease issued under ``generation`` (its token is gone, and they with it)."""
        dropped = [
            held.dependency
            for held in self._held.values()
            if held.generation == generation and held.category == "lease"
        ]
        for dependency in dropped:
            del self._held[dependency]
        return dropped

    # Vault -----------------------------------------------------------------------------------

    def _mount(self, path: str) -> Mount | None:
        for mount in self._mounts:
            if (path + "/").startswith(mount.path):
                return mount
        if path in self._unmounted:
            return None
        found = self._vault.mount(path)
        if found is None:
            self._unmounted.add(path)
        else:
            self._mounts.append(found)
        return found

    def fetch(self, dependency: Dependency) -> Held:
        """Ask Vault anew (a new credential for leased secrets) and hold the answer."""
        kind, path, params = dependency.kind, dependency.path, dict(dependency.params)
        now = self._now()
        if kind == "secrets":
            mount = self._mount(path)
            list_path = (
                kv2_metadata_path(mount.path, path) if mount and mount.kv_version == 2 else path
            )
            keys = tuple(self._vault.list_keys(list_path))
            held = Held(dependency, "list", Secret(), keys, now, None, self.generation)
            self._audit.event("fetch", kind=kind, path=path)
        elif kind == "pkiCert":
            answer = self._vault.write(path, params)
            data = answer.data
            secret = _template_secret(
                answer,
                {
                    "Cert": data.get("certificate", ""),
                    "Key": data.get("private_key", ""),
                    "CA": data.get("issuing_ca", ""),
                    "CAChain": list(data.get("ca_chain") or []),
                },
            )
            held = self._classify(dependency, answer, secret, now, kv=False)
        elif params:
            answer = self._vault.write(path, params)
            held = self._classify(dependency, answer, _template_secret(answer), now, kv=False)
        else:
            mount = self._mount(path)
            read_path = kv2_data_path(mount.path, path) if mount and mount.kv_version == 2 else path
            answer = self._vault.read(read_path)
            kv = bool(mount and mount.kv_version)
            held = self._classify(dependency, answer, _template_secret(answer), now, kv=kv)
        self._held[dependency] = held
        return held

    def _classify(
        self, dependency: Dependency, answer: VaultSecret, secret: Secret, now: float, *, kv: bool
    ) -> Held:
        learned = self.learned_lifetimes.get(dependency)
        pem = answer.data.get("certificate")
        if kv:
            category: Category = "static"
            clock = None
        elif isinstance(pem, str) and (not answer.lease_id or dependency.kind == "pkiCert"):
            not_after = certificate_not_after(pem)
            if not_after is None:
                category, clock = "static", None
            else:
                category = "certificate"
                seconds_left = not_after.timestamp() - self._wall_now()
                if seconds_left <= 0:
                    # Issuing again at once would give the same: a role or CA problem a human
                    # must fix. A rejection backs off like a denied read instead of looping.
                    raise RequestRejected(
                        f"{dependency.path}: the issued certificate has already expired "
                        "(check the PKI role's TTL and the issuing CA's validity)",
                        operation="issue",
                        path=dependency.path,
                        status=None,
                    )
                clock = LeaseClock.issued(
                    now, max(0.0, seconds_left), renewable=False, rng=self._rng
                )
        elif answer.lease_id:
            category = "lease"
            clock = LeaseClock.issued(
                now,
                answer.lease_duration,
                renewable=answer.renewable,
                known_lifetime=learned,
                rng=self._rng,
            )
        else:
            category, clock = "static", None
        self._audit.event(
            "fetch",
            kind=dependency.kind,
            path=dependency.path,
            lease=lease_reference(answer.lease_id) if answer.lease_id else None,
            ttl=int(clock.expires_at - now) if clock else None,
        )
        return Held(dependency, category, secret, (), now, clock, self.generation)

    def renew(self, dependency: Dependency, *, increment: int) -> Held:
        """Extend a lease by ``increment`` seconds; learns the credential's lifetime when Vault
        caps the extension."""
        held = self._held[dependency]
        assert held.clock is not None, "only leases are renewed"
        renewal = self._vault.renew_lease(held.secret.lease_id, increment)
        now = self._now()
        clock = held.clock.after_renewal(
            now, ttl=renewal.ttl, capped=renewal.capped, renewable=renewal.renewable
        )
        if renewal.capped and clock.lifetime is not None:
            self.learned_lifetimes[dependency] = clock.lifetime
        renewed = replace(held, clock=clock)
        self._held[dependency] = renewed
        self._audit.event(
            "renew",
            kind="lease",
            path=dependency.path,
            lease=lease_reference(held.secret.lease_id),
            ttl=renewal.ttl,
            capped=renewal.capped,
        )
        return renewed

    def backend(self, used: set[Dependency]) -> TemplateBackend:
        return TemplateBackend(self, used)


class TemplateBackend:
    """The engine's ``SecretBackend`` for one render: served by the store, records what it used."""

    def __init__(self, store: SecretStore, used: set[Dependency]) -> None:
        self._store = store
        self._used = used

    def _get(self, dependency: Dependency) -> Held:
        self._used.add(dependency)
        return self._store.get(dependency)

    def secret(self, path: str, params: Mapping[str, str]) -> Secret:
        return self._get(dependency_for("secret", path, params)).secret

    def secrets(self, path: str) -> list[str]:
        return list(self._get(dependency_for("secrets", path, {})).keys)

    def pki_cert(self, path: str, params: Mapping[str, str]) -> Secret:
        return self._get(dependency_for("pkiCert", path, params)).secret
