"""Loading the Go-oracle corpus: cases/<topic>.json and the golden results Go produced."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.templates import JsonNumber, Secret

CASES_DIR = Path(__file__).parent / "cases"


def _as_float64(value: Any) -> Any:
    if isinstance(value, JsonNumber):
        return float(value)
    if isinstance(value, dict):
        return {key: _as_float64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_float64(item) for item in value]
    return value


def decode_with_numbers(text: str) -> Any:
    """json.Decoder.UseNumber: every number kept as its literal text."""
    return json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber)


@dataclass(frozen=True)
class Case:
    topic: str
    id: str
    template: str
    data: Any
    secrets: Mapping[str, Secret]
    name: str = "case"
    left: str = "{{"
    right: str = "}}"
    missing_key_error: bool = False
    redacted: tuple[str, ...] = ()
    expected: Mapping[str, str] = field(default_factory=dict)
    deviation: Mapping[str, str] | None = None
    note: str = ""


def _secret(raw: Mapping[str, Any]) -> Secret:
    return Secret(
        request_id=raw.get("request_id", ""),
        lease_id=raw.get("lease_id", ""),
        lease_duration=int(raw.get("lease_duration", 0)),
        renewable=bool(raw.get("renewable", False)),
        data=raw.get("data") or {},
        warnings=tuple(raw.get("warnings") or ()),
    )


def _case(topic: str, raw: Mapping[str, Any], golden: Mapping[str, Any]) -> Case:
    template = raw["template"]
    if isinstance(template, list):
        template = "\n".join(template)
    # data_json keeps number literals exactly as written (1.50 stays 1.50).
    data = decode_with_numbers(raw["data_json"]) if "data_json" in raw else raw.get("data")
    if raw.get("numbers") == "float64":
        data = _as_float64(data)
    return Case(
        topic=topic,
        id=raw["id"],
        template=template,
        data=data,
        secrets={path: _secret(secret) for path, secret in raw.get("secrets", {}).items()},
        name=raw.get("name") or "case",
        left=raw.get("left") or "{{",
        right=raw.get("right") or "}}",
        missing_key_error=raw.get("missingkey") == "error",
        redacted=tuple(raw.get("redacted", ())),
        expected=golden[raw["id"]],
        deviation=raw.get("deviation"),
        note=raw.get("note", ""),
    )


def load_cases() -> list[Case]:
    cases = []
    for case_file in sorted(CASES_DIR.glob("*.json")):
        if case_file.name.endswith(".golden.json"):
            continue
        topic = case_file.stem
        golden = json.loads(case_file.with_suffix(".golden.json").read_text())
        for raw in decode_with_numbers(case_file.read_text()):
            cases.append(_case(topic, raw, golden))
    return cases


def redact(message: str, values: tuple[str, ...]) -> str:
    """Go's message with the values it prints replaced as the engine replaces them."""
    if not values:
        return message
    prefix, marker, rest = message.partition(">: ")
    if not marker:
        prefix, rest = "", message
    for value in values:
        rest = rest.replace(value, "[redacted]")
    return prefix + marker + rest


class CaseBackend:
    """Serves a case's secrets; the engine never talks to Vault."""

    def __init__(self, secrets: Mapping[str, Secret]) -> None:
        self._secrets = secrets
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def secret(self, path: str, params: Mapping[str, str]) -> Secret:
        self.calls.append(("secret", path, dict(params)))
        return self._secrets[path]

    def secrets(self, path: str) -> list[str]:
        self.calls.append(("secrets", path, {}))
        return sorted(name for name in self._secrets if name.startswith(path + "/"))

    def pki_cert(self, path: str, params: Mapping[str, str]) -> Secret:
        self.calls.append(("pkiCert", path, dict(params)))
        return self._secrets[path]
