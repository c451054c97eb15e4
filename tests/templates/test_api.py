"""The engine's public interface as the agent uses it."""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agent.templates import Dependency, Secret, Template, TemplateError, parse, render
from agent.templates.executor import MAX_TEMPLATE_DEPTH

GOLDEN = json.loads((Path(__file__).parent / "cases" / "vault.golden.json").read_text())

MAP_TEMPLATE = (
    '{{ with secret "P" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}'
)
JSON_TEMPLATE = '{{ with secret "P" }}{{ .Data | toJSON }}\n{{ end }}'

# Shaped as the agent decodes Vault's answers: JSON numbers as Python int and float.
KV2_SECRET = Secret(
    request_id="req-1",
    data={
        "data": {
            "password": "s3cr3t!",
            "username": "app",
            "port": 5432,
            "ratio": 0.75,
            "enabled": True,
            "tags": ["a", "b"],
            "nested": {"k": "v"},
            "empty": "",
            "zero": 0,
            "nothing": None,
        },
        "metadata": {
            "created_time": "2024-05-01T10:00:00.123456Z",
            "custom_metadata": None,
            "deletion_time": "",
            "destroyed": False,
            "version": 3,
        },
    },
)
DB_SECRET = Secret(
    request_id="req-1",
    lease_id="database/creds/app/abc123",
    lease_duration=3600,
    renewable=True,
    data={"username": "v-kubernetes-app-AbCdEf", "password": "A1a-xyz<&>"},
)


class FakeVault:
    """Answers from a dict and records every call, as the agent's backend would be asked."""

    def __init__(
        self,
        secrets: Mapping[str, Secret] | None = None,
        lists: Mapping[str, list[str]] | None = None,
        error: Exception | None = None,
    ) -> None:
        self._secrets = dict(secrets or {})
        self._lists = dict(lists or {})
        self._error = error
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def _record(self, kind: str, path: str, params: Mapping[str, str]) -> None:
        with self._lock:
            self.calls.append((kind, path, dict(params)))
        if self._error is not None:
            raise self._error

    def secret(self, path: str, params: Mapping[str, str]) -> Secret:
        self._record("secret", path, params)
        return self._secrets[path]

    def secrets(self, path: str) -> list[str]:
        self._record("secrets", path, {})
        return self._lists[path]

    def pki_cert(self, path: str, params: Mapping[str, str]) -> Secret:
        self._record("pkiCert", path, params)
        return self._secrets[path]


@pytest.mark.parametrize(
    ("template", "path", "secret", "golden_case"),
    [
        pytest.param(
            MAP_TEMPLATE,
            "secret/data/app",
            KV2_SECRET,
            "default map template with kv v2 secret",
            id="default map template over a KV v2 secret",
        ),
        pytest.param(
            MAP_TEMPLATE,
            "database/creds/app",
            DB_SECRET,
            "default map template with database creds",
            id="default map template over database credentials",
        ),
        pytest.param(
            JSON_TEMPLATE,
            "secret/data/app",
            KV2_SECRET,
            "default json template with kv v2 secret",
            id="default json template over a KV v2 secret",
        ),
        pytest.param(
            JSON_TEMPLATE,
            "database/creds/app",
            DB_SECRET,
            "default json template with database creds",
            id="default json template over database credentials",
        ),
    ],
)
def test_default_templates_render_as_vault_agent_does(
    template: str, path: str, secret: Secret, golden_case: str
) -> None:
    # Python ints and floats from the agent must print as Vault Agent's json.Number did in Go.
    output = render("default", template.replace("P", path), backend=FakeVault({path: secret}))
    assert output == GOLDEN[golden_case]["output"]


def test_kv2_map_template_output_reads_as_expected() -> None:
    output = render(
        "default",
        MAP_TEMPLATE.replace("P", "secret/data/app"),
        backend=FakeVault({"secret/data/app": KV2_SECRET}),
    )
    assert output.splitlines()[0] == (
        "data: map[empty: enabled:true nested:map[k:v] nothing:<nil> password:s3cr3t! port:5432 "
        "ratio:0.75 tags:[a b] username:app zero:0]"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}',
            (Dependency("secret", "database/creds/app"),),
            id="a read",
        ),
        pytest.param(
            '{{ secret "pki/issue/x" "ttl=1h" " common_name = a.b " "" }}',
            (Dependency("secret", "pki/issue/x", (("common_name", "a.b"), ("ttl", "1h"))),),
            id="a write with k=v parameters sorted by key and trimmed",
        ),
        pytest.param(
            '{{ secrets "/secret/metadata/" }}{{ pkiCert "pki/issue/web" "common_name=w" }}',
            (
                Dependency("secrets", "secret/metadata"),
                Dependency("pkiCert", "pki/issue/web", (("common_name", "w"),)),
            ),
            id="list and certificate calls with paths trimmed of slashes",
        ),
        pytest.param(
            '{{ secret "b" }}{{ secret "a" }}{{ with secret "b" }}{{ end }}{{ secret "a" "x=1" }}',
            (
                Dependency("secret", "b"),
                Dependency("secret", "a"),
                Dependency("secret", "a", (("x", "1"),)),
            ),
            id="in order of appearance and each once",
        ),
        pytest.param(
            '{{ define "t" }}{{ secret "in/define" }}{{ end }}'
            '{{ if (secret "in/condition") }}{{ print (secret "in/argument").Data }}{{ end }}',
            (
                Dependency("secret", "in/define"),
                Dependency("secret", "in/condition"),
                Dependency("secret", "in/argument"),
            ),
            id="in defines conditions and nested pipelines",
        ),
        pytest.param(
            '{{ secret (printf "db/%s" .name) }}{{ "x" | secret }}{{ secret "bad" "novalue" }}'
            "{{ secret }}",
            (),
            id="not when an argument is computed or malformed",
        ),
        pytest.param(
            '{{ "common_name=a" | secret "pki/issue/x" }}{{ secret "kv/a" | toJSON }}',
            (Dependency("secret", "kv/a"),),
            id="not when a pipeline hands the call its last argument",
        ),
    ],
)
def test_dependencies_are_found_without_fetching(
    text: str, expected: tuple[Dependency, ...]
) -> None:
    assert parse("deps", text).dependencies() == expected


def test_render_asks_the_backend_once_per_distinct_call() -> None:
    vault = FakeVault({"database/creds/app": DB_SECRET})
    text = (
        '{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}'
        '{{ with secret "/database/creds/app/" }}{{ .Data.password }}{{ end }}'
        '{{ (secret "database/creds/app" "ttl=1h").LeaseID }}'
    )
    output = render("t", text, backend=vault)
    assert output == "v-kubernetes-app-AbCdEfA1a-xyz<&>database/creds/app/abc123"
    assert vault.calls == [
        ("secret", "database/creds/app", {}),
        ("secret", "database/creds/app", {"ttl": "1h"}),
    ]


def test_each_render_asks_the_backend_again() -> None:
    vault = FakeVault({"a": Secret(data={"v": 1})})
    template = parse("t", '{{ with secret "a" }}{{ .Data.v }}{{ end }}')
    assert template.render(backend=vault) == "1"
    assert template.render(backend=vault) == "1"
    assert len(vault.calls) == 2


def test_secrets_lists_and_pki_cert_exposes_its_pem_fields() -> None:
    vault = FakeVault(
        secrets={
            "pki/issue/web": Secret(
                data={"Cert": "CERT", "Key": "KEY", "CA": "CA", "CAChain": ["CA", "ROOT"]}
            )
        },
        lists={"secret/metadata": ["a", "b/"]},
    )
    text = (
        '{{ range secrets "secret/metadata/" }}[{{ . }}]{{ end }} '
        '{{ with pkiCert "pki/issue/web" "common_name=web" }}{{ .Cert }} {{ .Data.Key }} '
        "{{ .CA }} {{ .CAChain }}{{ end }}"
    )
    assert render("t", text, backend=vault) == "[a][b/] CERT KEY CA [CA ROOT]"
    assert ("pkiCert", "pki/issue/web", {"common_name": "web"}) in vault.calls


class VaultDown(Exception):
    pass


def test_backend_exceptions_propagate_unchanged() -> None:
    failure = VaultDown("connection refused")
    with pytest.raises(VaultDown) as caught:
        render("t", '{{ secret "a" }}', backend=FakeVault(error=failure))
    assert caught.value is failure


def test_missing_keys_follow_consul_template() -> None:
    vault = FakeVault({"a": Secret(data={"k": "v"})})
    text = '{{ with secret "a" }}[{{ .Data.nope }}]{{ end }}'
    assert render("t", text, backend=vault) == "[<no value>]"
    with pytest.raises(TemplateError) as caught:
        render("t", text, backend=vault, error_on_missing_key=True)
    assert str(caught.value) == (
        # As in Go, a field chain is positioned at its second field.
        'template: t:1:30: executing "t" at <.Data.nope>: map has no entry for key "nope"'
    )


def test_errors_name_the_template_line_and_column() -> None:
    text = 'header\n{{ with secret "a" }}\n  password={{ .Data.data.password.value }}{{ end }}'
    with pytest.raises(TemplateError) as caught:
        render("db-creds", text, backend=FakeVault({"a": Secret(data={"data": {}})}))
    assert str(caught.value) == (
        'template: db-creds:3:19: executing "db-creds" at <.Data.data.password.value>: '
        "nil pointer evaluating interface {}.value"
    )
    with pytest.raises(TemplateError, match=r"^template: db-creds:2: unexpected EOF$"):
        parse("db-creds", "line one\n{{ if .x }}")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{{ range .Data.password }}{{ end }}", id="ranging over a string"),
        pytest.param("{{ .Data.password | parseInt }}", id="parsing it as a number"),
        pytest.param("{{ .Data.password | parseBool }}", id="parsing it as a boolean"),
        pytest.param("{{ eq .Data .Data }}", id="comparing maps"),
        pytest.param("{{ add .Data.password 1 }}", id="adding to it"),
        pytest.param('{{ secret "x" .Data.password }}', id="passing it where k=v is wanted"),
    ],
)
def test_errors_never_carry_secret_values(text: str) -> None:
    secret = Secret(data={"password": "hunter2-Zq9"})
    vault = FakeVault({"s": secret, "x": secret})
    with pytest.raises(TemplateError) as caught:
        render("t", '{{ with secret "s" }}' + text + "{{ end }}", backend=vault)
    assert "hunter2" not in str(caught.value)
    assert "[redacted]" in str(caught.value)


def test_template_is_reusable_and_thread_safe() -> None:
    template = parse(
        "t",
        '{{ with secret "s" }}{{ range $i, $v := .Data.items }}{{ $i }}={{ $v }};{{ end }}'
        "{{ .Data.id }}{{ end }}",
    )

    def render_for(worker: int) -> tuple[int, str]:
        items = [f"w{worker}-{index}" for index in range(50)]
        vault = FakeVault({"s": Secret(data={"items": items, "id": worker})})
        outputs = {template.render(backend=vault) for _ in range(20)}
        assert len(outputs) == 1
        return worker, outputs.pop()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(pool.map(render_for, range(16)))
    for worker, output in results.items():
        expected = "".join(f"{index}=w{worker}-{index};" for index in range(50)) + str(worker)
        assert output == expected


def test_data_is_the_dot() -> None:
    data: dict[str, Any] = {"name": "x", "n": 2}
    assert render("t", "{{ .name }} {{ .n }}", backend=FakeVault(), data=data) == "x 2"
    assert render("t", "{{ . }}", backend=FakeVault()) == "<no value>"


def test_custom_delimiters() -> None:
    template = parse("t", "[[ .a ]] {{ .a }}", left_delimiter="[[", right_delimiter="]]")
    assert isinstance(template, Template)
    assert template.name == "t"
    assert template.render(backend=FakeVault(), data={"a": 1}) == "1 {{ .a }}"


def test_recursion_stops_at_the_depth_limit() -> None:
    with pytest.raises(TemplateError) as caught:
        render(
            "t",
            '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" }}',
            backend=FakeVault(),
        )
    assert str(caught.value).endswith(f"exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})")


def test_data_nested_too_deeply_is_a_template_error() -> None:
    data: Any = "leaf"
    for _ in range(5000):
        data = [data]
    with pytest.raises(TemplateError, match="nested too deeply"):
        render("t", "{{ . }}", backend=FakeVault(), data=data)


def test_nesting_too_deep_for_python_is_a_template_error() -> None:
    text = "{{ if 1 }}" * 400 + "x" + "{{ end }}" * 400
    with pytest.raises(TemplateError, match=r"^template: deep: actions nested too deeply$"):
        parse("deep", text)


def test_go_1_22_range_over_an_integer() -> None:
    assert render("t", "{{ range $i := 3 }}{{ $i }}{{ end }}", backend=FakeVault()) == "012"
    assert render("t", "{{ range 0 }}x{{ else }}none{{ end }}", backend=FakeVault()) == "none"
    with pytest.raises(TemplateError, match="to iterate over more than one variable"):
        render("t", "{{ range $i, $v := 3 }}{{ end }}", backend=FakeVault())


def test_go_1_23_else_with() -> None:
    text = "{{ with .a }}a={{ . }}{{ else with .b }}b={{ . }}{{ else }}none{{ end }}"
    assert render("t", text, backend=FakeVault(), data={"a": "A", "b": "B"}) == "a=A"
    assert render("t", text, backend=FakeVault(), data={"b": "B"}) == "b=B"
    assert render("t", text, backend=FakeVault(), data={}) == "none"


def test_binary_output_encodes_back_to_the_exact_bytes() -> None:
    # base64Decode of a keystore yields bytes that are not UTF-8; Go writes them as they are.
    # The text keeps them as surrogate escapes, so encoding with surrogateescape restores them.
    keystore = bytes(range(256))
    encoded = base64.b64encode(keystore).decode("ascii")
    vault = FakeVault({"secret/data/jks": Secret(data={"data": {"keystore": encoded}})})
    text = render(
        "t",
        '{{ with secret "secret/data/jks" }}{{ .Data.data.keystore | base64Decode }}{{ end }}',
        backend=vault,
    )
    assert text.encode("utf-8", "surrogateescape") == keystore


@contextlib.contextmanager
def python_recursion_limit(limit: int) -> Iterator[None]:
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def test_nesting_bound_does_not_depend_on_the_recursion_limit() -> None:
    text = "{{ if 1 }}" * 150 + "x" + "{{ end }}" * 150
    with (
        python_recursion_limit(100_000),
        pytest.raises(TemplateError, match=r"^template: deep: actions nested too deeply$"),
    ):
        parse("deep", text)
    nested = "{{ if 1 }}" * 90 + "x" + "{{ end }}" * 90
    assert render("ok", nested, backend=FakeVault()) == "x"


def test_nested_blocks_count_toward_the_same_nesting_bound() -> None:
    # Each {{block}} is a template of its own; its body still nests inside the enclosing action.
    text = '{{ block "b" . }}' * 150 + "x" + "{{ end }}" * 150
    with (
        python_recursion_limit(100_000),
        pytest.raises(TemplateError, match=r"^template: deep: actions nested too deeply$"),
    ):
        parse("deep", text)
