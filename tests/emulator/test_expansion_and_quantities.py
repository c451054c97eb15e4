"""``$(VAR)`` expansion and resource quantities, as the kubelet and API server read them."""

from __future__ import annotations

import pytest

from tests.support.emulator.expansion import expand
from tests.support.emulator.quantity import InvalidQuantity, parse_quantity

VARIABLES = {"NAME": "orders", "EMPTY": "", "NESTED": "$(NAME)"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("$(NAME)", "orders", id="a defined variable is replaced"),
        pytest.param("db-$(NAME)-1", "db-orders-1", id="a variable inside text is replaced"),
        pytest.param("$(MISSING)", "$(MISSING)", id="an undefined variable stays as written"),
        pytest.param("$$(NAME)", "$(NAME)", id="a doubled dollar escapes the reference"),
        pytest.param("$$$(NAME)", "$orders", id="an escaped dollar before a reference"),
        pytest.param("$(EMPTY)x", "x", id="an empty value is substituted"),
        pytest.param("$(NAME", "$(NAME", id="an unclosed reference stays"),
        pytest.param("cost $5", "cost $5", id="a dollar not starting a reference stays"),
        pytest.param("ends with $", "ends with $", id="a trailing dollar stays"),
        pytest.param("$(NESTED)", "$(NAME)", id="values are not expanded twice"),
        pytest.param("$()", "$()", id="an empty name is undefined"),
    ],
)
def test_expansion_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, VARIABLES) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        pytest.param("64Mi", 64 * 2**20, id="binary suffixes are powers of two"),
        pytest.param("1G", 10**9, id="decimal suffixes are powers of ten"),
        pytest.param("500k", 500_000, id="k is a thousand"),
        pytest.param("1.5Ki", 1536, id="fractions are allowed"),
        pytest.param("1e3", 1000, id="exponents are allowed"),
        pytest.param("1500m", 2, id="milli values round up to whole bytes"),
        pytest.param(4096, 4096, id="a plain integer is bytes"),
    ],
)
def test_quantities_are_read_as_bytes(quantity: str | int, expected: int) -> None:
    assert parse_quantity(quantity) == expected


@pytest.mark.parametrize(
    "quantity",
    [
        pytest.param("64MB", id="MB is not a Kubernetes suffix"),
        pytest.param("lots", id="words are not quantities"),
        pytest.param("", id="empty is not a quantity"),
    ],
)
def test_malformed_quantities_are_refused(quantity: str) -> None:
    with pytest.raises(InvalidQuantity):
        parse_quantity(quantity)
