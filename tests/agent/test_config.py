"""AgentConfig: round trip, defaults, and every kind of invalid document named by field."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any, Literal, get_type_hints

import pytest

import agent.config
from agent.config import (
    CONFIG_CLASSES,
    SCHEMA,
    AgentConfig,
    AuthConfig,
    Choice,
    ConfigError,
    ConfigRecord,
    Flag,
    Integer,
    Kind,
    Maybe,
    Number,
    PodIdentity,
    Record,
    Records,
    SignalTarget,
    TemplateConfig,
    Text,
    TextMap,
    VaultConnection,
    VaultTLS,
    defaults,
    replace,
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
    if not isinstance(value, ConfigRecord):
        return []
    found = [value]
    for field in SCHEMA[type(value)]:
        found += _config_objects(getattr(value, field.name))
    return found


def test_the_sample_holds_every_configuration_class() -> None:
    assert {type(value) for value in _config_objects(sample_config())} == set(CONFIG_CLASSES)


def _hint_of(kind: Kind) -> Any:
    """The annotation a field read as ``kind`` must have in its class's ``__init__``."""
    if isinstance(kind, Maybe):
        return _hint_of(kind.inner) | None
    if isinstance(kind, Record):
        return kind.record
    if isinstance(kind, Records):
        return tuple[kind.record, ...]  # type: ignore[name-defined]
    if isinstance(kind, Choice):
        return Literal[kind.options]
    if isinstance(kind, TextMap):
        return Mapping[str, str]
    return {Text: str, Flag: bool, Integer: int, Number: float}[type(kind)]


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda cls: cls.__name__)
def test_the_schema_says_what_each_init_takes(cls: type[ConfigRecord]) -> None:
    """SCHEMA repeats, as data the compiled module keeps, what each __init__ says in its
    signature: the same names in the same order, required where there is no default, and a
    kind that reads what the annotation names. Checked on the source: mypyc keeps neither
    annotations nor (for these defaults) a signature."""
    if agent.config.__file__ is None or not agent.config.__file__.endswith(".py"):
        pytest.skip("compiled build: no signature to compare; the pure pass checks the source")
    parameters = inspect.signature(cls).parameters
    hints = get_type_hints(cls.__init__)
    assert [field.name for field in SCHEMA[cls]] == list(parameters)
    for field in SCHEMA[cls]:
        parameter = parameters[field.name]
        assert parameter.kind is parameter.KEYWORD_ONLY, field.name
        assert field.required == (parameter.default is parameter.empty), field.name
        assert _hint_of(field.kind) == hints[field.name], field.name
        if not field.required:
            assert defaults(cls)[field.name] == parameter.default, field.name


@pytest.mark.parametrize(
    "value", _config_objects(sample_config()), ids=lambda value: type(value).__name__
)
def test_a_record_is_a_value(value: ConfigRecord) -> None:
    """Equal by fields, hashable when its fields are, and never changed in place: mypy refuses
    assignment to the Final attributes; the compiled build refuses it at run time too."""
    cls = type(value)
    every = {field.name: getattr(value, field.name) for field in SCHEMA[cls]}
    again = cls(**every)
    assert again == value
    assert again is not value
    assert replace(value) == value
    # A field of text or a flag: a change of the same type (the compiled __init__ checks types).
    first, old = next(
        (field.name, every[field.name])
        for field in SCHEMA[cls]
        if isinstance(every[field.name], str | bool)
    )
    new = (not old) if isinstance(old, bool) else old + "-other"
    changed = replace(value, **{first: new})
    assert changed != value
    assert getattr(changed, first) == new
    assert getattr(value, first) == old
    assert repr(value).startswith(f"{cls.__name__}({SCHEMA[cls][0].name}=")
    if not any(isinstance(item, Mapping) for item in _values_under(value)):
        assert hash(again) == hash(value)
    if not agent.config.__file__ or agent.config.__file__.endswith(".py"):
        return  # pure Python: Final is enforced by mypy --strict, not at run time
    with pytest.raises(AttributeError):
        setattr(value, first, old)


def _values_under(value: Any) -> list[Any]:
    if isinstance(value, tuple):
        return [found for item in value for found in _values_under(item)]
    if isinstance(value, ConfigRecord):
        return [
            found for f in SCHEMA[type(value)] for found in _values_under(getattr(value, f.name))
        ]
    return [value]


def test_replace_names_a_field_that_does_not_exist() -> None:
    with pytest.raises(TypeError, match="no field colour"):
        replace(sample_config(), colour="blue")


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


@pytest.mark.parametrize(
    ("state_dir", "destination", "refused"),
    [
        ("/home/vault", "/home/vault/secret", True),
        ("/home/vault/", "/home/vault/secret", True),
        ("/home/vault", "/home/vaulted/secret", False),
        ("/", "/vault/secrets/db", True),
    ],
)
def test_a_destination_inside_the_state_dir_is_refused_however_the_dir_is_written(
    state_dir: str, destination: str, refused: bool
) -> None:
    document = _with("state_dir", state_dir)
    document["templates"][0]["destination"] = destination
    if not refused:
        assert AgentConfig.from_dict(document).state_dir == state_dir
        return
    with pytest.raises(ConfigError, match="must not be in state_dir"):
        AgentConfig.from_dict(document)
