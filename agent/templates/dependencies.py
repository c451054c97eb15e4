"""The static first pass: which Vault calls a template makes, found without running it.

A call counts when its function is ``secret``, ``secrets`` or ``pkiCert`` and every argument is a
string literal, wherever it sits (an action, a condition, a nested pipeline, a define). Calls
built at run time (``secret (printf "db/%s" .name)``, or ``"ttl=1h" | secret "pki/issue/web"``,
whose last argument comes from the pipeline) cannot be known in advance; the agent serves those
when ``render`` asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import cast

from agent.templates.backend import Dependency, DependencyKind
from agent.templates.errors import FunctionError
from agent.templates.nodes import (
    ActionNode,
    BranchNode,
    ChainNode,
    CommandNode,
    IdentifierNode,
    ListNode,
    Node,
    PipeNode,
    StringNode,
    TemplateNode,
)
from agent.templates.vault_functions import normalize_path, parse_params

_VAULT_FUNCTIONS = ("secret", "secrets", "pkiCert")


def _commands(node: Node | None) -> Iterator[CommandNode]:
    if node is None:
        return
    if isinstance(node, ListNode):
        for child in node.nodes:
            yield from _commands(child)
    elif isinstance(node, ActionNode):
        yield from _commands(node.pipe)
    elif isinstance(node, BranchNode):
        yield from _commands(node.pipe)
        yield from _commands(node.list)
        yield from _commands(node.else_list)
    elif isinstance(node, TemplateNode):
        yield from _commands(node.pipe)
    elif isinstance(node, PipeNode):
        first, *later = node.cmds
        yield from _commands(first)
        for command in later:
            # A later stage gets the previous stage's value as its last argument: its literal
            # arguments are not the whole call, so only the calls nested in them count.
            for arg in command.args:
                yield from _commands(arg)
    elif isinstance(node, CommandNode):
        yield node
        for arg in node.args:
            yield from _commands(arg)
    elif isinstance(node, ChainNode):
        yield from _commands(node.node)


def _dependency(command: CommandNode) -> Dependency | None:
    function, *args = command.args
    if not isinstance(function, IdentifierNode) or function.ident not in _VAULT_FUNCTIONS:
        return None
    if not args or not all(isinstance(arg, StringNode) for arg in args):
        return None
    if function.ident == "secrets" and len(args) != 1:
        return None
    values = [cast(StringNode, arg).text for arg in args]
    path = normalize_path(values[0])
    if not path:
        return None
    try:
        params = parse_params(values[1:])
    except FunctionError:
        return None  # Rendering reports the malformed argument.
    kind = cast(DependencyKind, function.ident)
    return Dependency(kind=kind, path=path, params=tuple(sorted(params.items())))


def find_dependencies(trees: Mapping[str, ListNode]) -> tuple[Dependency, ...]:
    found: list[tuple[int, Dependency]] = []
    for root in trees.values():
        for command in _commands(root):
            dependency = _dependency(command)
            if dependency is not None:
                found.append((command.pos, dependency))
    found.sort(key=lambda item: item[0])
    unique: dict[Dependency, None] = {}
    for _pos, dependency in found:
        unique.setdefault(dependency, None)
    return tuple(unique)
