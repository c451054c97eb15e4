"""Default formats (map, json, env) and shell-safe env files."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.config import TemplateConfig
from agent.rendering import env_lines, prepare, shell_quote
from agent.templates import Dependency, Secret, TemplateError


class StaticBackend:
    """Answers ``secret`` from a dict; records what was asked."""

    def __init__(self, answers: Mapping[str, Mapping[str, Any]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def secret(self, path: str, params: Mapping[str, str]) -> Secret:
        self.asked.append(path)
        return Secret(data=self.answers[path])

    def secrets(self, path: str) -> list[str]:
        raise AssertionError("not used")

    def pki_cert(self, path: str, params: Mapping[str, str]) -> Secret:
        raise AssertionError("not used")


def render(config: TemplateConfig, answers: Mapping[str, Mapping[str, Any]]) -> str:
    prepared = prepare(config)
    return prepared.render(StaticBackend(answers), environ={}).decode()


def config(default_format: str = "map", **options: Any) -> TemplateConfig:
    return TemplateConfig(
        name="app",
        destination="/vault/secrets/app",
        vault_path="secret/app",
        default_format=default_format,  # type: ignore[arg-type]
        **options,
    )


def test_map_format_lists_keys_and_values() -> None:
    assert render(config("map"), {"secret/app": {"user": "u", "port": 5432}}) == (
        "port: 5432\nuser: u\n"
    )


def test_json_format_is_the_data_as_json() -> None:
    assert render(config("json"), {"secret/app": {"user": "u", "port": 5432}}) == (
        '{"port":5432,"user":"u"}\n'
    )


def test_default_templates_depend_on_the_path_only() -> None:
    for default_format in ("map", "json", "env"):
        prepared = prepare(config(default_format))
        assert prepared.template.dependencies() == (Dependency("secret", "secret/app", ()),)


def test_env_format_unwraps_kv_v2_and_sorts_keys() -> None:
    answer = {"data": {"B": "2", "A": "1"}, "metadata": {"version": 3}}
    assert render(config("env"), {"secret/app": answer}) == "export A='1'\nexport B='2'\n"


@pytest.mark.parametrize(
    ("value", "line"),
    [
        pytest.param("plain", "export K='plain'\n", id="a plain string is quoted"),
        pytest.param("it's", "export K='it'\\''s'\n", id="a single quote is closed and escaped"),
        pytest.param(
            "$(rm -rf /) `x` $HOME", "export K='$(rm -rf /) `x` $HOME'\n", id="no expansion"
        ),
        pytest.param(5432, "export K='5432'\n", id="an integer stays an integer"),
        pytest.param(True, "export K='true'\n", id="a boolean as JSON"),
        pytest.param(None, "export K=''\n", id="null is empty"),
        pytest.param({"a": [1]}, "export K='{\"a\":[1]}'\n", id="a structure as compact JSON"),
        pytest.param("two\nlines", "export K='two\nlines'\n", id="a newline stays inside quotes"),
    ],
)
def test_env_values_are_single_quoted(value: Any, line: str) -> None:
    assert env_lines("app", {"K": value}) == line


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("1ABC", id="a leading digit"),
        pytest.param("A-B", id="a dash"),
        pytest.param("A B", id="a space"),
        pytest.param("A;rm", id="shell syntax"),
        pytest.param("", id="an empty name"),
    ],
)
def test_env_keys_must_be_shell_names(key: str) -> None:
    with pytest.raises(TemplateError, match="not shell variable names"):
        env_lines("app", {key: "v", "GOOD": "v"})


def test_an_env_value_with_a_nul_is_refused_without_showing_it() -> None:
    with pytest.raises(TemplateError) as raised:
        env_lines("app", {"K": "sec\0ret"})
    assert "sec" not in str(raised.value)


def test_an_env_file_is_sourced_by_a_real_shell_literally(tmp_path: Path) -> None:
    values = {"PASSWORD": "p'a\"s$s `w` \\ $(x)", "PORT": 5432, "MULTI": "a\nb"}
    env_file = tmp_path / "env"
    env_file.write_text(env_lines("app", values))
    shown = subprocess.run(
        ["/bin/sh", "-c", f'. "{env_file}"; printf "%s|%s|%s" "$PASSWORD" "$PORT" "$MULTI"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == "p'a\"s$s `w` \\ $(x)|5432|a\nb"


def test_shell_quote_round_trips_through_sh() -> None:
    text = "''\"'$x"
    shown = subprocess.run(
        ["/bin/sh", "-c", f"printf %s {shell_quote(text)}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == text


def test_inline_contents_win_over_a_source_file(tmp_path: Path) -> None:
    source = tmp_path / "t.tmpl"
    source.write_text("from file")
    both = config(contents="inline", source_file=str(source))
    assert render(both, {}) == "inline"
    only_file = config(source_file=str(source))
    assert render(only_file, {}) == "from file"


def test_custom_delimiters_apply_to_user_templates() -> None:
    custom = config(
        contents='[[ with secret "secret/app" ]][[ .Data.user ]][[ end ]] {{ literal }}',
        left_delimiter="[[",
        right_delimiter="]]",
    )
    assert render(custom, {"secret/app": {"user": "u"}}) == "u {{ literal }}"


def test_binary_secret_data_reaches_the_file_byte_for_byte() -> None:
    keystore = bytes(range(256))
    encoded = base64.b64encode(keystore).decode("ascii")
    template = config(
        contents='{{ with secret "secret/app" }}{{ base64Decode .Data.jks }}{{ end }}'
    )
    prepared = prepare(template)
    assert prepared.render(StaticBackend({"secret/app": {"jks": encoded}}), environ={}) == keystore


def test_a_template_file_that_is_not_utf8_renders_its_bytes(tmp_path: Path) -> None:
    source = tmp_path / "app.tmpl"
    source.write_bytes(b'latin-1 \xe9t\xe9: {{ with secret "secret/app" }}{{ .Data.a }}{{ end }}')
    prepared = prepare(config(source_file=str(source)))
    rendered = prepared.render(StaticBackend({"secret/app": {"a": "x"}}), environ={})
    assert rendered == b"latin-1 \xe9t\xe9: x"
