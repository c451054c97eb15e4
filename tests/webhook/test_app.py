"""The Flask layer in process: the bytes of each answer, the one log line per admission, the
metrics. (tests/webhook/test_http.py drives the same app through gunicorn over TLS.)"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tests.webhook.support import SETTINGS, annotated, make_pod, review_request
from webhook.admission import Reviewer
from webhook.app import create_app
from webhook.logs import CONTEXT_FIELDS, JsonFormatter

GOLDEN = Path(__file__).parent / "golden"
BASE = annotated(agent_inject="true", role="app", agent_inject_secret_db="database/creds/app")
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client() -> Iterator[FlaskClient]:
    with create_app(Reviewer(SETTINGS)).test_client() as test_client:
        yield test_client


def _requests() -> list[Any]:
    documents: list[Any] = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(GOLDEN.glob("*.request.json"))
    ]
    # Text that JSON must escape, in the pod and in the uid the answer echoes.
    odd = make_pod({**BASE, **annotated(agent_inject_template_db='"quoted" \\ ünïcode\n')})
    documents.append(review_request(odd, uid='uid-with-"quotes"-and-\\-ü'))
    return documents


@pytest.mark.parametrize("document", _requests())
def test_the_answer_is_the_review_as_compact_json(client: FlaskClient, document: Any) -> None:
    reply = client.post("/mutate", data=json.dumps(document), headers=JSON_HEADERS)
    assert reply.status_code == 200
    assert reply.content_type == "application/json"
    expected = Reviewer(SETTINGS).review(document).review
    assert json.loads(reply.get_data()) == expected
    # Compact: no separator spaces (json.dumps with the default separators would differ).
    compact = json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(reply.get_data()) == len(compact)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/jsonx", False),
        ("text/plain", False),
        ("application/json-patch+json", False),
        ("", False),
    ],
)
def test_the_content_type_is_json_whatever_its_spelling(
    client: FlaskClient, content_type: str, accepted: bool
) -> None:
    """The exact header kube-apiserver sends is taken as it is; any other is parsed."""
    document = review_request(make_pod(BASE))
    reply = client.post("/mutate", data=json.dumps(document), content_type=content_type)
    assert reply.status_code == (200 if accepted else 400)
    if not accepted:
        assert "Content-Type" in reply.get_json()["error"]


def _admission_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "webhook.app" and record.getMessage().startswith("admission ")
    ]


def test_one_json_line_per_admission_with_its_context(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret_path = "database/creds/app-very-private-path"
    pod = make_pod({**BASE, **annotated(agent_inject_secret_db=secret_path)})
    pod["metadata"]["name"] = "orders-1"
    document = review_request(pod, namespace="logs-ns", uid="uid-log-1")
    with caplog.at_level(logging.INFO, logger="webhook.app"):
        client.post("/mutate", data=json.dumps(document), headers=JSON_HEADERS)
    (line,) = _admission_lines(caplog)
    assert line["level"] == "info"
    assert line["logger"] == "webhook.app"
    assert line["message"] == "admission injected"
    assert {key: line[key] for key in ("uid", "namespace", "pod", "result", "kind")} == {
        "uid": "uid-log-1",
        "namespace": "logs-ns",
        "pod": "orders-1",
        "result": "injected",
        "kind": "init-and-sidecar",
    }
    assert isinstance(line["duration_ms"], float)
    assert line["time"].endswith("Z")
    assert "detail" not in line
    assert secret_path not in json.dumps(line)


def test_a_refusal_is_logged_with_its_reasons(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod({**BASE, **annotated(agent_pre_populate="yes")})
    with caplog.at_level(logging.INFO, logger="webhook.app"):
        client.post("/mutate", data=json.dumps(review_request(pod)), headers=JSON_HEADERS)
    (line,) = _admission_lines(caplog)
    assert line["result"] == "refused"
    assert "kind" not in line
    assert "agent-pre-populate" in line["detail"]


def test_no_admission_line_below_info(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    document = review_request(make_pod(BASE))
    with caplog.at_level(logging.WARNING, logger="webhook.app"):
        client.post("/mutate", data=json.dumps(document), headers=JSON_HEADERS)
    assert _admission_lines(caplog) == []


def test_the_json_formatter_keeps_only_known_context_and_formats_exceptions() -> None:
    record = logging.LogRecord("webhook.app", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
    record.__dict__.update({"uid": "u1", "token": "s.secret", "duration_ms": 1.5, "kind": None})
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["level"] == "error"
    assert line["message"] == "failed x"
    assert line["uid"] == "u1"
    assert line["duration_ms"] == 1.5
    assert "token" not in line
    assert "kind" not in line
    assert "ValueError: boom" in line["exception"]


def test_the_time_is_utc_with_milliseconds() -> None:
    record = logging.LogRecord("webhook", logging.INFO, __file__, 1, "m", None, None)
    record.created = 1_700_000_000.25
    record.msecs = 250.0
    assert json.loads(JsonFormatter().format(record))["time"] == "2023-11-14T22:13:20.250Z"


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_injections_refusals_and_bad_requests(client: FlaskClient) -> None:
    injected = {"namespace": "metrics-app", "kind": "init-and-sidecar"}
    refused = {"namespace": "metrics-app", "reason": "refused"}
    bad = {"namespace": "", "reason": "bad_request"}
    latency = {"route": "/mutate"}
    before = {
        "injected": _sample("vsi_webhook_injections_total", injected),
        "refused": _sample("vsi_webhook_failures_total", refused),
        "bad": _sample("vsi_webhook_failures_total", bad),
        "count": _sample("vsi_webhook_request_duration_seconds_count", latency),
    }
    good = review_request(make_pod(BASE), namespace="metrics-app")
    wrong = review_request(
        make_pod({**BASE, **annotated(agent_pre_populate="yes")}), namespace="metrics-app"
    )
    for document in (good, good, wrong):
        client.post("/mutate", data=json.dumps(document), headers=JSON_HEADERS)
    client.post("/mutate", data=b"{not json", headers=JSON_HEADERS)
    assert _sample("vsi_webhook_injections_total", injected) == before["injected"] + 2
    assert _sample("vsi_webhook_failures_total", refused) == before["refused"] + 1
    assert _sample("vsi_webhook_failures_total", bad) == before["bad"] + 1
    count = _sample("vsi_webhook_request_duration_seconds_count", latency)
    assert count == before["count"] + 4


context_values = (
    st.none()
    | st.text()
    | st.integers()
    | st.floats()
    | st.booleans()
    | st.lists(st.text(), max_size=2)
    | st.builds(object)
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(dict.fromkeys(CONTEXT_FIELDS, context_values)),
    st.text(),
    st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]),
)
def test_the_json_formatter_writes_what_json_dumps_writes(
    context: dict[str, Any], message: str, level: int
) -> None:
    record = logging.LogRecord("webhook.ünït", level, __file__, 1, "%s", (message,), None)
    record.__dict__.update(context)
    formatter = JsonFormatter()
    expected: dict[str, Any] = {
        "time": json.loads(formatter.format(record))["time"],
        "level": logging.getLevelName(level).lower(),
        "logger": "webhook.ünït",
        "message": message,
        **{name: context[name] for name in CONTEXT_FIELDS if context[name] is not None},
    }
    assert formatter.format(record) == json.dumps(expected, separators=(",", ":"), default=str)
