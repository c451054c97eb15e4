"""From a TemplateConfig to bytes: inline or file templates, and the default formats.

When only a Vault path is given, ``default_format`` picks the template, as vault-k8s does:

- ``map``:  ``{{ with secret "P" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\\n{{ end }}``
  ``{{ end }}``
- ``json``: ``{{ with secret "P" }}{{ .Data | toJSON }}\\n{{ end }}``
- ``env`` (ours): ``export KEY='value'`` lines an app can ``source`` (KV v2: the inner data).
  Keys must be shell variable names; values are single-quoted, so nothing in a value is ever
  expanded or executed by the shell.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.config import TemplateConfig
from agent.templates import Dependency, SecretBackend, TemplateError, parse
from agent.templates.vault_functions import normalize_path

logger = logging.getLogger(__name__)

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def default_template_text(path: str, default_format: str) -> str:
    quoted = json.dumps(path)  # a Go string literal for any ordinary path
    if default_format == "json":
        return f"{{{{ with secret {quoted} }}}}{{{{ .Data | toJSON }}}}\n{{{{ end }}}}"
    return (
        f"{{{{ with secret {quoted} }}}}{{{{ range $k, $v := .Data }}}}"
        "{{ $k }}: {{ $v }}\n{{ end }}{{ end }}"
    )


class Renderable(Protocol):
    def dependencies(self) -> tuple[Dependency, ...]: ...

    def render(
        self,
        *,
        backend: SecretBackend,
        error_on_missing_key: bool = False,
        environ: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> str: ...


def _shell_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = ""
    elif isinstance(value, int | float):
        text = json.dumps(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text


def shell_quote(text: str) -> str:
    """POSIX single quotes: the shell takes everything literally; a quote becomes '\\''."""
    return "'" + text.replace("'", "'\\''") + "'"


def env_lines(name: str, data: Mapping[str, Any]) -> str:
    """``export KEY='value'`` lines, sorted by key. Raises TemplateError naming bad keys."""
    bad = sorted(key for key in data if not _SHELL_NAME.fullmatch(str(key)))
    if bad:
        raise TemplateError(
            f"template: {name}: env format: not shell variable names: {', '.join(map(repr, bad))}"
        )
    lines = []
    for key in sorted(data):
        text = _shell_value(data[key])
        if "\0" in text:
            raise TemplateError(f"template: {name}: env format: the value of {key} holds a NUL")
        lines.append(f"export {key}={shell_quote(text)}\n")
    return "".join(lines)


class EnvTemplate:
    """The ``env`` default format; a Renderable like the engine's templates."""

    def __init__(self, name: str, path: str) -> None:
        self._name = name
        self._dependency = Dependency("secret", normalize_path(path), ())

    def dependencies(self) -> tuple[Dependency, ...]:
        return (self._dependency,)

    def render(
        self,
        *,
        backend: SecretBackend,
        error_on_missing_key: bool = False,
        environ: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> str:
        secret = backend.secret(self._dependency.path, {})
        values: Mapping[str, Any] = secret.data
        inner = values.get("data")
        if set(values) == {"data", "metadata"} and isinstance(inner, Mapping):
            values = inner  # KV v2: the secret's own keys, not Vault's envelope
        return env_lines(self._name, values)


@dataclass(frozen=True)
class PreparedTemplate:
    config: TemplateConfig
    template: Renderable

    @property
    def name(self) -> str:
        return self.config.name

    def render(self, backend: SecretBackend, *, environ: Mapping[str, str]) -> bytes:
        text = self.template.render(
            backend=backend,
            error_on_missing_key=self.config.error_on_missing_key,
            environ=environ,
        )
        # Go writes a template's bytes as they are: bytes that are not UTF-8 (base64Decode of a
        # keystore, `file` of a binary) reach the engine as surrogate escapes and leave as bytes.
        return text.encode("utf-8", "surrogateescape")


def prepare(config: TemplateConfig) -> PreparedTemplate:
    """Parse the template of ``config``; raises TemplateError, or OSError for a missing file."""
    if config.contents is not None:
        text = config.contents
    elif config.source_file is not None:
        with open(config.source_file, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    elif config.default_format == "env":
        return PreparedTemplate(config, EnvTemplate(config.name, config.vault_path))
    else:
        text = default_template_text(config.vault_path, config.default_format)
        return PreparedTemplate(config, parse(config.name, text))
    template = parse(
        config.name,
        text,
        left_delimiter=config.left_delimiter,
        right_delimiter=config.right_delimiter,
    )
    return PreparedTemplate(config, template)
