"""The engine against real Go: every case of the corpus, byte for byte.

The golden files were produced by Go 1.19's text/template (scripts/template_oracle); these tests
do not need Go. Where the engine follows a later Go on purpose, the case says so and the test
checks the documented behaviour instead, and that Go 1.19 really differs.
"""

from __future__ import annotations

import pytest

from agent.templates import TemplateError, parse
from tests.templates.corpus import Case, CaseBackend, load_cases, redact

CASES = load_cases()


def _render(case: Case) -> dict[str, str]:
    try:
        template = parse(
            case.name, case.template, left_delimiter=case.left, right_delimiter=case.right
        )
        output = template.render(
            backend=CaseBackend(case.secrets),
            error_on_missing_key=case.missing_key_error,
            environ={},
            data=case.data,
        )
    except TemplateError as error:
        return {"error": str(error)}
    return {"output": output}


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=f"{case.topic}: {case.id}") for case in CASES]
)
def test_engine_matches_go(case: Case) -> None:
    result = _render(case)
    if case.deviation is not None:
        assert result == dict(case.deviation), case.note
        assert dict(case.expected) != dict(case.deviation), "no longer a deviation from Go 1.19"
        return
    if "error" in case.expected:
        assert result == {"error": redact(case.expected["error"], case.redacted)}
    else:
        assert result == dict(case.expected)


def test_corpus_covers_every_topic() -> None:
    topics = {case.topic for case in CASES}
    assert topics >= {
        "text_and_trim",
        "literals",
        "printing",
        "fields",
        "control",
        "functions",
        "printf",
        "errors",
        "vault",
    }
    assert len(CASES) >= 250
