"""A failing test must not print what Vault gave the agent. pytest rewrites ``assert`` to show
every intermediate value: ``assert len(vault.leases(p)) == 1`` prints the lease ids it counted
(``where 2 = len([...])``), a message added after the comma included. So the helpers that
return accessors, lease ids or lease details are called before an ``assert``, never inside
one; an assertion shows the count (or a boolean) that was computed from them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
# VaultServer's helpers whose answers are accessors, lease ids or a lease's details.
REVEALING = {"tokens_of_role", "token_accessors", "leases", "lookup_lease", "lookup_accessor"}


def revealing_calls_in_assertions(source: str) -> list[int]:
    """Lines of ``assert`` statements that call one of ``REVEALING`` in their test or message."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        parts = [node.test] if node.msg is None else [node.test, node.msg]
        for part in parts:
            for inner in ast.walk(part):
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr in REVEALING
                ):
                    found.append(node.lineno)
    return sorted(set(found))


def test_the_check_finds_a_revealing_call_in_a_test_or_a_message() -> None:
    source = (
        "assert len(vault.leases(prefix)) == 1, 'one lease'\n"
        "assert not vault.tokens_of_role(role)\n"
        "left = len(vault.tokens_of_role(role))\n"
        "assert left == 0, f'tokens left: {left}'\n"
        "assert ok, vault.leases(prefix)\n"
    )
    assert revealing_calls_in_assertions(source) == [1, 2, 5]


@pytest.mark.parametrize(
    "path",
    sorted([*TESTS.joinpath("agent").glob("test_*.py"), *TESTS.joinpath("e2e").glob("*.py")]),
    ids=lambda path: str(path.relative_to(TESTS)),
)
def test_no_assertion_calls_a_helper_that_returns_accessors_or_lease_ids(path: Path) -> None:
    lines = revealing_calls_in_assertions(path.read_text())
    assert lines == [], f"{path.name}: count before asserting (lines {lines})"
