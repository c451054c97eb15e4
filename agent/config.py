"""AgentConfig: the one contract between the webhook, which writes it, and the agent, which reads.

The webhook serializes an AgentConfig as JSON into the agent containers (environment variable
``VSI_AGENT_CONFIG``, or a file from the pod author's ConfigMap). It never holds a secret: only
addresses, paths, names and timings, so it is safe in a pod spec. ``from_json`` validates the whole
document and reports every problem at once, each naming the field, so a version skew between
webhook and agent or a hand-written ConfigMap fails with a message a human can act on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import orjson

from agent.config_rules import SCHEMA_VERSION, json_object, validate

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


class ConfigError(ValueError):
    """The configuration document is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid agent configuration: " + "; ".join(problems))


@dataclass(frozen=True)
class VaultTLS:
    """How the agent verifies Vault and proves itself to it. Paths are in the agent container."""

    ca_cert_file: str | None = None
    # vault-k8s calls this `ca-key`, but it is a directory of CA certificates.
    ca_cert_dir: str | None = None
    # Cluster-wide CA from AGENT_INJECT_VAULT_CACERT_BYTES: public, so it may travel in the config.
    ca_cert_pem: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    server_name: str | None = None
    skip_verify: bool = False


@dataclass(frozen=True)
class VaultConnection:
    address: str
    namespace: str | None = None
    proxy_address: str | None = None
    tls: VaultTLS = field(default_factory=VaultTLS)
    timeout_seconds: float = 60.0
    max_retries: int = 2
    disable_keep_alives: bool = False


@dataclass(frozen=True)
class AuthConfig:
    role: str
    method: AuthMethod = "kubernetes"
    mount_path: str = "auth/kubernetes"
    # Read afresh at every login, so a rotated projected token is picked up.
    token_file: str = DEFAULT_SA_TOKEN_FILE
    # auth-config-<param> annotations, with `-` turned into `_`, passed to the login call.
    params: Mapping[str, str] = field(default_factory=dict)
    min_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    exit_on_error: bool = False


@dataclass(frozen=True)
class SignalTarget:
    """Send ``signal`` to every process in the pod whose command name is ``process_name``."""

    signal: str
    process_name: str


@dataclass(frozen=True)
class TemplateConfig:
    """One rendered file: agent-inject-secret-<name> and the annotations of the same group."""

    name: str
    # Absolute path of the rendered file inside the agent containers.
    destination: str
    # Used by the default template; may be empty when contents or source_file is given.
    vault_path: str
    # Inline template (agent-inject-template-<name>); wins over source_file.
    contents: str | None = None
    # Template file inside the agent container (agent-inject-template-file-<name>).
    source_file: str | None = None
    # Used when neither contents nor source_file is given.
    default_format: TemplateFormat = "map"
    left_delimiter: str = "{{"
    right_delimiter: str = "}}"
    error_on_missing_key: bool = False
    perms: int = 0o640
    command: str | None = None
    command_timeout_seconds: float = 30.0
    signal: SignalTarget | None = None


@dataclass(frozen=True)
class LifecycleConfig:
    revoke_on_shutdown: bool = True
    revoke_grace_seconds: float = 5.0
    exit_on_retry_failure: bool = True
    static_secret_render_interval_seconds: float = 300.0
    # Credentials on disk keep at least this fraction of their lifetime: renew or re-issue earlier.
    min_remaining_fraction: float = 1.0 / 3.0
    # Init mode gives up (exit non-zero) when a secret cannot be had within this time.
    init_timeout_seconds: float = 120.0


@dataclass(frozen=True)
class PodIdentity:
    """Who the agent works for; only for audit lines. Name and uid may be unknown at admission
    (generateName), so the agent also reads POD_NAME from the downward API."""

    namespace: str
    service_account: str
    name: str = ""
    uid: str = ""


@dataclass(frozen=True)
class AgentConfig:
    vault: VaultConnection
    auth: AuthConfig
    pod: PodIdentity
    templates: tuple[TemplateConfig, ...] = ()
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    # Agent-private memory volume: token handoff from init to sidecar, never in app containers.
    state_dir: str = DEFAULT_STATE_DIR
    # Whether init mode hands its token and leases to a sidecar; false when none follows
    # (pre-populate-only), so no token is left on disk for nobody to adopt.
    handoff: bool = True
    # agent-inject-token: where to write the agent's Vault token for the app, if at all.
    token_sink: str | None = None
    # Native sidecar: created after the first complete render; the startup probe checks it.
    readiness_file: str | None = None
    log_level: LogLevel = "info"
    log_format: LogFormat = "json"
    # Prometheus metrics on this host:port (localhost only); None turns them off.
    metrics_address: str | None = None
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults included."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Deterministic compact JSON of what differs from the defaults: the same config always
        yields the same bytes (and patch), and a pod spec carries what was chosen for it, not
        a page of defaults (the config is in two containers of every injected pod, so this
        halves the patch). ``from_json`` puts the defaults back. A default is part of the
        schema: changing one needs a new SCHEMA_VERSION, which is always written."""
        try:
            written = orjson.dumps(self, default=json_object, option=_ORJSON_OPTIONS)
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
        config = _build(cls, data, "config", problems)
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


def _fill_dict_init(cls: type) -> None:
    """Give a frozen dataclass an ``__init__`` that fills the instance dict directly.

    The one dataclasses writes sets each field through ``object.__setattr__`` (what frozen
    costs: 1.2 us for a TemplateConfig against 0.5 us this way), and the webhook builds about ten
    of these per admission. Same parameters, defaults and default factories, in the same order,
    and the instances are the same: only construction changes; assignment still raises
    FrozenInstanceError. The source is generated from the fields, as dataclasses does it."""
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    parameters = []
    lines = ["    values = self.__dict__"]
    for item in dataclasses.fields(cls):
        name = item.name
        if not item.init or item.kw_only:
            raise TypeError(f"{cls.__name__}.{name}: init=False and kw_only are not handled")
        if item.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = item.default
            parameters.append(f"{name}=_default_{name}")
            lines.append(f"    values[{name!r}] = {name}")
        elif item.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = item.default_factory
            parameters.append(f"{name}=_MISSING")
            lines.append(
                f"    values[{name!r}] = _factory_{name}() if {name} is _MISSING else {name}"
            )
        else:
            parameters.append(name)
            lines.append(f"    values[{name!r}] = {name}")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(lines) + "\n"
    exec(source, namespace)  # noqa: S102 - source made above from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    type.__setattr__(cls, "__init__", init)


# Every dataclass defined above, found rather than listed, so that a class added later gets the
# same __init__ (and tests/agent/test_config.py asks for it in its sample configuration).
CONFIG_CLASSES: tuple[type, ...] = tuple(
    value
    for value in list(globals().values())
    if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == __name__
)
for _config_class in CONFIG_CLASSES:
    _fill_dict_init(_config_class)


_T = TypeVar("_T")

# The encoder walks the whole configuration and calls back only for the dataclasses (orjson
# would write every field of one itself; PASSTHROUGH hands them to json_object). orjson is
# the webhook's path, several times faster than json for the config it writes into every
# injected pod; both write the same JSON values, orjson non-ASCII text as UTF-8, not escapes.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_SORT_KEYS
# A configuration is a tree of frozen values built bottom up, so it cannot be circular.
_CONFIG_ENCODER = json.JSONEncoder(
    default=json_object, sort_keys=True, separators=(",", ":"), check_circular=False
)


def _build(expected: Any, value: Any, where: str, problems: list[str]) -> Any:
    """Convert decoded JSON to ``expected`` (a type hint), appending problems; never raises."""
    origin = get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = get_args(expected)
        if value is None and type(None) in options:
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _build(inner, value, where, problems)
    if origin is Literal:
        allowed = get_args(expected)
        if value not in allowed:
            problems.append(f"{where}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is tuple:
        (item_type, _ellipsis) = get_args(expected)
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list")
            return ()
        return tuple(
            _build(item_type, item, f"{where}[{index}]", problems)
            for index, item in enumerate(value)
        )
    if origin in (Mapping, dict):
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(item, str) for key, item in value.items()
        ):
            problems.append(f"{where}: expected an object of strings")
            return {}
        return dict(value)
    if dataclasses.is_dataclass(expected) and isinstance(expected, type):
        return _build_dataclass(expected, value, where, problems)
    if expected is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false")
        return value
    if expected is int:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: expected an integer")
            return 0
        return value
    if expected is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{where}: expected a number")
            return 0.0
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string")
            return ""
        return value
    raise TypeError(f"unsupported type in AgentConfig: {expected!r}")  # a bug here, not bad input


def _build_dataclass(cls: type[_T], value: Any, where: str, problems: list[str]) -> _T | None:
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object")
        return None
    hints = get_type_hints(cls)
    fields = {item.name: item for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for unknown in sorted(set(value) - set(fields)):
        problems.append(f"{where}.{unknown}: unknown field")
    arguments: dict[str, Any] = {}
    before = len(problems)
    for name, item in fields.items():
        if name in value:
            arguments[name] = _build(hints[name], value[name], f"{where}.{name}", problems)
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            problems.append(f"{where}.{name}: required")
    if len(problems) > before:
        return None
    return cls(**arguments)
