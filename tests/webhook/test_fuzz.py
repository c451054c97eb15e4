"""Property-based tests: random pods and annotations, random documents. Every answer is a
well-formed AdmissionReview response; every patch applies and yields a pod that passes
kubernetes-validate --strict, with agent containers that pass Pod Security "restricted"."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.webhook.support import SETTINGS, agent_problems, make_pod, review_request
from webhook.admission import Reviewer, ReviewError

PREFIX = "vault.hashicorp.com/"
REVIEWER = Reviewer(SETTINGS)

# Plausible values per key, mixed below with arbitrary text.
VALUES: dict[str, list[str]] = {
    "agent-inject": ["true", "true", "true", "false", "yes"],
    "role": ["app", ""],
    "agent-pre-populate": ["true", "false"],
    "agent-pre-populate-only": ["true", "false"],
    "agent-init-first": ["true", "false"],
    "agent-native-sidecar": ["true", "false"],
    "agent-inject-containers": ["c0", "c0,c1", "ghost"],
    "agent-inject-token": ["true", "false"],
    "secret-volume-path": ["/vault/secrets", "/etc/secrets", "relative", "/"],
    "agent-limits-mem": ["128Mi", "", "1Gi", "10"],
    "agent-requests-cpu": ["10m", "", "2"],
    "agent-run-as-user": ["100", "0", "1000"],
    "agent-run-as-same-user": ["true", "false"],
    "agent-set-security-context": ["true", "false"],
    "agent-share-process-namespace": ["true", "false"],
    "agent-json-patch": ['[{"op":"add","path":"/env/-","value":{"name":"X","value":"1"}}]', "[]"],
    "agent-copy-volume-mounts": ["c0", "nope"],
    "agent-projected-token": ["true", "false"],
    "agent-configmap": ["agent-config"],
    "tls-secret": ["vault-tls"],
    "tls-skip-verify": ["true", "false"],
    "service": ["https://vault:8200", "http://vault:8200", "vault"],
    "agent-inject-default-template": ["map", "json", "env", "yaml"],
    "agent-revoke-grace": ["5", "5s", "soon"],
    "log-level": ["debug", "info", "loud"],
}
SECRET_KEYS = [
    "agent-inject-secret-",
    "agent-inject-template-",
    "agent-inject-file-",
    "agent-inject-perms-",
    "agent-inject-signal-",
    "secret-volume-path-",
    "agent-inject-command-",
]
SECRET_VALUES = ["kv/data/app", "db.env", "sub/dir.txt", "../x", "/abs", "0600", "SIGHUP:app", ""]

names = st.sampled_from(["db", "cache", "Api", "x"])
fixed_annotations = st.dictionaries(
    st.sampled_from(sorted(VALUES)).map(lambda key: PREFIX + key),
    st.text(max_size=12),
    max_size=3,
)


@st.composite
def pod_annotations(draw: st.DrawFn) -> dict[str, str]:
    chosen: dict[str, str] = {PREFIX + "agent-inject": "true", PREFIX + "role": "app"}
    for key in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=6, unique=True)):
        chosen[PREFIX + key] = draw(st.sampled_from(VALUES[key]))
    for _ in range(draw(st.integers(0, 4))):
        key = PREFIX + draw(st.sampled_from(SECRET_KEYS)) + draw(names)
        chosen[key] = draw(st.sampled_from(SECRET_VALUES))
    chosen.update(draw(fixed_annotations))
    if draw(st.booleans()):
        chosen[PREFIX + draw(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20))] = "1"
    return chosen


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 3))
    containers = []
    for index in range(count):
        container: dict[str, Any] = {"name": f"c{index}", "image": "app:1"}
        if draw(st.booleans()):
            container["securityContext"] = {"runAsUser": draw(st.sampled_from([0, 100, 1000]))}
        containers.append(container)
    init = [{"name": "init0", "image": "init:1"}] if draw(st.booleans()) else []
    spec_fields: dict[str, Any] = {}
    if draw(st.booleans()):
        spec_fields["securityContext"] = {"fsGroup": 2000}
    if draw(st.booleans()):
        spec_fields["shareProcessNamespace"] = draw(st.booleans())
    automount = draw(st.booleans())
    if not automount:
        spec_fields["automountServiceAccountToken"] = False
    return make_pod(
        draw(pod_annotations()),
        containers=containers,
        init_containers=init,
        service_account_mount=automount and draw(st.booleans()),
        **spec_fields,
    )


def _check_well_formed(answer: dict[str, Any], request: Any) -> dict[str, Any]:
    assert answer["apiVersion"] == request["apiVersion"]
    assert answer["kind"] == "AdmissionReview"
    response: dict[str, Any] = answer["response"]
    assert response["uid"] == request["request"]["uid"]
    assert isinstance(response["allowed"], bool)
    assert all(isinstance(warning, str) for warning in response.get("warnings", []))
    if not response["allowed"]:
        assert response["status"]["message"]
        assert "patch" not in response
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
    return response


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods())
def test_random_pods_get_a_well_formed_answer_and_a_valid_patched_pod(pod: dict[str, Any]) -> None:
    request = review_request(pod)
    outcome = REVIEWER.review(request)
    event(outcome.result)
    answer = dict(outcome.review)
    response = _check_well_formed(answer, request)
    if "patch" in response:
        operations = json.loads(base64.b64decode(response["patch"]))
        patched = jsonpatch.apply_patch(pod, operations)
        assert agent_problems(patched) == []
        again = REVIEWER.review(review_request(patched))
        assert again.result == "skipped"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["object", "annotations", "spec", "document"]))
def test_arbitrary_documents_never_crash_the_reviewer(junk: Any, where: str) -> None:
    pod = make_pod({PREFIX + "agent-inject": "true", PREFIX + "role": "app"})
    if where == "annotations":
        pod["metadata"]["annotations"] = junk
    elif where == "spec":
        pod["spec"] = junk
    document: Any = review_request(pod if where != "object" else junk)
    if where == "document":
        document = junk
    try:
        answer = dict(REVIEWER.review(document).review)
    except ReviewError:
        return
    _check_well_formed(answer, document)


# Fields the parser reads from the pod itself, with any JSON value where a number, a string or a
# list belongs (the API server decodes pods into their types; the CLI reads any file).
FIELD_SETTERS = {
    "pod security context": lambda pod, junk: pod["spec"].update(
        securityContext={
            "runAsUser": junk,
            "runAsGroup": junk,
            "supplementalGroups": junk,
            "fsGroup": junk,
        }
    ),
    "container security context": lambda pod, junk: pod["spec"]["containers"][0].update(
        securityContext={"runAsUser": junk, "runAsGroup": junk}
    ),
    "container name": lambda pod, junk: pod["spec"]["containers"][0].update(name=junk),
    "mount": lambda pod, junk: pod["spec"]["containers"][0]["volumeMounts"].append(
        {"name": junk, "mountPath": junk}
    ),
}
OPTIONAL_ANNOTATIONS = {
    PREFIX + "agent-run-as-same-user": "true",
    PREFIX + "agent-inject-signal-db": "SIGHUP:app",
    PREFIX + "agent-copy-volume-mounts": "app",
}


@settings(max_examples=300, deadline=None)
@given(
    json_values,
    st.sampled_from(sorted(FIELD_SETTERS)),
    st.lists(st.sampled_from(sorted(OPTIONAL_ANNOTATIONS)), unique=True),
)
def test_any_value_in_a_field_the_parser_reads_never_crashes_the_reviewer(
    junk: Any, where: str, optional: list[str]
) -> None:
    annotations = {
        PREFIX + "agent-inject": "true",
        PREFIX + "role": "app",
        PREFIX + "agent-inject-secret-db": "kv/db",
        **{key: OPTIONAL_ANNOTATIONS[key] for key in optional},
    }
    pod = make_pod(annotations)
    FIELD_SETTERS[where](pod, junk)
    request = review_request(pod)
    _check_well_formed(dict(REVIEWER.review(request).review), request)
