"""The engine's entry points: parse once, render many times."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agent.templates.backend import Dependency, SecretBackend
from agent.templates.dependencies import find_dependencies
from agent.templates.errors import TemplateExecError, TemplateParseError
from agent.templates.executor import Program
from agent.templates.funcmap import FUNCTIONS
from agent.templates.funcspec import RenderContext
from agent.templates.parser import parse_trees
from agent.templates.values import MISSING


class Template:
    """A parsed template. Immutable: one instance may render in many threads at once."""

    __slots__ = ("_dependencies", "_program", "name")

    def __init__(self, *, name: str, program: Program) -> None:
        self.name = name
        self._program = program
        self._dependencies = find_dependencies(program.trees)

    def dependencies(self) -> tuple[Dependency, ...]:
        """The Vault calls with literal arguments, in order of appearance, each once."""
        return self._dependencies

    def render(
        self,
        *,
        backend: SecretBackend,
        error_on_missing_key: bool = False,
        environ: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> str:
        """Execute the template. ``environ`` (default: the process environment) feeds ``env``;
        ``data`` is the template's dot (nil, as under Vault Agent, when not given)."""
        context = RenderContext(backend=backend, environ=os.environ if environ is None else environ)
        try:
            return self._program.execute(
                MISSING if data is None else data,
                context=context,
                missing_key_error=error_on_missing_key,
            )
        except RecursionError:
            raise TemplateExecError(
                f"template: {self.name}: data or templates nested too deeply"
            ) from None


def parse(
    name: str, text: str, *, left_delimiter: str = "{{", right_delimiter: str = "}}"
) -> Template:
    """Parse ``text`` as a Go template named ``name`` (the name errors report)."""
    try:
        trees = parse_trees(
            name,
            text,
            functions=FUNCTIONS,
            left_delimiter=left_delimiter,
            right_delimiter=right_delimiter,
        )
    except RecursionError:
        # Go has no limit here; Python's stack has, a few hundred levels of nesting down.
        raise TemplateParseError(f"template: {name}: actions nested too deeply") from None
    return Template(
        name=name, program=Program(name=name, text=text, trees=trees, functions=FUNCTIONS)
    )


def render(
    name: str,
    text: str,
    *,
    backend: SecretBackend,
    left_delimiter: str = "{{",
    right_delimiter: str = "}}",
    error_on_missing_key: bool = False,
    environ: Mapping[str, str] | None = None,
    data: Any = None,
) -> str:
    """Parse and render in one call."""
    template = parse(name, text, left_delimiter=left_delimiter, right_delimiter=right_delimiter)
    return template.render(
        backend=backend, error_on_missing_key=error_on_missing_key, environ=environ, data=data
    )
