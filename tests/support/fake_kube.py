"""A small, honest stand-in for the kube-apiserver, on loopback, for tests and the demo.

It serves only what this project's code and Vault's kubernetes auth method need, on the real API
paths with the real JSON shapes:

- ServiceAccount tokens: ``issue_token`` signs projected-token-shaped JWTs (RS256) the way the API
  server's TokenRequest does; ``public_key_pem`` lets Vault's jwt auth method verify them.
- TokenReview (``POST /apis/authentication.k8s.io/v1/tokenreviews``) verifies signature,
  expiry and audiences and answers with ``system:serviceaccount:<ns>:<name>``, as Vault's
  kubernetes auth method expects.
- Generic object storage for the resources certs/ needs (Secrets, Leases,
  MutatingWebhookConfigurations, and any other plural name): GET (one or a list), POST, PUT with
  resourceVersion conflicts (409), PATCH (JSON merge, strategic merge treated as merge, JSON patch),
  DELETE, answering errors with ``Status`` objects.

Every request must carry ``Authorization: Bearer`` with the admin token or a valid ServiceAccount
token. Nothing else (watches, field selectors, RBAC) is emulated; add it only when code needs it.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import threading
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonpatch
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = ISSUER

_CORE_PATH = re.compile(
    r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?$"
)
_GROUP_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?$"
)
_KINDS = {
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "serviceaccounts": "ServiceAccount",
    "leases": "Lease",
    "mutatingwebhookconfigurations": "MutatingWebhookConfiguration",
    "validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class ObjectKey:
    api_prefix: str  # "v1" for the core group, "<group>/<version>" otherwise
    resource: str
    namespace: str | None
    name: str


class ApiError(Exception):
    def __init__(self, code: HTTPStatus, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": int(self.code),
        }


class FakeKubeApiServer:
    """Start with ``with FakeKubeApiServer() as kube:``; ``kube.url`` is the API server address."""

    def __init__(self, *, admin_token: str | None = None) -> None:
        self.admin_token = admin_token or uuid.uuid4().hex
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        self._resource_version = 0
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path): what was asked, for assertions
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeKubeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeKubeApiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ServiceAccount tokens -------------------------------------------------------------------

    @property
    def public_key_pem(self) -> str:
        return (
            self._signing_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def issue_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: list[str] | None = None,
        lifetime: datetime.timedelta = datetime.timedelta(hours=1),
        pod_name: str | None = None,
        pod_uid: str | None = None,
    ) -> str:
        """A ServiceAccount token shaped like the API server's TokenRequest result."""
        now = _now()
        claims: dict[str, Any] = {
            "aud": audiences or [DEFAULT_AUDIENCE],
            "exp": int((now + lifetime).timestamp()),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {
                    "name": service_account,
                    "uid": self._service_account_uid(namespace, service_account),
                },
            },
        }
        if pod_name:
            claims["kubernetes.io"]["pod"] = {"name": pod_name, "uid": pod_uid or str(uuid.uuid4())}
        return jwt.encode(
            claims, self._signing_key, algorithm="RS256", headers={"kid": "fake-kube"}
        )

    def _service_account_uid(self, namespace: str, service_account: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{service_account}"))

    def review_token(self, token: str, audiences: list[str] | None) -> dict[str, Any]:
        """TokenReview status for ``token``: authenticated with the user, or an error."""
        try:
            claims = jwt.decode(
                token,
                self._signing_key.public_key(),
                algorithms=["RS256"],
                issuer=ISSUER,
                options={"verify_aud": False},
            )
        except jwt.PyJWTError as error:
            return {
                "authenticated": False,
                "error": f"invalid bearer token: {type(error).__name__}",
            }
        token_audiences = claims.get("aud", [])
        if isinstance(token_audiences, str):
            token_audiences = [token_audiences]
        wanted = audiences or [DEFAULT_AUDIENCE]
        matched = [audience for audience in wanted if audience in token_audiences]
        if not matched:
            return {
                "authenticated": False,
                "error": "token audiences do not match the requested audiences",
            }
        identity = claims["kubernetes.io"]
        namespace = identity["namespace"]
        service_account = identity["serviceaccount"]["name"]
        user: dict[str, Any] = {
            "username": f"system:serviceaccount:{namespace}:{service_account}",
            "uid": identity["serviceaccount"]["uid"],
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
        }
        if "pod" in identity:
            user["extra"] = {
                "authentication.kubernetes.io/pod-name": [identity["pod"]["name"]],
                "authentication.kubernetes.io/pod-uid": [identity["pod"]["uid"]],
            }
        return {"authenticated": True, "user": user, "audiences": matched}

    def _authorize(self, header: str | None) -> None:
        if not header or not header.startswith("Bearer "):
            raise ApiError(HTTPStatus.UNAUTHORIZED, "Unauthorized", "Unauthorized")
        token = header.removeprefix("Bearer ").strip()
        if token == self.admin_token:
            return
        if not self.review_token(token, None)["authenticated"]:
            raise ApiError(HTTPStatus.UNAUTHORIZED, "Unauthorized", "Unauthorized")

    # Objects ------------------------------------------------------------------------------------

    def put_object(self, key: ObjectKey, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object directly (test set-up), as if created through the API."""
        with self._lock:
            return self._store(key, body)

    def get_object(self, key: ObjectKey) -> dict[str, Any] | None:
        with self._lock:
            found = self._objects.get(key)
            return copy.deepcopy(found) if found is not None else None

    def _store(self, key: ObjectKey, body: dict[str, Any]) -> dict[str, Any]:
        self._resource_version += 1
        stored = copy.deepcopy(body)
        metadata = stored.setdefault("metadata", {})
        metadata["name"] = key.name
        if key.namespace is not None:
            metadata["namespace"] = key.namespace
        metadata["resourceVersion"] = str(self._resource_version)
        previous = self._objects.get(key)
        if previous is None:
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            metadata["uid"] = previous["metadata"]["uid"]
            metadata["creationTimestamp"] = previous["metadata"]["creationTimestamp"]
        stored.setdefault("kind", _KINDS.get(key.resource, key.resource.rstrip("s").capitalize()))
        stored.setdefault("apiVersion", key.api_prefix)
        self._objects[key] = stored
        return copy.deepcopy(stored)

    def handle(
        self, method: str, path: str, body: Any, content_type: str
    ) -> tuple[HTTPStatus, Any]:
        if method == "POST" and path == "/apis/authentication.k8s.io/v1/tokenreviews":
            spec = body.get("spec", {}) if isinstance(body, dict) else {}
            status = self.review_token(str(spec.get("token", "")), spec.get("audiences"))
            return HTTPStatus.CREATED, {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            }
        key = _parse_path(path)
        with self._lock:
            if key.name == "":
                return self._collection(method, key, body)
            return self._member(method, key, body, content_type)

    def _collection(self, method: str, key: ObjectKey, body: Any) -> tuple[HTTPStatus, Any]:
        if method == "GET":
            items = [
                copy.deepcopy(value)
                for stored_key, value in sorted(
                    self._objects.items(), key=lambda item: item[0].name
                )
                if (stored_key.api_prefix, stored_key.resource) == (key.api_prefix, key.resource)
                and (key.namespace is None or stored_key.namespace == key.namespace)
            ]
            kind = _KINDS.get(key.resource, "Object") + "List"
            return HTTPStatus.OK, {
                "kind": kind,
                "apiVersion": key.api_prefix,
                "metadata": {"resourceVersion": str(self._resource_version)},
                "items": items,
            }
        if method == "POST":
            if not isinstance(body, dict) or not body.get("metadata", {}).get("name"):
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", "metadata.name: Required value"
                )
            member = ObjectKey(
                key.api_prefix, key.resource, key.namespace, body["metadata"]["name"]
            )
            if member in self._objects:
                raise ApiError(
                    HTTPStatus.CONFLICT,
                    "AlreadyExists",
                    f'{key.resource} "{member.name}" already exists',
                )
            return HTTPStatus.CREATED, self._store(member, body)
        raise ApiError(
            HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowed", f"{method} is not supported here"
        )

    def _member(
        self, method: str, key: ObjectKey, body: Any, content_type: str
    ) -> tuple[HTTPStatus, Any]:
        current = self._objects.get(key)
        if current is None and method != "PUT":
            raise ApiError(
                HTTPStatus.NOT_FOUND, "NotFound", f'{key.resource} "{key.name}" not found'
            )
        if method == "GET":
            return HTTPStatus.OK, copy.deepcopy(current)
        if method == "DELETE":
            del self._objects[key]
            return HTTPStatus.OK, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Success",
                "code": 200,
            }
        if method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", "body must be an object")
            if current is None:
                raise ApiError(
                    HTTPStatus.NOT_FOUND, "NotFound", f'{key.resource} "{key.name}" not found'
                )
            wanted_version = body.get("metadata", {}).get("resourceVersion")
            if wanted_version and wanted_version != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    HTTPStatus.CONFLICT,
                    "Conflict",
                    f'Operation cannot be fulfilled on {key.resource} "{key.name}": '
                    "the object has been modified; please apply your changes to the latest version "
                    "and try again",
                )
            return HTTPStatus.OK, self._store(key, body)
        if method == "PATCH":
            assert current is not None
            if content_type.startswith("application/json-patch+json"):
                try:
                    patched = jsonpatch.apply_patch(current, body)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                    raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", str(error)) from None
            elif content_type.startswith(
                ("application/merge-patch+json", "application/strategic-merge-patch+json")
            ):
                patched = _merge_patch(current, body)
            else:
                raise ApiError(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    f"unsupported patch type {content_type}",
                )
            wanted_version = patched.get("metadata", {}).get("resourceVersion")
            if wanted_version and wanted_version != current["metadata"]["resourceVersion"]:
                raise ApiError(HTTPStatus.CONFLICT, "Conflict", "the object has been modified")
            return HTTPStatus.OK, self._store(key, patched)
        raise ApiError(
            HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowed", f"{method} is not supported here"
        )


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = _merge_patch(result.get(name), value)
    return result


def _parse_path(path: str) -> ObjectKey:
    core = _CORE_PATH.match(path)
    if core:
        return ObjectKey("v1", core["resource"], core["ns"], core["name"] or "")
    grouped = _GROUP_PATH.match(path)
    if grouped:
        return ObjectKey(
            f"{grouped['group']}/{grouped['version']}",
            grouped["resource"],
            grouped["ns"],
            grouped["name"] or "",
        )
    raise ApiError(
        HTTPStatus.NOT_FOUND, "NotFound", "the server could not find the requested resource"
    )


def _make_handler(api: FakeKubeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests assert on ``requests`` instead of reading request lines."""

        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            api.requests.append((self.command, path))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                api._authorize(self.headers.get("Authorization"))
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    raise ApiError(
                        HTTPStatus.BAD_REQUEST, "BadRequest", "request body is not JSON"
                    ) from None
                status, answer = api.handle(
                    self.command, path, body, self.headers.get("Content-Type", "")
                )
            except ApiError as error:
                status, answer = error.code, error.status()
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler
