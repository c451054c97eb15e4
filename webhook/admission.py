"""AdmissionReview in, AdmissionReview out (admission.k8s.io/v1, and v1beta1 answered in kind).

Two error channels, as in kopf: a request that is not a well-formed AdmissionReview raises
``ReviewError`` (the HTTP layer answers 400); a pod that cannot be injected gets ``allowed: false``
with every reason in ``status.message``. Only CREATE of a Pod is mutated; everything else is
allowed untouched. Pure: the caller does the I/O and the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict

from webhook.annotations import (
    PROBE_POD,
    SpecParser,
    default_annotation_problems,
    unknown_key_warnings,
)
from webhook.injection import InjectionError, inject, should_inject
from webhook.patch import diff
from webhook.settings import Settings, SettingsError
from webhook.wire import encode_patch

logger = logging.getLogger(__name__)

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
# The API server truncates long warnings and drops many; keep each short and their number small.
MAX_WARNING_LENGTH = 250
MAX_WARNINGS = 20
POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}


class ReviewError(ValueError):
    """The document is not an AdmissionReview request; the message is safe to return."""


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class AdmissionRequest(TypedDict):
    uid: str
    kind: GroupVersionKind
    operation: str
    namespace: NotRequired[str]
    subResource: NotRequired[str]
    object: NotRequired[dict[str, Any]]
    dryRun: NotRequired[bool]


class ResponseStatus(TypedDict):
    status: str
    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[str]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]
    status: NotRequired[ResponseStatus]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


class ReviewOutcome:
    """The answer, plus what the HTTP layer records in metrics and logs. A plain class, not a
    frozen dataclass, as the spec's classes are (see webhook.annotations)."""

    def __init__(
        self,
        review: AdmissionReview,
        result: str,
        namespace: str,
        *,
        kind: str = "",
        detail: str = "",
        pod: str = "",
    ) -> None:
        self.review: Final = review
        # "injected", "refused", "skipped" or "ignored" (not a pod creation).
        self.result: Final = result
        self.namespace: Final = namespace
        # The InjectionMode when injected, else "".
        self.kind: Final = kind
        self.detail: Final = detail
        self.pod: Final = pod


# Decoded JSON has dicts for objects: the checks below ask for dict, not Mapping, whose
# isinstance goes through the ABC machinery (30-odd checks were 5% of a compiled review).
def _request_of(document: Any) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(document, dict):
        raise ReviewError("expected a JSON object (an AdmissionReview)")
    api_version = document.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ReviewError(f"apiVersion must be one of {', '.join(API_VERSIONS)}")
    if document.get("kind") != "AdmissionReview":
        raise ReviewError("kind must be AdmissionReview")
    request = document.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request: expected an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid: expected a non-empty string")
    return str(api_version), request


def _bounded(warnings: list[str]) -> list[str]:
    bounded = [
        warning if len(warning) <= MAX_WARNING_LENGTH else warning[: MAX_WARNING_LENGTH - 3] + "..."
        for warning in warnings[:MAX_WARNINGS]
    ]
    if len(warnings) > MAX_WARNINGS:
        bounded.append(f"... and {len(warnings) - MAX_WARNINGS} more warnings")
    return bounded


def pod_label(pod: Mapping[str, Any]) -> str:
    """The pod's name for logs; generateName pods have none yet at admission."""
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        return "?"
    name = metadata.get("name") or (str(metadata.get("generateName") or "") + "*")
    return str(name)


class Reviewer:
    """Built once per process from the settings; ``review`` answers one AdmissionReview."""

    def __init__(self, settings: Settings) -> None:
        problems = default_annotation_problems(settings.default_annotations)
        if problems:
            raise SettingsError([f"AGENT_INJECT_DEFAULT_ANNOTATIONS: {p}" for p in problems])
        self.settings = settings
        self._parser = SpecParser(settings)

    def settings_errors(self) -> tuple[str, ...]:
        """The errors the settings alone would give every pod: SpecParser.settings_errors, and
        those of the default annotations, found by reading and injecting PROBE_POD (so a default
        agent-json-patch that does not apply to the agent's container is one)."""
        errors = list(self._parser.settings_errors())
        # Every other default annotation, read and injected as a plain pod would be.
        probe = self._parser.parse(PROBE_POD, namespace="default")
        found = list(probe.errors)
        if probe.spec is not None:
            try:
                inject(PROBE_POD, probe.spec)
            except InjectionError as error:
                found += error.problems
        errors += [e for e in self._parser.default_annotation_errors(found) if e not in errors]
        return tuple(errors)

    def review(self, document: Any) -> ReviewOutcome:
        api_version, request = _request_of(document)
        uid = str(request["uid"])
        namespace = str(request.get("namespace") or "")
        kind = request.get("kind")
        is_pod = isinstance(kind, dict) and all(
            kind.get(key) == value for key, value in POD_KIND.items()
        )
        if not is_pod or request.get("operation") != "CREATE" or request.get("subResource"):
            return ReviewOutcome(
                _answer(api_version, uid, allowed=True), "ignored", namespace, detail="not a pod"
            )
        pod = request.get("object")
        if not isinstance(pod, dict):
            raise ReviewError("request.object: expected the pod being created")
        metadata = pod.get("metadata")
        if not namespace and isinstance(metadata, dict):
            namespace = str(metadata.get("namespace") or "")
        return self._review_pod(api_version, uid, pod, namespace or "default")

    def _review_pod(
        self, api_version: str, uid: str, pod: Mapping[str, Any], namespace: str
    ) -> ReviewOutcome:
        label = pod_label(pod)
        decision = should_inject(pod)
        if decision.verdict == "refuse":
            return _refusal(
                api_version,
                uid,
                namespace=namespace,
                pod=label,
                problems=[decision.reason],
                warnings=[],
            )
        if decision.verdict == "skip":
            warnings = unknown_key_warnings(_annotations(pod))
            if decision.warn:
                warnings.insert(0, decision.reason)
            answer = _answer(api_version, uid, allowed=True, warnings=warnings)
            return ReviewOutcome(answer, "skipped", namespace, detail=decision.reason, pod=label)
        result = self._parser.parse(pod, namespace=namespace)
        if result.spec is None:
            return _refusal(
                api_version,
                uid,
                namespace=namespace,
                pod=label,
                problems=list(result.errors),
                warnings=list(result.warnings),
            )
        try:
            mutated = inject(pod, result.spec)
        except InjectionError as error:
            return _refusal(
                api_version,
                uid,
                namespace=namespace,
                pod=label,
                problems=error.problems,
                warnings=list(result.warnings),
            )
        operations = diff(pod, mutated)
        patch = encode_patch(operations)
        answer = _answer(
            api_version, uid, allowed=True, patch=patch, warnings=list(result.warnings)
        )
        return ReviewOutcome(answer, "injected", namespace, kind=result.spec.mode, pod=label)


def _annotations(pod: Mapping[str, Any]) -> dict[str, str]:
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {str(key): str(value) for key, value in annotations.items()}


def _answer(
    api_version: str,
    uid: str,
    *,
    allowed: bool,
    patch: str | None = None,
    warnings: list[str] | None = None,
    status: ResponseStatus | None = None,
) -> AdmissionReview:
    response: AdmissionResponse = {"uid": uid, "allowed": allowed}
    if patch is not None:
        response["patchType"] = "JSONPatch"
        response["patch"] = patch
    if warnings:
        response["warnings"] = _bounded(warnings)
    if status is not None:
        response["status"] = status
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def _refusal(
    api_version: str,
    uid: str,
    *,
    namespace: str,
    pod: str,
    problems: list[str],
    warnings: list[str],
) -> ReviewOutcome:
    message = "vault-sidecar-injector cannot inject this pod: " + "; ".join(problems)
    status: ResponseStatus = {
        "status": "Failure",
        "code": 400,
        "reason": "BadRequest",
        "message": message,
    }
    answer = _answer(api_version, uid, allowed=False, warnings=warnings, status=status)
    return ReviewOutcome(answer, "refused", namespace, detail=message, pod=pod)
