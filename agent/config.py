"""AgentConfig: the one contract between the webhook, which writes it, and the agent, which reads.

The webhook serializes an AgentConfig as JSON into the agent containers (environment variable
``VSI_AGENT_CONFIG``, or a file from the pod author's ConfigMap). It never holds a secret: only
addresses, paths, names and timings, so it is safe in a pod spec. ``from_json`` validates the whole
document and reports every problem at once, each naming the field, so a version skew between
webhook and agent or a hand-written ConfigMap fails with a message a human can act on.

The classes are immutable records: each ``__init__`` sets ``Final`` attributes, which mypy
refuses to reassign, and which the webhook's image, where mypyc compiles this module
(setup.COMPILED_MODULES), builds as native structs that refuse assignment at run time (the
webhook builds about ten per admission: ~0.05 us each, against 0.5-1.2 us as frozen
dataclasses). mypyc erases annotations, so what a document may hold is said once more, as data,
in ``SCHEMA`` (the name, kind and whether it is required of every field; defaults come from the
``__init__``s); tests/agent/test_config.py holds the two to each other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, get_args

import orjson

from agent.config_rules import SCHEMA_VERSION, validate

CONFIG_ENV = "VSI_AGENT_CONFIG"
CONFIG_FILE_ENV = "VSI_AGENT_CONFIG_FILE"

DEFAULT_SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
DEFAULT_STATE_DIR = "/home/vault"

AuthMethod = Literal["kubernetes", "jwt"]
TemplateFormat = Literal["map", "json", "env"]
LogFormat = Literal["standard", "json"]
LogLevel = Literal["trace", "debug", "info", "warn", "warning", "error"]

AUTH_METHODS: tuple[str, ...] = get_args(AuthMethod)
TEMPLATE_FORMATS: tuple[str, ...] = get_args(TemplateFormat)
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
# What each level name means to Python's logging; the webhook's settings take the same names.
LOGGING_LEVELS: dict[str, int] = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# The default of a field that is a mapping: immutable, so one object serves every instance.
NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class ConfigError(ValueError):
    """The configuration document is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid agent configuration: " + "; ".join(problems))


class ConfigRecord:
    """Equality, hash and repr by fields, in ``SCHEMA`` order, as a frozen dataclass has them."""

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, item.name) for item in SCHEMA[type(self)])

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ConfigRecord)  # for the type checker: the same class
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{item.name}={getattr(self, item.name)!r}" for item in SCHEMA[type(self)]
        )
        return f"{type(self).__name__}({shown})"


class VaultTLS(ConfigRecord):
    """How the agent verifies Vault and proves itself to it. Paths are in the agent container."""

    def __init__(
        self,
        *,
        ca_cert_file: str | None = None,
        ca_cert_dir: str | None = None,
        ca_cert_pem: str | None = None,
        client_cert_file: str | None = None,
        client_key_file: str | None = None,
        server_name: str | None = None,
        skip_verify: bool = False,
    ) -> None:
        self.ca_cert_file: Final = ca_cert_file
        # vault-k8s calls this `ca-key`, but it is a directory of CA certificates.
        self.ca_cert_dir: Final = ca_cert_dir
        # Cluster-wide CA from AGENT_INJECT_VAULT_CACERT_BYTES: public, so it may travel here.
        self.ca_cert_pem: Final = ca_cert_pem
        self.client_cert_file: Final = client_cert_file
        self.client_key_file: Final = client_key_file
        self.server_name: Final = server_name
        self.skip_verify: Final = skip_verify


class VaultConnection(ConfigRecord):
    def __init__(
        self,
        *,
        address: str,
        namespace: str | None = None,
        proxy_address: str | None = None,
        tls: VaultTLS = VaultTLS(),  # noqa: B008 - immutable, so one default serves all
        timeout_seconds: float = 60.0,
        max_retries: int = 2,
        disable_keep_alives: bool = False,
    ) -> None:
        self.address: Final = address
        self.namespace: Final = namespace
        self.proxy_address: Final = proxy_address
        self.tls: Final = tls
        self.timeout_seconds: Final = timeout_seconds
        self.max_retries: Final = max_retries
        self.disable_keep_alives: Final = disable_keep_alives


class AuthConfig(ConfigRecord):
    def __init__(
        self,
        *,
        role: str,
        method: AuthMethod = "kubernetes",
        mount_path: str = "auth/kubernetes",
        token_file: str = DEFAULT_SA_TOKEN_FILE,
        params: Mapping[str, str] = NO_PARAMS,
        min_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 300.0,
        exit_on_error: bool = False,
    ) -> None:
        self.role: Final = role
        self.method: Final = method
        self.mount_path: Final = mount_path
        # Read afresh at every login, so a rotated projected token is picked up.
        self.token_file: Final = token_file
        # auth-config-<param> annotations, with `-` turned into `_`, passed to the login call.
        self.params: Final = params
        self.min_backoff_seconds: Final = min_backoff_seconds
        self.max_backoff_seconds: Final = max_backoff_seconds
        self.exit_on_error: Final = exit_on_error


class SignalTarget(ConfigRecord):
    """Send ``signal`` to every process in the pod whose command name is ``process_name``."""

    def __init__(self, *, signal: str, process_name: str) -> None:
        self.signal: Final = signal
        self.process_name: Final = process_name


class TemplateConfig(ConfigRecord):
    """One rendered file: agent-inject-secret-<name> and the annotations of the same group."""

    def __init__(
        self,
        *,
        name: str,
        destination: str,
        vault_path: str,
        contents: str | None = None,
        source_file: str | None = None,
        default_format: TemplateFormat = "map",
        left_delimiter: str = "{{",
        right_delimiter: str = "}}",
        error_on_missing_key: bool = False,
        perms: int = 0o640,
        command: str | None = None,
        command_timeout_seconds: float = 30.0,
        signal: SignalTarget | None = None,
    ) -> None:
        self.name: Final = name
        # Absolute path of the rendered file inside the agent containers.
        self.destination: Final = destination
        # Used by the default template; may be empty when contents or source_file is given.
        self.vault_path: Final = vault_path
        # Inline template (agent-inject-template-<name>); wins over source_file.
        self.contents: Final = contents
        # Template file inside the agent container (agent-inject-template-file-<name>).
        self.source_file: Final = source_file
        # Used when neither contents nor source_file is given.
        self.default_format: Final = default_format
        self.left_delimiter: Final = left_delimiter
        self.right_delimiter: Final = right_delimiter
        self.error_on_missing_key: Final = error_on_missing_key
        self.perms: Final = perms
        self.command: Final = command
        self.command_timeout_seconds: Final = command_timeout_seconds
        self.signal: Final = signal


class LifecycleConfig(ConfigRecord):
    def __init__(
        self,
        *,
        revoke_on_shutdown: bool = True,
        revoke_grace_seconds: float = 5.0,
        exit_on_retry_failure: bool = True,
        static_secret_render_interval_seconds: float = 300.0,
        min_remaining_fraction: float = 1.0 / 3.0,
        init_timeout_seconds: float = 120.0,
    ) -> None:
        self.revoke_on_shutdown: Final = revoke_on_shutdown
        self.revoke_grace_seconds: Final = revoke_grace_seconds
        self.exit_on_retry_failure: Final = exit_on_retry_failure
        self.static_secret_render_interval_seconds: Final = static_secret_render_interval_seconds
        # Credentials on disk keep at least this fraction of their lifetime: renew or re-issue
        # earlier.
        self.min_remaining_fraction: Final = min_remaining_fraction
        # Init mode gives up (exit non-zero) when a secret cannot be had within this time.
        self.init_timeout_seconds: Final = init_timeout_seconds


class PodIdentity(ConfigRecord):
    """Who the agent works for; only for audit lines. Name and uid may be unknown at admission
    (generateName), so the agent also reads POD_NAME from the downward API."""

    def __init__(
        self, *, namespace: str, service_account: str, name: str = "", uid: str = ""
    ) -> None:
        self.namespace: Final = namespace
        self.service_account: Final = service_account
        self.name: Final = name
        self.uid: Final = uid


class AgentConfig(ConfigRecord):
    def __init__(
        self,
        *,
        vault: VaultConnection,
        auth: AuthConfig,
        pod: PodIdentity,
        templates: tuple[TemplateConfig, ...] = (),
        lifecycle: LifecycleConfig = LifecycleConfig(),  # noqa: B008 - immutable, shared
        state_dir: str = DEFAULT_STATE_DIR,
        handoff: bool = True,
        token_sink: str | None = None,
        readiness_file: str | None = None,
        log_level: LogLevel = "info",
        log_format: LogFormat = "json",
        metrics_address: str | None = None,
        version: int = SCHEMA_VERSION,
    ) -> None:
        self.vault: Final = vault
        self.auth: Final = auth
        self.pod: Final = pod
        self.templates: Final = templates
        self.lifecycle: Final = lifecycle
        # Agent-private memory volume: token handoff from init to sidecar, never in app
        # containers.
        self.state_dir: Final = state_dir
        # Whether init mode hands its token and leases to a sidecar; false when none follows
        # (pre-populate-only), so no token is left on disk for nobody to adopt.
        self.handoff: Final = handoff
        # agent-inject-token: where to write the agent's Vault token for the app, if at all.
        self.token_sink: Final = token_sink
        # Native sidecar: created after the first complete render; the startup probe checks it.
        self.readiness_file: Final = readiness_file
        self.log_level: Final = log_level
        self.log_format: Final = log_format
        # Prometheus metrics on this host:port (localhost only); None turns them off.
        self.metrics_address: Final = metrics_address
        self.version: Final = version

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults included, as ``dataclasses.asdict`` writes it."""
        written = to_dict(self)
        assert isinstance(written, dict)  # a record is written as a dict
        return written

    def to_json(self) -> str:
        """Deterministic compact JSON of what differs from the defaults: the same config always
        yields the same bytes (and patch), and a pod spec carries what was chosen for it, not
        a page of defaults (the config is in two containers of every injected pod, so this
        halves the patch). ``from_json`` puts the defaults back. A default is part of the
        schema: changing one needs a new SCHEMA_VERSION, which is always written."""
        try:
            written = orjson.dumps(self, default=json_object, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            # What orjson refuses (integers beyond 64 bits, lone surrogates) json still writes.
            return _CONFIG_ENCODER.encode(self)
        # orjson writes NaN and infinities as null; json keeps them (as the agent reads them
        # back). A config the webhook makes has neither, and rarely a null at all.
        if b"null" in written:
            return _CONFIG_ENCODER.encode(self)
        return written.decode()

    @classmethod
    def from_dict(cls, data: Any) -> AgentConfig:
        problems: list[str] = []
        config = Record(AgentConfig).read(data, "config", problems)
        if isinstance(config, AgentConfig):
            problems.extend(validate(config))
        if problems or not isinstance(config, AgentConfig):
            raise ConfigError(problems or ["config: not an object"])
        return config

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            # The message of a JSONDecodeError quotes no document text, only a position.
            raise ConfigError(
                [f"config: not valid JSON ({error.msg} at line {error.lineno})"]
            ) from None
        return cls.from_dict(data)


# What a document may hold: how each field is read from JSON, with the problem it names when
# the value is not of its kind. Every read is total: it records problems and never raises.


class Kind:
    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        raise NotImplementedError


class Text(Kind):
    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string")
            return ""
        return value


class Flag(Kind):
    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false")
        return value


class Integer(Kind):
    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: expected an integer")
            return 0
        return value


class Number(Kind):
    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{where}: expected a number")
            return 0.0
        return float(value)


class Choice(Kind):
    def __init__(self, options: tuple[str, ...]) -> None:
        self.options: Final = options

    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if value not in self.options:
            problems.append(f"{where}: {value!r} is not one of {', '.join(self.options)}")
        return value


class TextMap(Kind):
    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(item, str) for key, item in value.items()
        ):
            problems.append(f"{where}: expected an object of strings")
            return {}
        return dict(value)


class Maybe(Kind):
    """``inner``, or null."""

    def __init__(self, inner: Kind) -> None:
        self.inner: Final = inner

    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        return None if value is None else self.inner.read(value, where, problems)


class Record(Kind):
    """One of the classes of ``SCHEMA``, as an object."""

    def __init__(self, record: type[ConfigRecord]) -> None:
        self.record: Final = record

    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object")
            return None
        fields = SCHEMA[self.record]
        known = {item.name for item in fields}
        for unknown in sorted(key for key in value if key not in known):
            problems.append(f"{where}.{unknown}: unknown field")
        arguments: dict[str, Any] = {}
        before = len(problems)
        for item in fields:
            if item.name in value:
                arguments[item.name] = item.kind.read(
                    value[item.name], f"{where}.{item.name}", problems
                )
            elif item.required:
                problems.append(f"{where}.{item.name}: required")
        if len(problems) > before:
            return None
        return self.record(**arguments)


class Records(Kind):
    """A list of ``record`` objects; a tuple in the configuration."""

    def __init__(self, record: type[ConfigRecord]) -> None:
        self.record: Final = record

    def read(self, value: Any, where: str, problems: list[str]) -> Any:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list")
            return ()
        one = Record(self.record)
        return tuple(
            one.read(item, f"{where}[{index}]", problems) for index, item in enumerate(value)
        )


class Field:
    def __init__(self, name: str, kind: Kind, *, required: bool = False) -> None:
        self.name: Final = name
        self.kind: Final = kind
        self.required: Final = required


TEXT: Final = Text()
FLAG: Final = Flag()
INTEGER: Final = Integer()
NUMBER: Final = Number()
MAYBE_TEXT: Final = Maybe(TEXT)

# Every class's fields in ``__init__`` order.
SCHEMA: Final[dict[type[ConfigRecord], tuple[Field, ...]]] = {
    VaultTLS: (
        Field("ca_cert_file", MAYBE_TEXT),
        Field("ca_cert_dir", MAYBE_TEXT),
        Field("ca_cert_pem", MAYBE_TEXT),
        Field("client_cert_file", MAYBE_TEXT),
        Field("client_key_file", MAYBE_TEXT),
        Field("server_name", MAYBE_TEXT),
        Field("skip_verify", FLAG),
    ),
    VaultConnection: (
        Field("address", TEXT, required=True),
        Field("namespace", MAYBE_TEXT),
        Field("proxy_address", MAYBE_TEXT),
        Field("tls", Record(VaultTLS)),
        Field("timeout_seconds", NUMBER),
        Field("max_retries", INTEGER),
        Field("disable_keep_alives", FLAG),
    ),
    AuthConfig: (
        Field("role", TEXT, required=True),
        Field("method", Choice(AUTH_METHODS)),
        Field("mount_path", TEXT),
        Field("token_file", TEXT),
        Field("params", TextMap()),
        Field("min_backoff_seconds", NUMBER),
        Field("max_backoff_seconds", NUMBER),
        Field("exit_on_error", FLAG),
    ),
    SignalTarget: (
        Field("signal", TEXT, required=True),
        Field("process_name", TEXT, required=True),
    ),
    TemplateConfig: (
        Field("name", TEXT, required=True),
        Field("destination", TEXT, required=True),
        Field("vault_path", TEXT, required=True),
        Field("contents", MAYBE_TEXT),
        Field("source_file", MAYBE_TEXT),
        Field("default_format", Choice(TEMPLATE_FORMATS)),
        Field("left_delimiter", TEXT),
        Field("right_delimiter", TEXT),
        Field("error_on_missing_key", FLAG),
        Field("perms", INTEGER),
        Field("command", MAYBE_TEXT),
        Field("command_timeout_seconds", NUMBER),
        Field("signal", Maybe(Record(SignalTarget))),
    ),
    LifecycleConfig: (
        Field("revoke_on_shutdown", FLAG),
        Field("revoke_grace_seconds", NUMBER),
        Field("exit_on_retry_failure", FLAG),
        Field("static_secret_render_interval_seconds", NUMBER),
        Field("min_remaining_fraction", NUMBER),
        Field("init_timeout_seconds", NUMBER),
    ),
    PodIdentity: (
        Field("namespace", TEXT, required=True),
        Field("service_account", TEXT, required=True),
        Field("name", TEXT),
        Field("uid", TEXT),
    ),
    AgentConfig: (
        Field("vault", Record(VaultConnection), required=True),
        Field("auth", Record(AuthConfig), required=True),
        Field("pod", Record(PodIdentity), required=True),
        Field("templates", Records(TemplateConfig)),
        Field("lifecycle", Record(LifecycleConfig)),
        Field("state_dir", TEXT),
        Field("handoff", FLAG),
        Field("token_sink", MAYBE_TEXT),
        Field("readiness_file", MAYBE_TEXT),
        Field("log_level", Choice(LOG_LEVELS)),
        Field("log_format", Choice(LOG_FORMATS)),
        Field("metrics_address", MAYBE_TEXT),
        Field("version", INTEGER),
    ),
}
CONFIG_CLASSES: tuple[type[ConfigRecord], ...] = tuple(SCHEMA)


_R = TypeVar("_R", bound=ConfigRecord)

# Marks a field to_json always writes: required ones, and the schema version.
_ALWAYS: Final = object()
_WRITTEN: dict[type, tuple[tuple[str, Any], ...]] = {}


def minimal(record: type[_R]) -> _R:
    """``record`` with its required fields empty ("", or a minimal record) and every other at
    its default: how the defaults are found (``__init__`` says them, mypyc keeps no signature)."""
    arguments: dict[str, Any] = {}
    for item in SCHEMA[record]:
        if item.required:
            kind = item.kind
            arguments[item.name] = minimal(kind.record) if isinstance(kind, Record) else ""
    return record(**arguments)


def defaults(record: type[ConfigRecord]) -> dict[str, Any]:
    """Each field that has a default, and its default."""
    made = minimal(record)
    return {item.name: getattr(made, item.name) for item in SCHEMA[record] if not item.required}


def _written_fields(record: type) -> tuple[tuple[str, Any], ...]:
    """(name, default or _ALWAYS) of a record's fields, found once per class: the webhook
    serializes a configuration in every pod creation."""
    known = _WRITTEN.get(record)
    if known is None:
        found = defaults(record)
        known = _WRITTEN[record] = tuple(
            (item.name, _ALWAYS if item.name == "version" else found.get(item.name, _ALWAYS))
            for item in SCHEMA[record]
        )
    return known


def json_object(value: Any) -> Any:
    """The encoders' ``default`` hook: a record as a dict of the fields that differ from their
    defaults, any other Mapping as a dict. Nothing is copied: the encoder does the rest."""
    if isinstance(value, ConfigRecord):
        sparse = {}
        for name, default in _written_fields(type(value)):
            field_value = getattr(value, name)
            # Identity first: a default shared by reference (settings cached across pods).
            if default is _ALWAYS or (field_value is not default and field_value != default):
                sparse[name] = field_value
        return sparse
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_dict(value: Any) -> Any:
    """Records as dicts of every field, mappings as dicts, tuples kept (``dataclasses.asdict``)."""
    if isinstance(value, ConfigRecord):
        return {item.name: to_dict(getattr(value, item.name)) for item in SCHEMA[type(value)]}
    if isinstance(value, tuple):
        return tuple(to_dict(item) for item in value)
    if isinstance(value, Mapping):
        return {key: to_dict(item) for key, item in value.items()}
    return value


def replace(record: _R, **changes: Any) -> _R:
    """A copy of ``record`` with ``changes`` (``dataclasses.replace``)."""
    fields = SCHEMA[type(record)]
    unknown = set(changes) - {item.name for item in fields}
    if unknown:
        raise TypeError(f"{type(record).__name__} has no field {', '.join(sorted(unknown))}")
    values = {item.name: getattr(record, item.name) for item in fields}
    return type(record)(**{**values, **changes})


# A configuration is a tree of immutable values built bottom up, so it cannot be circular.
_CONFIG_ENCODER = json.JSONEncoder(
    default=json_object, sort_keys=True, separators=(",", ":"), check_circular=False
)
