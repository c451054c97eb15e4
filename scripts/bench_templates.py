"""How fast the template engine renders a typical file, against references measured in the same run.

    .venv/bin/python scripts/bench_templates.py [--renders N]

The template is a 20-line application config over a KV v2 secret and a database credential, the
shape pod authors write. The references do equivalent substitution: ``str.format`` (a floor: no
template language at all) and Jinja2 (a mature engine that compiles templates to Python).
Figures go to docs/benchmarks/templates.md. ``run_benchmark`` is there for the agent benchmark to
call (scripts/bench_agent.py does not call it yet).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.templates import Secret, parse

TYPICAL_TEMPLATE = """\
# application config rendered by the vault agent
{{- with secret "secret/data/app" }}
[service]
name = "{{ .Data.data.name }}"
environment = "{{ .Data.data.environment | toUpper }}"
port = {{ .Data.data.port }}
debug = {{ if .Data.data.debug }}true{{ else }}false{{ end }}
tags = [{{ range $i, $t := .Data.data.tags }}{{ if $i }}, {{ end }}"{{ $t }}"{{ end }}]

[api]
key = "{{ .Data.data.api_key }}"
url = "{{ printf "https://%s:%v" .Data.data.host .Data.data.port }}"
{{- end }}
{{ with secret "database/creds/app" }}
[database]
user = "{{ .Data.username }}"
password = "{{ .Data.password }}"
dsn = "postgresql://{{ .Data.username }}:{{ .Data.password | urlquery }}@db:5432/app"
lease = "{{ .LeaseID }}"
{{- end }}
"""

FORMAT_REFERENCE = """\
# application config rendered by the vault agent
[service]
name = "{name}"
environment = "{environment}"
port = {port}
debug = {debug}
tags = [{tags}]

[api]
key = "{api_key}"
url = "https://{host}:{port}"

[database]
user = "{username}"
password = "{password}"
dsn = "postgresql://{username}:{password_quoted}@db:5432/app"
lease = "{lease_id}"
"""

JINJA_REFERENCE = """\
# application config rendered by the vault agent
{%- set app = secrets["secret/data/app"].data.data %}
[service]
name = "{{ app.name }}"
environment = "{{ app.environment | upper }}"
port = {{ app.port }}
debug = {{ "true" if app.debug else "false" }}
tags = [{% for t in app.tags %}{% if not loop.first %}, {% endif %}"{{ t }}"{% endfor %}]

[api]
key = "{{ app.api_key }}"
url = "{{ "https://%s:%s" % (app.host, app.port) }}"
{% set db = secrets["database/creds/app"] %}
[database]
user = "{{ db.data.username }}"
password = "{{ db.data.password }}"
dsn = "postgresql://{{ db.data.username }}:{{ db.data.password | urlencode }}@db:5432/app"
lease = "{{ db.lease_id }}"
"""

SECRETS: Mapping[str, Secret] = {
    "secret/data/app": Secret(
        request_id="0b7e3a52",
        data={
            "data": {
                "name": "payments",
                "environment": "production",
                "port": 8443,
                "debug": False,
                "tags": ["pci", "eu-west-1", "tier-1"],
                "api_key": "ak_live_51H8xYz",
                "host": "payments.internal",
            },
            "metadata": {
                "created_time": "2024-05-01T10:00:00.123456Z",
                "custom_metadata": None,
                "deletion_time": "",
                "destroyed": False,
                "version": 7,
            },
        },
    ),
    "database/creds/app": Secret(
        request_id="5c1d9e0f",
        lease_id="database/creds/app/Qm9vT2x0",
        lease_duration=3600,
        renewable=True,
        data={"username": "v-kubernetes-app-8Yh2", "password": "A1a-Pz9/Qw&x"},
    ),
}


class _Backend:
    def secret(self, path: str, params: Mapping[str, str]) -> Secret:
        return SECRETS[path]

    def secrets(self, path: str) -> list[str]:
        return []

    def pki_cert(self, path: str, params: Mapping[str, str]) -> Secret:
        return SECRETS[path]


@dataclass(frozen=True)
class TemplateBenchmark:
    """Seconds per render (median over repeats) of the engine and of the references."""

    renders: int
    template_lines: int
    parse_seconds: float
    engine_seconds: float
    format_seconds: float
    jinja_seconds: float | None

    def lines(self) -> list[str]:
        out = [
            f"template: {self.template_lines} lines over a KV v2 secret and database creds",
            f"parse once:            {self.parse_seconds * 1e6:8.1f} us",
            f"render (this engine):  {self.engine_seconds * 1e6:8.1f} us per render",
            f"str.format reference:  {self.format_seconds * 1e6:8.1f} us per render"
            f"  (engine is {self.engine_seconds / self.format_seconds:.0f}x)",
        ]
        if self.jinja_seconds is not None:
            out.append(
                f"Jinja2 reference:      {self.jinja_seconds * 1e6:8.1f} us per render"
                f"  (engine is {self.engine_seconds / self.jinja_seconds:.1f}x)"
            )
        return out


def _per_call(function: Callable[[], Any], *, renders: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(renders):
            function()
        samples.append((time.perf_counter() - start) / renders)
    return statistics.median(samples)


def _format_reference() -> Callable[[], str]:
    import urllib.parse

    def render_with_format() -> str:
        app = SECRETS["secret/data/app"].data["data"]
        db = SECRETS["database/creds/app"]
        return FORMAT_REFERENCE.format(
            name=app["name"],
            environment=app["environment"].upper(),
            port=app["port"],
            debug="true" if app["debug"] else "false",
            tags=", ".join(f'"{tag}"' for tag in app["tags"]),
            api_key=app["api_key"],
            host=app["host"],
            username=db.data["username"],
            password=db.data["password"],
            password_quoted=urllib.parse.quote_plus(db.data["password"]),
            lease_id=db.lease_id,
        )

    return render_with_format


def _jinja_reference() -> Callable[[], str] | None:
    try:
        import jinja2
    except ImportError:
        return None
    template = jinja2.Environment(autoescape=False).from_string(JINJA_REFERENCE)  # noqa: S701

    def render_with_jinja() -> str:
        return template.render(secrets=SECRETS)

    return render_with_jinja


def run_benchmark(*, renders: int = 2000, repeats: int = 5) -> TemplateBenchmark:
    """Measure parse and render of the typical template; the agent benchmark calls this."""
    parse_seconds = _per_call(
        lambda: parse("app.conf", TYPICAL_TEMPLATE), renders=max(renders // 10, 1), repeats=repeats
    )
    template = parse("app.conf", TYPICAL_TEMPLATE)
    backend = _Backend()
    engine_seconds = _per_call(
        lambda: template.render(backend=backend, environ={}), renders=renders, repeats=repeats
    )
    format_seconds = _per_call(_format_reference(), renders=renders, repeats=repeats)
    jinja = _jinja_reference()
    jinja_seconds = _per_call(jinja, renders=renders, repeats=repeats) if jinja else None
    return TemplateBenchmark(
        renders=renders,
        template_lines=TYPICAL_TEMPLATE.count("\n"),
        parse_seconds=parse_seconds,
        engine_seconds=engine_seconds,
        format_seconds=format_seconds,
        jinja_seconds=jinja_seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="template engine benchmark")
    parser.add_argument("--renders", type=int, default=2000, help="renders per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats (median is reported)")
    options = parser.parse_args()
    result = run_benchmark(renders=options.renders, repeats=options.repeats)
    print("\n".join(result.lines()))
    output = _sample_output()
    print(f"rendered output ({len(output)} bytes) matches the str.format reference:")
    print("  yes" if output == _format_reference()() else "  NO")


def _sample_output() -> str:
    return parse("app.conf", TYPICAL_TEMPLATE).render(backend=_Backend(), environ={})


if __name__ == "__main__":
    main()
