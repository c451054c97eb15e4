"""Every ``vault.hashicorp.com/*`` annotation, and ``parse``: a pod's annotations -> InjectionSpec.

The keys and defaults are those of HashiCorp's vault-k8s, so manifests written for it work
unchanged. Keys marked *ours* are additions (listed in ``OUR_ADDITIONS``). ``parse`` is pure: it
reads the pod and the settings, collects every error (each naming the annotation and what was
expected) instead of stopping at the first, and produces warnings for typos (with a "did you
mean"), settings that weaken security, and annotations our agent cannot honour.

Default file mode of a rendered secret (``agent-inject-perms-<name>`` overrides it): the narrowest
mode that still lets every chosen app container read the file:

- ``0600`` when every app container that gets the secrets runs as the agent's own uid
  (``agent-run-as-same-user``, or an app whose ``runAsUser`` equals ``agent-run-as-user``);
- ``0640`` when the pod has an ``fsGroup`` (the volume's group, which every container holds), or
  when every such app container holds the agent's group (``runAsGroup`` or
  ``supplementalGroups``);
- ``0644`` otherwise (an app whose uid is unknown at admission, e.g. set by the image).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Generic, Literal, TypeVar, cast
from urllib.parse import urlsplit

import jsonpatch

from agent.config import (
    DEFAULT_STATE_DIR,
    LOG_FORMATS,
    LOG_LEVELS,
    TEMPLATE_FORMATS,
    AgentConfig,
    AuthConfig,
    AuthMethod,
    LifecycleConfig,
    LogFormat,
    LogLevel,
    PodIdentity,
    SignalTarget,
    TemplateConfig,
    TemplateFormat,
    VaultConnection,
    VaultTLS,
)
from agent.config_rules import SIGNALS, validate
from webhook.settings import ANNOTATION_PREFIX, MIN_PROJECTED_TOKEN_SECONDS, Settings
from webhook.values import (
    BOOLEAN_PADDING,
    absolute_directory_problem,
    is_dns_subdomain,
    join_path,
    parse_bool,
    parse_duration_seconds,
    parse_file_mode,
    parse_int,
    parse_quantity,
    relative_file_problem,
    split_list,
)

PREFIX = ANNOTATION_PREFIX

# Core
AGENT_INJECT = PREFIX + "agent-inject"
AGENT_INJECT_STATUS = PREFIX + "agent-inject-status"
AGENT_PRE_POPULATE = PREFIX + "agent-pre-populate"
AGENT_PRE_POPULATE_ONLY = PREFIX + "agent-pre-populate-only"
AGENT_INIT_FIRST = PREFIX + "agent-init-first"
AGENT_INJECT_CONTAINERS = PREFIX + "agent-inject-containers"
AGENT_IMAGE = PREFIX + "agent-image"
AGENT_CONFIGMAP = PREFIX + "agent-configmap"
AGENT_EXTRA_SECRET = PREFIX + "agent-extra-secret"
AGENT_COPY_VOLUME_MOUNTS = PREFIX + "agent-copy-volume-mounts"
SERVICE = PREFIX + "service"
VAULT_NAMESPACE = PREFIX + "namespace"
PROXY_ADDRESS = PREFIX + "proxy-address"
AGENT_JSON_PATCH = PREFIX + "agent-json-patch"
AGENT_INIT_JSON_PATCH = PREFIX + "agent-init-json-patch"
AGENT_SHARE_PROCESS_NAMESPACE = PREFIX + "agent-share-process-namespace"
PRESERVE_SECRET_CASE = PREFIX + "preserve-secret-case"
AGENT_INJECT_DEFAULT_TEMPLATE = PREFIX + "agent-inject-default-template"
AGENT_INJECT_TOKEN = PREFIX + "agent-inject-token"
SECRET_VOLUME_PATH = PREFIX + "secret-volume-path"
# Written by vault-k8s itself into the pod; read by nobody.
AGENT_REQUEST_NAMESPACE = PREFIX + "agent-request-namespace"
# Auth
ROLE = PREFIX + "role"
AUTH_TYPE = PREFIX + "auth-type"
AUTH_PATH = PREFIX + "auth-path"
AUTH_MIN_BACKOFF = PREFIX + "auth-min-backoff"
AUTH_MAX_BACKOFF = PREFIX + "auth-max-backoff"
AGENT_AUTO_AUTH_EXIT_ON_ERR = PREFIX + "agent-auto-auth-exit-on-err"
AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME = PREFIX + "agent-service-account-token-volume-name"
# TLS to Vault
TLS_SKIP_VERIFY = PREFIX + "tls-skip-verify"
TLS_SECRET = PREFIX + "tls-secret"
TLS_SERVER_NAME = PREFIX + "tls-server-name"
CA_CERT = PREFIX + "ca-cert"
CA_KEY = PREFIX + "ca-key"
CLIENT_CERT = PREFIX + "client-cert"
CLIENT_KEY = PREFIX + "client-key"
CLIENT_MAX_RETRIES = PREFIX + "client-max-retries"
CLIENT_TIMEOUT = PREFIX + "client-timeout"
# Resources
AGENT_REQUESTS_CPU = PREFIX + "agent-requests-cpu"
AGENT_REQUESTS_MEM = PREFIX + "agent-requests-mem"
AGENT_REQUESTS_EPHEMERAL = PREFIX + "agent-requests-ephemeral"
AGENT_LIMITS_CPU = PREFIX + "agent-limits-cpu"
AGENT_LIMITS_MEM = PREFIX + "agent-limits-mem"
AGENT_LIMITS_EPHEMERAL = PREFIX + "agent-limits-ephemeral"
# Security context
AGENT_SET_SECURITY_CONTEXT = PREFIX + "agent-set-security-context"
AGENT_RUN_AS_USER = PREFIX + "agent-run-as-user"
AGENT_RUN_AS_GROUP = PREFIX + "agent-run-as-group"
AGENT_RUN_AS_SAME_USER = PREFIX + "agent-run-as-same-user"
# Lifecycle
AGENT_REVOKE_ON_SHUTDOWN = PREFIX + "agent-revoke-on-shutdown"
AGENT_REVOKE_GRACE = PREFIX + "agent-revoke-grace"
AGENT_ENABLE_QUIT = PREFIX + "agent-enable-quit"
# Cache and template behaviour
AGENT_CACHE_ENABLE = PREFIX + "agent-cache-enable"
AGENT_CACHE_USE_AUTO_AUTH_TOKEN = PREFIX + "agent-cache-use-auto-auth-token"
AGENT_CACHE_LISTENER_PORT = PREFIX + "agent-cache-listener-port"
AGENT_CACHE_EXIT_ON_ERR = PREFIX + "agent-cache-exit-on-err"
TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE = PREFIX + "template-config-exit-on-retry-failure"
TEMPLATE_STATIC_SECRET_RENDER_INTERVAL = PREFIX + "template-static-secret-render-interval"
TEMPLATE_MAX_CONNECTIONS_PER_HOST = PREFIX + "template-max-connections-per-host"
TEMPLATE_LEASE_RENEWAL_THRESHOLD = PREFIX + "template-lease-renewal-threshold"
# Misc
LOG_LEVEL = PREFIX + "log-level"
LOG_FORMAT = PREFIX + "log-format"
AGENT_DISABLE_IDLE_CONNECTIONS = PREFIX + "agent-disable-idle-connections"
AGENT_DISABLE_KEEP_ALIVES = PREFIX + "agent-disable-keep-alives"
AGENT_METRICS_LISTENER_PORT = PREFIX + "agent-metrics-listener-port"
GO_MAX_PROCS = PREFIX + "go-max-procs"
# Ours
AGENT_NATIVE_SIDECAR = PREFIX + "agent-native-sidecar"
AGENT_PROJECTED_TOKEN = PREFIX + "agent-projected-token"
AGENT_PROJECTED_TOKEN_AUDIENCE = PREFIX + "agent-projected-token-audience"
AGENT_PROJECTED_TOKEN_EXPIRATION = PREFIX + "agent-projected-token-expiration"

# Groups: "<prefix><name>" for one rendered secret, or "<prefix><param>" for a parameter.
SECRET_GROUP = PREFIX + "agent-inject-secret-"
TEMPLATE_GROUP = PREFIX + "agent-inject-template-"
TEMPLATE_FILE_GROUP = PREFIX + "agent-inject-template-file-"
FILE_GROUP = PREFIX + "agent-inject-file-"
PERMS_GROUP = PREFIX + "agent-inject-perms-"
COMMAND_GROUP = PREFIX + "agent-inject-command-"
LEFT_DELIMITER_GROUP = PREFIX + "agent-template-left-delim-"
RIGHT_DELIMITER_GROUP = PREFIX + "agent-template-right-delim-"
ERROR_ON_MISSING_KEY_GROUP = PREFIX + "error-on-missing-key-"
SECRET_VOLUME_PATH_GROUP = PREFIX + "secret-volume-path-"
PRESERVE_SECRET_CASE_GROUP = PREFIX + "preserve-secret-case-"
SIGNAL_GROUP = PREFIX + "agent-inject-signal-"  # ours
AUTH_CONFIG_GROUP = PREFIX + "auth-config-"
TELEMETRY_GROUP = PREFIX + "agent-telemetry-"

# What each section of the agent configuration reads besides the settings (a test checks that
# nothing else changes them): a pod that sets none of them gets the section the settings alone
# give, worked out once per settings.
VAULT_CONNECTION_KEYS = frozenset(
    {
        SERVICE,
        TLS_SKIP_VERIFY,
        CLIENT_CERT,
        CLIENT_KEY,
        CA_CERT,
        CA_KEY,
        PROXY_ADDRESS,
        AGENT_DISABLE_KEEP_ALIVES,
        VAULT_NAMESPACE,
        TLS_SERVER_NAME,
        CLIENT_TIMEOUT,
        CLIENT_MAX_RETRIES,
    }
)
LIFECYCLE_KEYS = frozenset(
    {
        TEMPLATE_LEASE_RENEWAL_THRESHOLD,
        AGENT_REVOKE_ON_SHUTDOWN,
        AGENT_REVOKE_GRACE,
        TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE,
        TEMPLATE_STATIC_SECRET_RENDER_INTERVAL,
    }
)
# Accepted for compatibility, with a warning that they do nothing (besides agent-telemetry-*).
NO_EFFECT_KEYS = frozenset(
    {
        AGENT_CACHE_ENABLE,
        AGENT_CACHE_EXIT_ON_ERR,
        AGENT_ENABLE_QUIT,
        AGENT_CACHE_LISTENER_PORT,
        AGENT_METRICS_LISTENER_PORT,
        GO_MAX_PROCS,
        TEMPLATE_MAX_CONNECTIONS_PER_HOST,
        AGENT_CACHE_USE_AUTO_AUTH_TOKEN,
        AGENT_DISABLE_IDLE_CONNECTIONS,
    }
)

OUR_ADDITIONS = (
    AGENT_NATIVE_SIDECAR,
    AGENT_PROJECTED_TOKEN,
    AGENT_PROJECTED_TOKEN_AUDIENCE,
    AGENT_PROJECTED_TOKEN_EXPIRATION,
    SIGNAL_GROUP + "<name>",
    AGENT_INJECT_DEFAULT_TEMPLATE + " = env",
)

# Every constant above that names one whole key (groups end with "-").
FIXED_KEYS = frozenset(
    value
    for name, value in dict(globals()).items()
    if name.isupper()
    and isinstance(value, str)
    and value.startswith(PREFIX)
    and value != PREFIX
    and not value.endswith("-")
)
# Longest first, so agent-inject-template-file-x is not read as template "file-x".
SECRET_GROUPS = tuple(
    sorted(
        (
            SECRET_GROUP,
            TEMPLATE_GROUP,
            TEMPLATE_FILE_GROUP,
            FILE_GROUP,
            PERMS_GROUP,
            COMMAND_GROUP,
            LEFT_DELIMITER_GROUP,
            RIGHT_DELIMITER_GROUP,
            ERROR_ON_MISSING_KEY_GROUP,
            SECRET_VOLUME_PATH_GROUP,
            PRESERVE_SECRET_CASE_GROUP,
            SIGNAL_GROUP,
        ),
        key=len,
        reverse=True,
    )
)
PARAMETER_GROUPS = (AUTH_CONFIG_GROUP, TELEMETRY_GROUP)
# These name a secret; the other groups only refine one.
DEFINING_GROUPS = (SECRET_GROUP, TEMPLATE_GROUP, TEMPLATE_FILE_GROUP)
# As sets, for the per-key membership tests of every admission.
_DEFINING_GROUP_SET = frozenset(DEFINING_GROUPS)
_REFINING_GROUP_SET = frozenset(SECRET_GROUPS) - _DEFINING_GROUP_SET
# Never taken from AGENT_INJECT_DEFAULT_ANNOTATIONS: they decide whether and what to inject.
NOT_DEFAULTABLE = frozenset({AGENT_INJECT, AGENT_INJECT_STATUS, AGENT_REQUEST_NAMESPACE})

DEFAULT_SECRET_VOLUME_PATH = "/vault/secrets"  # noqa: S105 - a path, not a secret
DEFAULT_REVOKE_GRACE_SECONDS = 5.0
PROJECTED_TOKEN_MOUNT_PATH = "/var/run/secrets/vault.hashicorp.com/serviceaccount"  # noqa: S105
PROJECTED_TOKEN_FILE = "token"  # noqa: S105 - a file name
SERVICE_ACCOUNT_MOUNT_MARK = "serviceaccount"
READINESS_FILE = DEFAULT_STATE_DIR + "/.vault-agent-ready"
AGENT_CONFIG_FILE = "/vault/configs/config.json"
DISABLE_CONNECTION_FEATURES = ("auto-auth", "caching", "templating", "proxying")

InjectionMode = Literal["init-and-sidecar", "sidecar-only", "init-only", "native-sidecar"]
_DEFAULT_MIN_REMAINING_FRACTION = LifecycleConfig().min_remaining_fraction
_Value = TypeVar("_Value")


# The spec's classes are plain classes with Final attributes, not frozen dataclasses: mypyc
# compiles them to native structs built in C (~30 ns) whose attributes cannot be assigned at run
# time (mypy --strict refuses it in the source), while a frozen dataclass keeps a Python __init__
# that sets each field through object.__setattr__ (0.6-1.3 us per object, several per admission).


class ProjectedToken:
    """A serviceAccountToken projection the webhook adds for the agent containers only."""

    def __init__(self, audience: str | None, expiration_seconds: int) -> None:
        self.audience: Final = audience
        self.expiration_seconds: Final = expiration_seconds


class TokenVolume:
    """The ServiceAccount token the agent logs in with, as a volume mounted into its containers."""

    def __init__(
        self,
        volume_name: str,
        mount_path: str,
        file_name: str,
        projected: ProjectedToken | None = None,
    ) -> None:
        self.volume_name: Final = volume_name
        self.mount_path: Final = mount_path
        self.file_name: Final = file_name
        # Set when the webhook creates the volume; None when the pod already has it.
        self.projected: Final = projected

    @property
    def token_file(self) -> str:
        return join_path(self.mount_path, self.file_name)


class SecretVolume:
    def __init__(self, volume_name: str, mount_path: str) -> None:
        self.volume_name: Final = volume_name
        self.mount_path: Final = mount_path


class AgentSecurity:
    def __init__(
        self, set_security_context: bool, run_as_user: int | None, run_as_group: int | None
    ) -> None:
        self.set_security_context: Final = set_security_context
        self.run_as_user: Final = run_as_user
        self.run_as_group: Final = run_as_group


class InjectionSpec:
    """Everything the injection needs, decided and validated; built only by ``parse``."""

    def __init__(
        self,
        *,
        mode: InjectionMode,
        image: str,
        init_first: bool,
        wait_for_secrets: bool,
        target_containers: tuple[str, ...],
        secret_volumes: tuple[SecretVolume, ...],
        token_volume: TokenVolume,
        security: AgentSecurity,
        requests: Mapping[str, str],
        limits: Mapping[str, str],
        secrets_volume_size_limit: str,
        agent_config: AgentConfig | None,
        configmap: str | None = None,
        extra_secret: str | None = None,
        tls_secret: str | None = None,
        copy_volume_mounts_from: str | None = None,
        share_process_namespace: bool | None = None,
        sidecar_json_patch: tuple[Mapping[str, Any], ...] = (),
        init_json_patch: tuple[Mapping[str, Any], ...] = (),
        reinject: bool = False,
    ) -> None:
        self.mode: Final = mode
        self.image: Final = image
        self.init_first: Final = init_first
        # Native sidecar: whether the app waits for the first render (startup probe).
        self.wait_for_secrets: Final = wait_for_secrets
        # Names of containers and init containers that get the secrets volumes.
        self.target_containers: Final = target_containers
        self.secret_volumes: Final = secret_volumes
        self.token_volume: Final = token_volume
        self.security: Final = security
        self.requests: Final = requests
        self.limits: Final = limits
        self.secrets_volume_size_limit: Final = secrets_volume_size_limit
        # None when the pod author brings the agent configuration in a ConfigMap.
        self.agent_config: Final = agent_config
        self.configmap: Final = configmap
        self.extra_secret: Final = extra_secret
        self.tls_secret: Final = tls_secret
        self.copy_volume_mounts_from: Final = copy_volume_mounts_from
        self.share_process_namespace: Final = share_process_namespace
        self.sidecar_json_patch: Final = sidecar_json_patch
        self.init_json_patch: Final = init_json_patch
        # Re-inject over a previous injection (agent-inject-status: update).
        self.reinject: Final = reinject


class ParseResult:
    def __init__(
        self,
        spec: InjectionSpec | None,
        errors: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.spec: Final = spec
        self.errors: Final = errors
        self.warnings: Final = warnings


def short_key(key: str) -> str:
    return key.removeprefix(PREFIX)


# Every group, longest secret group first, then the parameter groups: one pattern tries them in
# that order, and a group must be followed by a name (the lookahead backtracks into the next
# group otherwise, so agent-inject-template-file- alone is template "file-").
_GROUP_PATTERN = re.compile(
    "(?:" + "|".join(re.escape(group) for group in SECRET_GROUPS + PARAMETER_GROUPS) + ")(?=.)",
    re.DOTALL,
)


# classify's answers by key. Pods share their annotation keys (every replica of a Deployment has
# the same, and a cluster uses a few dozen secret names), and the pattern costs ~0.3 us a key.
# Bounded: emptied when full, so a stream of made-up keys costs memory no more than this.
_CLASSIFIED: dict[str, tuple[str, str] | None] = {}
CLASSIFIED_LIMIT = 4096
# Not an answer classify gives (None is one): marks a key not seen yet. One lookup, not a
# membership test and a read, so that another thread emptying the dict in between is harmless.
_UNSEEN: Final = object()


def classify(key: str) -> tuple[str, str] | None:
    """(group prefix, name) for a grouped key, ("", key) for a fixed key, None if unknown."""
    known: object = _CLASSIFIED.get(key, _UNSEEN)
    if known is not _UNSEEN:
        return cast("tuple[str, str] | None", known)
    if len(_CLASSIFIED) >= CLASSIFIED_LIMIT:
        _CLASSIFIED.clear()
    found = _classify(key)
    _CLASSIFIED[key] = found
    return found


def _classify(key: str) -> tuple[str, str] | None:
    if key in FIXED_KEYS:
        return ("", key)
    match = _GROUP_PATTERN.match(key)
    if match is None:
        return None
    return (match.group(), key[match.end() :])


def suggest(key: str) -> str | None:
    """The known key closest to a mistyped ``key`` (typos and wrong plurals), if any is close."""
    short = short_key(key)
    fixed = [short_key(candidate) for candidate in FIXED_KEYS]
    best: tuple[float, str] | None = None
    for match in difflib.get_close_matches(short, fixed, n=1, cutoff=0.75):
        best = (difflib.SequenceMatcher(None, short, match).ratio(), match)
    groups = [short_key(group) for group in SECRET_GROUPS + PARAMETER_GROUPS]
    position = short.find("-")
    while position != -1:
        head, tail = short[: position + 1], short[position + 1 :]
        for match in difflib.get_close_matches(head, groups, n=1, cutoff=0.8):
            ratio = difflib.SequenceMatcher(None, head, match).ratio()
            if tail and (best is None or ratio > best[0]):
                best = (ratio, match + tail)
        position = short.find("-", position + 1)
    return None if best is None else PREFIX + best[1]


def unknown_key_warnings(annotations: Mapping[str, str]) -> list[str]:
    return _unknown_key_warnings(classify_keys(annotations))


def classify_keys(annotations: Iterable[str]) -> dict[str, tuple[str, str] | None]:
    """``classify`` of every key under the prefix (the others are not ours)."""
    return {key: classify(key) for key in annotations if key.startswith(PREFIX)}


def _unknown_key_warnings(classified: Mapping[str, tuple[str, str] | None]) -> list[str]:
    warnings = []
    for key in sorted(key for key, kind in classified.items() if kind is None):
        suggestion = suggest(key)
        hint = f"; did you mean {short_key(suggestion)}?" if suggestion else ""
        warnings.append(f"{key}: unknown annotation, ignored{hint}")
    return warnings


def default_annotation_problems(defaults: Mapping[str, str]) -> list[str]:
    """Problems with AGENT_INJECT_DEFAULT_ANNOTATIONS: only fixed, known, non-deciding keys."""
    problems = []
    for key in sorted(defaults):
        if key in NOT_DEFAULTABLE:
            problems.append(f"{key}: cannot be a cluster-wide default")
        elif key not in FIXED_KEYS:
            suggestion = suggest(key)
            hint = f" (did you mean {short_key(suggestion)}?)" if suggestion else ""
            problems.append(f"{key}: not a known annotation that takes a default{hint}")
    return problems


def parse(pod: Mapping[str, Any], settings: Settings, *, namespace: str) -> ParseResult:
    """The InjectionSpec for ``pod`` (created in ``namespace``), or every reason it has none."""
    return SpecParser(settings).parse(pod, namespace=namespace)


@dataclass(frozen=True)
class _ResourceDefault:
    """One agent resource and its cluster-wide default, the default already read."""

    kind: str  # "requests" or "limits"
    resource: str
    key: str
    # The default, stripped; "" omits the resource.
    raw: str
    amount: Decimal | None
    # Why the default is not a quantity (settings built in code skip from_env's check).
    problem: str | None


def _resource_defaults(settings: Settings) -> tuple[_ResourceDefault, ...]:
    table = (
        ("requests", "cpu", AGENT_REQUESTS_CPU, settings.cpu_request),
        ("requests", "memory", AGENT_REQUESTS_MEM, settings.mem_request),
        ("requests", "ephemeral-storage", AGENT_REQUESTS_EPHEMERAL, settings.ephemeral_request),
        ("limits", "cpu", AGENT_LIMITS_CPU, settings.cpu_limit),
        ("limits", "memory", AGENT_LIMITS_MEM, settings.mem_limit),
        ("limits", "ephemeral-storage", AGENT_LIMITS_EPHEMERAL, settings.ephemeral_limit),
    )
    defaults = []
    for kind, resource, key, default in table:
        raw = default.strip()
        amount, problem = None, None
        if raw:
            try:
                amount = parse_quantity(raw)
            except ValueError as error:
                problem = str(error)
        defaults.append(_ResourceDefault(kind, resource, key, raw, amount, problem))
    return tuple(defaults)


class _Settled(Generic[_Value]):
    """A section of the agent configuration as the settings alone make it, with the problems
    reading it recorded (a bad AGENT_INJECT_VAULT_ADDR, say), replayed for each pod. A plain
    class: mypyc compiles no generic dataclass."""

    def __init__(self, value: _Value, errors: tuple[str, ...], warnings: tuple[str, ...]) -> None:
        self.value = value
        self.errors = errors
        self.warnings = warnings


# Keys whose every check involves the pod (a container or volume it names, the app's uid): a
# cluster-wide default of theirs can only be judged pod by pod.
POD_DEPENDENT = frozenset(
    {AGENT_COPY_VOLUME_MOUNTS, AGENT_RUN_AS_SAME_USER, AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME}
)
# The plainest pod that asks for injection, for reading the default annotations at start: one
# container with the ServiceAccount token mount, one secret, a role (so that it can be injected;
# a default role has nothing to check but being there).
PROBE_POD: Mapping[str, Any] = {
    "metadata": {
        "name": "settings-probe",
        "annotations": {
            AGENT_INJECT: "true",
            ROLE: "settings-probe",
            SECRET_GROUP + "probe": "secret/probe",
        },
    },
    "spec": {
        "serviceAccountName": "default",
        "containers": [
            {
                "name": "app",
                "volumeMounts": [
                    {
                        "name": "kube-api-access-probe",
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        "readOnly": True,
                    }
                ],
            }
        ],
        "volumes": [{"name": "kube-api-access-probe", "projected": {"sources": []}}],
    },
}


class SpecParser:
    """``parse`` for one Settings: what depends only on the settings is worked out once, when
    the webhook starts, instead of in every pod creation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.resource_defaults = _resource_defaults(settings)
        self.vault_connection: _Settled[VaultConnection] | None = None
        self.lifecycle: _Settled[LifecycleConfig] | None = None
        # Read from a pod without annotations, so only the settings (and their default
        # annotations) count; until then the parser below reads every key.
        reader = _Parser({}, self, namespace="")
        self.vault_connection = reader.settled(reader.read_vault_connection)
        self.lifecycle = reader.settled(reader.read_lifecycle)

    def parse(self, pod: Mapping[str, Any], *, namespace: str) -> ParseResult:
        return _Parser(pod, self, namespace).parse()

    def settings_errors(self) -> tuple[str, ...]:
        """Errors the settings alone cause (a proxy address without a scheme, a default
        annotation's bad value): every pod that does not override them is refused with them.
        The Vault connection and lifecycle sections only; Reviewer.settings_errors adds the
        other default annotations, read and injected as PROBE_POD."""
        sections = (self.vault_connection, self.lifecycle)
        return tuple(
            error for section in sections if section is not None for error in section.errors
        )

    def default_annotation_errors(self, errors: Iterable[str]) -> list[str]:
        """Those of ``errors`` (of PROBE_POD) that name a default annotation judged at start
        (not POD_DEPENDENT), or no annotation at all (a setting's own, such as a CPU request
        above the limit): the errors every pod would get."""
        judged = [key for key in self.settings.default_annotations if key not in POD_DEPENDENT]
        return [
            error
            for error in errors
            if any(error.startswith(f"{key}:") for key in judged) or not error.startswith(PREFIX)
        ]


# A pod is decoded JSON, whose objects are dicts: isinstance(value, dict) is a type check,
# Mapping's an ABC lookup.
def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _dict_list(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


class _Parser:
    """One pod's annotations; methods read a key, record problems, and return a typed value."""

    def __init__(self, pod: Mapping[str, Any], prepared: SpecParser, namespace: str) -> None:
        settings = prepared.settings
        self.prepared = prepared
        self.resource_defaults = prepared.resource_defaults
        metadata = _mapping(pod.get("metadata"))
        own = {
            key: value
            for key, value in _mapping(metadata.get("annotations")).items()
            if isinstance(key, str) and isinstance(value, str)
        }
        self.own = own
        # Classified once: the unknown-key warnings, the secret names and the orphan warnings
        # all need it.
        self.classified = classify_keys(own)
        self.annotations: dict[str, str] = {**settings.default_annotations, **own}
        self.settings = settings
        self.namespace = namespace
        self.metadata = metadata
        self.spec = _mapping(pod.get("spec"))
        self.containers = _dict_list(self.spec.get("containers"))
        self.init_containers = _dict_list(self.spec.get("initContainers"))
        self.errors: list[str] = []
        self.warnings: list[str] = []

    # --- typed readers -------------------------------------------------------------------------

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{key}: {message}")

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{key}: {message}")

    def settled(self, read: Callable[[], _Value]) -> _Settled[_Value]:
        errors, warnings = len(self.errors), len(self.warnings)
        value = read()
        return _Settled(value, tuple(self.errors[errors:]), tuple(self.warnings[warnings:]))

    def replay(self, settled: _Settled[_Value]) -> _Value:
        self.errors.extend(settled.errors)
        self.warnings.extend(settled.warnings)
        return settled.value

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.annotations.get(key)
        if value is None:
            return default
        value = value.strip()
        return value or default

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.annotations.get(key)
        if raw is None:
            return default
        try:
            return parse_bool(raw.strip(BOOLEAN_PADDING))
        except ValueError as error:
            self.error(key, f"{error}, got {raw[:40]!r}")
            return default

    def seconds(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        raw = self.text(key)
        if raw is None:
            return default
        try:
            value = parse_duration_seconds(raw)
        except ValueError as error:
            self.error(key, f"{error}, got {raw[:40]!r}")
            return default
        if value == 0 and not allow_zero:
            self.error(key, "must be longer than zero")
            return default
        return value

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        raw = self.text(key)
        if raw is None:
            return default
        try:
            return parse_int(raw, minimum=minimum, maximum=maximum)
        except ValueError as error:
            self.error(key, f"{error}, got {raw[:40]!r}")
            return default

    def choice(self, key: str, default: str, allowed: Iterable[str]) -> str:
        raw = self.text(key)
        if raw is None:
            return default
        options = tuple(allowed)
        if raw.lower() not in options:
            self.error(key, f"expected one of {', '.join(options)}, got {raw[:40]!r}")
            return default
        return raw.lower()

    def json_patch(self, key: str) -> tuple[Mapping[str, Any], ...]:
        raw = self.text(key)
        if raw is None:
            return ()
        try:
            operations = json.loads(raw)
            # Building the patch checks each operation's shape; applying waits for the container.
            jsonpatch.JsonPatch(operations)
        except (ValueError, TypeError, jsonpatch.JsonPatchException) as error:
            self.error(
                key, f"expected an RFC 6902 JSON patch (a JSON array of operations): {error}"
            )
            return ()
        if not isinstance(operations, list):
            self.error(key, "expected an RFC 6902 JSON patch (a JSON array of operations)")
            return ()
        return tuple(operations)

    # --- the whole pod -------------------------------------------------------------------------

    def parse(self) -> ParseResult:
        self.warnings.extend(_unknown_key_warnings(self.classified))
        if self.namespace in ("kube-system", "kube-public"):
            self.errors.append(
                f"injection into namespace {self.namespace} is not allowed: it holds the "
                "cluster's own components"
            )
        if not self.containers:
            self.errors.append("spec.containers: the pod has no containers to inject into")
        mode, wait_for_secrets = self.mode()
        image = self.text(AGENT_IMAGE, self.settings.agent_image) or self.settings.agent_image
        init_first = self.boolean(AGENT_INIT_FIRST, False)
        targets = self.target_containers(mode, init_first)
        secret_volume_path = self.secret_volume_path()
        security = self.security(targets)
        requests, limits = self.resources()
        share_process_namespace = self.share_process_namespace()
        configmap = self.object_name(AGENT_CONFIGMAP)
        token_volume = self.token_volume()
        self.no_effect_annotations()
        # Read once (an error is reported once): no secret may render to the token's file.
        token_sink = (
            join_path(secret_volume_path, "token")
            if self.boolean(AGENT_INJECT_TOKEN, False)
            else None
        )
        templates, custom_paths = self.templates(
            secret_volume_path, security, targets, token_sink=token_sink
        )
        secret_volumes = (
            SecretVolume("vault-secrets", secret_volume_path),
            *(
                SecretVolume(f"vault-secrets-custom-{index}", path)
                for index, path in enumerate(custom_paths)
            ),
        )
        self.check_mount_paths(targets, secret_volumes)
        if any(template.signal for template in templates):
            if self.spec.get("shareProcessNamespace") is False:
                self.errors.append(
                    f"{SIGNAL_GROUP}<name>: signalling an app process needs "
                    "spec.shareProcessNamespace, which the pod sets to false"
                )
            if share_process_namespace is False:
                self.errors.append(
                    f"{SIGNAL_GROUP}<name>: signalling an app process needs a shared process "
                    f"namespace, which {AGENT_SHARE_PROCESS_NAMESPACE} turns off"
                )
            share_process_namespace = True
            self.warn_if_signal_cannot_reach(targets, security)
        agent_config = None
        if configmap is None:
            agent_config = self.agent_config(
                templates, token_volume, token_sink, mode, wait_for_secrets
            )
        else:
            self.warn(
                AGENT_CONFIGMAP,
                f"the agent reads {AGENT_CONFIG_FILE} in this injector's JSON format, "
                "not Vault Agent HCL; secret annotations are not used",
            )
        copy_from = self.text(AGENT_COPY_VOLUME_MOUNTS)
        if copy_from is not None and copy_from not in self.container_names(initial=True):
            self.error(AGENT_COPY_VOLUME_MOUNTS, f"no container named {copy_from!r} in the pod")
        sidecar_patch = self.json_patch(AGENT_JSON_PATCH)
        init_patch = self.json_patch(AGENT_INIT_JSON_PATCH)
        if init_patch and mode in ("native-sidecar", "sidecar-only"):
            self.warn(
                AGENT_INIT_JSON_PATCH,
                "has no effect: this pod gets no separate init container "
                f"({mode}); use {AGENT_JSON_PATCH} for the agent",
            )
        extra_secret = self.object_name(AGENT_EXTRA_SECRET)
        tls_secret = self.object_name(TLS_SECRET)
        status = self.own.get(AGENT_INJECT_STATUS, "").strip()
        if self.errors:
            return ParseResult(None, tuple(self.errors), tuple(self.warnings))
        assert token_volume is not None  # set whenever no error was recorded
        spec = InjectionSpec(
            mode=mode,
            image=image,
            init_first=init_first,
            wait_for_secrets=wait_for_secrets,
            target_containers=targets,
            secret_volumes=secret_volumes,
            token_volume=token_volume,
            security=security,
            requests=requests,
            limits=limits,
            secrets_volume_size_limit=self.settings.secrets_volume_size_limit,
            agent_config=agent_config,
            configmap=configmap,
            extra_secret=extra_secret,
            tls_secret=tls_secret,
            copy_volume_mounts_from=copy_from,
            share_process_namespace=share_process_namespace,
            sidecar_json_patch=sidecar_patch,
            init_json_patch=init_patch,
            reinject=status == "update",
        )
        return ParseResult(spec, (), tuple(self.warnings))

    def container_names(self, *, initial: bool) -> list[str]:
        names = [str(container.get("name")) for container in self.containers]
        if initial:
            names += [str(container.get("name")) for container in self.init_containers]
        return names

    def mode(self) -> tuple[InjectionMode, bool]:
        pre_populate = self.boolean(AGENT_PRE_POPULATE, True)
        pre_populate_only = self.boolean(AGENT_PRE_POPULATE_ONLY, False)
        native = self.boolean(AGENT_NATIVE_SIDECAR, self.settings.native_sidecar)
        if pre_populate_only and not pre_populate:
            self.error(
                AGENT_PRE_POPULATE_ONLY,
                f"asks for the init container only, but {short_key(AGENT_PRE_POPULATE)} is false",
            )
        if pre_populate_only:
            if native and AGENT_NATIVE_SIDECAR in self.own:
                self.warn(AGENT_NATIVE_SIDECAR, "ignored: agent-pre-populate-only adds no sidecar")
            return "init-only", True
        if native:
            return "native-sidecar", pre_populate
        return ("init-and-sidecar" if pre_populate else "sidecar-only"), pre_populate

    def target_containers(self, mode: InjectionMode, init_first: bool) -> tuple[str, ...]:
        listed = self.text(AGENT_INJECT_CONTAINERS)
        app_names = self.container_names(initial=False)
        init_names = [str(container.get("name")) for container in self.init_containers]
        if listed is None:
            # Init containers see the secrets only if they run after the agent has rendered them.
            agent_first = init_first and mode != "sidecar-only"
            return tuple(app_names + (init_names if agent_first else []))
        chosen = split_list(listed)
        for name in chosen:
            if name not in app_names and name not in init_names:
                self.warn(AGENT_INJECT_CONTAINERS, f"no container named {name!r}; skipped")
            elif name in init_names and not (init_first and mode != "sidecar-only"):
                self.warn(
                    AGENT_INJECT_CONTAINERS,
                    f"init container {name!r} runs before the agent and sees an empty "
                    f"directory; set {short_key(AGENT_INIT_FIRST)}: true",
                )
        return tuple(name for name in chosen if name in app_names or name in init_names)

    def secret_volume_path(self) -> str:
        path = self.text(SECRET_VOLUME_PATH, DEFAULT_SECRET_VOLUME_PATH) or ""
        path = path.rstrip("/") or path
        problem = absolute_directory_problem(path)
        if problem:
            self.error(SECRET_VOLUME_PATH, problem)
            return DEFAULT_SECRET_VOLUME_PATH
        return path

    def object_name(self, key: str) -> str | None:
        name = self.text(key)
        if name is not None and not is_dns_subdomain(name):
            self.error(key, "expected the name of a Kubernetes object (a DNS subdomain)")
            return None
        return name

    def effective(self, container: Mapping[str, Any], field_name: str) -> int | None:
        """The container's runAsUser or runAsGroup, else the pod's; None when unset or not a
        number (the sets and comparisons below need a hashable, comparable value)."""
        context = _mapping(container.get("securityContext"))
        if field_name in context:
            value = context[field_name]
        else:
            value = _mapping(self.spec.get("securityContext")).get(field_name)
        return value if type(value) is int else None

    def containers_named(self, names: Iterable[str]) -> list[Mapping[str, Any]]:
        wanted = set(names)
        return [
            container
            for container in self.containers + self.init_containers
            if str(container.get("name")) in wanted
        ]

    def security(self, targets: tuple[str, ...]) -> AgentSecurity:
        user_set = AGENT_RUN_AS_USER in self.annotations
        group_set = AGENT_RUN_AS_GROUP in self.annotations
        same_set = AGENT_RUN_AS_SAME_USER in self.annotations
        # vault-k8s: asking for a user or group implies setting the security context.
        implied = not self.settings.set_security_context and (user_set or group_set or same_set)
        set_context = self.boolean(
            AGENT_SET_SECURITY_CONTEXT, self.settings.set_security_context or implied
        )
        user = self.integer(AGENT_RUN_AS_USER, self.settings.run_as_user, maximum=2**31 - 1)
        group = self.integer(AGENT_RUN_AS_GROUP, self.settings.run_as_group, maximum=2**31 - 1)
        if user == 0:
            self.error(AGENT_RUN_AS_USER, "0 (root) is refused: the agent never needs root")
        if group == 0:
            self.warn(AGENT_RUN_AS_GROUP, "0 is root's group; prefer a dedicated group")
        if self.boolean(AGENT_RUN_AS_SAME_USER, self.settings.run_as_same_user):
            user, group = self.same_user_as_app(targets, user, group, group_set=group_set)
        if not set_context:
            return AgentSecurity(False, None, None)
        return AgentSecurity(True, user, group)

    def warn_if_signal_cannot_reach(
        self, targets: tuple[str, ...], security: AgentSecurity
    ) -> None:
        """Linux lets a process signal only processes of its own uid (without CAP_KILL, which
        Pod Security "restricted" forbids), so the agent must run as the app's user."""
        chosen = self.containers_named(targets) or self.containers[:1]
        app_users = {self.effective(container, "runAsUser") for container in chosen}
        agent_user = security.run_as_user
        if agent_user is not None and app_users == {agent_user}:
            return
        shown = ", ".join(sorted(str(user) for user in app_users if user is not None))
        app_text = f"uid {shown}" if shown and None not in app_users else "the image's user"
        agent_text = f"uid {agent_user}" if agent_user is not None else "the runtime's user"
        self.warnings.append(
            f"{SIGNAL_GROUP}<name>: the agent runs as {agent_text} and the app as {app_text}; "
            "a process may only signal processes of its own user, so set "
            f'{AGENT_RUN_AS_SAME_USER}: "true" (or run both as one uid)'
        )

    def same_user_as_app(
        self, targets: tuple[str, ...], user: int, group: int, *, group_set: bool
    ) -> tuple[int, int]:
        """Unlike vault-k8s (containers[0] only), every chosen container and the pod level."""
        chosen = self.containers_named(targets) or self.containers[:1]
        users = {self.effective(container, "runAsUser") for container in chosen}
        known = sorted(user for user in users if user is not None)
        if not known or len(known) < len(users):
            self.error(
                AGENT_RUN_AS_SAME_USER,
                "needs runAsUser on the pod or on every container that gets the secrets",
            )
            return user, group
        if len(known) > 1:
            self.error(
                AGENT_RUN_AS_SAME_USER,
                f"the containers run as different users ({', '.join(map(str, known))})",
            )
            return user, group
        (app_user,) = known
        if app_user <= 0:
            self.error(AGENT_RUN_AS_SAME_USER, "the app runs as root; the agent will not")
            return user, group
        groups = {self.effective(container, "runAsGroup") for container in chosen}
        if not group_set and len(groups) == 1:
            (app_group,) = groups
            if app_group is not None:
                group = app_group
        return app_user, group

    def resources(self) -> tuple[dict[str, str], dict[str, str]]:
        chosen: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
        amounts: dict[tuple[str, str], Decimal] = {}
        for default in self.resource_defaults:
            key = default.key
            value = self.annotations.get(key)
            if value is None:
                raw, amount, problem = default.raw, default.amount, default.problem
            else:
                raw, amount, problem = value.strip(), None, None
                if raw:
                    try:
                        amount = parse_quantity(raw)
                    except ValueError as error:
                        problem = str(error)
            # An empty annotation omits the value, as in vault-k8s.
            if not raw:
                continue
            if problem is not None:
                self.error(key, f"{problem}, got {raw[:40]!r}")
                continue
            assert amount is not None  # a non-empty value either parsed or has a problem
            amounts[(default.kind, default.resource)] = amount
            chosen[default.kind][default.resource] = raw
        for resource in ("cpu", "memory", "ephemeral-storage"):
            request = amounts.get(("requests", resource))
            limit = amounts.get(("limits", resource))
            if request is not None and limit is not None and request > limit:
                self.errors.append(
                    f"agent {resource}: the request ({chosen['requests'][resource]}) is above "
                    f"the limit ({chosen['limits'][resource]})"
                )
        return chosen["requests"], chosen["limits"]

    def share_process_namespace(self) -> bool | None:
        if AGENT_SHARE_PROCESS_NAMESPACE not in self.annotations:
            return None
        wanted = self.boolean(AGENT_SHARE_PROCESS_NAMESPACE, False)
        if wanted and self.spec.get("shareProcessNamespace") is False:
            self.error(
                AGENT_SHARE_PROCESS_NAMESPACE,
                "the pod explicitly sets shareProcessNamespace: false; refusing to enable it",
            )
        return wanted

    def token_volume(self) -> TokenVolume | None:
        named = self.text(AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME)
        if named is not None:
            return self.named_token_volume(named)
        audience = self.text(AGENT_PROJECTED_TOKEN_AUDIENCE, self.settings.projected_token_audience)
        expiration = int(
            self.seconds(
                AGENT_PROJECTED_TOKEN_EXPIRATION,
                float(self.settings.projected_token_expiration_seconds),
            )
        )
        if not MIN_PROJECTED_TOKEN_SECONDS <= expiration <= 2**32:
            self.error(
                AGENT_PROJECTED_TOKEN_EXPIRATION,
                f"must be between {MIN_PROJECTED_TOKEN_SECONDS}s (the API server's minimum) "
                "and 2^32 seconds",
            )
        projected = self.boolean(AGENT_PROJECTED_TOKEN, self.settings.projected_token)
        existing = None if projected else self.pod_token_mount()
        if existing is not None:
            return existing
        # automountServiceAccountToken: false, a cluster-wide setting, or a pod that reaches us
        # without a token (its ServiceAccount disables automount): a token for the agent alone.
        return TokenVolume(
            volume_name="vault-agent-token",
            mount_path=PROJECTED_TOKEN_MOUNT_PATH,
            file_name=PROJECTED_TOKEN_FILE,
            projected=ProjectedToken(audience=audience, expiration_seconds=expiration),
        )

    def pod_token_mount(self) -> TokenVolume | None:
        """The pod's own ServiceAccount token mount (kube-api-access-*), as vault-k8s finds it."""
        if self.spec.get("automountServiceAccountToken") is False:
            return None
        for container in self.containers + self.init_containers:
            for mount in _dict_list(container.get("volumeMounts")):
                path = mount.get("mountPath")
                name = mount.get("name")
                if (
                    isinstance(path, str)
                    and isinstance(name, str)
                    and SERVICE_ACCOUNT_MOUNT_MARK in path
                ):
                    return TokenVolume(name, path.rstrip("/"), "token")
        return None

    def named_token_volume(self, name: str) -> TokenVolume | None:
        key = AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME
        volume = next(
            (item for item in _dict_list(self.spec.get("volumes")) if item.get("name") == name),
            None,
        )
        if volume is None:
            self.error(key, f"the pod has no volume named {name!r}")
            return None
        sources = _dict_list(_mapping(volume.get("projected")).get("sources"))
        token_path = next(
            (
                _mapping(source.get("serviceAccountToken")).get("path")
                for source in sources
                if _mapping(source.get("serviceAccountToken")).get("path")
            ),
            None,
        )
        if not isinstance(token_path, str):
            self.error(key, f"volume {name!r} is not a projected volume with a serviceAccountToken")
            return None
        mount_path = PROJECTED_TOKEN_MOUNT_PATH
        for container in self.containers:
            for mount in _dict_list(container.get("volumeMounts")):
                if mount.get("name") == name and isinstance(mount.get("mountPath"), str):
                    mount_path = str(mount["mountPath"]).rstrip("/")
        return TokenVolume(name, mount_path, token_path)

    def no_effect_annotations(self) -> None:
        """Accepted for compatibility and validated, but our agent has no such feature."""
        if not NO_EFFECT_KEYS.isdisjoint(self.annotations):
            self.validate_no_effect_keys()
        telemetry = sorted(key for key in self.own if key.startswith(TELEMETRY_GROUP))
        if telemetry:
            self.warnings.append(
                f"{TELEMETRY_GROUP}*: has no effect with this injector's agent "
                f"({len(telemetry)} annotation(s))"
            )

    def validate_no_effect_keys(self) -> None:
        no_effect = " has no effect with this injector's agent"
        for key in (AGENT_CACHE_ENABLE, AGENT_CACHE_EXIT_ON_ERR, AGENT_ENABLE_QUIT):
            if self.boolean(key, False):
                self.warn(key, no_effect.strip())
        for key in (AGENT_CACHE_LISTENER_PORT, AGENT_METRICS_LISTENER_PORT):
            if key in self.own:
                self.integer(key, 0, minimum=1, maximum=65535)
                self.warn(key, no_effect.strip())
        for key in (GO_MAX_PROCS, TEMPLATE_MAX_CONNECTIONS_PER_HOST):
            if key in self.own:
                self.integer(key, 0)
                self.warn(key, no_effect.strip())
        if self.text(AGENT_CACHE_USE_AUTO_AUTH_TOKEN) not in (None, "true"):
            self.choice(AGENT_CACHE_USE_AUTO_AUTH_TOKEN, "true", ("true", "false", "force"))
            self.warn(AGENT_CACHE_USE_AUTO_AUTH_TOKEN, no_effect.strip())
        if self.text(AGENT_DISABLE_IDLE_CONNECTIONS) is not None:
            self.feature_list(AGENT_DISABLE_IDLE_CONNECTIONS)
            self.warn(
                AGENT_DISABLE_IDLE_CONNECTIONS,
                "has no effect: the agent keeps one connection per Vault server",
            )

    def feature_list(self, key: str) -> tuple[str, ...]:
        features = split_list(self.text(key) or "")
        for feature in features:
            if feature not in DISABLE_CONNECTION_FEATURES:
                self.error(
                    key, f"expected a comma list of {', '.join(DISABLE_CONNECTION_FEATURES)}"
                )
                break
        return features

    # --- secrets -------------------------------------------------------------------------------

    def secret_names(self) -> list[str]:
        """Raw names (as written in the keys) of every secret, sorted for a stable order."""
        # The longest matching group wins (template-file before template), as classify says.
        names = {
            kind[1]
            for key, kind in self.classified.items()
            if kind is not None and kind[0] in _DEFINING_GROUP_SET and self.own[key].strip()
        }
        return sorted(names)

    def templates(
        self,
        default_path: str,
        security: AgentSecurity,
        targets: tuple[str, ...],
        *,
        token_sink: str | None,
    ) -> tuple[list[TemplateConfig], list[str]]:
        raw_names = self.secret_names()
        self.orphan_group_warnings(set(raw_names))
        global_preserve = self.boolean(PRESERVE_SECRET_CASE, False)
        default_format = self.choice(
            AGENT_INJECT_DEFAULT_TEMPLATE, self.settings.default_template, TEMPLATE_FORMATS
        )
        default_mode = self.default_file_mode(security, targets)
        custom_paths: list[str] = []
        templates: list[TemplateConfig] = []
        destinations: dict[str, str] = {}
        for raw in raw_names:
            made = self.template(
                raw,
                default_path=default_path,
                preserve=self.boolean(PRESERVE_SECRET_CASE_GROUP + raw, global_preserve),
                default_format=default_format,
                default_mode=default_mode,
            )
            if made is None:
                continue
            template, directory = made
            if directory != default_path and directory not in custom_paths:
                custom_paths.append(directory)
            if template.destination in destinations:
                self.errors.append(
                    f"{SECRET_GROUP}{raw}: renders to {template.destination}, "
                    f"as {SECRET_GROUP}{destinations[template.destination]} does"
                )
            destinations[template.destination] = raw
            templates.append(template)
        if token_sink is not None and token_sink in destinations:
            self.error(AGENT_INJECT_TOKEN, f"the token file {token_sink} is also a secret's file")
        return templates, sorted(custom_paths)

    def template(
        self,
        raw: str,
        *,
        default_path: str,
        preserve: bool,
        default_format: str,
        default_mode: int,
    ) -> tuple[TemplateConfig, str] | None:
        name = raw if preserve else raw.lower()
        before = len(self.errors)
        vault_path = self.text(SECRET_GROUP + raw, "") or ""
        contents = self.annotations.get(TEMPLATE_GROUP + raw)
        if contents is not None and not contents.strip():
            contents = None
        source_file = self.text(TEMPLATE_FILE_GROUP + raw)
        if contents is not None and source_file is not None:
            self.warn(TEMPLATE_FILE_GROUP + raw, f"ignored: {TEMPLATE_GROUP}{raw} is also set")
            source_file = None
        if source_file is not None and not source_file.startswith("/"):
            self.error(TEMPLATE_FILE_GROUP + raw, "must be an absolute path in the agent container")
        directory = default_path
        custom_directory = self.text(SECRET_VOLUME_PATH_GROUP + raw)
        # default_path has been checked (and has no trailing slash) by secret_volume_path.
        if custom_directory is not None:
            directory = custom_directory.rstrip("/") or custom_directory
            problem = absolute_directory_problem(directory)
            if problem:
                self.error(SECRET_VOLUME_PATH_GROUP + raw, problem)
        file_name = self.text(FILE_GROUP + raw, name) or name
        problem = relative_file_problem(file_name)
        if problem:
            self.error(FILE_GROUP + raw, problem)
        perms = default_mode
        raw_perms = self.text(PERMS_GROUP + raw)
        if raw_perms is not None:
            try:
                perms = parse_file_mode(raw_perms)
            except ValueError as error:
                self.error(PERMS_GROUP + raw, f"{error}, got {raw_perms[:40]!r}")
        left = self.annotations.get(LEFT_DELIMITER_GROUP + raw, "{{")
        right = self.annotations.get(RIGHT_DELIMITER_GROUP + raw, "}}")
        for key, delimiter in ((LEFT_DELIMITER_GROUP, left), (RIGHT_DELIMITER_GROUP, right)):
            if not delimiter.strip():
                self.error(key + raw, "must not be empty")
        signal = self.signal(SIGNAL_GROUP + raw)
        error_on_missing_key = self.boolean(ERROR_ON_MISSING_KEY_GROUP + raw, False)
        if len(self.errors) > before:
            return None
        template = TemplateConfig(
            name=name,
            destination=join_path(directory, file_name),
            vault_path=vault_path,
            contents=contents,
            source_file=source_file,
            default_format=_as_template_format(default_format),
            left_delimiter=left.strip(),
            right_delimiter=right.strip(),
            error_on_missing_key=error_on_missing_key,
            perms=perms,
            command=self.text(COMMAND_GROUP + raw),
            signal=signal,
        )
        return template, directory

    def signal(self, key: str) -> SignalTarget | None:
        raw = self.text(key)
        if raw is None:
            return None
        signal_name, separator, process = raw.partition(":")
        signal_name = signal_name.strip().upper()
        if signal_name and not signal_name.startswith("SIG"):
            signal_name = "SIG" + signal_name
        process = process.strip()
        if not separator or signal_name not in SIGNALS or not process or " " in process:
            self.error(
                key,
                f"expected SIGNAL:process-name such as SIGHUP:nginx, with SIGNAL one of "
                f"{', '.join(sorted(SIGNALS))}",
            )
            return None
        return SignalTarget(signal=signal_name, process_name=process)

    def orphan_group_warnings(self, names: set[str]) -> None:
        orphans = [
            (key, kind[1])
            for key, kind in self.classified.items()
            if kind is not None and kind[0] in _REFINING_GROUP_SET and kind[1] not in names
        ]
        # Sorted once found (most pods have none), so the warnings come in key order.
        for key, raw in sorted(orphans):
            self.warn(key, f"has no effect: there is no {short_key(SECRET_GROUP)}{raw}")

    def default_file_mode(self, security: AgentSecurity, targets: tuple[str, ...]) -> int:
        chosen = self.containers_named(targets)
        agent_user = security.run_as_user
        if agent_user is not None and all(
            self.effective(container, "runAsUser") == agent_user for container in chosen
        ):
            return 0o600
        pod_context = _mapping(self.spec.get("securityContext"))
        if pod_context.get("fsGroup") is not None:
            return 0o640
        agent_group = security.run_as_group
        supplemental_groups = pod_context.get("supplementalGroups")
        if not isinstance(supplemental_groups, list):
            supplemental_groups = []
        if agent_group is not None and all(
            self.effective(container, "runAsGroup") == agent_group
            or agent_group in supplemental_groups
            for container in chosen
        ):
            return 0o640
        return 0o644

    def check_mount_paths(
        self, targets: tuple[str, ...], secret_volumes: tuple[SecretVolume, ...]
    ) -> None:
        ours = {volume.mount_path for volume in secret_volumes}
        reinject = self.own.get(AGENT_INJECT_STATUS, "").strip() == "update"
        for container in self.containers_named(targets):
            for mount in _dict_list(container.get("volumeMounts")):
                if reinject and str(mount.get("name", "")).startswith("vault-secrets"):
                    continue
                path = mount.get("mountPath")
                if isinstance(path, str) and path in ours:
                    self.errors.append(
                        f"container {container.get('name')}: already mounts a volume at "
                        f"{path}, where the secrets go"
                    )

    # --- the agent's configuration -------------------------------------------------------------

    def vault_connection(self) -> VaultConnection:
        settled = self.prepared.vault_connection
        if settled is not None and self.own.keys().isdisjoint(VAULT_CONNECTION_KEYS):
            return self.replay(settled)
        return self.read_vault_connection()

    def read_vault_connection(self) -> VaultConnection:
        address = self.text(SERVICE, self.settings.vault_address)
        if address is None:
            self.error(
                SERVICE, "no Vault address: set it, or AGENT_INJECT_VAULT_ADDR on the webhook"
            )
            address = "https://vault.invalid"
        elif not address.startswith(("http://", "https://")):
            self.error(SERVICE, "expected an http:// or https:// address")
        elif address.startswith("http://") and not _is_loopback(address):
            self.warn(
                SERVICE, "plain http: the Vault token and secrets cross the network unencrypted"
            )
        skip_verify = self.boolean(TLS_SKIP_VERIFY, False)
        if skip_verify:
            self.warn(
                TLS_SKIP_VERIFY,
                "weakens security: the agent will not verify Vault's certificate",
            )
        client_cert = self.text(CLIENT_CERT)
        client_key = self.text(CLIENT_KEY)
        if (client_cert is None) != (client_key is None):
            self.errors.append(
                f"{CLIENT_CERT} and {CLIENT_KEY}: give both or neither (a client certificate "
                "needs its key)"
            )
        for key in (CA_CERT, CA_KEY, CLIENT_CERT, CLIENT_KEY):
            value = self.text(key)
            if value is not None and not value.startswith("/"):
                self.error(key, "must be an absolute path in the agent container")
        proxy = self.text(PROXY_ADDRESS, self.settings.proxy_address)
        if proxy is not None and "://" not in proxy:
            self.error(PROXY_ADDRESS, "expected a URL such as http://proxy:3128")
        keep_alive_features = (
            self.feature_list(AGENT_DISABLE_KEEP_ALIVES)
            if self.text(AGENT_DISABLE_KEEP_ALIVES) is not None
            else ()
        )
        return VaultConnection(
            address=address,
            namespace=self.text(VAULT_NAMESPACE, self.settings.vault_namespace),
            proxy_address=proxy,
            tls=VaultTLS(
                ca_cert_file=self.text(CA_CERT),
                ca_cert_dir=self.text(CA_KEY),
                ca_cert_pem=self.settings.vault_ca_cert_pem,
                client_cert_file=client_cert,
                client_key_file=client_key,
                server_name=self.text(TLS_SERVER_NAME),
                skip_verify=skip_verify,
            ),
            timeout_seconds=self.seconds(CLIENT_TIMEOUT, 60.0),
            max_retries=self.integer(CLIENT_MAX_RETRIES, 2, maximum=100),
            disable_keep_alives=bool(keep_alive_features),
        )

    def auth(self, token_volume: TokenVolume | None) -> AuthConfig:
        # Filtered before sorting: most pods have no auth-config annotation at all.
        params = {
            kind[1].replace("-", "_"): self.own[key].strip()
            for key, kind in sorted(
                (key, kind)
                for key, kind in self.classified.items()
                if kind is not None and kind[0] == AUTH_CONFIG_GROUP
            )
        }
        token_file = params.pop("token_path", None) or (
            token_volume.token_file if token_volume else "/"
        )
        if not token_file.startswith("/"):
            self.error(AUTH_CONFIG_GROUP + "token-path", "must be an absolute path")
        role = self.text(ROLE) or params.pop("role", "")
        method = self.choice(AUTH_TYPE, self.settings.auth_type, ("kubernetes", "jwt"))
        if not role:
            self.error(ROLE, f"required for {method} auth (or {short_key(AUTH_CONFIG_GROUP)}role)")
        mount_path = (self.text(AUTH_PATH, self.settings.auth_path) or "").strip("/")
        if not mount_path:
            self.error(AUTH_PATH, "must not be empty")
        minimum = self.seconds(AUTH_MIN_BACKOFF, self.settings.auth_min_backoff_seconds)
        maximum = self.seconds(AUTH_MAX_BACKOFF, self.settings.auth_max_backoff_seconds)
        if maximum < minimum:
            self.error(AUTH_MAX_BACKOFF, f"must not be below {short_key(AUTH_MIN_BACKOFF)}")
        method_value: AuthMethod = "jwt" if method == "jwt" else "kubernetes"
        return AuthConfig(
            role=role,
            method=method_value,
            mount_path=mount_path or "auth/kubernetes",
            token_file=token_file,
            params=params,
            min_backoff_seconds=minimum,
            max_backoff_seconds=max(maximum, minimum),
            exit_on_error=self.boolean(AGENT_AUTO_AUTH_EXIT_ON_ERR, False),
        )

    def lifecycle(self) -> LifecycleConfig:
        settled = self.prepared.lifecycle
        if settled is not None and self.own.keys().isdisjoint(LIFECYCLE_KEYS):
            return self.replay(settled)
        return self.read_lifecycle()

    def read_lifecycle(self) -> LifecycleConfig:
        threshold_key = TEMPLATE_LEASE_RENEWAL_THRESHOLD
        min_remaining = _DEFAULT_MIN_REMAINING_FRACTION
        raw_threshold = self.text(threshold_key)
        if raw_threshold is not None:
            try:
                threshold = float(raw_threshold)
            except ValueError:
                threshold = -1.0
            if not 0 < threshold < 1:
                self.error(threshold_key, "expected a fraction of the lease between 0 and 1")
            else:
                # Vault renews once this fraction of the lease has passed; we keep the rest.
                min_remaining = 1 - threshold
        return LifecycleConfig(
            revoke_on_shutdown=self.boolean(
                AGENT_REVOKE_ON_SHUTDOWN, self.settings.revoke_on_shutdown
            ),
            revoke_grace_seconds=self.seconds(
                AGENT_REVOKE_GRACE, DEFAULT_REVOKE_GRACE_SECONDS, allow_zero=True
            ),
            exit_on_retry_failure=self.boolean(
                TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE, self.settings.exit_on_retry_failure
            ),
            static_secret_render_interval_seconds=self.seconds(
                TEMPLATE_STATIC_SECRET_RENDER_INTERVAL,
                self.settings.static_secret_render_interval_seconds,
            ),
            min_remaining_fraction=min_remaining,
        )

    def agent_config(
        self,
        templates: list[TemplateConfig],
        token_volume: TokenVolume | None,
        token_sink: str | None,
        mode: InjectionMode,
        wait_for_secrets: bool,
    ) -> AgentConfig | None:
        vault = self.vault_connection()
        auth = self.auth(token_volume)
        lifecycle = self.lifecycle()
        log_level = self.choice(LOG_LEVEL, "info", LOG_LEVELS)
        log_format = self.choice(LOG_FORMAT, "json", LOG_FORMATS)
        service_account = self.spec.get("serviceAccountName") or "default"
        name = self.metadata.get("name") or ""
        config = AgentConfig(
            vault=vault,
            auth=auth,
            pod=PodIdentity(
                namespace=self.namespace,
                service_account=str(service_account),
                name=str(name),
            ),
            templates=tuple(templates),
            lifecycle=lifecycle,
            handoff=mode != "init-only",
            token_sink=token_sink,
            readiness_file=(
                READINESS_FILE if mode == "native-sidecar" and wait_for_secrets else None
            ),
            log_level=_as_log_level(log_level),
            log_format=_as_log_format(log_format),
        )
        if self.errors:
            return None
        # A last line of defence: whatever the agent would refuse, refuse the pod now.
        for problem in validate(config):
            self.errors.append(f"agent configuration: {problem}")
        return config


def _as_log_level(value: str) -> LogLevel:
    for level in LOG_LEVELS:
        if level == value:
            return level  # type: ignore[return-value]
    return "info"


def _as_log_format(value: str) -> LogFormat:
    return "standard" if value == "standard" else "json"


def _as_template_format(value: str) -> TemplateFormat:
    return "json" if value == "json" else "env" if value == "env" else "map"


def _is_loopback(address: str) -> bool:
    try:
        host = urlsplit(address).hostname or ""
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # an unbalanced [ in the address, or a host that is no IP address
        return False
