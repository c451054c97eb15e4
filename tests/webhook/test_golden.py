"""Golden AdmissionReview fixtures: request in, expected response (patch decoded) out.

Each case is two files under tests/webhook/golden/: ``<case>.request.json``, the AdmissionReview
exactly as the API server would send it, and ``<case>.response.json``, the expected answer with
its JSONPatch decoded so that a change reads as a diff. To regenerate deliberately after an
intended change, run

    VSI_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/webhook/test_golden.py

and review ``git diff tests/webhook/golden`` before committing.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.webhook.support import (
    SETTINGS,
    agent_problems,
    annotated,
    app_container,
    make_pod,
    review_request,
)
from webhook.admission import Reviewer

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("VSI_REGENERATE_GOLDEN") == "1"
BASE = annotated(agent_inject="true", role="app", agent_inject_secret_db="database/creds/app")


def _pod(extra: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    return make_pod({**BASE, **(extra or {})}, **options)


def _already_injected() -> dict[str, Any]:
    pod = _pod(annotated(agent_inject_status="injected"))
    return review_request(pod)


def _deployment() -> dict[str, Any]:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": BASE},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
        },
    }
    return review_request(deployment, kind="Deployment")


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "basic": lambda: review_request(_pod()),
    "several-containers": lambda: review_request(
        _pod(containers=[app_container("web"), app_container("worker"), app_container("log")])
    ),
    "init-containers-present": lambda: review_request(
        _pod(init_containers=[app_container("migrate")])
    ),
    "no-volumes-at-all": lambda: review_request(_pod(service_account_mount=False)),
    "automount-disabled": lambda: review_request(
        _pod(automountServiceAccountToken=False, service_account_mount=False)
    ),
    "pre-populate-only": lambda: review_request(_pod(annotated(agent_pre_populate_only="true"))),
    "init-first": lambda: review_request(
        _pod(annotated(agent_init_first="true"), init_containers=[app_container("migrate")])
    ),
    "native-sidecar": lambda: review_request(_pod(annotated(agent_native_sidecar="true"))),
    "custom-volume-paths": lambda: review_request(
        _pod(
            annotated(
                secret_volume_path="/etc/secrets",
                agent_inject_secret_cache="kv/data/cache",
                secret_volume_path_cache="/etc/cache",
                agent_inject_file_cache="cache.env",
            )
        )
    ),
    "templates": lambda: review_request(
        _pod(
            annotated(
                agent_inject_template_db=(
                    '{{ with secret "database/creds/app" -}}\n'
                    "postgresql://{{ .Data.username }}:{{ .Data.password }}@db:5432/app\n"
                    "{{- end }}"
                ),
                agent_inject_secret_config="kv/data/app",
                agent_inject_default_template="json",
                agent_inject_command_config="pkill -HUP app",
            )
        )
    ),
    "tls-to-vault": lambda: review_request(
        _pod(
            annotated(
                service="https://vault.vault.svc:8200",
                tls_secret="vault-client-tls",
                ca_cert="/vault/tls/ca.crt",
                client_cert="/vault/tls/tls.crt",
                client_key="/vault/tls/tls.key",
                tls_server_name="vault.vault.svc",
            )
        )
    ),
    "already-injected": _already_injected,
    "non-pod": _deployment,
    "delete": lambda: review_request(None, operation="DELETE"),
    "v1beta1-request": lambda: review_request(_pod(), api_version="admission.k8s.io/v1beta1"),
    "refused-bad-annotations": lambda: review_request(
        _pod(annotated(agent_pre_populate="yes", agent_inject_file_db="../etc/passwd", role=""))
    ),
    "refused-kube-system": lambda: review_request(_pod(), namespace="kube-system"),
    "typo-warnings": lambda: review_request(
        _pod(annotated(agent_inject_secrets_cache="kv/x", tls_skip_verify="true"))
    ),
    "not-requested-with-annotations": lambda: review_request(
        make_pod(annotated(role="app", agent_inject_secret_db="database/creds/app"))
    ),
}


def _readable(review: dict[str, Any]) -> dict[str, Any]:
    readable: dict[str, Any] = json.loads(json.dumps(review))
    response = readable["response"]
    if "patch" in response:
        response["patch"] = json.loads(base64.b64decode(response["patch"]))
    return readable


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_the_response_matches_the_golden_file(case: str) -> None:
    request_file = GOLDEN / f"{case}.request.json"
    response_file = GOLDEN / f"{case}.response.json"
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        _write(request_file, CASES[case]())
    request = json.loads(request_file.read_text(encoding="utf-8"))
    answer = Reviewer(SETTINGS).review(request).review
    if REGENERATE:
        _write(response_file, _readable(dict(answer)))
    expected = json.loads(response_file.read_text(encoding="utf-8"))
    assert _readable(dict(answer)) == expected
    assert answer["apiVersion"] == request["apiVersion"]
    assert answer["response"]["uid"] == request["request"]["uid"]
    if "patch" in answer["response"]:
        pod = request["request"]["object"]
        assert agent_problems(jsonpatch.apply_patch(pod, expected["response"]["patch"])) == []


def test_every_golden_file_belongs_to_a_case() -> None:
    names = {path.name.split(".")[0] for path in GOLDEN.glob("*.json")}
    assert names == set(CASES)
