"""python -m webhook mutate / review: what a cluster admin sees."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.webhook.support import annotated, make_pod, review_request
from webhook.__main__ import EXIT_BAD_INPUT, EXIT_REFUSED, main

ENV = {"AGENT_INJECT_VAULT_ADDR": "https://vault:8200"}
BASE = annotated(agent_inject="true", role="app", agent_inject_secret_db="database/creds/app")


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    code = main(argv, env=ENV if env is None else env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(path: Path, document: Any) -> str:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def test_mutate_prints_the_injected_pod_as_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod_file = write(tmp_path / "pod.yaml", make_pod({**BASE, **annotated(tls_skip_verify="true")}))
    code, out, err = run(["mutate", pod_file], capsys)
    assert code == 0
    pod = yaml.safe_load(out)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app", "vault-agent"]
    assert "Warning: vault.hashicorp.com/tls-skip-verify" in err


def test_mutate_refused_prints_every_reason_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = make_pod({**BASE, **annotated(agent_pre_populate="yes", role="")})
    code, out, err = run(["mutate", write(tmp_path / "pod.yaml", pod)], capsys)
    assert code == EXIT_REFUSED
    assert out == ""
    assert "agent-pre-populate" in err
    assert "role: required" in err


def test_mutate_handles_the_pod_template_of_a_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = make_pod(BASE)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": pod["metadata"], "spec": pod["spec"]},
        },
    }
    code, out, _ = run(["mutate", write(tmp_path / "deploy.yaml", deployment)], capsys)
    assert code == 0
    result = yaml.safe_load(out)
    assert result["kind"] == "Deployment"
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "vault-agent"]


def test_review_answers_an_admission_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = review_request(make_pod(BASE))
    code, out, _ = run(["review", write(tmp_path / "review.yaml", request)], capsys)
    assert code == 0
    answer = json.loads(out)
    assert answer["response"]["uid"] == request["request"]["uid"]
    assert answer["response"]["patchType"] == "JSONPatch"


@pytest.mark.parametrize(
    ("argv", "content", "env", "message"),
    [
        pytest.param(
            ["review"], "{not: [valid", None, "not valid JSON or YAML", id="unparsable input"
        ),
        pytest.param(
            ["review"],
            '{"kind": "Pod"}',
            None,
            "not an AdmissionReview",
            id="a pod given to review",
        ),
        pytest.param(
            ["mutate"],
            '{"kind": "Service"}',
            None,
            "expected a Pod or a workload",
            id="a service given to mutate",
        ),
        pytest.param(
            ["mutate"],
            "{}",
            {"AGENT_INJECT_RUN_AS_USER": "zero"},
            "AGENT_INJECT_RUN_AS_USER",
            id="bad settings",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message(
    *,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    content: str,
    env: dict[str, str] | None,
    message: str,
) -> None:
    path = tmp_path / "input"
    path.write_text(content, encoding="utf-8")
    code, _, err = run([*argv, str(path)], capsys, env)
    assert code == EXIT_BAD_INPUT
    assert message in err


def test_missing_file_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["mutate", "/nonexistent/pod.yaml"], capsys)
    assert code == EXIT_BAD_INPUT
    assert "/nonexistent/pod.yaml" in err


def test_stdin_is_read_with_a_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(make_pod(BASE))))
    code, out, _ = run(["mutate", "-"], capsys)
    assert code == 0
    assert "vault-agent-init" in out
