"""consul-template's functions against their documented behaviour.

Expected values come from consul-template's docs/templating-language.md and the Go library
each function wraps (strings, strconv, regexp, encoding/*), not from this engine's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.templates import JsonNumber, Secret, TemplateError, render
from agent.templates.funcmap import FUNCTIONS
from agent.templates.funcspec import RenderContext
from agent.templates.gotime import go_format


class NoVault:
    """A backend for templates that must not reach Vault."""

    def secret(self, path: str, params: Mapping[str, str]) -> Secret:
        raise AssertionError(f"unexpected secret({path!r})")

    def secrets(self, path: str) -> list[str]:
        raise AssertionError(f"unexpected secrets({path!r})")

    def pki_cert(self, path: str, params: Mapping[str, str]) -> Secret:
        raise AssertionError(f"unexpected pkiCert({path!r})")


def run(text: str, data: Any = None, environ: Mapping[str, str] | None = None) -> str:
    return render("t", text, backend=NoVault(), data=data, environ=environ or {})


def run_error(text: str, data: Any = None, environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(TemplateError) as caught:
        run(text, data, environ)
    return str(caught.value)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param('{{ base64Decode "aGVsbG8=" }}', "hello", id="base64Decode decodes"),
        pytest.param('{{ base64Encode "hello" }}', "aGVsbG8=", id="base64Encode encodes"),
        pytest.param('{{ base64URLDecode "Pz8_" }}', "???", id="base64URLDecode uses - and _"),
        pytest.param('{{ base64URLEncode "??>" }}', "Pz8-", id="base64URLEncode uses - and _"),
        pytest.param(
            '{{ "hello" | sha256Hex }}',
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            id="sha256Hex is the hex digest",
        ),
        pytest.param(
            '{{ "hello" | md5sum }}', "5d41402abc4b2a76b9719d911017c592", id="md5sum is the hex md5"
        ),
        pytest.param(
            '{{ hmacSHA256Hex "The quick brown fox jumps over the lazy dog" "key" }}',
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            id="hmacSHA256Hex takes the message then the key",
        ),
        pytest.param('{{ "  \\t hello \\n" | trimSpace }}', "hello", id="trimSpace trims"),
        pytest.param('{{ "$$5.00$" | trim "$" }}', "5.00", id="trim removes a cutset"),
        pytest.param('{{ "foobar" | trimPrefix "foo" }}', "bar", id="trimPrefix removes a prefix"),
        pytest.param('{{ "a.com" | trimSuffix ".com" }}', "a", id="trimSuffix removes a suffix"),
        pytest.param('{{ "foo\\nbar\\n" | split "\\n" }}', "[foo bar]", id="split trims first"),
        pytest.param('{{ "" | split "," | len }}', "0", id="split of empty text is empty"),
        pytest.param('{{ "a,b,,c" | split "," | len }}', "4", id="split keeps empty parts"),
        pytest.param('{{ "a,b" | split "," | join "-" }}', "a-b", id="join joins a split"),
        pytest.param('{{ "foo.bar" | replaceAll "." "_" }}', "foo_bar", id="replaceAll replaces"),
        pytest.param(
            '{{ "foo.bar" | regexReplaceAll "foo([.a-z]+)" "$1" }}',
            ".bar",
            id="regexReplaceAll expands $1",
        ),
        pytest.param(
            '{{ "-ab-axxb-" | regexReplaceAll "a(x*)b" "T" }}', "-T-T-", id="regexp doc example T"
        ),
        pytest.param(
            '{{ "-ab-axxb-" | regexReplaceAll "a(x*)b" "$1" }}', "--xx-", id="regexp doc example $1"
        ),
        pytest.param(
            '{{ "-ab-axxb-" | regexReplaceAll "a(x*)b" "$1W" }}',
            "---",
            id="regexp doc example $1W names group 1W",
        ),
        pytest.param(
            '{{ "-ab-axxb-" | regexReplaceAll "a(x*)b" "${1}W" }}',
            "-W-xxW-",
            id="regexp doc example ${1}W",
        ),
        pytest.param(
            '{{ "abxd" | regexReplaceAll "x*" "-" }}',
            "-a-b-d-",
            id="regexReplaceAll ignores an empty match right after a match",
        ),
        pytest.param(
            '{{ "foo.bar" | regexMatch "foo([.a-z]+)" }}', "true", id="regexMatch matches"
        ),
        pytest.param('{{ "x" | regexMatch "^y" }}', "false", id="regexMatch does not match"),
        pytest.param('{{ "id9" | regexMatch "[[:digit:]]\\\\z" }}', "true", id="RE2 syntax"),
        pytest.param('{{ "HeLLo" | toLower }}', "hello", id="toLower lowers"),
        pytest.param('{{ "straße" | toUpper }}', "STRAßE", id="toUpper keeps ß like Go"),
        pytest.param('{{ "hello world" | toTitle }}', "Hello World", id="toTitle titles words"),
        pytest.param('{{ "a\\nb" | indent 4 }}', "    a\n    b", id="indent prefixes each line"),
        pytest.param('{{ "a\\n\\nb" | indent 2 }}', "  a\n\n  b", id="indent skips blank lines"),
        pytest.param('{{ splitToMap "," ":" "a:1,b:2,c" }}', "map[a:1 b:2]", id="splitToMap"),
    ],
)
def test_string_and_encoding_functions(template: str, expected: str) -> None:
    assert run(template) == expected


@pytest.mark.parametrize(
    ("template", "data", "expected"),
    [
        pytest.param(
            '{{ if .Tags | contains "production" }}yes{{ end }}',
            {"Tags": ["web", "production"]},
            "yes",
            id="contains finds a needle in a list",
        ),
        pytest.param(
            '{{ "foobar" | contains "oba" }}', None, "true", id="contains finds a substring"
        ),
        pytest.param(
            '{{ in .Tags "production" }}', {"Tags": ["production"]}, "true", id="in is reversed"
        ),
        pytest.param(
            '{{ in .Ports "80" }}',
            {"Ports": [JsonNumber("80")]},
            "false",
            id="in does not mix json numbers and strings",
        ),
        pytest.param(
            "{{ containsAll .Need .Tags }}",
            {"Need": ["a", "b"], "Tags": ["b", "a", "c"]},
            "true",
            id="containsAll with every needle present",
        ),
        pytest.param(
            "{{ containsAll .Need .Tags }} {{ containsAny .Need .Tags }} "
            "{{ containsNone .Need .Tags }} {{ containsNotAll .Need .Tags }}",
            {"Need": [], "Tags": ["a"]},
            "true false true false",
            id="contains family with no needles as documented",
        ),
        pytest.param(
            "{{ containsAny .Need .Tags }} {{ containsNone .Need .Tags }} "
            "{{ containsNotAll .Need .Tags }}",
            {"Need": ["x", "a"], "Tags": ["a"]},
            "true false true",
            id="contains family with one needle present",
        ),
    ],
)
def test_membership_functions(template: str, data: Any, expected: str) -> None:
    assert run(template, data) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param('{{ "true" | parseBool }}', "true", id="parseBool true"),
        pytest.param('{{ "0" | parseBool }}', "false", id="parseBool 0"),
        pytest.param('{{ "" | parseBool }}', "false", id="parseBool of empty text is false"),
        pytest.param('{{ "1" | parseInt }}', "1", id="parseInt parses"),
        pytest.param('{{ "-42" | parseInt | add 2 }}', "-40", id="parseInt gives a number"),
        pytest.param('{{ "" | parseInt }}', "0", id="parseInt of empty text is 0"),
        pytest.param('{{ "1.2" | parseFloat }}', "1.2", id="parseFloat parses"),
        pytest.param('{{ "1e3" | parseFloat }}', "1000", id="parseFloat prints as float64"),
        pytest.param('{{ "1" | parseUint }}', "1", id="parseUint parses"),
        pytest.param(
            '{{ with $d := "{\\"name\\": \\"n\\"}" | parseJSON }}{{ $d.name }}{{ end }}',
            "n",
            id="parseJSON gives fields",
        ),
        pytest.param(
            '{{ (parseJSON "{\\"n\\": 5, \\"f\\": 1e21}") }}',
            "map[f:1e+21 n:5]",
            id="parseJSON numbers are float64",
        ),
        pytest.param('{{ parseJSON "" }}', "map[]", id="parseJSON of empty text is an empty map"),
        pytest.param(
            '{{ with "name: x\\nok: yes\\nn: 5" | parseYAML }}{{ .name }} {{ .ok }} {{ .n }}'
            "{{ end }}",
            "x true 5",
            id="parseYAML reads YAML 1.1",
        ),
        pytest.param(
            '{{ (parseYAML "d: 2001-12-14").d | printf "%T" }}',
            "string",
            id="parseYAML keeps timestamps as strings",
        ),
    ],
)
def test_parsing_functions(template: str, expected: str) -> None:
    assert run(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param(
            '{{ "no" | parseBool }}',
            "error calling parseBool: parseBool: strconv.ParseBool: parsing [redacted]: "
            "invalid syntax",
            id="parseBool rejects other words",
        ),
        pytest.param(
            '{{ "0x10" | parseInt }}',
            "error calling parseInt: parseInt: strconv.ParseInt: parsing [redacted]: "
            "invalid syntax",
            id="parseInt is base 10",
        ),
        pytest.param(
            '{{ "99999999999999999999" | parseInt }}',
            "error calling parseInt: parseInt: strconv.ParseInt: parsing [redacted]: "
            "value out of range",
            id="parseInt is 64 bit",
        ),
        pytest.param(
            '{{ "-1" | parseUint }}',
            "error calling parseUint: parseUint: strconv.ParseUint: parsing [redacted]: "
            "invalid syntax",
            id="parseUint rejects a sign",
        ),
        pytest.param(
            '{{ base64Decode "not base64!" }}',
            "error calling base64Decode: base64Decode: illegal base64 data at input byte 3",
            id="base64Decode reports the first bad byte",
        ),
        pytest.param(
            '{{ "x" | regexMatch "(" }}',
            "error calling regexMatch: error parsing regexp: ",
            id="regexMatch reports a bad pattern",
        ),
        pytest.param(
            '{{ "a" | indent -1 }}',
            "error calling indent: indent value must be a positive integer",
            id="indent refuses a negative width",
        ),
        pytest.param(
            '{{ parseJSON "{" }}',
            "error calling parseJSON: unexpected end of JSON input",
            id="parseJSON reports truncated input",
        ),
    ],
)
def test_functions_report_errors_without_the_value(template: str, message: str) -> None:
    assert message in run_error(template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ add 1 2 }}", "3", id="add"),
        pytest.param("{{ 1 | add 2 }}", "3", id="add in a pipe"),
        pytest.param("{{ subtract 2 5 }}", "3", id="subtract takes the second from the first"),
        pytest.param("{{ 5 | subtract 2 }}", "3", id="subtract in a pipe"),
        pytest.param("{{ multiply 2 2 }}", "4", id="multiply"),
        pytest.param("{{ divide 2 10 }}", "5", id="divide the second by the first"),
        pytest.param("{{ 10 | divide 2 }}", "5", id="divide in a pipe"),
        pytest.param("{{ divide 2 7 }}", "3", id="integer division truncates"),
        pytest.param("{{ divide 2 -7 }}", "-3", id="integer division truncates toward zero"),
        pytest.param("{{ divide 2.0 7 }}", "3.5", id="division with a float is a float"),
        pytest.param("{{ modulo 2 5 }}", "1", id="modulo"),
        pytest.param("{{ modulo 2 -5 }}", "-1", id="modulo has the sign of the dividend"),
        pytest.param("{{ minimum 2 5 }}", "2", id="minimum"),
        pytest.param("{{ maximum 2 5 }}", "5", id="maximum"),
        pytest.param("{{ add 1.5 2 }}", "3.5", id="add mixes ints and floats"),
        pytest.param("{{ .n | add 1 }}", "6", id="add accepts a Vault json.Number"),
    ],
)
def test_math_functions(template: str, expected: str) -> None:
    assert run(template, {"n": JsonNumber("5")}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param(
            "{{ divide 0 1 }}",
            "error calling divide: runtime error: integer divide by zero",
            id="integer division by zero",
        ),
        pytest.param(
            '{{ add 1 "a" }}',
            "error calling add: add: unknown type for [redacted] (string)",
            id="add of text",
        ),
        pytest.param(
            "{{ modulo 2 5.5 }}",
            "error calling modulo: modulo: unknown type for [redacted] (float64)",
            id="modulo of a float",
        ),
    ],
)
def test_math_errors(template: str, message: str) -> None:
    assert message in run_error(template)


CONFIG = {"admin": {"port": "1234"}, "maxconns": "5", "minconns": "2"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param(
            "{{ toJSON . }}",
            '{"admin":{"port":"1234"},"maxconns":"5","minconns":"2"}',
            id="toJSON as documented",
        ),
        pytest.param(
            "{{ toJSONPretty . }}",
            '{\n  "admin": {\n    "port": "1234"\n  },\n  "maxconns": "5",\n  "minconns": "2"\n}',
            id="toJSONPretty indents by two spaces",
        ),
        pytest.param(
            "{{ toYAML . }}",
            'admin:\n  port: "1234"\nmaxconns: "5"\nminconns: "2"',
            id="toYAML as documented",
        ),
        pytest.param(
            '{{ toUnescapedJSON "<&>" }} {{ toJSON "<&>" }}',
            '"<&>" "\\u003c\\u0026\\u003e"',
            id="toUnescapedJSON keeps html characters",
        ),
        pytest.param(
            '{{ toUnescapedJSONPretty (parseJSON "{\\"a\\": [1]}") }}',
            '{\n  "a": [\n    1\n  ]\n}',
            id="toUnescapedJSONPretty indents",
        ),
    ],
)
def test_serialisation_functions(template: str, expected: str) -> None:
    assert run(template, CONFIG) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("NaN", id="NaN"),
        pytest.param("-Infinity", id="an infinity"),
        pytest.param(" 1", id="a number with a leading space"),
        pytest.param("01", id="a leading zero"),
    ],
)
def test_to_json_refuses_a_json_number_that_is_not_a_json_number(text: str) -> None:
    # Go's encoder checks a json.Number against JSON's number grammar before writing it.
    message = run_error("{{ toJSON . }}", {"n": JsonNumber(text)})
    assert message.endswith("json: invalid number literal [redacted]")


def test_json_escapes_backspace_and_form_feed_as_go_1_22_does() -> None:
    # Go 1.22 (the Go of current Vault Agent) writes \b and \f; Go 1.19 wrote \u0008, \u000c.
    assert run("{{ toJSON .s }}", {"s": "a\bb\fc\x01"}) == '"a\\bb\\fc\\u0001"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"k": "true"}, 'k: "true"', id="a string that reads as a bool is quoted"),
        pytest.param({"k": "1.5"}, 'k: "1.5"', id="a string that reads as a float is quoted"),
        pytest.param({"k": ""}, 'k: ""', id="an empty string is quoted"),
        pytest.param({"k": "a: b"}, "k: 'a: b'", id="a string with a colon is single-quoted"),
        pytest.param({"k": "l1\nl2"}, "k: |-\n  l1\n  l2", id="multi-line text is a literal"),
        pytest.param(
            {"a10": 1, "a2": 2, "B": 3}, "B: 3\na2: 2\na10: 1", id="keys in natural order"
        ),
        pytest.param({"l": ["x", {"k": None}]}, "l:\n- x\n- k: null", id="sequences in a map"),
        pytest.param({"f": 1000000.0, "i": JsonNumber("5")}, "f: 1e+06\ni: 5", id="numbers"),
        pytest.param({"y": 1}, '"y": 1', id="a key that reads as a YAML 1.1 bool is quoted"),
    ],
)
def test_to_yaml_follows_yaml_v2(value: Any, expected: str) -> None:
    assert run("{{ toYAML . }}", value) == expected


@pytest.mark.parametrize(
    ("template", "environ", "expected"),
    [
        pytest.param(
            '{{ env "CLUSTER_ID" | toLower }}', {"CLUSTER_ID": "ABC"}, "abc", id="env reads"
        ),
        pytest.param('[{{ env "NOPE" }}]', {}, "[]", id="env of an unset variable is empty"),
        pytest.param(
            '{{ or (env "CLUSTER_ID") "12345" }}', {}, "12345", id="env with a default via or"
        ),
        pytest.param(
            '[{{ envOrDefault "SET" "d" }}]', {"SET": ""}, "[]", id="envOrDefault keeps empty"
        ),
        pytest.param('{{ envOrDefault "NOPE" "d" }}', {}, "d", id="envOrDefault defaults"),
        pytest.param('{{ mustEnv "SET" }}', {"SET": "v"}, "v", id="mustEnv reads"),
    ],
)
def test_environment_functions(template: str, environ: dict[str, str], expected: str) -> None:
    assert run(template, environ=environ) == expected


def test_must_env_fails_on_an_empty_variable() -> None:
    message = run_error('{{ mustEnv "SET" }}', environ={"SET": ""})
    assert message.endswith("error calling mustEnv: required environment variable SET is empty")


def test_env_without_environ_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VSI_TEMPLATE_TEST", "from process")
    output = render("t", '{{ env "VSI_TEMPLATE_TEST" }}', backend=NoVault())
    assert output == "from process"


def test_loop_counts_as_documented() -> None:
    template = "{{ range $i := loop 5 8 }}\nstanza-{{ $i }}{{ end }}"
    assert run(template) == "\nstanza-5\nstanza-6\nstanza-7"
    assert run("{{ range loop 3 }}x{{ end }}") == "xxx"


def test_file_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ec2_version"
    path.write_text(" v1 \n")
    assert run('{{ file "' + str(path) + '" | trimSpace }}') == "v1"
    assert run('[{{ file "" }}]') == "[]"
    missing = tmp_path / "missing"
    assert run_error('{{ file "' + str(missing) + '" }}').endswith(
        f"error calling file: open {missing}: no such file or directory"
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("{file}/below", "not a directory", id="a path below a regular file"),
        pytest.param("bad\x00name", "invalid argument", id="a path holding a NUL byte"),
        pytest.param("/" + "n" * 5000, "file name too long", id="a path too long for the system"),
    ],
)
def test_file_errors_are_template_errors(tmp_path: Path, path: str, message: str) -> None:
    regular = tmp_path / "regular"
    regular.write_text("x")
    wanted = path.format(file=regular)
    error = run_error("{{ file .path }}", {"path": wanted})
    assert error.endswith(f"error calling file: open {wanted}: {message}")


REFERENCE_TIME = datetime(2009, 11, 10, 23, 4, 5, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        pytest.param("2006-01-02T15:04:05Z07:00", "2009-11-10T23:04:05Z", id="RFC 3339"),
        pytest.param("Mon Jan _2 15:04:05 2006", "Tue Nov 10 23:04:05 2009", id="ANSIC"),
        pytest.param("3:04PM", "11:04PM", id="kitchen"),
        pytest.param("2006-01-02 15:04:05.000", "2009-11-10 23:04:05.123", id="milliseconds"),
        pytest.param(".999999999", ".123456", id="trailing zeros of nines are dropped"),
        pytest.param("Monday, January 2", "Tuesday, November 10", id="long names"),
        pytest.param("02/01/06 -0700", "10/11/09 +0000", id="numeric zone"),
    ],
)
def test_go_time_layouts(layout: str, expected: str) -> None:
    assert go_format(REFERENCE_TIME, layout) == expected


def test_timestamp_formats_the_current_time() -> None:
    context = RenderContext(backend=NoVault(), now=lambda: REFERENCE_TIME)
    timestamp = FUNCTIONS["timestamp"].impl
    assert timestamp(context) == "2009-11-10T23:04:05Z"
    assert timestamp(context, "2006-01-02") == "2009-11-10"
    assert timestamp(context, "unix") == "1257894245"


def test_timestamp_unix_is_now() -> None:
    before = int(datetime.now(UTC).timestamp())
    stamp = int(run('{{ timestamp "unix" }}'))
    after = int(datetime.now(UTC).timestamp())
    assert before <= stamp <= after
