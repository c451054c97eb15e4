"""HTTP through a real gunicorn over TLS: routes, malformed requests, certificate reload."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from certs.authority import generate_ca, issue_serving_certificate
from tests.webhook.server_support import (
    REPOSITORY,
    TlsFiles,
    running_server,
    server_environment,
    write_tls_files,
)
from tests.webhook.support import annotated, make_pod, review_request

pytestmark = pytest.mark.slow

BASE = annotated(agent_inject="true", role="app", agent_inject_secret_db="database/creds/app")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def base_url(tls: TlsFiles) -> Iterator[str]:
    env = server_environment(tls, AGENT_INJECT_WORKERS="2", AGENT_INJECT_THREADS="2")
    with running_server(env) as port:
        yield f"https://127.0.0.1:{port}"


@pytest.fixture
def session(tls: TlsFiles) -> Iterator[requests.Session]:
    with requests.Session() as http:
        # REQUESTS_CA_BUNDLE in the environment would otherwise override session.verify.
        http.trust_env = False
        http.verify = str(tls.ca_file)
        yield http


def post_review(session: requests.Session, url: str, document: Any) -> requests.Response:
    return session.post(f"{url}/mutate", json=document, timeout=10)


def test_a_pod_is_injected_over_tls(session: requests.Session, base_url: str) -> None:
    reply = post_review(session, base_url, review_request(make_pod(BASE)))
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    response = reply.json()["response"]
    assert response["allowed"] is True
    operations = json.loads(base64.b64decode(response["patch"]))
    assert any(op["path"] == "/spec/initContainers" for op in operations)


def test_a_refused_pod_is_a_200_with_allowed_false(
    session: requests.Session, base_url: str
) -> None:
    pod = make_pod({**BASE, **annotated(agent_pre_populate="yes")})
    reply = post_review(session, base_url, review_request(pod))
    assert reply.status_code == 200
    assert reply.json()["response"]["allowed"] is False


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        pytest.param(
            {"Content-Type": "text/plain"}, b"{}", 400, "Content-Type", id="wrong content type"
        ),
        pytest.param({"Content-Type": "application/json"}, b"", 400, "empty body", id="empty body"),
        pytest.param(
            {"Content-Type": "application/json"}, b"{not json", 400, "not valid JSON", id="not JSON"
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b'{"apiVersion": NaN}',
            400,
            "not valid JSON: NaN is not a JSON value",
            id="NaN, which JSON has not",
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b"[" * 100_000,
            400,
            "not valid JSON",
            id="nested too deep",
        ),
        pytest.param(
            {"Content-Type": "application/json"},
            b'{"kind": "Pod"}',
            400,
            "not an AdmissionReview",
            id="not a review",
        ),
    ],
)
def test_malformed_requests_get_a_short_400_and_the_worker_keeps_serving(
    *,
    session: requests.Session,
    base_url: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    message: str,
) -> None:
    reply = session.post(f"{base_url}/mutate", data=body, headers=headers, timeout=10)
    assert reply.status_code == status
    assert message in reply.json()["error"]
    assert "Traceback" not in reply.text
    assert len(reply.content) < 300
    assert session.get(f"{base_url}/healthz", timeout=5).status_code == 200


def test_a_body_over_the_cap_gets_413(session: requests.Session, base_url: str) -> None:
    body = b'{"pad": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    try:
        reply = session.post(
            f"{base_url}/mutate",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    except requests.ConnectionError:
        pytest.fail("the server dropped the connection instead of answering 413")
    assert reply.status_code == 413
    assert "Traceback" not in reply.text
    assert session.get(f"{base_url}/readyz", timeout=5).status_code == 200


def test_wrong_method_and_unknown_path_are_short_errors(
    session: requests.Session, base_url: str
) -> None:
    assert session.get(f"{base_url}/mutate", timeout=5).status_code == 405
    assert session.get(f"{base_url}/nothing", timeout=5).status_code == 404


def test_metrics_count_injections_by_namespace_and_kind(
    session: requests.Session, base_url: str
) -> None:
    for _ in range(3):
        post_review(session, base_url, review_request(make_pod(BASE), namespace="metrics-ns"))
    text = session.get(f"{base_url}/metrics", timeout=5).text
    line = 'vsi_webhook_injections_total{kind="init-and-sidecar",namespace="metrics-ns"} 3.0'
    assert line in text
    assert "vsi_webhook_request_duration_seconds_bucket" in text


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path)
    env = server_environment(tls, AGENT_INJECT_WORKERS="1", AGENT_INJECT_THREADS="1")
    with running_server(env) as port:
        url = f"https://127.0.0.1:{port}/healthz"
        assert requests.get(url, verify=str(tls.ca_file), timeout=5).status_code == 200
        new_ca = generate_ca()
        renewed = issue_serving_certificate(new_ca, ["127.0.0.1"])
        new_ca_file = tmp_path / "new-ca.crt"
        new_ca_file.write_bytes(new_ca.cert_pem)
        tls.key_file.write_bytes(renewed.key_pem)
        tls.cert_file.write_bytes(renewed.cert_pem)
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = requests.get(url, verify=str(new_ca_file), timeout=5)
                break
            except requests.exceptions.SSLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert reply.status_code == 200


def run_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook", "serve", "--bind", "127.0.0.1:1"],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_refuses_a_key_that_does_not_match_naming_both_files(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path)
    (tmp_path / "other").mkdir()
    other = write_tls_files(tmp_path / "other")
    env = server_environment(tls, AGENT_INJECT_TLS_KEY_FILE=str(other.key_file))
    result = run_serve(env)
    assert result.returncode == 2
    assert str(tls.cert_file) in result.stderr
    assert str(other.key_file) in result.stderr


def test_serve_refuses_a_missing_certificate_naming_it(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path)
    missing = tmp_path / "absent.crt"
    result = run_serve(server_environment(tls, AGENT_INJECT_TLS_CERT_FILE=str(missing)))
    assert result.returncode == 2
    assert str(missing) in result.stderr


def test_serve_refuses_to_start_without_a_vault_address(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path)
    result = run_serve(server_environment(tls, AGENT_INJECT_VAULT_ADDR=""))
    assert result.returncode == 2
    assert "AGENT_INJECT_VAULT_ADDR" in result.stderr


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        pytest.param(
            {"AGENT_INJECT_PROXY_ADDR": "proxy:3128"},
            "proxy-address: expected a URL",
            id="a proxy address without a scheme",
        ),
        pytest.param(
            {"AGENT_INJECT_DEFAULT_ANNOTATIONS": '{"agent-revoke-grace": "soon"}'},
            "agent-revoke-grace: expected a duration",
            id="a default annotation with a bad value",
        ),
        pytest.param(
            {"AGENT_INJECT_DEFAULT_ANNOTATIONS": '{"agent-limits-cpu": "lots"}'},
            "agent-limits-cpu: expected a Kubernetes quantity",
            id="a default resource annotation with a bad value",
        ),
        pytest.param(
            {
                "AGENT_INJECT_DEFAULT_ANNOTATIONS": (
                    '{"agent-json-patch": "[{\\"op\\": \\"remove\\", \\"path\\": \\"/nope\\"}]"}'
                )
            },
            "agent-json-patch:",
            id="a default JSON patch that cannot apply to the agent",
        ),
    ],
)
def test_serve_refuses_settings_that_would_refuse_every_pod(
    tmp_path: Path, extra: dict[str, str], named: str
) -> None:
    result = run_serve(server_environment(write_tls_files(tmp_path), **extra))
    assert result.returncode == 2
    assert "the settings would refuse every pod" in result.stderr
    assert named in result.stderr


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the IPv4 sockets listening on ``port`` (state 0A in /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def _owners(inodes: set[str]) -> dict[str, set[int]]:
    owners: dict[str, set[int]] = {inode: set() for inode in inodes}
    for fd_directory in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [os.readlink(fd) for fd in fd_directory.iterdir()]
        except OSError:
            continue
        for link in links:
            inode = link.removeprefix("socket:[").removesuffix("]")
            if inode in owners:
                owners[inode].add(int(fd_directory.parent.name))
    return owners


def test_each_worker_listens_on_a_socket_of_its_own(base_url: str) -> None:
    """SO_REUSEPORT: the kernel spreads connections over the workers, instead of whichever
    worker wakes first taking them (which put all 16 benchmark connections on one worker)."""
    port = int(base_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 10
    while len(_listening_inodes(port)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    owners = _owners(_listening_inodes(port))
    assert len(owners) == 2, owners  # one per worker (AGENT_INJECT_WORKERS=2)
    first, second = owners.values()
    assert len(first) == 1
    assert len(second) == 1
    assert first != second
