"""Parsers for the value syntaxes that annotations and settings share (pure, no I/O).

Each parser returns the parsed value or raises ``ValueError`` whose message says what was expected,
without repeating the input (annotation values may be long; callers name the annotation).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Go's strconv.ParseBool, which vault-k8s uses: anything else (`yes`, `tRuE`) is an error.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

BOOLEAN_HINT = "true or false (also 1/0, t/f, TRUE/FALSE, True/False)"
# The white space a boolean may carry around it: what RE2's \s matches, so that the
# ValidatingAdmissionPolicy (CEL `matches`) and the webhook agree on which pods ask for injection.
BOOLEAN_PADDING = " \t\n\f\r"

# Go time.ParseDuration units, in seconds.
_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?")
DURATION_HINT = "a duration such as 30s, 1m30s, 2h or a number of seconds"

# Kubernetes resource.Quantity: a decimal with an optional binary, decimal or exponent suffix.
_QUANTITY = re.compile(
    r"(?P<number>\+?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?"
)
_QUANTITY_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
QUANTITY_HINT = "a Kubernetes quantity such as 250m, 0.5, 64Mi or 1G"

_FILE_MODE = re.compile(r"(?:0o)?([0-7]{1,4})")
FILE_MODE_HINT = "an octal file mode such as 0600, 0640 or 0644"

# RFC 1123 DNS subdomain, as Kubernetes validates object names.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def parse_bool(raw: str) -> bool:
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"expected {BOOLEAN_HINT}")


def parse_duration_seconds(raw: str) -> float:
    """Go duration (``1m30s``, ``1.5h``, ``300ms``) or plain seconds; never negative."""
    text = raw.strip()
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    position = 0
    total = Decimal(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise ValueError(f"expected {DURATION_HINT}")
    return float(total)


def parse_quantity(raw: str) -> Decimal:
    """The value of a Kubernetes quantity in base units (cores, bytes); never negative."""
    match = _QUANTITY.fullmatch(raw.strip())
    if match is None:
        raise ValueError(f"expected {QUANTITY_HINT}")
    suffix = match.group("suffix") or ""
    try:
        number = Decimal(match.group("number"))
        if suffix[:1] in ("e", "E"):
            return number * (Decimal(10) ** int(suffix[1:]))
        return number * _QUANTITY_SUFFIXES[suffix]
    except (InvalidOperation, OverflowError):
        raise ValueError(f"expected {QUANTITY_HINT}") from None


def parse_file_mode(raw: str) -> int:
    match = _FILE_MODE.fullmatch(raw.strip())
    if match is None:
        raise ValueError(f"expected {FILE_MODE_HINT}")
    mode = int(match.group(1), 8)
    if mode > 0o777:
        raise ValueError(f"expected {FILE_MODE_HINT} (no setuid, setgid or sticky bits)")
    return mode


def parse_int(raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    text = raw.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError("expected a whole number")
    value = int(text)
    if minimum is not None and value < minimum:
        raise ValueError(f"expected a whole number of at least {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"expected a whole number of at most {maximum}")
    return value


def split_list(raw: str) -> tuple[str, ...]:
    """A comma-separated list, blanks trimmed and empty items dropped, order kept."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def join_path(directory: str, name: str) -> str:
    """``posixpath.join(directory, name)`` for two strings, by the same rule (an absolute name
    replaces the directory; one slash between), without its generic checks (bytes, PathLike):
    a fifth of a template's cost when compiled."""
    if name.startswith("/"):
        return name
    if not directory or directory.endswith("/"):
        return directory + name
    return directory + "/" + name


def is_dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value) is not None


def relative_file_problem(value: str) -> str | None:
    """Why ``value`` is not a safe file path relative to a volume, or None when it is."""
    if not value:
        return "must not be empty"
    if value.startswith("/"):
        return "must be relative to the secrets volume, not an absolute path"
    parts = value.split("/")
    if any(part == ".." for part in parts):
        return "must not contain '..'"
    if any(part in ("", ".") for part in parts):
        return "must not contain empty or '.' path segments"
    if "\x00" in value:
        return "must not contain a NUL character"
    return None


def absolute_directory_problem(value: str) -> str | None:
    """Why ``value`` is not a clean absolute directory for a volume mount, or None."""
    if not value.startswith("/"):
        return "must be an absolute path"
    parts = value.strip("/").split("/")
    if value == "/" or any(part in ("", ".", "..") for part in parts):
        return "must be a clean absolute path below / without '.', '..' or '//'"
    if ":" in value:
        return "must not contain ':'"
    return None
