"""AgentConfig: round trip, defaults, and every kind of invalid document named by field."""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

import pytest

from agent.config import (
    CONFIG_CLASSES,
    AgentConfig,
    AuthConfig,
    ConfigError,
    PodIdentity,
    SignalTarget,
    TemplateConfig,
    VaultConnection,
    VaultTLS,
)


def sample_config() -> AgentConfig:
    return AgentConfig(
        vault=VaultConnection(
            address="https://vault.vault.svc:8200",
            tls=VaultTLS(ca_cert_file="/vault/tls/ca.crt", server_name="vault"),
        ),
        auth=AuthConfig(role="app", params={"token_path": "/var/run/secrets/vault/token"}),
        pod=PodIdentity(namespace="shop", service_account="orders"),
        templates=(
            TemplateConfig(
                name="db",
                destination="/vault/secrets/db",
                vault_path="database/creds/orders",
                contents='{{ with secret "database/creds/orders" }}{{ .Data.username }}{{ end }}',
                perms=0o600,
                signal=SignalTarget(signal="SIGHUP", process_name="nginx"),
            ),
        ),
    )


def _config_objects(value: Any) -> list[Any]:
    """Every configuration object in the tree under ``value``, ``value`` first."""
    if isinstance(value, tuple):
        return [found for item in value for found in _config_objects(item)]
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return []
    found = [value]
    for item in dataclasses.fields(value):
        found += _config_objects(getattr(value, item.name))
    return found


def test_the_sample_holds_every_configuration_class() -> None:
    assert {type(value) for value in _config_objects(sample_config())} == set(CONFIG_CLASSES)


@pytest.mark.parametrize(
    "value", _config_objects(sample_config()), ids=lambda value: type(value).__name__
)
def test_construction_is_that_of_a_frozen_dataclass(value: Any) -> None:
    """agent.config gives the classes an __init__ of its own (faster); it takes and sets what
    the one dataclasses writes would."""
    cls = type(value)
    fields = dataclasses.fields(cls)
    # A reference class from the same fields, with the __init__ dataclasses writes.
    reference = dataclasses.make_dataclass(
        cls.__name__,
        [(item.name, item.type, item) for item in fields],
        frozen=True,
    )
    ours = inspect.signature(cls).parameters
    theirs = inspect.signature(reference).parameters
    assert [(p.name, p.kind, p.default is p.empty) for p in ours.values()] == [
        (p.name, p.kind, p.default is p.empty) for p in theirs.values()
    ]
    every = [getattr(value, item.name) for item in fields]
    assert cls(*every) == value
    assert vars(cls(*every)) == vars(reference(*every))
    required = {
        item.name: getattr(value, item.name)
        for item in fields
        if ours[item.name].default is ours[item.name].empty
    }
    assert vars(cls(**required)) == vars(reference(**required))
    for item in fields:
        if item.default_factory is not dataclasses.MISSING:
            # A fresh default each time, as the factory makes it.
            assert getattr(cls(**required), item.name) is not getattr(cls(**required), item.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.__setattr__(fields[0].name, every[0])


def test_round_trip_preserves_every_field() -> None:
    config = sample_config()
    assert AgentConfig.from_json(config.to_json()) == config


def test_json_is_deterministic_and_compact() -> None:
    assert sample_config().to_json() == sample_config().to_json()
    assert " " not in sample_config().to_json().split('"contents"')[0]


def test_json_leaves_out_defaults_but_always_names_the_schema_version() -> None:
    minimal = AgentConfig(
        vault=VaultConnection(address="https://vault:8200"),
        auth=AuthConfig(role="app"),
        pod=PodIdentity(namespace="shop", service_account="app"),
    )
    assert json.loads(minimal.to_json()) == {
        "auth": {"role": "app"},
        "pod": {"namespace": "shop", "service_account": "app"},
        "vault": {"address": "https://vault:8200"},
        "version": 1,
    }
    assert AgentConfig.from_json(minimal.to_json()) == minimal


def test_defaults_fill_what_the_document_leaves_out() -> None:
    config = AgentConfig.from_dict(
        {
            "vault": {"address": "http://127.0.0.1:8200"},
            "auth": {"role": "app"},
            "pod": {"namespace": "default", "service_account": "default"},
        }
    )
    assert config.auth.method == "kubernetes"
    assert config.auth.mount_path == "auth/kubernetes"
    assert config.lifecycle.revoke_on_shutdown is True
    assert config.lifecycle.static_secret_render_interval_seconds == 300.0
    assert config.templates == ()


def _full_document() -> dict[str, Any]:
    """sample_config with every field written (to_json leaves defaults out)."""
    document: dict[str, Any] = json.loads(json.dumps(sample_config().to_dict()))
    return document


def _with(path: str, value: Any) -> dict[str, Any]:
    document: dict[str, Any] = _full_document()
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return document


@pytest.mark.parametrize(
    ("document", "expected_problem"),
    [
        pytest.param(
            _with("vault.address", "vault:8200"),
            "vault.address: must start with http",
            id="an address without a scheme is refused",
        ),
        pytest.param(
            _with("auth.method", "ldap"),
            "config.auth.method: 'ldap' is not one of kubernetes, jwt",
            id="an unknown auth method is named",
        ),
        pytest.param(_with("auth.role", ""), "auth.role: required", id="a missing role is refused"),
        pytest.param(
            _with("templates.0.perms", "0600"),
            "config.templates[0].perms: expected an integer",
            id="perms must be a number",
        ),
        pytest.param(
            _with("templates.0.perms", 0o1777),
            "templates[0].perms: must be a file mode",
            id="perms beyond 0777 are refused",
        ),
        pytest.param(
            _with("templates.0.destination", "/vault/../etc/passwd"),
            "templates[0].destination: must be an absolute path without '..'",
            id="a destination escaping its directory is refused",
        ),
        pytest.param(
            _with("templates.0.error_on_missing_key", "yes"),
            "config.templates[0].error_on_missing_key: expected true or false",
            id="booleans are strict",
        ),
        pytest.param(
            _with("lifecycle", {"min_remaining_fraction": 1.5}),
            "lifecycle.min_remaining_fraction: must be between 0 and 1",
            id="a remaining fraction above one is refused",
        ),
        pytest.param(
            _with("vault.colour", "blue"),
            "config.vault.colour: unknown field",
            id="unknown fields are named",
        ),
        pytest.param(
            _with("version", 2), "version: 2 is not supported", id="a newer schema is refused"
        ),
    ],
)
def test_invalid_documents_name_the_field(document: dict[str, Any], expected_problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        AgentConfig.from_dict(document)
    assert any(expected_problem in problem for problem in raised.value.problems), (
        raised.value.problems
    )


def test_every_problem_is_reported_at_once() -> None:
    document = _with("auth.method", "ldap")
    document["vault"]["timeout_seconds"] = "slow"
    document["pod"] = {"namespace": "x"}
    with pytest.raises(ConfigError) as raised:
        AgentConfig.from_dict(document)
    assert len(raised.value.problems) == 3, raised.value.problems


def test_two_templates_with_one_destination_are_refused() -> None:
    document = _full_document()
    document["templates"].append(dict(document["templates"][0], name="db2"))
    with pytest.raises(ConfigError, match="is used twice"):
        AgentConfig.from_dict(document)


def test_malformed_json_is_reported_without_echoing_the_document() -> None:
    with pytest.raises(ConfigError) as raised:
        AgentConfig.from_json('{"vault": {"address": "s3cr3t-value"')
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("path", "value", "expected_problem"),
    [
        pytest.param(
            "templates.0.signal",
            {"signal": "SIGKILL", "process_name": "nginx"},
            "templates[0].signal.signal: 'SIGKILL' is not one of",
            id="an unsupported signal is named",
        ),
        pytest.param(
            "templates.0.command",
            "reload 'unclosed",
            "templates[0].command: cannot be split",
            id="a command with an open quote is refused",
        ),
        pytest.param(
            "templates.0.destination",
            "/home/vault/handoff.json",
            "must not be in state_dir",
            id="a file in the agent's private volume is refused",
        ),
        pytest.param(
            "metrics_address",
            "0.0.0.0:9102",
            "only loopback addresses",
            id="metrics off loopback are refused at load",
        ),
        pytest.param(
            "vault.tls",
            {"client_key_file": "/vault/tls/client.key"},
            "client_cert_file and client_key_file go together",
            id="a client key needs its cert",
        ),
    ],
)
def test_settings_that_would_fail_later_are_refused_at_load(
    path: str, value: Any, expected_problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        AgentConfig.from_dict(_with(path, value))
    assert any(expected_problem in problem for problem in raised.value.problems), (
        raised.value.problems
    )
