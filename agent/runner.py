"""Init and sidecar modes: log in, render, hand over, then keep every credential alive.

Init: log in, render every template once (bounded retry with backoff), write the files, hand the
token and the fetched secrets to the sidecar through the agent-private volume, exit 0.

Sidecar: adopt the handoff (or log in and render, the native-sidecar path, then create the
readiness file), then run ONE scheduler of deadlines, on the main thread:

- ``token``: renew the token before it expires; log in again when it reaches its max TTL or Vault
  rejects it. A rejected token's leases are gone: those secrets are issued anew.
- ``dep <dependency>``: renew a lease, or issue the secret anew (max TTL near, non-renewable,
  certificate at about two thirds of its life, its token about to die), or re-read a static
  secret on the static interval. Only templates that use a changed dependency are rendered again.
- ``render <template>``: retry a render that failed for want of Vault.
- ``commands``: reap commands started after file changes.

Failures: transient ones close the agent-wide ``FailureGate`` (one request per backoff, whatever
is due), and any answer from Vault, a 403 or 404 included, resets it; a 403 is checked against
the token (log in again) and otherwise backs off long, as does a 404, for that task alone; one
failing template or command never makes another fetch again.

SIGTERM: stop scheduling, keep the files for the grace period, revoke every token the agent
holds (revoking a token revokes every lease it issued), exit 0. With ``auth.exit_on_error``, a
re-login Vault refuses for good (any 4xx but 412 and 429: a 400 for a JWT or role it does not
accept, a 401, a 403) revokes the same (without the grace period), then exits 1, as a refused
first login exits 1; a transient failure (no answer, 5xx, 429) is retried as without it, and so is
a token file that cannot be read, once: still unreadable a second later, it is fatal. So does
the re-login after a token rejected during the first render (init mode, or a sidecar's first
render), which revokes whatever revoke_on_shutdown says, as a first render that gives up does.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import FrameType

from agent.audit import Audit
from agent.config import AgentConfig
from agent.files import FileWriteError, write_if_changed
from agent.handoff import Handoff, HandoffError, HeldToken, monotonic_to_wall_offset, save, take
from agent.metrics import Expiry, Metrics, MetricsError, params_label
from agent.notify import CommandRunner, NotifyError, parse_command, send_signal
from agent.rendering import PreparedTemplate, prepare
from agent.schedule import (
    MIN_DELAY_SECONDS,
    Backoff,
    DeadlineQueue,
    FailureGate,
    LeaseClock,
    Plan,
    RetryPolicy,
    next_lease_action,
    static_refresh_time,
)
from agent.store import Held, SecretStore
from agent.templates import Dependency, TemplateError
from agent.vault import (
    BackingOff,
    LoginError,
    NotFound,
    PermissionDenied,
    RequestRejected,
    VaultClient,
    VaultError,
    VaultUnavailable,
    lease_reference,
    token_reference,
)

logger = logging.getLogger(__name__)

TaskKey = tuple[str, ...] | tuple[str, Dependency]
TOKEN_TASK: TaskKey = ("token",)
COMMANDS_TASK: TaskKey = ("commands",)
# The loop wakes at least this often, so a clock jump or a lost wake-up cannot stall it long.
MAX_SLEEP_SECONDS = 30.0
# With auth.exit_on_error, a ServiceAccount token file that still cannot be read this long after
# a re-login first failed to read it is fatal (a single failed read is retried: see _login_fatal).
TOKEN_FILE_PATIENCE_SECONDS = 1.0


class Outcome(enum.Enum):
    OK = "ok"
    TEMPLATE_ERROR = "template error"
    WRITE_ERROR = "write error"


class Interrupted(BaseException):
    """SIGTERM arrived while a request was on the wire: abandon it and shut down."""


class FatalError(Exception):
    """The agent must exit non-zero (e.g. login failed and auth.exit_on_error is set)."""


def _login_refused(error: VaultError) -> bool:
    """Vault answered a login with a permanent refusal: 400 (OpenBao's answer to a JWT it does
    not accept, or to an unknown role), 401, 403 or another 4xx. Not a transient failure (no
    answer, 5xx, 412, 429: ``VaultUnavailable``) nor a login that could not be sent (an
    unreadable token file: ``LoginError``, no status)."""
    return (
        error.operation == "login"
        and not isinstance(error, VaultUnavailable)
        and error.status is not None
        and 400 <= error.status < 500
    )


def _dep_task(dependency: Dependency) -> TaskKey:
    return ("dep", dependency)


def _render_task(name: str) -> TaskKey:
    return ("render", name)


@dataclass
class TemplateState:
    prepared: PreparedTemplate | None
    # Dependencies the last render touched (it is rendered again when one of them changes).
    uses: set[Dependency]
    rendered: bool = False
    # Why the last render failed, if it did (for the init mode's exit message).
    problem: str | None = None


class Agent:
    """One agent process. ``run_init`` / ``run_sidecar`` return the process exit code."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        audit: Audit | None = None,
        metrics: Metrics | None = None,
        now: Callable[[], float] = time.monotonic,
        wall_now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.now = now
        self.wall_now = wall_now
        self.rng = rng or random.SystemRandom()
        self.fraction = config.lifecycle.min_remaining_fraction
        self.retry = RetryPolicy.from_auth_backoff(
            config.auth.min_backoff_seconds, config.auth.max_backoff_seconds
        )
        self.gate = FailureGate(self.retry.transient, self.rng)
        self.vault = VaultClient(config.vault, gate=self.gate, now=now)
        self.audit = audit or Audit(config.pod)
        self.metrics = metrics or Metrics()
        self.store = SecretStore(
            self.vault, audit=self.audit, now=now, wall_now=wall_now, rng=self.rng
        )
        self.queue: DeadlineQueue[TaskKey] = DeadlineQueue()
        self.commands = CommandRunner(audit=self.audit, now=now)
        self.environ = dict(environ if environ is not None else os.environ)
        self.stopping = threading.Event()
        self.token: HeldToken | None = None
        # Earlier logins whose tokens still live: their leases may still be on someone's disk.
        self.old_tokens: list[HeldToken] = []
        self.token_plan: Plan | None = None
        self.learned_token_lifetime: float | None = None
        self.generation = 0
        # What each dependency's task will do: None re-reads a static secret.
        self.dep_plans: dict[Dependency, Plan | None] = {}
        self.attempts: dict[TaskKey, int] = {}
        self.templates: dict[str, TemplateState] = {}
        # Set once every template has been rendered (the native sidecar's readiness file).
        self.ready = False
        self._last_login_problem = "could not log in"
        # When a login first failed to read the token file, since the last one that read it.
        self._token_file_unreadable_since: float | None = None
        # Set once shutdown or revocation has begun: a signal must not abort the revocations.
        self._shutting_down = False
        self._prepare_templates()

    # Templates ---------------------------------------------------------------------------------

    def _prepare_templates(self) -> None:
        for config in self.config.templates:
            try:
                prepared: PreparedTemplate | None = prepare(config)
                problem = None
            except TemplateError as error:
                prepared, problem = None, str(error)
            except OSError as error:
                prepared = None
                problem = f"template file {config.source_file}: {error.strerror}"
            state = TemplateState(prepared, set(), problem=problem)
            if prepared is not None:
                state.uses = set(prepared.template.dependencies())
            else:
                logger.error("template %s cannot be used: %s", config.name, problem)
                self.audit.event("error", template=config.name, operation="parse")
            self.templates[config.name] = state

    def _render(self, name: str) -> Outcome:
        """Render one template and write it if its bytes changed. Template and write errors are
        recorded and logged; Vault errors propagate, after recording what was touched."""
        state = self.templates[name]
        if state.prepared is None:
            return Outcome.TEMPLATE_ERROR
        used: set[Dependency] = set()
        try:
            data = state.prepared.render(self.store.backend(used), environ=self.environ)
        except TemplateError as error:
            state.uses |= used
            state.problem = str(error)
            logger.error("template %s: %s", name, error)
            self.audit.event("error", template=name, operation="render")
            self.metrics.count("failures", "render")
            self._schedule_dependencies(used)
            return Outcome.TEMPLATE_ERROR
        except VaultError as error:
            state.uses |= used
            state.problem = str(error)
            self._schedule_dependencies(used)
            raise
        state.uses = used
        self._schedule_dependencies(used)
        config = state.prepared.config
        try:
            changed = write_if_changed(config.destination, data, mode=config.perms)
        except FileWriteError as error:
            state.problem = str(error)
            logger.error("template %s: %s; the previous file is kept", name, error)
            self.audit.event("error", template=name, operation="write", file=config.destination)
            self.metrics.count("failures", "write")
            return Outcome.WRITE_ERROR
        state.problem = None
        state.rendered = True
        if changed:
            self.audit.event("write", template=name, file=config.destination)
            self.metrics.count("file_writes", name)
            self._notify(name)
        return Outcome.OK

    def _render_dependents(self, dependencies: Iterable[Dependency]) -> None:
        changed = set(dependencies)
        for name, state in self.templates.items():
            if state.uses & changed:
                self._render_or_retry(name)
        self._forget_unused()

    def _render_or_retry(self, name: str) -> None:
        """Render; a failed write or fetch is retried later by the template's own task (a
        template error is not: only new data can fix it, and new data renders it again)."""
        try:
            outcome = self._render(name)
        except VaultError as error:
            self._failed(_render_task(name), error)
            return
        if outcome is Outcome.WRITE_ERROR:
            self._failed(_render_task(name), None)

    def _forget_unused(self) -> None:
        used = set().union(*(state.uses for state in self.templates.values()))
        for held in self.store:
            if held.dependency not in used:
                self.store.forget(held.dependency)
                self.queue.cancel(_dep_task(held.dependency))
                self.dep_plans.pop(held.dependency, None)

    def _notify(self, name: str) -> None:
        config = self.templates[name].prepared
        assert config is not None
        template = config.config
        if template.command:
            try:
                argv = parse_command(template.command)
            except NotifyError as error:
                logger.error("template %s: %s", name, error)
                self.audit.event("error", template=name, operation="command")
            else:
                self.commands.start(name, argv, timeout=template.command_timeout_seconds)
                self.queue.set_earlier(COMMANDS_TASK, self.now())
        if template.signal:
            try:
                pids = send_signal(template.signal.signal, template.signal.process_name)
            except NotifyError as error:
                logger.error("template %s: %s", name, error)
                self.audit.event("error", template=name, operation="signal")
            else:
                self.audit.event(
                    "signal",
                    template=name,
                    signal=template.signal.signal,
                    process=template.signal.process_name,
                    processes=len(pids),
                )

    # Token -----------------------------------------------------------------------------------

    def _login(self) -> None:
        try:
            auth = self.vault.login(self.config.auth)
        except LoginError:
            self.metrics.count("failures", "login")
            if self._token_file_unreadable_since is None:
                self._token_file_unreadable_since = self.now()
            raise
        except VaultError:
            self.metrics.count("failures", "login")
            self._token_file_unreadable_since = None  # read, and sent (or held back)
            raise
        self._token_file_unreadable_since = None
        now = self.now()
        self.generation += 1
        self.store.generation = self.generation
        clock = LeaseClock.issued(
            now,
            auth.ttl,
            renewable=auth.renewable,
            known_lifetime=self.learned_token_lifetime,
            rng=self.rng,
        )
        previous = self.token
        self.token = HeldToken(auth, clock, self.generation)
        self.audit.event(
            "login",
            method=self.config.auth.method,
            mount=self.config.auth.mount_path,
            token=token_reference(auth.accessor),
            ttl=auth.ttl,
        )
        logger.info("logged in to Vault (token ttl %ds)", auth.ttl)
        self._write_token_sink()
        self._schedule_token()
        if previous is not None:
            self._retire(previous)

    def _retire(self, old: HeldToken) -> None:
        """After a new login the old token is no longer renewed: it dies at the end of its
        current window (its last renewal reached a fraction of its lifetime past this moment),
        and so do the leases it issued. Those that would outlive it are issued anew now."""
        now = self.now()
        # Tokens whose window has passed are forgotten, but not the one retired now even if it
        # has (a late re-login): the bound it put on its leases is what their rotation reports.
        self.old_tokens = [token for token in self.old_tokens if token.clock.expires_at > now]
        self.old_tokens.append(old)
        for held in self.store:
            if held.generation != old.generation or held.clock is None:
                continue
            if held.category != "lease":
                continue
            own_end = held.clock.hard_expires_at
            if own_end is None or own_end > old.clock.expires_at:
                self.dep_plans[held.dependency] = Plan(now, "reissue")
                self.queue.set(_dep_task(held.dependency), now)
            else:
                self._schedule_dependency(held.dependency)

    def _write_token_sink(self) -> None:
        if self.config.token_sink and self.token is not None:
            try:
                write_if_changed(self.config.token_sink, self.token.auth.token.encode(), mode=0o640)
            except FileWriteError as error:
                logger.error("token sink: %s", error)

    def _token_bound(self, generation: int) -> float | None:
        """When the token of ``generation`` dies for good, if known: its leases die with it.
        The current token lives to its hard expiry; an old one, no longer renewed, to the end
        of its window."""
        if self.token is not None and self.token.generation == generation:
            return self.token.clock.hard_expires_at
        for token in self.old_tokens:
            if token.generation == generation:
                return token.clock.expires_at
        return None

    def _schedule_token(self) -> None:
        if self.token is None:
            self.queue.set(TOKEN_TASK, self.now())
            return
        self.token_plan = next_lease_action(
            self.token.clock,
            now=self.now(),
            min_remaining_fraction=self.fraction,
            rng=self.rng,
        )
        self.queue.set(TOKEN_TASK, self.token_plan.when)

    def _maintain_token(self) -> None:
        if self.token is None or self.token_plan is None or self.token_plan.action == "reissue":
            self._login()
            return
        try:
            renewal = self.vault.renew_self(self.token_plan.increment)
        except PermissionDenied:
            self._token_lost("renewal rejected")
            return
        now = self.now()
        clock = self.token.clock.after_renewal(
            now, ttl=renewal.ttl, capped=renewal.capped, renewable=renewal.renewable
        )
        bound_changed = clock.hard_expires_at != self.token.clock.hard_expires_at
        self.token = replace(self.token, clock=clock)
        if renewal.capped and clock.lifetime is not None:
            self.learned_token_lifetime = clock.lifetime
        self.audit.event(
            "renew",
            kind="token",
            token=token_reference(self.token.auth.accessor),
            ttl=renewal.ttl,
            capped=renewal.capped,
        )
        self.metrics.count("renewals", "token")
        if bound_changed:
            # The leases this token issued die with it: their deadlines move.
            for held in self.store:
                if held.generation == self.token.generation and held.category == "lease":
                    self._schedule_dependency(held.dependency)
        self._schedule_token()

    def _token_lost(self, why: str) -> set[Dependency]:
        """Vault no longer accepts the token, so the leases it issued are gone too: log in
        again (the token task) and issue those secrets anew (their tasks, right after).
        Returns the dependencies whose leases died with the token."""
        if self.token is None:
            return set()
        lost = self.token
        logger.warning("Vault rejected the token (%s): logging in again", why)
        self.audit.event("error", operation="token", token=token_reference(lost.auth.accessor))
        self.token = None
        self.vault.use_token(None)
        now = self.now()
        self.queue.set(TOKEN_TASK, now)
        forgotten = set(self.store.forget_generation(lost.generation))
        for dependency in forgotten:
            self.dep_plans.pop(dependency, None)
            self.queue.set(_dep_task(dependency), now + 0.01)
        return forgotten

    def _ensure_token(self) -> None:
        if self.token is None:
            self._login()

    def _token_is_rejected(self) -> bool:
        try:
            self.vault.lookup_self()
        except PermissionDenied:
            return True
        except VaultError:
            return False
        return False

    # Dependencies ------------------------------------------------------------------------------

    def _schedule_dependencies(self, dependencies: Iterable[Dependency]) -> None:
        for dependency in dependencies:
            if _dep_task(dependency) not in self.queue:
                self._schedule_dependency(dependency)

    def _schedule_dependency(self, dependency: Dependency) -> None:
        held = self.store.held(dependency)
        if held is None:
            return
        now = self.now()
        if held.clock is None:
            when = static_refresh_time(
                held.fetched_at,
                self.config.lifecycle.static_secret_render_interval_seconds,
                now=now,
                rng=self.rng,
            )
            self.dep_plans[dependency] = None
        else:
            plan = next_lease_action(
                held.clock,
                now=now,
                min_remaining_fraction=self.fraction,
                rng=self.rng,
                token_hard_expiry=self._token_bound(held.generation),
            )
            self.dep_plans[dependency] = plan
            when = plan.when
        self.queue.set(_dep_task(dependency), when)

    def _maintain_dependency(self, dependency: Dependency) -> None:
        self._ensure_token()
        held = self.store.held(dependency)
        if held is None:
            self._issue(dependency, previous=None)
            return
        plan = self.dep_plans.get(dependency)
        if plan is None:
            fresh = self.store.fetch(dependency)
            if fresh.secret.data != held.secret.data or fresh.keys != held.keys:
                self.audit.event("refresh", path=dependency.path, changed=True)
                self._render_dependents([dependency])
        elif plan.action == "renew":
            try:
                self.store.renew(dependency, increment=plan.increment)
                self.metrics.count("renewals", "lease")
            except (RequestRejected, NotFound) as error:
                if self.vault.lease_alive(held.secret.lease_id):
                    # The engine failed to extend it (its database is down, say): retry later.
                    raise VaultUnavailable(
                        str(error), operation=error.operation, path=error.path, status=error.status
                    ) from None
                # Revoked behind our back, or expired while it could not be renewed.
                logger.warning("lease of %s is gone: issuing it anew", dependency.path)
                self._issue(dependency, previous=held)
                return
        else:
            self._issue(dependency, previous=held)
            return
        self._schedule_dependency(dependency)

    def _issue(self, dependency: Dependency, *, previous: Held | None) -> None:
        """A new credential (rotation): log in first if the token would cut it short."""
        self._ensure_token()
        # Measured before a re-login: afterwards the old token may be gone from old_tokens, and
        # with it the bound it put on the old credential's life.
        old_life = (
            self._life_left(previous)
            if previous is not None and previous.clock is not None
            else None
        )
        if previous is not None and self._token_would_cut_short(dependency, previous):
            self._login()
        fresh = self.store.fetch(dependency)
        if previous is not None and old_life is not None:
            left, lifetime = old_life
            self.audit.event(
                "rotate",
                path=dependency.path,
                old_lease=(
                    lease_reference(previous.secret.lease_id) if previous.secret.lease_id else None
                ),
                lease=lease_reference(fresh.secret.lease_id) if fresh.secret.lease_id else None,
                old_seconds_left=round(left, 1),
                old_lifetime=round(lifetime, 1),
            )
            self.metrics.count(
                "rotations", dependency.path, params_label(dependency.kind, dependency.params)
            )
        self._schedule_dependency(dependency)
        self._render_dependents([dependency])

    def _token_would_cut_short(self, dependency: Dependency, previous: Held) -> bool:
        """Whether a credential issued now would die with the token well before its time: the
        token has less than ``1 - fraction`` of the life we expect the credential to have."""
        if self.token is None or self.token.clock.hard_expires_at is None:
            return False
        token_left = self.token.clock.hard_expires_at - self.now()
        token_lifetime = self.token.clock.lifetime or token_left
        expected = self.store.learned_lifetimes.get(dependency)
        if expected is None and previous.clock is not None:
            expected = previous.clock.lifetime or previous.clock.ttl
        if expected is None:
            return False
        return token_left < (1.0 - self.fraction) * min(expected, token_lifetime)

    def _life_left(self, held: Held) -> tuple[float, float]:
        """How long a held credential can still be used (renewals included), and its lifetime
        from issue to that end."""
        assert held.clock is not None
        end = held.clock.hard_expires_at or held.clock.expires_at
        bound = self._token_bound(held.generation)
        if bound is not None:
            end = min(end, bound)
        return max(0.0, end - self.now()), end - held.clock.issued_at

    # The loop ------------------------------------------------------------------------------------

    def _run_task(self, key: TaskKey) -> None:
        kind = key[0]
        try:
            if kind == "token":
                self._maintain_token()
            elif kind == "dep":
                dependency = key[1]
                assert isinstance(dependency, Dependency)
                self._maintain_dependency(dependency)
            elif kind == "render":
                name = key[1]
                assert isinstance(name, str)
                if self._render(name) is Outcome.WRITE_ERROR:
                    self._failed(key, None)
                    return
            elif kind == "commands":
                next_poll = self.commands.poll()
                if next_poll is not None:
                    self.queue.set(COMMANDS_TASK, next_poll)
                return
        except VaultError as error:
            self._failed(key, error)
            return
        self.attempts.pop(key, None)

    def _failed(self, key: TaskKey, error: VaultError | None) -> None:
        """Reschedule ``key`` after a failure, backing off by the kind of failure."""
        attempt = self.attempts.get(key, 0)
        self.attempts[key] = attempt + 1
        now = self.now()
        backoff: Backoff = self.retry.denied
        if error is None:
            backoff = self.retry.transient
        elif isinstance(error, BackingOff):
            # Not an attempt: wait for the gate (see _after_gate for who goes first).
            self.attempts[key] = attempt
            self.queue.set(key, self._after_gate(key, now))
            return
        else:
            self._record_failure(key, error)
            if self._login_fatal(error):
                raise FatalError(str(error))
            if isinstance(error, VaultUnavailable):
                backoff = self.retry.transient
            elif isinstance(error, LoginError):
                backoff = self.retry.login
            elif isinstance(error, PermissionDenied):
                if key == TOKEN_TASK or error.operation == "login":
                    backoff = self.retry.login
                elif self.token is not None and self._token_is_rejected():
                    self._token_lost("a request was denied")
                    self.attempts[key] = 0
                    self.queue.set_earlier(key, now + MIN_DELAY_SECONDS)
                    return
        delay = backoff.delay(attempt, self.rng)
        self.queue.set(key, max(now + delay, self._after_gate(key, now)))

    def _login_fatal(self, error: VaultError) -> bool:
        """Whether a failed re-login ends the agent (``auth.exit_on_error``): Vault refused it
        for good (``_login_refused``), or the ServiceAccount token file still cannot be read
        ``TOKEN_FILE_PATIENCE_SECONDS`` after a login first failed to read it.

        At startup any failed login is fatal with exit_on_error, an unreadable token file
        included: nothing is held yet, and the restarted container reads the file afresh. A
        re-login is different: the token and the leases it issued still live, and the kubelet
        rotates a projected token by an atomic rename, which a read can race with (the old
        directory removed between the lookup of ``..data`` and that of ``token``). So a single
        failed read is retried with the login backoff; a file still unreadable at a later
        attempt (missing volume, wrong path, lost permissions) cannot heal by itself, and
        retrying it would only let the token and its leases die silently under the app."""
        if not self.config.auth.exit_on_error:
            return False
        if _login_refused(error):
            return True
        since = self._token_file_unreadable_since
        return (
            isinstance(error, LoginError)
            and since is not None
            and self.now() - since >= TOKEN_FILE_PATIENCE_SECONDS
        )

    def _after_gate(self, key: TaskKey, now: float) -> float:
        """When ``key`` may try once the gate reopens. The token goes first: one failing secret
        must not starve the renewal that keeps every other secret alive. Others follow in a
        random order, so no one task always takes the single probe."""
        opens = max(now, self.gate.closed_until)
        if key == TOKEN_TASK:
            return opens
        return opens + 0.05 + 0.1 * self.rng.random()

    def _record_failure(self, key: TaskKey, error: VaultError) -> None:
        logger.warning("%s (attempt %d)", error, self.attempts.get(key, 0))
        self.audit.event(
            "error",
            operation=error.operation,
            path=error.path,
            status=error.status,
            template=key[1] if key[0] == "render" and isinstance(key[1], str) else None,
        )
        self.metrics.count("failures", error.operation)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            for key in self.queue.pop_due(self.now()):
                if self.stopping.is_set():
                    return
                self._run_task(key)
            if not self.ready and all(state.rendered for state in self.templates.values()):
                # The first render failed in part, and new data has rendered the rest since.
                self._mark_ready()
            next_time = self.queue.next_time()
            wait = MAX_SLEEP_SECONDS if next_time is None else next_time - self.now()
            if wait > 0:
                self.stopping.wait(min(wait, MAX_SLEEP_SECONDS))

    # Initial render (init mode, and the sidecar without a handoff) ---------------------------

    def _login_until(self, deadline: float) -> bool:
        attempt = 0
        while not self.stopping.is_set():
            try:
                self._login()
                return True
            except VaultError as error:
                logger.warning("%s", error)
                self.audit.event("error", operation="login", path=error.path, status=error.status)
                self._last_login_problem = str(error)
                if self.config.auth.exit_on_error and not isinstance(error, BackingOff):
                    return False
                backoff = (
                    self.retry.transient
                    if isinstance(error, VaultUnavailable)
                    else self.retry.login
                )
                wake = max(self.now() + backoff.delay(attempt, self.rng), self.gate.closed_until)
                attempt += 1
                if wake > deadline:
                    return False
                self.stopping.wait(wake - self.now())
        return False

    def _render_all(self, deadline: float) -> bool:
        """Render every usable template, retrying what Vault refused, until ``deadline``.

        Raises ``FatalError`` when, with ``auth.exit_on_error``, Vault refuses for good the
        re-login that follows a rejected token (as ``_failed`` does in the running loop)."""
        attempt = 0
        pending = [
            name for name, state in self.templates.items() if state.prepared and not state.rendered
        ]
        while pending and not self.stopping.is_set():
            worst: Backoff | None = None
            for name in list(pending):
                try:
                    self._ensure_token()
                    outcome = self._render(name)
                    if outcome is Outcome.WRITE_ERROR:
                        worst = worst or self.retry.transient
                    else:  # written, or a template error that only new data can fix
                        pending.remove(name)
                except VaultError as error:
                    if self._login_fatal(error):
                        # The re-login after a rejected token: fatal, as in the running loop.
                        self.audit.event(
                            "error", operation="login", path=error.path, status=error.status
                        )
                        raise FatalError(str(error)) from None
                    if isinstance(error, PermissionDenied):
                        if self._token_is_rejected():
                            gone = self._token_lost("a request was denied")
                            pending += self._unrender_users_of(gone, besides=pending)
                        worst = self.retry.denied if worst is None else worst
                    elif isinstance(error, VaultUnavailable):
                        worst = self.retry.transient
                    elif worst is None:
                        worst = self.retry.denied
                    self._note_initial_failure(name, error)
            if not pending:
                break
            assert worst is not None
            wake = max(self.now() + worst.delay(attempt, self.rng), self.gate.closed_until)
            attempt += 1
            if wake > deadline:
                return False
            self.stopping.wait(wake - self.now())
        return (
            all(state.rendered for state in self.templates.values()) and not self.stopping.is_set()
        )

    def _unrender_users_of(self, gone: set[Dependency], *, besides: list[str]) -> list[str]:
        """Templates already written with credentials that died with a lost token (``gone``),
        marked unrendered so the first render writes them again: init must never hand over a
        dead credential. ``besides``: the ones still pending anyway."""
        again = []
        for name, state in self.templates.items():
            if name not in besides and state.rendered and state.uses & gone:
                state.rendered = False
                again.append(name)
        return again

    def _note_initial_failure(self, name: str, error: VaultError) -> None:
        if not isinstance(error, BackingOff):
            logger.warning("template %s: %s", name, error)
            self.audit.event(
                "error",
                template=name,
                operation=error.operation,
                path=error.path,
                status=error.status,
            )
        self.templates[name].problem = str(error)

    def _problems(self) -> list[str]:
        problems = []
        for name, state in self.templates.items():
            if not state.rendered:
                problems.append(f"template {name}: {state.problem or 'not rendered'}")
        return problems

    # Modes ------------------------------------------------------------------------------------

    def run_init(self) -> int:
        self.audit.event("start", mode="init", templates=len(self.templates))
        self._install_signal_handlers()
        deadline = self.now() + self.config.lifecycle.init_timeout_seconds
        try:
            if not self._login_until(deadline):
                return self._init_failed([f"login: {self._last_login_problem}"])
            if not self._render_all(deadline):
                return self._init_failed(self._problems())
            assert self.token is not None
            if self.config.handoff:
                try:
                    save(
                        self.config.state_dir,
                        self._handoff(),
                        monotonic_to_wall=monotonic_to_wall_offset(self.wall_now, self.now),
                    )
                except OSError as error:
                    # No sidecar can adopt this token: leave nothing behind, as any failed init.
                    reason = os.strerror(error.errno) if error.errno else type(error).__name__
                    return self._init_failed(
                        [f"handoff: cannot write it to {self.config.state_dir} ({reason})"]
                    )
                self.audit.event("handoff", secrets=len(self.store))
            else:
                # No sidecar will adopt it: leave no token on disk. The credentials stay valid
                # until their TTLs (revoking the token would revoke them under the app).
                logger.info("no sidecar follows: token and leases are not handed over")
        except Interrupted:
            return self._init_failed(["interrupted by a signal"])
        except FatalError as error:
            # A refused re-login (auth.exit_on_error) exits 1, as a refused first login does.
            return self._init_failed([f"login: {error}"])
        finally:
            self.commands.stop_all()
        logger.info("init complete: %d templates rendered", len(self.templates))
        return 0

    def _init_failed(self, problems: list[str]) -> int:
        for problem in problems:
            logger.error("init failed: %s", problem)
        # Leave nothing behind: a crash-looping init must not pile up tokens and leases.
        self._revoke_all()
        return 1

    def _handoff(self) -> Handoff:
        assert self.token is not None
        return Handoff(
            token=self.token,
            held=tuple(self.store),
            learned_lifetimes=tuple(self.store.learned_lifetimes.items()),
            learned_token_lifetime=self.learned_token_lifetime,
        )

    def _adopt(self, handoff: Handoff) -> None:
        self.token = handoff.token
        self.generation = handoff.token.generation
        self.store.generation = self.generation
        self.vault.use_token(handoff.token.auth.token)
        for held in handoff.held:
            self.store.adopt(held)
        self.store.learned_lifetimes.update(dict(handoff.learned_lifetimes))
        self.learned_token_lifetime = handoff.learned_token_lifetime
        self.audit.event(
            "adopt", token=token_reference(handoff.token.auth.accessor), secrets=len(handoff.held)
        )
        self._schedule_token()

    def run_sidecar(self) -> int:
        self.audit.event("start", mode="sidecar", templates=len(self.templates))
        self._install_signal_handlers()
        self._serve_metrics()
        try:
            try:
                handoff = take(
                    self.config.state_dir,
                    monotonic_to_wall=monotonic_to_wall_offset(self.wall_now, self.now),
                )
            except HandoffError as error:
                logger.warning("%s: starting afresh", error)
                handoff = None
            lifecycle = self.config.lifecycle
            deadline = (
                self.now() + lifecycle.init_timeout_seconds
                if lifecycle.exit_on_retry_failure
                else float("inf")
            )
            if handoff is not None:
                self._adopt(handoff)
            elif not self._login_until(deadline):
                if self.stopping.is_set():
                    return self._shutdown()
                logger.error("could not log in to Vault: %s; giving up", self._last_login_problem)
                return 1
            try:
                rendered = self._render_all(deadline)
            except FatalError as error:
                # Before the first render is done, as when it gives up: revoke what is held
                # whatever revoke_on_shutdown says, then exit 1.
                logger.error("first render failed: %s; exiting", error)
                return self._exit_on_fatal_error(revoke=True)
            if not rendered:
                if self.stopping.is_set():
                    return self._shutdown()
                for problem in self._problems():
                    logger.error("first render failed: %s", problem)
                if any(state.prepared is None for state in self.templates.values()) or (
                    lifecycle.exit_on_retry_failure
                ):
                    self._revoke_all()
                    return 1
            else:
                self._mark_ready()
            self._loop()
        except Interrupted:
            pass
        except FatalError as error:
            logger.error("%s: exiting", error)
            return self._exit_on_fatal_error()
        return self._shutdown()

    def _mark_ready(self) -> None:
        if self.config.readiness_file:
            try:
                write_if_changed(self.config.readiness_file, b"ready\n", mode=0o644)
            except FileWriteError as error:
                logger.error("readiness file: %s; trying again later", error)
                return
        self.ready = True
        self.audit.event("ready")

    def _shutdown(self) -> int:
        self._shutting_down = True
        lifecycle = self.config.lifecycle
        self.audit.event("shutdown", grace_seconds=lifecycle.revoke_grace_seconds)
        # Keep serving files while the app finishes: nothing is removed, nothing revoked yet.
        deadline = self.now() + lifecycle.revoke_grace_seconds
        while (left := deadline - self.now()) > 0:
            time.sleep(min(left, 0.5))
        self.commands.stop_all()
        if lifecycle.revoke_on_shutdown:
            self._revoke_all()
        return 0

    def _exit_on_fatal_error(self, *, revoke: bool = False) -> int:
        """Exit non-zero (auth.exit_on_error) without leaving live credentials behind: what the
        agent still holds (the token a failed re-login would have replaced, earlier tokens and
        their leases) is revoked as at shutdown (when revoke_on_shutdown, or ``revoke``: during
        the first render, as a first render that gives up). No grace period: the pod is not
        stopping, and a restarted agent will not adopt these credentials."""
        self._shutting_down = True
        self.commands.stop_all()
        if revoke or self.config.lifecycle.revoke_on_shutdown:
            self._revoke_all()
        return 1

    def _revoke_all(self) -> None:
        tokens = [token for token in [self.token, *self.old_tokens] if token is not None]
        self._revoke(tokens)

    def _revoke(self, tokens: list[HeldToken]) -> None:
        """Revoke the leases we hold, then each token with its own authority.

        Revoking a token makes Vault revoke every lease it issued, in the background. Revoking
        the leases first, when the policy allows ``sys/leases/revoke`` (the default policy does
        not), makes it synchronous; the first denial, or a Vault that cannot do it, stops that
        attempt. Each token still gets its own attempt, whatever failed before it.
        """
        # However we got here, a signal must not abandon the revocations half done.
        self._shutting_down = True
        self.gate.succeeded()
        generations = {token.generation for token in tokens}
        for held in self.store:
            if held.category != "lease" or held.generation not in generations:
                continue
            try:
                self.vault.revoke_lease(held.secret.lease_id)
            except PermissionDenied:
                break
            except VaultUnavailable as error:
                logger.warning("could not revoke a lease: %s", error)
                break
            except VaultError as error:
                logger.warning("could not revoke a lease: %s", error)
                continue
            self.audit.event(
                "revoke", path=held.dependency.path, lease=lease_reference(held.secret.lease_id)
            )
        for token in tokens:
            # Not held back by the gate a failed lease revocation closed: a token left alive
            # keeps every lease it issued alive with it.
            self.gate.succeeded()
            try:
                self.vault.revoke_token(token.auth.token)
            except VaultError as error:
                logger.warning("could not revoke a token: %s", error)
                continue
            self.audit.event(
                "revoke",
                token=token_reference(token.auth.accessor),
                leases=sum(1 for held in self.store if held.generation == token.generation),
            )
        self.token = None
        self.old_tokens = []

    # Signals and metrics -------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            first = not self.stopping.is_set()
            self.stopping.set()
            if first:
                logger.info("received %s: shutting down", signal.Signals(signum).name)
            if self.vault.in_request and not self._shutting_down:
                raise Interrupted()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _serve_metrics(self) -> None:
        if not self.config.metrics_address:
            return
        self.metrics.watch(self._expiries, lambda: self.vault.requests_sent)
        try:
            self.metrics.serve(self.config.metrics_address)
        except (MetricsError, OSError) as error:
            logger.error("metrics not served: %s", error)

    def _expiries(self) -> list[Expiry]:
        found = []
        if self.token is not None:
            found.append(Expiry("token", self.config.auth.mount_path, self.token.clock.expires_at))
        for held in self.store:
            if held.clock is not None:
                dependency = held.dependency
                found.append(
                    Expiry(
                        held.category,
                        dependency.path,
                        held.clock.expires_at,
                        params=params_label(dependency.kind, dependency.params),
                    )
                )
        return found
