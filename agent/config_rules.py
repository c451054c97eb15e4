"""The agent configuration's rules beyond its types: ``validate``, the schema version, signals.

Part of agent.config's contract (which imports it from here; the webhook's annotation parser
uses the same rules to refuse a pod early). The classes are named for the type checker only,
which keeps the import one-way. mypyc compiles this module and agent.config for the webhook's
image (setup.COMPILED_MODULES); the agent's image runs both as plain Python.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import TYPE_CHECKING

from agent.metrics import MetricsError, parse_loopback_address

if TYPE_CHECKING:
    from agent.config import AgentConfig

SCHEMA_VERSION = 1

# Signals an app may ask to receive after a file changes (agent-inject-signal-<name>).
SIGNALS = frozenset(
    {"SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT"}
)


def validate(config: AgentConfig) -> list[str]:
    """Semantic checks beyond types; returns every problem, each naming its field."""
    problems: list[str] = []
    if config.version != SCHEMA_VERSION:
        problems.append(f"version: {config.version} is not supported (expected {SCHEMA_VERSION})")
    if not config.vault.address.startswith(("http://", "https://")):
        problems.append("vault.address: must start with http:// or https://")
    if config.vault.timeout_seconds <= 0:
        problems.append("vault.timeout_seconds: must be positive")
    if config.vault.max_retries < 0:
        problems.append("vault.max_retries: must not be negative")
    auth = config.auth
    if not auth.role and "role" not in auth.params:
        problems.append("auth.role: required (or auth.params.role)")
    if not auth.mount_path.strip("/"):
        problems.append("auth.mount_path: must not be empty")
    if not auth.token_file.startswith("/"):
        problems.append("auth.token_file: must be an absolute path")
    if auth.min_backoff_seconds <= 0:
        problems.append("auth.min_backoff_seconds: must be positive")
    if auth.max_backoff_seconds < auth.min_backoff_seconds:
        problems.append("auth.max_backoff_seconds: must not be below auth.min_backoff_seconds")
    seen_names: set[str] = set()
    seen_destinations: set[str] = set()
    # A rendered file must not overwrite the agent's own files.
    private = posixpath.join(config.state_dir, "")
    agent_files = (config.token_sink, config.readiness_file)
    for index, template in enumerate(config.templates):
        where = f"templates[{index}]"
        if not template.name:
            problems.append(f"{where}.name: must not be empty")
        elif template.name in seen_names:
            problems.append(f"{where}.name: {template.name!r} appears twice")
        seen_names.add(template.name)
        if not template.destination.startswith("/") or "/../" in template.destination + "/":
            problems.append(f"{where}.destination: must be an absolute path without '..'")
        elif template.destination in seen_destinations:
            problems.append(f"{where}.destination: {template.destination!r} is used twice")
        seen_destinations.add(template.destination)
        # vault-k8s allows a template without agent-inject-secret-<name>: it names its own paths.
        if not template.vault_path and template.contents is None and template.source_file is None:
            problems.append(f"{where}.vault_path: must not be empty without a template")
        if not 0 <= template.perms <= 0o777:
            problems.append(f"{where}.perms: must be a file mode between 0 and 0o777")
        if not template.left_delimiter or not template.right_delimiter:
            problems.append(f"{where}: template delimiters must not be empty")
        if template.command_timeout_seconds <= 0:
            problems.append(f"{where}.command_timeout_seconds: must be positive")
        if template.command is not None:
            try:
                if not shlex.split(template.command):
                    problems.append(f"{where}.command: must not be empty")
            except ValueError as error:
                problems.append(f"{where}.command: cannot be split into arguments ({error})")
        if template.signal is not None:
            if template.signal.signal not in SIGNALS:
                problems.append(
                    f"{where}.signal.signal: {template.signal.signal!r} is not one of "
                    + ", ".join(sorted(SIGNALS))
                )
            if not template.signal.process_name:
                problems.append(f"{where}.signal.process_name: must not be empty")
        if template.destination.startswith(private) or template.destination in agent_files:
            problems.append(
                f"{where}.destination: must not be in state_dir or be token_sink or readiness_file"
            )
    tls = config.vault.tls
    if (tls.client_cert_file is None) != (tls.client_key_file is None):
        problems.append("vault.tls: client_cert_file and client_key_file go together")
    if config.metrics_address is not None:
        try:
            parse_loopback_address(config.metrics_address)
        except MetricsError as error:
            problems.append(str(error))
    lifecycle = config.lifecycle
    if lifecycle.revoke_grace_seconds < 0:
        problems.append("lifecycle.revoke_grace_seconds: must not be negative")
    if lifecycle.static_secret_render_interval_seconds <= 0:
        problems.append("lifecycle.static_secret_render_interval_seconds: must be positive")
    if not 0 < lifecycle.min_remaining_fraction < 1:
        problems.append("lifecycle.min_remaining_fraction: must be between 0 and 1")
    if lifecycle.init_timeout_seconds <= 0:
        problems.append("lifecycle.init_timeout_seconds: must be positive")
    for name in ("state_dir", "token_sink", "readiness_file"):
        value = getattr(config, name)
        if value is not None and not value.startswith("/"):
            problems.append(f"{name}: must be an absolute path")
    return problems
