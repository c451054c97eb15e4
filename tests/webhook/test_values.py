"""The value syntaxes annotations share: Go booleans and durations, quantities, modes, paths."""

from __future__ import annotations

import posixpath
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.values import (
    absolute_directory_problem,
    join_path,
    parse_bool,
    parse_duration_seconds,
    parse_file_mode,
    parse_int,
    parse_quantity,
    relative_file_problem,
    split_list,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("true", True, id="lower-case true"),
        pytest.param("TRUE", True, id="upper-case TRUE"),
        pytest.param("True", True, id="title-case True"),
        pytest.param("1", True, id="one is true"),
        pytest.param("t", True, id="t is true"),
        pytest.param("T", True, id="T is true"),
        pytest.param("false", False, id="lower-case false"),
        pytest.param("FALSE", False, id="upper-case FALSE"),
        pytest.param("False", False, id="title-case False"),
        pytest.param("0", False, id="zero is false"),
        pytest.param("f", False, id="f is false"),
        pytest.param("F", False, id="F is false"),
    ],
)
def test_booleans_accept_what_go_accepts(raw: str, expected: bool) -> None:
    assert parse_bool(raw) is expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("tRuE", id="mixed case is not Go's"),
        pytest.param("yes", id="yes is not a Go boolean"),
        pytest.param("on", id="on is not a Go boolean"),
        pytest.param("", id="empty is not a boolean"),
        pytest.param("2", id="two is not a boolean"),
    ],
)
def test_booleans_refuse_everything_else_naming_what_is_expected(raw: str) -> None:
    with pytest.raises(ValueError, match="true or false"):
        parse_bool(raw)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        pytest.param("5s", 5.0, id="seconds"),
        pytest.param("1m30s", 90.0, id="minutes and seconds"),
        pytest.param("2h", 7200.0, id="hours"),
        pytest.param("1.5h", 5400.0, id="fractional hours"),
        pytest.param("300ms", 0.3, id="milliseconds"),
        pytest.param("1h2m3s4ms", 3723.004, id="every unit at once"),
        pytest.param("45", 45.0, id="plain seconds"),
        pytest.param("2.5", 2.5, id="plain fractional seconds"),
        pytest.param("0s", 0.0, id="zero"),
    ],
)
def test_durations_read_go_syntax_and_plain_seconds(raw: str, seconds: float) -> None:
    assert parse_duration_seconds(raw) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("5 minutes", id="words"),
        pytest.param("-5s", id="negative"),
        pytest.param("5x", id="unknown unit"),
        pytest.param("s", id="unit without number"),
        pytest.param("1m 30s", id="space inside"),
        pytest.param("", id="empty"),
    ],
)
def test_durations_refuse_anything_else(raw: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_seconds(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        pytest.param("250m", Decimal("0.25"), id="millicores"),
        pytest.param("0.5", Decimal("0.5"), id="fractional cores"),
        pytest.param("64Mi", Decimal(64 * 2**20), id="binary suffix"),
        pytest.param("1G", Decimal(10**9), id="decimal suffix"),
        pytest.param("1e3", Decimal(1000), id="exponent"),
    ],
)
def test_quantities_have_their_kubernetes_value(raw: str, value: Decimal) -> None:
    assert parse_quantity(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("-1", id="negative"),
        pytest.param("64MB", id="unknown suffix"),
        pytest.param("lots", id="words"),
        pytest.param("", id="empty"),
    ],
)
def test_quantities_refuse_what_kubernetes_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(raw)


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        pytest.param("0600", 0o600, id="leading zero"),
        pytest.param("640", 0o640, id="three digits"),
        pytest.param("0o644", 0o644, id="python prefix"),
    ],
)
def test_file_modes_are_octal(raw: str, mode: int) -> None:
    assert parse_file_mode(raw) == mode


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("0888", id="not octal"),
        pytest.param("4755", id="setuid bit"),
        pytest.param("rw-r--r--", id="symbolic"),
    ],
)
def test_file_modes_refuse_non_octal_and_special_bits(raw: str) -> None:
    with pytest.raises(ValueError, match="octal file mode"):
        parse_file_mode(raw)


def test_integers_check_their_bounds() -> None:
    assert parse_int(" 42 ") == 42
    with pytest.raises(ValueError, match="at least 1"):
        parse_int("0", minimum=1)
    with pytest.raises(ValueError, match="at most 10"):
        parse_int("11", maximum=10)
    with pytest.raises(ValueError, match="whole number"):
        parse_int("1.5")


def test_lists_drop_blanks_and_keep_order() -> None:
    assert split_list(" b, a ,,c ") == ("b", "a", "c")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("db.env", None, id="a plain name is fine"),
        pytest.param("app/db.env", None, id="a sub-directory is fine"),
        pytest.param("/etc/passwd", "absolute", id="an absolute path is refused"),
        pytest.param("../db", "'..'", id="a parent step is refused"),
        pytest.param("a/../../b", "'..'", id="a parent step inside is refused"),
        pytest.param("a//b", "empty", id="an empty segment is refused"),
        pytest.param("", "empty", id="an empty name is refused"),
    ],
)
def test_relative_file_names_stay_inside_the_volume(value: str, problem: str | None) -> None:
    found = relative_file_problem(value)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        pytest.param("/vault/secrets", True, id="the default"),
        pytest.param("/etc/app/conf", True, id="a deep path"),
        pytest.param("relative", False, id="a relative path"),
        pytest.param("/", False, id="the root"),
        pytest.param("/vault/../etc", False, id="a parent step"),
        pytest.param("/a:b", False, id="a colon"),
    ],
)
def test_mount_directories_must_be_clean_and_absolute(value: str, ok: bool) -> None:
    assert (absolute_directory_problem(value) is None) is ok


_PATH_TEXT = st.text(alphabet="/.ab", max_size=6)


@given(_PATH_TEXT, _PATH_TEXT)
def test_join_path_joins_as_posixpath_does(directory: str, name: str) -> None:
    assert join_path(directory, name) == posixpath.join(directory, name)
