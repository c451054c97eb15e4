"""Kubernetes resource quantities ("64Mi", "1G", "500k", "1e3") as whole numbers of bytes."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_MULTIPLIERS: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{suffix: Decimal(10) ** (3 * power) for power, suffix in enumerate("kMGTPE", start=1)},
    **{f"{suffix}i": Decimal(2) ** (10 * power) for power, suffix in enumerate("KMGTPE", start=1)},
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


class InvalidQuantity(ValueError):
    pass


def parse_quantity(text: str | int) -> int:
    """The quantity in base units, rounded up as the API server does for byte sizes."""
    if isinstance(text, int):
        return text
    match = _QUANTITY.match(text.strip())
    if not match:
        raise InvalidQuantity(f"{text!r} is not a Kubernetes quantity")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise InvalidQuantity(f"{text!r} is not a Kubernetes quantity") from None
    return math.ceil(value * _MULTIPLIERS[suffix])
