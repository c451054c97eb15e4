"""In-cluster automatic TLS: the only module of the project that talks to the Kubernetes API.

Every replica of the webhook runs ``run_auto_tls`` in a background thread. The replicas elect a
leader with a coordination.k8s.io/v1 Lease. The leader keeps the CA and the serving certificate in
a Secret (``certs.storage``), decides rotations (``certs.rotation``), patches the caBundle of every
webhook entry of the MutatingWebhookConfiguration, and writes its own certificate files. Followers
read the Secret and write the same files. ``certs.reload`` picks the files up on the next handshake.

Writes are guarded by resourceVersion, so even two replicas that both believe they lead (a network
partition shorter than the lease) cannot overwrite each other's certificate unseen.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from certs.authority import dns_names, fingerprint, load_certificates, utcnow, validity_warnings
from certs.election import (
    Action,
    ElectionTimings,
    LeaseRecord,
    Observation,
    decide,
    next_record,
    observe,
    released,
)
from certs.files import publish_files
from certs.rotation import RotationPolicy, TlsState, plan
from certs.storage import (
    CA_BUNDLE,
    SECRET_TYPE,
    SERVING_CERT,
    SERVING_FILES,
    SERVING_KEY,
    StoredStateError,
    serving_files,
    state_files,
    state_from_data,
    state_to_data,
)

logger = logging.getLogger(__name__)

DEFAULT_SECRET_NAME = "vault-sidecar-injector-tls"  # noqa: S105 - a name
DEFAULT_LEASE_NAME = "vault-sidecar-injector-leader"

# What the API can throw at a caller: an HTTP answer, or no answer at all.
_API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class AutoTlsSettings:
    """Everything the automatic TLS needs; intervals are seconds.

    ``webhook_configuration`` is the MutatingWebhookConfiguration's name (vault-k8s's
    AGENT_INJECT_TLS_AUTO), ``hosts`` the serving certificate's names (AGENT_INJECT_TLS_AUTO_HOSTS),
    ``identity`` this replica's name in the Lease (its pod name), ``cert_dir`` where ``tls.crt``,
    ``tls.key`` and ``ca.crt`` are kept for the server to load.
    """

    namespace: str
    webhook_configuration: str
    hosts: tuple[str, ...]
    identity: str
    cert_dir: Path
    secret_name: str = DEFAULT_SECRET_NAME
    lease_name: str = DEFAULT_LEASE_NAME
    election: ElectionTimings = field(default_factory=ElectionTimings)
    policy: RotationPolicy = field(default_factory=RotationPolicy)
    reconcile_interval: float = 30.0
    poll_interval: float = 10.0
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        problems = [
            f"{name} is empty"
            for name in ("namespace", "webhook_configuration", "identity")
            if not getattr(self, name)
        ]
        if not self.hosts or not all(self.hosts):
            problems.append("hosts: at least one host, none empty")
        if min(self.reconcile_interval, self.poll_interval, self.request_timeout) <= 0:
            problems.append("reconcile_interval, poll_interval and request_timeout must be > 0")
        # A retired CA must outlive the time a follower takes to switch to the new certificate.
        if self.policy.retire_delay.total_seconds() < 2 * self.poll_interval:
            problems.append("policy.retire_delay must be at least twice poll_interval")
        if problems:
            raise ValueError("auto TLS settings: " + "; ".join(problems))

    @property
    def cert_file(self) -> Path:
        return self.cert_dir / SERVING_CERT

    @property
    def key_file(self) -> Path:
        return self.cert_dir / SERVING_KEY

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / CA_BUNDLE


def in_cluster_api_client() -> client.ApiClient:
    """An API client as the pod's ServiceAccount; its token is re-read when rotated."""
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def _is_status(error: BaseException, status: HTTPStatus) -> bool:
    return isinstance(error, ApiException) and error.status == status


def _describe(error: BaseException) -> str:
    """An API error for the log: status and reason only, never a response body."""
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return type(error).__name__


class LeaseElector:
    """One candidate: ``step`` reads the Lease, takes or renews it if it may, and says whether this
    candidate leads now."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        *,
        namespace: str,
        name: str,
        identity: str,
        timings: ElectionTimings,
        request_timeout: float,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self._identity = identity
        self._timings = timings
        self._request_timeout = request_timeout
        self._observation: Observation | None = None
        self._renewed_at: float | None = None  # monotonic time of the last successful write
        self._lease: client.V1Lease | None = None

    def leading(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return (
            self._renewed_at is not None and now - self._renewed_at < self._timings.renew_deadline
        )

    def step(self) -> bool:
        started = time.monotonic()
        try:
            lease = self._read()
            record = _record_of(lease) if lease is not None else None
            self._observation = observe(self._observation, record, started)
            action = decide(
                self._observation,
                identity=self._identity,
                now=started,
                lease_duration=self._timings.lease_duration,
            )
            if action is Action.WAIT:
                self._renewed_at = None
                return False
            wanted = next_record(
                record,
                action,
                identity=self._identity,
                now=utcnow(),
                lease_duration=self._timings.lease_duration,
            )
            self._lease = self._write(lease, wanted)
            if action is not Action.RENEW:
                logger.info("leader election: %s now leads %s", self._identity, self._name)
            self._renewed_at = started
            self._observation = observe(self._observation, wanted, started)
            return True
        except _API_ERRORS as error:
            if _is_status(error, HTTPStatus.CONFLICT):
                # Someone else wrote the Lease between our read and our write: they won.
                self._renewed_at = None
                return False
            logger.warning("leader election: Lease %s: %s", self._name, _describe(error))
            return self.leading()

    def release(self) -> None:
        """Hand the Lease over at once (on a clean stop), if this candidate holds it."""
        if not self.leading() or self._lease is None:
            return
        self._renewed_at = None
        record = _record_of(self._lease)
        try:
            self._write(self._lease, released(record, now=utcnow()))
            logger.info("leader election: %s released %s", self._identity, self._name)
        except _API_ERRORS as error:
            logger.warning("leader election: release of %s: %s", self._name, _describe(error))

    def _read(self) -> client.V1Lease | None:
        try:
            return self._api.read_namespaced_lease(
                self._name, self._namespace, _request_timeout=self._request_timeout
            )
        except ApiException as error:
            if error.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def _write(self, current: client.V1Lease | None, record: LeaseRecord) -> client.V1Lease:
        spec = client.V1LeaseSpec(
            holder_identity=record.holder,
            lease_duration_seconds=record.duration_seconds,
            acquire_time=record.acquire_time,
            renew_time=record.renew_time,
            lease_transitions=record.transitions,
        )
        if current is None:
            return self._api.create_namespaced_lease(
                self._namespace,
                client.V1Lease(
                    metadata=client.V1ObjectMeta(name=self._name, namespace=self._namespace),
                    spec=spec,
                ),
                _request_timeout=self._request_timeout,
            )
        metadata = client.V1ObjectMeta(
            name=self._name,
            namespace=self._namespace,
            resource_version=current.metadata.resource_version if current.metadata else None,
        )
        return self._api.replace_namespaced_lease(
            self._name,
            self._namespace,
            client.V1Lease(metadata=metadata, spec=spec),
            _request_timeout=self._request_timeout,
        )


def _record_of(lease: client.V1Lease) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(
        holder=spec.holder_identity or "",
        duration_seconds=spec.lease_duration_seconds or 0,
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=spec.lease_transitions or 0,
    )


def _as_text(value: str | bytes) -> str:
    # The client types base64 fields as str or bytes; on the wire they are base64 text either way.
    return value.decode("ascii", errors="replace") if isinstance(value, bytes) else value


def _secret_data(secret: client.V1Secret | None) -> dict[str, str] | None:
    if secret is None or secret.data is None:
        return None
    return {key: _as_text(value) for key, value in secret.data.items()}


def _decode_bundle(value: str | bytes | None) -> bytes:
    if not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


class CertificateKeeper:
    """The work of one replica: as leader ``reconcile``, as follower ``follow``."""

    def __init__(self, api_client: client.ApiClient, settings: AutoTlsSettings) -> None:
        self._settings = settings
        self._core = client.CoreV1Api(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)
        self._files_written = threading.Event()
        self._warned: set[str] = set()

    @property
    def files_written(self) -> threading.Event:
        return self._files_written

    def reconcile(self) -> bool:
        """Bring the Secret, the caBundle and the files to the plan; False if a step failed."""
        settings = self._settings
        try:
            secret = self._read_secret()
            state = self._state_of(secret)
            configuration = self._read_webhook_configuration()
            published = (
                None
                if configuration is None
                else [
                    _decode_bundle(entry.client_config.ca_bundle)
                    for entry in configuration.webhooks or []
                ]
            )
            if configuration is None:
                self._warn_once(
                    f"MutatingWebhookConfiguration {settings.webhook_configuration} not found: "
                    "the caBundle cannot be published"
                )
            step = plan(
                state,
                published=published,
                hosts=settings.hosts,
                now=utcnow(),
                policy=settings.policy,
            )
            for reason in step.reasons:
                logger.info("auto TLS: %s", reason)
            if step.save:
                self._save_secret(secret, step.state)
            if step.publish is not None and configuration is not None:
                self._publish(configuration, step.publish)
        except _API_ERRORS as error:
            logger.warning("auto TLS: reconcile failed, retrying: %s", _describe(error))
            return False
        self._write_files(state_files(step.state))
        return True

    def follow(self) -> bool:
        """Copy the leader's certificate from the Secret to the files; False if not possible."""
        try:
            secret = self._read_secret()
        except _API_ERRORS as error:
            logger.warning("auto TLS: cannot read the Secret: %s", _describe(error))
            return False
        try:
            files = serving_files(_secret_data(secret))
        except StoredStateError as error:
            logger.info("auto TLS: waiting for the leader: %s", error)
            return False
        self._write_files(files)
        return True

    def _warn_once(self, key: str, message: str | None = None) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("auto TLS: %s", message or key)

    def _state_of(self, secret: client.V1Secret | None) -> TlsState | None:
        if secret is None:
            return None
        try:
            return state_from_data(_secret_data(secret))
        except StoredStateError as error:
            logger.warning("auto TLS: replacing an unusable Secret: %s", error)
            return None

    def _write_files(self, files: dict[str, bytes]) -> None:
        changed = publish_files(
            self._settings.cert_dir,
            {name: (content, SERVING_FILES[name]) for name, content in files.items()},
        )
        serving = load_certificates(files[SERVING_CERT])[0]
        if changed:
            authorities = load_certificates(files[CA_BUNDLE])
            logger.info(
                "auto TLS: wrote certificate %s for %s, trusted CAs %s",
                fingerprint(serving)[:16],
                ",".join(dns_names(serving)),
                ",".join(fingerprint(ca)[:16] for ca in authorities),
            )
        for warning in validity_warnings(serving, now=utcnow(), label="serving certificate"):
            # Once per certificate and kind of warning: this runs on every pass.
            self._warn_once(f"{fingerprint(serving)[:16]}: {warning.split(' at ')[0]}", warning)
        self._files_written.set()

    def _read_secret(self) -> client.V1Secret | None:
        try:
            return self._core.read_namespaced_secret(
                self._settings.secret_name,
                self._settings.namespace,
                _request_timeout=self._settings.request_timeout,
            )
        except ApiException as error:
            if error.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def _save_secret(self, current: client.V1Secret | None, state: TlsState) -> None:
        settings = self._settings
        metadata = client.V1ObjectMeta(
            name=settings.secret_name,
            namespace=settings.namespace,
            labels={"app.kubernetes.io/name": "vault-sidecar-injector"},
        )
        data: dict[str, str | bytes] = dict(state_to_data(state))
        body = client.V1Secret(metadata=metadata, type=SECRET_TYPE, data=data)
        if current is None:
            self._core.create_namespaced_secret(
                settings.namespace, body, _request_timeout=settings.request_timeout
            )
            return
        # Keep what others put on the Secret (labels, annotations); guard with resourceVersion.
        if current.metadata is not None:
            metadata.labels = {**(current.metadata.labels or {}), **(metadata.labels or {})}
            metadata.annotations = current.metadata.annotations
            metadata.resource_version = current.metadata.resource_version
        body.type = current.type or SECRET_TYPE
        self._core.replace_namespaced_secret(
            settings.secret_name,
            settings.namespace,
            body,
            _request_timeout=settings.request_timeout,
        )

    def _read_webhook_configuration(self) -> client.V1MutatingWebhookConfiguration | None:
        try:
            return self._admission.read_mutating_webhook_configuration(
                self._settings.webhook_configuration,
                _request_timeout=self._settings.request_timeout,
            )
        except ApiException as error:
            if error.status == HTTPStatus.NOT_FOUND:
                return None
            raise

    def _publish(self, configuration: client.V1MutatingWebhookConfiguration, bundle: bytes) -> None:
        encoded = base64.b64encode(bundle).decode("ascii")
        resource_version = (
            configuration.metadata.resource_version if configuration.metadata else None
        )
        # JSON patch, guarded by a test of resourceVersion: an entry added or reordered meanwhile
        # fails the patch instead of getting another entry's bundle; the next pass tries again.
        operations: list[dict[str, object]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}
        ]
        operations += [
            {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": encoded}
            for index, _entry in enumerate(configuration.webhooks or [])
        ]
        self._admission.patch_mutating_webhook_configuration(
            self._settings.webhook_configuration,
            operations,
            _request_timeout=self._settings.request_timeout,
        )
        logger.info(
            "auto TLS: patched caBundle of %d webhook entries of %s",
            len(operations) - 1,
            self._settings.webhook_configuration,
        )


class AutoTls:
    """The running automatic TLS of one replica (see ``run_auto_tls``)."""

    def __init__(self, settings: AutoTlsSettings, api_client: client.ApiClient) -> None:
        self.settings = settings
        self._elector = LeaseElector(
            client.CoordinationV1Api(api_client),
            namespace=settings.namespace,
            name=settings.lease_name,
            identity=settings.identity,
            timings=settings.election,
            request_timeout=settings.request_timeout,
        )
        self._keeper = CertificateKeeper(api_client, settings)
        self._stop = threading.Event()
        self._release_on_stop = True
        self._leading = False
        self._thread = threading.Thread(
            target=self._run, name=f"auto-tls-{settings.identity}", daemon=True
        )

    @property
    def cert_file(self) -> Path:
        return self.settings.cert_file

    @property
    def key_file(self) -> Path:
        return self.settings.key_file

    @property
    def ca_file(self) -> Path:
        return self.settings.ca_file

    @property
    def is_leader(self) -> bool:
        return self._leading and self._elector.leading()

    def start(self) -> AutoTls:
        self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the certificate files exist (written once); False on timeout."""
        return self._keeper.files_written.wait(timeout)

    def stop(self, *, release: bool = True, timeout: float | None = None) -> None:
        """Stop the thread. ``release`` hands the Lease over at once; without it, the others take
        over only when the lease expires, as after a crash."""
        self._release_on_stop = release
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        settings = self.settings
        next_work = 0.0
        while not self._stop.is_set():
            try:
                next_work = self._step(next_work)
            except Exception:
                # A bug must not leave the replica without certificates for good: log, retry.
                logger.exception("auto TLS: unexpected error, retrying")
                next_work = 0.0
            self._stop.wait(
                max(0.0, min(settings.election.retry_period, next_work - time.monotonic()))
            )
        if self._release_on_stop:
            self._elector.release()

    def _step(self, next_work: float) -> float:
        """One pass: election, then the leader's or the follower's work if it is due."""
        settings = self.settings
        leading = self._elector.step()
        if leading != self._leading:
            logger.info(
                "auto TLS: %s is now %s",
                settings.identity,
                "the leader" if leading else "a follower",
            )
            self._leading = leading
            next_work = 0.0
        now = time.monotonic()
        if now < next_work:
            return next_work
        done = self._keeper.reconcile() if leading else self._keeper.follow()
        interval = settings.reconcile_interval if leading else settings.poll_interval
        # Until the first certificate is in place, try again at the election's pace.
        if not (done and self._keeper.files_written.is_set()):
            interval = settings.election.retry_period
        return now + interval


def run_auto_tls(
    settings: AutoTlsSettings, *, api_client: client.ApiClient | None = None
) -> AutoTls:
    """Start the automatic TLS of this replica in a daemon thread and return its handle.

    ``api_client`` defaults to the in-cluster ServiceAccount. Serve only after ``wait_ready``.
    """
    return AutoTls(settings, api_client or in_cluster_api_client()).start()
