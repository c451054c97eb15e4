"""Init-to-sidecar handoff: the token, its clock and every fetched secret with its lease.

The init container writes it to the agent-private memory volume (``state_dir``), mode 0600; the
sidecar reads it, deletes it, and carries on with the same token and the same credentials, so a
pod gets one set of dynamic credentials at start, not two. The file holds secrets: it lives only
on a tmpfs that app containers do not mount, and only until the sidecar starts.

Clocks are monotonic inside a process; in the file they are wall-clock seconds, converted back
on adoption.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.files import write_if_changed
from agent.schedule import LeaseClock
from agent.store import Category, Held
from agent.templates import Dependency, Secret
from agent.vault import AuthToken

HANDOFF_FILE = "handoff.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class HeldToken:
    """The agent's Vault token and what it knows about its life."""

    auth: AuthToken
    clock: LeaseClock
    generation: int


@dataclass(frozen=True)
class Handoff:
    token: HeldToken
    held: tuple[Held, ...]
    learned_lifetimes: tuple[tuple[Dependency, float], ...] = ()
    learned_token_lifetime: float | None = None


class HandoffError(ValueError):
    """The handoff file is unreadable; the sidecar starts afresh instead."""


def handoff_path(state_dir: str) -> Path:
    return Path(state_dir) / HANDOFF_FILE


def _clock_to_wall(clock: LeaseClock, offset: float) -> dict[str, Any]:
    wall = asdict(clock)
    for name in ("issued_at", "renewed_at", "expires_at", "hard_expires_at"):
        if wall[name] is not None:
            wall[name] = wall[name] + offset
    return wall


def _clock_from_wall(wall: Mapping[str, Any], offset: float) -> LeaseClock:
    values = dict(wall)
    for name in ("issued_at", "renewed_at", "expires_at", "hard_expires_at"):
        if values.get(name) is not None:
            values[name] = float(values[name]) - offset
    return LeaseClock(**values)


def _dependency_to_json(dependency: Dependency) -> dict[str, Any]:
    return {
        "kind": dependency.kind,
        "path": dependency.path,
        "params": [list(pair) for pair in dependency.params],
    }


def _dependency_from_json(value: Mapping[str, Any]) -> Dependency:
    return Dependency(
        value["kind"], value["path"], tuple((str(k), str(v)) for k, v in value["params"])
    )


def encode(handoff: Handoff, *, monotonic_to_wall: float) -> bytes:
    offset = monotonic_to_wall
    document = {
        "version": FORMAT_VERSION,
        "token": {
            "token": handoff.token.auth.token,
            "accessor": handoff.token.auth.accessor,
            "ttl": handoff.token.auth.ttl,
            "renewable": handoff.token.auth.renewable,
            "policies": list(handoff.token.auth.policies),
            "clock": _clock_to_wall(handoff.token.clock, offset),
            "generation": handoff.token.generation,
        },
        "held": [
            {
                "dependency": _dependency_to_json(held.dependency),
                "category": held.category,
                "secret": {
                    "request_id": held.secret.request_id,
                    "lease_id": held.secret.lease_id,
                    "lease_duration": held.secret.lease_duration,
                    "renewable": held.secret.renewable,
                    "data": dict(held.secret.data),
                    "warnings": list(held.secret.warnings),
                },
                "keys": list(held.keys),
                "fetched_at": held.fetched_at + offset,
                "clock": _clock_to_wall(held.clock, offset) if held.clock else None,
                "generation": held.generation,
            }
            for held in handoff.held
        ],
        "learned_lifetimes": [
            {"dependency": _dependency_to_json(dependency), "lifetime": lifetime}
            for dependency, lifetime in handoff.learned_lifetimes
        ],
        "learned_token_lifetime": handoff.learned_token_lifetime,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode(raw: bytes, *, monotonic_to_wall: float) -> Handoff:
    offset = monotonic_to_wall
    try:
        document = json.loads(raw)
        if document.get("version") != FORMAT_VERSION:
            raise HandoffError(f"unsupported handoff version {document.get('version')!r}")
        token = document["token"]
        held_token = HeldToken(
            auth=AuthToken(
                token=str(token["token"]),
                accessor=str(token["accessor"]),
                ttl=int(token["ttl"]),
                renewable=bool(token["renewable"]),
                policies=tuple(token["policies"]),
            ),
            clock=_clock_from_wall(token["clock"], offset),
            generation=int(token["generation"]),
        )
        held: list[Held] = []
        for item in document["held"]:
            category: Category = item["category"]
            secret = item["secret"]
            held.append(
                Held(
                    dependency=_dependency_from_json(item["dependency"]),
                    category=category,
                    secret=Secret(
                        request_id=secret["request_id"],
                        lease_id=secret["lease_id"],
                        lease_duration=int(secret["lease_duration"]),
                        renewable=bool(secret["renewable"]),
                        data=secret["data"],
                        warnings=tuple(secret["warnings"]),
                    ),
                    keys=tuple(item["keys"]),
                    fetched_at=float(item["fetched_at"]) - offset,
                    clock=_clock_from_wall(item["clock"], offset) if item["clock"] else None,
                    generation=int(item["generation"]),
                )
            )
        learned = tuple(
            (_dependency_from_json(entry["dependency"]), float(entry["lifetime"]))
            for entry in document["learned_lifetimes"]
        )
        token_lifetime = document.get("learned_token_lifetime")
        return Handoff(
            token=held_token,
            held=tuple(held),
            learned_lifetimes=learned,
            learned_token_lifetime=float(token_lifetime) if token_lifetime is not None else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, HandoffError):
            raise
        # Name the problem's type only: the document holds a token and secrets.
        raise HandoffError(f"handoff file is malformed ({type(error).__name__})") from None


def monotonic_to_wall_offset(
    wall_now: Callable[[], float] = time.time, now: Callable[[], float] = time.monotonic
) -> float:
    return wall_now() - now()


def save(state_dir: str, handoff: Handoff, *, monotonic_to_wall: float) -> Path:
    path = handoff_path(state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    write_if_changed(path, encode(handoff, monotonic_to_wall=monotonic_to_wall), mode=0o600)
    return path


def take(state_dir: str, *, monotonic_to_wall: float) -> Handoff | None:
    """Read and delete the handoff; None when there is none. A bad file is deleted too."""
    path = handoff_path(state_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return decode(raw, monotonic_to_wall=monotonic_to_wall)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
