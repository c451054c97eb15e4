"""The loopback kube-apiserver fake answers as the real API does, for the paths the project uses."""

from __future__ import annotations

import datetime

import requests

from tests.support.fake_kube import FakeKubeApiServer


def _admin(kube: FakeKubeApiServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {kube.admin_token}"}


def test_token_review_authenticates_a_service_account_token(fake_kube: FakeKubeApiServer) -> None:
    token = fake_kube.issue_token("shop", "orders", audiences=["vault"])
    review = requests.post(
        f"{fake_kube.url}/apis/authentication.k8s.io/v1/tokenreviews",
        json={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": ["vault"]},
        },
        headers=_admin(fake_kube),
        timeout=5,
    ).json()
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == "system:serviceaccount:shop:orders"
    assert review["status"]["audiences"] == ["vault"]


def test_token_review_refuses_wrong_audience_and_expired_tokens(
    fake_kube: FakeKubeApiServer,
) -> None:
    wrong_audience = fake_kube.issue_token("shop", "orders", audiences=["other"])
    expired = fake_kube.issue_token("shop", "orders", lifetime=datetime.timedelta(seconds=-60))
    assert fake_kube.review_token(wrong_audience, ["vault"])["authenticated"] is False
    assert fake_kube.review_token(expired, None)["authenticated"] is False
    assert fake_kube.review_token("not-a-jwt", None)["authenticated"] is False


def test_requests_without_credentials_are_unauthorized(fake_kube: FakeKubeApiServer) -> None:
    answer = requests.get(f"{fake_kube.url}/api/v1/namespaces/x/secrets/y", timeout=5)
    assert answer.status_code == 401
    assert answer.json()["kind"] == "Status"


def test_objects_have_resource_versions_and_conflicts(fake_kube: FakeKubeApiServer) -> None:
    url = f"{fake_kube.url}/apis/coordination.k8s.io/v1/namespaces/inj/leases"
    created = requests.post(
        url,
        json={"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}},
        headers=_admin(fake_kube),
        timeout=5,
    )
    assert created.status_code == 201
    lease = created.json()
    assert lease["kind"] == "Lease"
    again = requests.post(
        url, json={"metadata": {"name": "leader"}}, headers=_admin(fake_kube), timeout=5
    )
    assert (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")
    lease["spec"]["holderIdentity"] = "b"
    replaced = requests.put(f"{url}/leader", json=lease, headers=_admin(fake_kube), timeout=5)
    assert replaced.status_code == 200
    stale = requests.put(f"{url}/leader", json=lease, headers=_admin(fake_kube), timeout=5)
    assert (stale.status_code, stale.json()["reason"]) == (409, "Conflict")


def test_patch_kinds_and_not_found(fake_kube: FakeKubeApiServer) -> None:
    url = f"{fake_kube.url}/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    body = {
        "metadata": {"name": "inj"},
        "webhooks": [{"name": "a", "clientConfig": {"caBundle": ""}}],
    }
    requests.post(url, json=body, headers=_admin(fake_kube), timeout=5).raise_for_status()
    json_patch = [{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="}]
    patched = requests.patch(
        f"{url}/inj",
        json=json_patch,
        headers={**_admin(fake_kube), "Content-Type": "application/json-patch+json"},
        timeout=5,
    )
    assert patched.json()["webhooks"][0]["clientConfig"]["caBundle"] == "Q0E="
    merged = requests.patch(
        f"{url}/inj",
        json={"metadata": {"labels": {"a": "b"}}},
        headers={**_admin(fake_kube), "Content-Type": "application/merge-patch+json"},
        timeout=5,
    )
    assert merged.json()["metadata"]["labels"] == {"a": "b"}
    assert merged.json()["webhooks"][0]["clientConfig"]["caBundle"] == "Q0E="
    missing = requests.get(f"{url}/nope", headers=_admin(fake_kube), timeout=5)
    assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")
