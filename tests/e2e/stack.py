"""The whole system on one machine, shared by the end-to-end tests and ``scripts/demo.py``.

- ``WebhookServer``: a real ``python -m webhook serve`` (gunicorn over TLS, certificates from
  ``certs.authority``) on a free loopback port, its log kept in a file; ``admit`` posts a real
  AdmissionReview to it over verified TLS and applies the JSON patch it returns.
- ``images``: the emulator's image table: the agent image runs this checkout's ``python -m agent``,
  the app image runs ``scripts/demo_app.py``.
- ``VaultApp`` / ``configure_app``: one app's policy, kubernetes and jwt auth roles and database
  role on a shared OpenBao, all under one unique name.
- ``describe_injection``: what the patch did to a pod, in lines a human reads.

Nothing here knows a secret value except what Vault and PostgreSQL set-up needs; nothing here
prints one.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import jsonpatch
import requests

from agent.config import AgentConfig
from certs.authority import generate_ca
from tests.support.emulator import Image, ImageTable, apply_service_account_admission, this_python
from tests.support.fake_kube import FakeKubeApiServer
from tests.support.postgres import PostgresServer
from tests.support.vault import VaultServer
from tests.webhook.server_support import (
    free_port,
    server_environment,
    wait_for_tls,
    write_tls_files,
)
from webhook.settings import DEFAULT_AGENT_IMAGE

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO_APP = REPOSITORY / "scripts" / "demo_app.py"
AGENT_IMAGE = DEFAULT_AGENT_IMAGE
APP_IMAGE = "vsi-demo-app:1"
PREFIX = "vault.hashicorp.com/"
DATABASE_MOUNT = "database"
# Tests and the demo give the webhook's agents this much grace before revoking at stop: enough to
# show the order of events, short enough to keep the runs quick.
SHORT_REVOKE_GRACE = "1s"

_T = TypeVar("_T")


def vault_annotations(**short: str) -> dict[str, str]:
    """``agent_inject_secret_db="x"`` -> ``{"vault.hashicorp.com/agent-inject-secret-db": "x"}``."""
    return {PREFIX + key.replace("_", "-"): value for key, value in short.items()}


def images() -> ImageTable:
    """Image references as local commands: the agent and the demo app run this checkout."""
    environment = {
        # The containers run as uids that cannot write the checkout: no bytecode caches.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPOSITORY),
    }
    return ImageTable(
        images={
            AGENT_IMAGE: Image(entrypoint=("python", "-m", "agent"), env=environment),
            APP_IMAGE: Image(entrypoint=("python", str(DEMO_APP)), env=environment),
        },
        executables=this_python(),
    )


# The webhook ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """One AdmissionReview round trip: what was sent, what came back, and the patched pod."""

    uid: str
    allowed: bool
    pod: dict[str, Any]
    operations: list[dict[str, Any]]
    warnings: list[str]
    message: str

    @property
    def mutated(self) -> dict[str, Any]:
        """The pod with the returned patch applied, as the API server would store it."""
        if not self.operations:
            return copy.deepcopy(self.pod)
        patched: dict[str, Any] = jsonpatch.apply_patch(self.pod, self.operations)
        return patched


class WebhookServer:
    """``python -m webhook serve`` over TLS on 127.0.0.1; ``environment`` adds AGENT_INJECT_*."""

    def __init__(
        self, *, vault_address: str, work_dir: Path, environment: Mapping[str, str] | None = None
    ) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.ca_file = work_dir / "ca.crt"  # written by start()
        self.log_file = work_dir / "webhook.log"
        self._extra = {"AGENT_INJECT_VAULT_ADDR": vault_address, **(environment or {})}
        self._process: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()
        # REQUESTS_CA_BUNDLE from the environment would override ``verify``.
        self._http.trust_env = False
        self._http.verify = str(self.ca_file)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> WebhookServer:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tls = write_tls_files(self.work_dir)
        self.ca_file = tls.ca_file
        environment = server_environment(
            tls,
            AGENT_INJECT_LOG_FORMAT="json",
            # One line per admission at info: the demo shows it, troubleshooting relies on it.
            AGENT_INJECT_LOG_LEVEL="info",
            AGENT_INJECT_WORKERS="1",
            **self._extra,
        )
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "webhook", "serve", "--bind", f"127.0.0.1:{self.port}"],
                env=environment,
                cwd=REPOSITORY,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for_tls(self.port, self._process)
        except (RuntimeError, TimeoutError) as error:
            self.stop()
            raise RuntimeError(f"the webhook did not start: {error}\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        self._http.close()
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """The webhook's JSON log lines, decoded (lines that are not JSON are skipped)."""
        records = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def review(self, pod: Mapping[str, Any], *, namespace: str) -> Admission:
        """POST an AdmissionReview (v1, CREATE of ``pod``) to /mutate over verified TLS."""
        uid = str(uuid.uuid4())
        request = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": pod.get("metadata", {}).get("name", ""),
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "oldObject": None,
                "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }
        reply = self._http.post(f"{self.url}/mutate", json=request, timeout=10)
        reply.raise_for_status()
        response = reply.json()["response"]
        if response["uid"] != uid:
            raise AssertionError("the webhook answered another request's uid")
        operations: list[dict[str, Any]] = []
        if "patch" in response:
            if response.get("patchType") != "JSONPatch":
                raise AssertionError(f"unexpected patchType {response.get('patchType')!r}")
            operations = json.loads(base64.b64decode(response["patch"]))
        return Admission(
            uid=uid,
            allowed=bool(response["allowed"]),
            pod=copy.deepcopy(dict(pod)),
            operations=operations,
            warnings=list(response.get("warnings", [])),
            message=str(response.get("status", {}).get("message", "")),
        )


def admit(
    webhook: WebhookServer, bare_pod: Mapping[str, Any], *, service_account_automount: bool = True
) -> Admission:
    """What the API server does with a pod a user submits: the ServiceAccount admission plugin
    first, then our mutating webhook."""
    pod = apply_service_account_admission(
        bare_pod, service_account_automount=service_account_automount
    )
    namespace = str(pod.get("metadata", {}).get("namespace") or "default")
    return webhook.review(pod, namespace=namespace)


# Vault --------------------------------------------------------------------------------------


def enable_kubernetes_auth(vault: VaultServer, kube: FakeKubeApiServer) -> None:
    """kubernetes auth whose TokenReview goes to the fake API server (plain HTTP on loopback,
    so the CA given is never used; Vault still wants one that parses)."""
    vault.enable_kubernetes_auth(
        kube_url=kube.url,
        reviewer_jwt=kube.admin_token,
        ca_pem=generate_ca().cert_pem.decode(),
    )


AuthMethod = Literal["kubernetes", "jwt"]


@dataclass(frozen=True)
class VaultApp:
    """One app's identity and grants: policy, auth roles and database role share ``name``."""

    name: str
    namespace: str
    service_account: str
    readable_paths: tuple[str, ...]
    database_ttls: tuple[int, int] | None = None
    jwt_audience: str = "vault"

    @property
    def database_path(self) -> str:
        return f"{DATABASE_MOUNT}/creds/{self.name}"

    @property
    def lease_prefix(self) -> str:
        return f"{self.database_path}/"

    @property
    def kv_name(self) -> str:
        """The KV v2 secret (mount ``secret/``) of this app."""
        return f"{self.name}/config"

    @property
    def kv_path(self) -> str:
        return f"secret/data/{self.kv_name}"

    def auth_annotations(self, method: AuthMethod) -> dict[str, str]:
        if method == "kubernetes":
            return vault_annotations(role=self.name)
        return vault_annotations(
            role=self.name,
            auth_type="jwt",
            auth_path="auth/jwt",
            # jwt roles bind an audience: the agent logs in with a token made for Vault alone.
            agent_projected_token="true",
            agent_projected_token_audience=self.jwt_audience,
        )


def configure_app(
    vault: VaultServer,
    *,
    name: str,
    namespace: str,
    service_account: str,
    database_ttls: tuple[int, int] | None = None,
    kv: Mapping[str, str] | None = None,
    extra_readable_paths: Sequence[str] = (),
    auth_methods: Sequence[AuthMethod] = ("kubernetes", "jwt"),
    token_ttl: str = "1h",  # noqa: S107 - a duration
) -> VaultApp:
    """Policy (read the app's own paths only), a role for the ServiceAccount in each of
    ``auth_methods`` (enabled beforehand), and, as asked, a database role (default_ttl, max_ttl)
    and a KV v2 secret."""
    app = VaultApp(
        name=name,
        namespace=namespace,
        service_account=service_account,
        readable_paths=(),
        database_ttls=database_ttls,
    )
    paths = list(extra_readable_paths)
    if database_ttls is not None:
        default_ttl, max_ttl = database_ttls
        vault.create_database_role(name, default_ttl=default_ttl, max_ttl=max_ttl)
        paths.append(app.database_path)
    if kv is not None:
        vault.put_kv("secret", app.kv_name, kv)
        paths.append(app.kv_path)
    vault.write_policy(
        name, "".join(f'path "{path}" {{\n  capabilities = ["read"]\n}}\n' for path in paths)
    )
    if "kubernetes" in auth_methods:
        vault.create_kubernetes_role(
            name,
            namespace=namespace,
            service_account=service_account,
            policies=[name],
            ttl=token_ttl,
        )
    if "jwt" in auth_methods:
        vault.create_jwt_role(
            name,
            namespace=namespace,
            service_account=service_account,
            policies=[name],
            audience=app.jwt_audience,
            ttl=token_ttl,
        )
    return replace(app, readable_paths=tuple(paths))


def database_template(app: VaultApp, postgres: PostgresServer) -> str:
    """A libpq connection string the demo app hands to psycopg as it is."""
    return (
        f'{{{{- with secret "{app.database_path}" -}}}}\n'
        f"host={postgres.host} port={postgres.port} dbname=postgres "
        "user={{ .Data.username }} password={{ .Data.password }}\n"
        "{{- end }}\n"
    )


def kv_template(app: VaultApp) -> str:
    """The KV v2 answer as JSON: the app reads ``data`` and ``metadata.version``."""
    return f'{{{{ with secret "{app.kv_path}" }}}}{{{{ .Data | toJSON }}}}\n{{{{ end }}}}'


def app_pod(
    app: VaultApp,
    *,
    name: str,
    pod_annotations: Mapping[str, str],
    containers: Sequence[Mapping[str, Any]] | None = None,
    restart_policy: str = "Always",
    automount: bool | None = None,
    run_as_user: int = 1000,
) -> dict[str, Any]:
    """A bare pod as a user writes it: the demo app as a non-root user, annotated."""
    spec: dict[str, Any] = {
        "serviceAccountName": app.service_account,
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": 20,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": run_as_user,
            "runAsGroup": run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [dict(container) for container in (containers or [app_container("app")])],
    }
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": app.namespace,
            "annotations": dict(pod_annotations),
        },
        "spec": spec,
    }


def app_container(name: str, *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": APP_IMAGE,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return container


# What the webhook did, for humans ---------------------------------------------------------------


@dataclass(frozen=True)
class InjectionSummary:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    login: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        for title, items in (
            ("containers", self.containers),
            ("volumes", self.volumes),
            ("app mounts", self.mounts),
            ("files", self.files),
            ("login", self.login),
            ("also", self.other),
            ("warnings", self.warnings),
        ):
            for index, item in enumerate(items or ["none"]):
                yield f"{title if index == 0 else '':<11} {item}"


def _container_role(container: Mapping[str, Any], *, init: bool) -> str:
    if init and container.get("restartPolicy") == "Always":
        probe = " with a startup probe" if "startupProbe" in container else ""
        return "native sidecar" + probe
    return "init container" if init else "sidecar"


def _identity(container: Mapping[str, Any]) -> str:
    context = container.get("securityContext") or {}
    user, group = context.get("runAsUser"), context.get("runAsGroup")
    identity = f"uid {user}" if user is not None else "uid of the image"
    if group is not None:
        identity += f" gid {group}"
    if context.get("readOnlyRootFilesystem"):
        identity += ", read-only root"
    if (context.get("seccompProfile") or {}).get("type"):
        identity += ", seccomp " + context["seccompProfile"]["type"]
    return identity


def _resources(container: Mapping[str, Any]) -> str:
    resources = container.get("resources") or {}
    parts = []
    for kind in ("requests", "limits"):
        values = resources.get(kind) or {}
        if values:
            parts.append(f"{kind} " + "/".join(str(values[key]) for key in sorted(values)))
    return ", ".join(parts) or "no resources set"


def _volume_kind(volume: Mapping[str, Any]) -> str:
    if "emptyDir" in volume:
        empty_dir = volume["emptyDir"] or {}
        medium = "in memory (tmpfs)" if empty_dir.get("medium") == "Memory" else "on disk"
        limit = f", at most {empty_dir['sizeLimit']}" if "sizeLimit" in empty_dir else ""
        return f"emptyDir {medium}{limit}"
    if "projected" in volume:
        sources = volume["projected"].get("sources") or []
        tokens = [
            source["serviceAccountToken"] for source in sources if "serviceAccountToken" in source
        ]
        if tokens:
            token = tokens[0]
            audience = token.get("audience") or "the API server's"
            return (
                f"projected ServiceAccount token (audience {audience}, "
                f"{token.get('expirationSeconds', 3607)} s)"
            )
        return "projected"
    return next((key for key in volume if key != "name"), "volume")


def _agent_config(container: Mapping[str, Any]) -> dict[str, Any] | None:
    for variable in container.get("env") or []:
        if variable.get("name") == "VSI_AGENT_CONFIG":
            # The document leaves defaults out; the agent's reading puts them back.
            return AgentConfig.from_json(variable["value"]).to_dict()
    return None


def describe_injection(admission: Admission) -> InjectionSummary:
    """What the patch added, read off the pod before and after (not off the patch's paths)."""
    before, after = admission.pod, admission.mutated
    summary = InjectionSummary(warnings=list(admission.warnings))
    logins: dict[str, list[str]] = {}
    for field_name, init in (("initContainers", True), ("containers", False)):
        old = {c["name"]: c for c in before.get("spec", {}).get(field_name) or []}
        for container in after.get("spec", {}).get(field_name) or []:
            if container["name"] in old:
                for mount in container.get("volumeMounts") or []:
                    if mount in (old[container["name"]].get("volumeMounts") or []):
                        continue
                    access = "read-only" if mount.get("readOnly") else "read-write"
                    summary.mounts.append(
                        f"{container['name']}: {mount['mountPath']} ({mount['name']}, {access})"
                    )
                continue
            summary.containers.append(
                f"{container['name']}: {_container_role(container, init=init)}, "
                f"{container['image']} args {' '.join(container.get('args') or [])}; "
                f"{_identity(container)}; {_resources(container)}"
            )
            config = _agent_config(container)
            if config is None:
                continue
            for template in config.get("templates", []):
                line = (
                    f"{template['destination']} <- {template.get('vault_path') or '(template)'} "
                    f"(mode {template['perms']:04o})"
                )
                if line not in summary.files:
                    summary.files.append(line)
            auth = config.get("auth", {})
            login = (
                f"{auth.get('method')} auth at {auth.get('mount_path')}, role {auth.get('role')}, "
                f"with the token in {auth.get('token_file')}"
            )
            logins.setdefault(login, []).append(container["name"])
    summary.login.extend(f"{', '.join(names)}: {login}" for login, names in logins.items())
    old_volumes = {v["name"] for v in before.get("spec", {}).get("volumes") or []}
    for volume in after.get("spec", {}).get("volumes") or []:
        if volume["name"] not in old_volumes:
            summary.volumes.append(f"{volume['name']}: {_volume_kind(volume)}")
    old_annotations = before.get("metadata", {}).get("annotations") or {}
    for key, value in (after.get("metadata", {}).get("annotations") or {}).items():
        if old_annotations.get(key) != value:
            summary.other.append(f"annotation {key}: {value}")
    for key in ("shareProcessNamespace",):
        if key in after.get("spec", {}) and before.get("spec", {}).get(key) != after["spec"][key]:
            summary.other.append(f"spec.{key}: {after['spec'][key]}")
    return summary


def wait_until(condition: Callable[[], _T], *, timeout: float, what: str) -> _T:
    """Poll ``condition`` until it returns something truthy and return that; on timeout raise
    ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)
