"""Cluster-wide settings of the webhook, read once from the ``AGENT_INJECT_*`` environment.

Names follow vault-k8s, so an existing deployment's environment keeps its meaning. Settings marked
*ours* do not exist in vault-k8s. ``from_env`` collects every problem before failing, each naming
its variable, so an administrator fixes a deployment in one go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.config import LOGGING_LEVELS
from webhook.values import (
    parse_bool,
    parse_duration_seconds,
    parse_int,
    parse_quantity,
    split_list,
)

ANNOTATION_PREFIX = "vault.hashicorp.com/"
DEFAULT_AGENT_IMAGE = "vault-sidecar-injector-agent:0.1.0"
DEFAULT_LISTEN = ":8080"
# Near what the Python agent really uses: about 25 MiB peak RSS and next to no CPU between
# renewals (docs/benchmarks/agent.md). The limit leaves room for the startup probe's process
# (about 14 MiB) and the tmpfs pages the agent writes (the volumes' size limits), which count
# against the writing container. vault-k8s asks for 250m/64Mi and limits 500m/128Mi (pain point 8).
DEFAULT_CPU_REQUEST = "10m"
DEFAULT_MEM_REQUEST = "32Mi"
DEFAULT_CPU_LIMIT = "250m"
DEFAULT_MEM_LIMIT = "96Mi"
# tmpfs pages count against the writing container's memory limit, so the cap stays well below it.
DEFAULT_SECRETS_VOLUME_SIZE_LIMIT = "16Mi"
# The API server refuses projected tokens that live shorter than ten minutes.
MIN_PROJECTED_TOKEN_SECONDS = 600
DEFAULT_PROJECTED_TOKEN_SECONDS = 600
TLS_MIN_VERSIONS = ("tls12", "tls13")


class SettingsError(ValueError):
    """The environment is invalid; ``problems`` names every offending variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid webhook settings: " + "; ".join(problems))


@dataclass(frozen=True)
class Settings:
    vault_address: str | None = None
    listen: str = DEFAULT_LISTEN
    vault_ca_cert_pem: str | None = None
    proxy_address: str | None = None
    agent_image: str = DEFAULT_AGENT_IMAGE
    auth_type: str = "kubernetes"
    auth_path: str = "auth/kubernetes"
    vault_namespace: str | None = None
    # vault-k8s defaults to false; revoking on shutdown limits the life of a stolen token.
    revoke_on_shutdown: bool = True
    run_as_user: int = 100
    run_as_group: int = 1000
    run_as_same_user: bool = False
    set_security_context: bool = True
    default_template: str = "map"
    cpu_request: str = DEFAULT_CPU_REQUEST
    mem_request: str = DEFAULT_MEM_REQUEST
    ephemeral_request: str = ""
    cpu_limit: str = DEFAULT_CPU_LIMIT
    mem_limit: str = DEFAULT_MEM_LIMIT
    ephemeral_limit: str = ""
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Automatic in-cluster certificates (certs.kube): the webhook configuration's name and hosts.
    tls_auto: str | None = None
    tls_auto_hosts: tuple[str, ...] = ()
    tls_min_version: str = "tls12"
    static_secret_render_interval_seconds: float = 300.0
    exit_on_retry_failure: bool = True
    auth_min_backoff_seconds: float = 1.0
    auth_max_backoff_seconds: float = 300.0
    log_level: str = "info"
    log_format: str = "json"
    # The webhook's own namespace and pod name (downward API), for logs and leader election.
    namespace: str | None = None
    pod_name: str | None = None
    # Ours: one native sidecar (init container with restartPolicy Always) instead of init+sidecar.
    native_sidecar: bool = False
    # Ours: always log in with a projected token mounted only into the agent containers.
    projected_token: bool = False
    # Ours: audience and lifetime of that projected token (audience None: the API server's own).
    projected_token_audience: str | None = None
    projected_token_expiration_seconds: int = DEFAULT_PROJECTED_TOKEN_SECONDS
    # Ours: sizeLimit of the in-memory secrets volumes.
    secrets_volume_size_limit: str = DEFAULT_SECRETS_VOLUME_SIZE_LIMIT
    # Ours (pain point 15): annotation defaults for every pod; a pod's own annotation wins.
    default_annotations: Mapping[str, str] = field(default_factory=dict)
    # gunicorn: worker processes and threads per worker. The admission is CPU-bound Python, so
    # threads only contend for the GIL: on 2 cores one thread per worker measured 2x lower p99
    # than four (docs/benchmarks/webhook.md); keep-alive connections wait in gthread's poller.
    workers: int = 2
    threads: int = 1

    @property
    def bind(self) -> str:
        """``listen`` as gunicorn's bind: Go's ``:8080`` means every interface."""
        if self.listen.startswith(":"):
            return "0.0.0.0" + self.listen  # noqa: S104 - a webhook listens for the API server
        return self.listen

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return _SettingsReader(env).read()


class _SettingsReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.values: dict[str, object] = {}

    def text(self, variable: str, attribute: str) -> None:
        raw = self.env.get(variable, "").strip()
        if raw:
            self.values[attribute] = raw

    def boolean(self, variable: str, attribute: str) -> None:
        raw = self.env.get(variable, "").strip()
        if raw:
            try:
                self.values[attribute] = parse_bool(raw)
            except ValueError as error:
                self.problems.append(f"{variable}: {error}")

    def integer(self, variable: str, attribute: str, *, minimum: int = 0) -> None:
        raw = self.env.get(variable, "").strip()
        if raw:
            try:
                self.values[attribute] = parse_int(raw, minimum=minimum)
            except ValueError as error:
                self.problems.append(f"{variable}: {error}")

    def duration(self, variable: str, attribute: str) -> None:
        raw = self.env.get(variable, "").strip()
        if raw:
            try:
                seconds = parse_duration_seconds(raw)
            except ValueError as error:
                self.problems.append(f"{variable}: {error}")
                return
            if seconds <= 0:
                self.problems.append(f"{variable}: must be longer than zero")
                return
            self.values[attribute] = seconds

    def quantity(self, variable: str, attribute: str) -> None:
        if variable not in self.env:
            return
        # An empty value is meaningful: omit that resource, as an empty annotation does.
        raw = self.env[variable].strip()
        if raw:
            try:
                parse_quantity(raw)
            except ValueError as error:
                self.problems.append(f"{variable}: {error}")
                return
        self.values[attribute] = raw

    def choice(self, variable: str, attribute: str, allowed: tuple[str, ...]) -> None:
        raw = self.env.get(variable, "").strip().lower()
        if raw:
            if raw not in allowed:
                self.problems.append(f"{variable}: expected one of {', '.join(allowed)}")
                return
            self.values[attribute] = raw

    def read(self) -> Settings:
        self.text("AGENT_INJECT_VAULT_ADDR", "vault_address")
        self.text("AGENT_INJECT_LISTEN", "listen")
        self.text("AGENT_INJECT_VAULT_CACERT_BYTES", "vault_ca_cert_pem")
        self.text("AGENT_INJECT_PROXY_ADDR", "proxy_address")
        self.text("AGENT_INJECT_VAULT_IMAGE", "agent_image")
        self.choice("AGENT_INJECT_VAULT_AUTH_TYPE", "auth_type", ("kubernetes", "jwt"))
        self.text("AGENT_INJECT_VAULT_AUTH_PATH", "auth_path")
        self.text("AGENT_INJECT_VAULT_NAMESPACE", "vault_namespace")
        self.boolean("AGENT_INJECT_REVOKE_ON_SHUTDOWN", "revoke_on_shutdown")
        self.integer("AGENT_INJECT_RUN_AS_USER", "run_as_user", minimum=1)
        self.integer("AGENT_INJECT_RUN_AS_GROUP", "run_as_group")
        self.boolean("AGENT_INJECT_RUN_AS_SAME_USER", "run_as_same_user")
        self.boolean("AGENT_INJECT_SET_SECURITY_CONTEXT", "set_security_context")
        self.choice("AGENT_INJECT_DEFAULT_TEMPLATE", "default_template", ("map", "json", "env"))
        self.quantity("AGENT_INJECT_CPU_REQUEST", "cpu_request")
        self.quantity("AGENT_INJECT_MEM_REQUEST", "mem_request")
        self.quantity("AGENT_INJECT_EPHEMERAL_REQUEST", "ephemeral_request")
        self.quantity("AGENT_INJECT_CPU_LIMIT", "cpu_limit")
        self.quantity("AGENT_INJECT_MEM_LIMIT", "mem_limit")
        self.quantity("AGENT_INJECT_EPHEMERAL_LIMIT", "ephemeral_limit")
        self.text("AGENT_INJECT_TLS_CERT_FILE", "tls_cert_file")
        self.text("AGENT_INJECT_TLS_KEY_FILE", "tls_key_file")
        self.text("AGENT_INJECT_TLS_AUTO", "tls_auto")
        hosts = split_list(self.env.get("AGENT_INJECT_TLS_AUTO_HOSTS", ""))
        if hosts:
            self.values["tls_auto_hosts"] = hosts
        self.choice("AGENT_INJECT_TLS_MIN_VERSION", "tls_min_version", TLS_MIN_VERSIONS)
        self.duration(
            "AGENT_INJECT_TEMPLATE_STATIC_SECRET_RENDER_INTERVAL",
            "static_secret_render_interval_seconds",
        )
        self.boolean("AGENT_INJECT_TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE", "exit_on_retry_failure")
        self.duration("AGENT_INJECT_AUTH_MIN_BACKOFF", "auth_min_backoff_seconds")
        self.duration("AGENT_INJECT_AUTH_MAX_BACKOFF", "auth_max_backoff_seconds")
        self.choice("AGENT_INJECT_LOG_LEVEL", "log_level", tuple(LOGGING_LEVELS))
        self.choice("AGENT_INJECT_LOG_FORMAT", "log_format", ("standard", "json"))
        self.text("NAMESPACE", "namespace")
        self.text("POD_NAME", "pod_name")
        self.boolean("AGENT_INJECT_NATIVE_SIDECAR", "native_sidecar")
        self.boolean("AGENT_INJECT_PROJECTED_TOKEN", "projected_token")
        self.text("AGENT_INJECT_PROJECTED_TOKEN_AUDIENCE", "projected_token_audience")
        self.integer(
            "AGENT_INJECT_PROJECTED_TOKEN_EXPIRATION",
            "projected_token_expiration_seconds",
            minimum=MIN_PROJECTED_TOKEN_SECONDS,
        )
        self.quantity("AGENT_INJECT_SECRETS_VOLUME_SIZE_LIMIT", "secrets_volume_size_limit")
        self.integer("AGENT_INJECT_WORKERS", "workers", minimum=1)
        self.integer("AGENT_INJECT_THREADS", "threads", minimum=1)
        self.default_annotations()
        address = self.values.get("vault_address")
        if isinstance(address, str) and not address.startswith(("http://", "https://")):
            self.problems.append("AGENT_INJECT_VAULT_ADDR: must start with http:// or https://")
        minimum = self.values.get("auth_min_backoff_seconds", 1.0)
        maximum = self.values.get("auth_max_backoff_seconds", 300.0)
        if isinstance(minimum, float) and isinstance(maximum, float) and maximum < minimum:
            self.problems.append(
                "AGENT_INJECT_AUTH_MAX_BACKOFF: must not be below AGENT_INJECT_AUTH_MIN_BACKOFF"
            )
        if self.problems:
            raise SettingsError(self.problems)
        return Settings(**self.values)  # type: ignore[arg-type]

    def default_annotations(self) -> None:
        variable = "AGENT_INJECT_DEFAULT_ANNOTATIONS"
        raw = self.env.get(variable, "").strip()
        if not raw:
            return
        try:
            document = json.loads(raw)
        except json.JSONDecodeError:
            self.problems.append(f"{variable}: expected a JSON object of annotation: value")
            return
        if not isinstance(document, dict) or not all(
            isinstance(value, str) for value in document.values()
        ):
            self.problems.append(f"{variable}: expected a JSON object whose values are strings")
            return
        # Keys may omit the prefix; which keys are allowed is the annotation parser's business.
        self.values["default_annotations"] = {
            key if key.startswith(ANNOTATION_PREFIX) else ANNOTATION_PREFIX + key: value
            for key, value in sorted(document.items())
        }
