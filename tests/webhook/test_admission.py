"""AdmissionReview handling: what is mutated, what is allowed untouched, and the error channels."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.webhook.support import SETTINGS, annotated, make_pod, patch_of, review, review_request
from webhook.admission import MAX_WARNING_LENGTH, MAX_WARNINGS, Reviewer, ReviewError
from webhook.settings import Settings, SettingsError

BASE = annotated(agent_inject="true", role="app", agent_inject_secret_db="database/creds/app")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param([], "expected a JSON object", id="a list is not a review"),
        pytest.param({"kind": "AdmissionReview"}, "apiVersion", id="the API version is required"),
        pytest.param(
            {"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"},
            "apiVersion",
            id="an unknown API version is refused",
        ),
        pytest.param(
            {"apiVersion": "admission.k8s.io/v1", "kind": "Pod"},
            "kind must be AdmissionReview",
            id="the kind must be AdmissionReview",
        ),
        pytest.param(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            "request: expected an object",
            id="the request is required",
        ),
        pytest.param(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"uid": ""},
            },
            "request.uid",
            id="the uid is required",
        ),
    ],
)
def test_a_malformed_review_is_an_error_for_the_http_layer(document: Any, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        Reviewer(SETTINGS).review(document)


def test_a_pod_creation_without_the_pod_is_malformed() -> None:
    with pytest.raises(ReviewError, match=r"request\.object"):
        Reviewer(SETTINGS).review(review_request(None))


@pytest.mark.parametrize(
    ("request_options", "result"),
    [
        pytest.param({"operation": "UPDATE"}, "ignored", id="an update is allowed untouched"),
        pytest.param({"operation": "DELETE"}, "ignored", id="a deletion is allowed untouched"),
        pytest.param({"kind": "Deployment"}, "ignored", id="another kind is allowed untouched"),
    ],
)
def test_only_pod_creation_is_mutated(request_options: dict[str, Any], result: str) -> None:
    outcome = review(make_pod(BASE), **request_options)
    assert outcome.result == result
    assert outcome.review["response"] == {"uid": outcome.review["response"]["uid"], "allowed": True}


def test_a_v1beta1_request_is_answered_in_kind() -> None:
    outcome = review(make_pod(BASE), api_version="admission.k8s.io/v1beta1")
    assert outcome.review["apiVersion"] == "admission.k8s.io/v1beta1"
    assert outcome.result == "injected"


@pytest.mark.parametrize(
    ("annotations", "status", "result"),
    [
        pytest.param({}, None, "skipped", id="no annotation means no injection"),
        pytest.param(
            annotated(agent_inject="false"), None, "skipped", id="false means no injection"
        ),
        pytest.param(
            {**BASE, **annotated(agent_inject_status="injected")},
            None,
            "skipped",
            id="an injected pod is left alone",
        ),
        pytest.param(BASE, {"phase": "Running"}, "skipped", id="a running pod is left alone"),
        pytest.param(
            annotated(agent_inject="yes"), None, "refused", id="an invalid opt-in refuses the pod"
        ),
    ],
)
def test_whether_to_inject(
    annotations: dict[str, str], status: dict[str, str] | None, result: str
) -> None:
    pod = make_pod(annotations)
    if status is not None:
        pod["status"] = status
    assert review(pod).result == result


def test_a_refusal_lists_every_problem_in_the_status_message() -> None:
    outcome = review(make_pod({**BASE, **annotated(agent_pre_populate="yes", role="")}))
    response = outcome.review["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "agent-pre-populate" in response["status"]["message"]
    assert "role: required" in response["status"]["message"]
    assert "patch" not in response


def test_a_pod_whose_containers_are_not_a_list_is_refused_not_crashed() -> None:
    pod = make_pod(BASE)
    pod["spec"]["containers"] = "app"
    outcome = review(pod)
    assert outcome.result == "refused"
    assert "spec.containers" in outcome.review["response"]["status"]["message"]


def _with_security_context(pod: dict[str, Any], context: Any) -> None:
    pod["spec"]["securityContext"] = context


def _with_app_mount(pod: dict[str, Any], mount: Any) -> None:
    pod["spec"]["containers"][0]["volumeMounts"].append(mount)


def _with_app_name(pod: dict[str, Any], name: Any) -> None:
    pod["spec"]["containers"][0]["name"] = name


@pytest.mark.parametrize(
    ("extra", "damage"),
    [
        pytest.param(
            {},
            lambda pod: _with_security_context(pod, {"supplementalGroups": 5}),
            id="supplemental groups that are not a list",
        ),
        pytest.param(
            {},
            lambda pod: _with_app_mount(pod, {"name": "data", "mountPath": ["/data"]}),
            id="a mount path that is not a string",
        ),
        pytest.param(
            annotated(agent_run_as_same_user="true"),
            lambda pod: _with_security_context(pod, {"runAsUser": [1000]}),
            id="a user that is not a number, for the same-user rule",
        ),
        pytest.param(
            annotated(agent_inject_signal_db="SIGHUP:app"),
            lambda pod: _with_security_context(pod, {"runAsUser": {}}),
            id="a user that is not a number, for a signal",
        ),
        pytest.param({}, lambda pod: _with_app_name(pod, ["app"]), id="a container name list"),
    ],
)
def test_fields_of_the_wrong_type_get_an_answer_not_an_internal_error(
    extra: dict[str, str], damage: Any
) -> None:
    # The API server decodes a pod into its types before admission; the CLI reads any file.
    pod = make_pod({**BASE, **extra})
    damage(pod)
    outcome = review(pod)
    assert outcome.result in ("injected", "refused")
    assert outcome.review["response"]["uid"]


def test_warnings_are_bounded_in_length_and_number() -> None:
    typos = {f"vault.hashicorp.com/agent-inject-secrets-{'x' * 300}{n}": "kv/x" for n in range(30)}
    warnings = review(make_pod({**BASE, **typos})).review["response"]["warnings"]
    assert len(warnings) == MAX_WARNINGS + 1
    assert all(len(warning) <= MAX_WARNING_LENGTH for warning in warnings)


def test_the_namespace_comes_from_the_request_and_is_counted() -> None:
    outcome = review(make_pod(BASE), namespace="payments")
    assert (outcome.namespace, outcome.kind, outcome.pod) == ("payments", "init-and-sidecar", "app")
    assert patch_of(outcome)


def test_bad_default_annotations_stop_the_reviewer_from_being_built() -> None:
    with pytest.raises(SettingsError, match="agent-inject: cannot be a cluster-wide default"):
        Reviewer(Settings(default_annotations=annotated(agent_inject="true")))


def test_a_default_json_patch_that_cannot_apply_is_a_settings_error() -> None:
    broken = '[{"op": "remove", "path": "/no-such-field"}]'
    settings = replace(SETTINGS, default_annotations=annotated(agent_json_patch=broken))
    (error,) = Reviewer(settings).settings_errors()
    assert error.startswith("vault.hashicorp.com/agent-json-patch:")
    fine = '[{"op": "add", "path": "/env/-", "value": {"name": "A", "value": "b"}}]'
    settings = replace(SETTINGS, default_annotations=annotated(agent_json_patch=fine))
    assert Reviewer(settings).settings_errors() == ()
