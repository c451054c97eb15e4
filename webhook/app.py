"""Flask routes: /mutate, /healthz, /readyz, /metrics. HTTP errors are short and never tracebacks.

Malformed HTTP gets 400 (wrong content type, empty body, not JSON, not an AdmissionReview) or 413
(over ``MAX_BODY_BYTES``); the worker keeps serving. A pod that cannot be injected is not an HTTP
error: it is a 200 with ``allowed: false`` (see ``webhook.admission``).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webhook import logs, metrics
from webhook.admission import Reviewer, ReviewError
from webhook.wire import NotJsonError, decode_request, encode_json

logger = logging.getLogger(__name__)

# kube-apiserver caps a request body at 3 MiB (etcd's limit is 1.5 MiB per object); an
# AdmissionReview carries the object (and oldObject), so 7 MiB is generous and still bounded.
MAX_BODY_BYTES = 7 * 1024 * 1024
# Past the cap the body is still read and dropped, up to this much, so that a client that writes
# its whole body before reading the answer sees the 413 instead of a reset connection.
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
JSON_TYPE = "application/json"


def _error(status: int, message: str) -> Response:
    body = json.dumps({"error": message}, separators=(",", ":"))
    return Response(body, status=status, mimetype=JSON_TYPE)


def create_app(reviewer: Reviewer) -> Flask:
    app = Flask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    mutate_seconds = metrics.REQUEST_SECONDS.labels(route="/mutate")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _error(error.code or 500, error.description or error.name)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exception: RequestEntityTooLarge) -> Response:
        metrics.count_failure("", "bad_request")
        _discard_body()
        reply = _error(413, f"body over {MAX_BODY_BYTES} bytes")
        reply.headers["Connection"] = "close"
        return reply

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        logger.exception("internal error while answering %s", request.path)
        metrics.count_failure("", "internal_error")
        return _error(500, "internal error; see the webhook's log")

    @app.post("/mutate")
    def mutate() -> Response:
        started = time.perf_counter()
        try:
            return _mutate(reviewer, started)
        finally:
            mutate_seconds.observe(time.perf_counter() - started)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        # Settings were validated and the Reviewer built before the app existed: nothing can
        # make this process unready later except being unable to answer, which the probe sees.
        return Response("ready\n", mimetype="text/plain")

    @app.get("/metrics")
    def metrics_route() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    return app


def _discard_body() -> None:
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    remaining = DISCARD_LIMIT_BYTES
    while remaining > 0:
        chunk = stream.read(min(65536, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def _mutate(reviewer: Reviewer, started: float) -> Response:
    # The header as kube-apiserver sends it is compared as it is; anything else (parameters,
    # case) is parsed by werkzeug, which costs ~2 us per request.
    if request.environ.get("CONTENT_TYPE") != JSON_TYPE and request.mimetype != JSON_TYPE:
        metrics.count_failure("", "bad_request")
        return _error(400, f"expected Content-Type {JSON_TYPE}")
    body = request.get_data(cache=False)
    if not body:
        metrics.count_failure("", "bad_request")
        return _error(400, "empty body; expected an AdmissionReview")
    try:
        document: Any = decode_request(body)
    except NotJsonError as error:
        metrics.count_failure("", "bad_request")
        return _error(400, f"body is not valid JSON: {error}")
    except (ValueError, RecursionError):
        metrics.count_failure("", "bad_request")
        return _error(400, "body is not valid JSON")
    try:
        outcome = reviewer.review(document)
    except ReviewError as error:
        metrics.count_failure("", "bad_request")
        return _error(400, f"not an AdmissionReview request: {error}")
    if outcome.result == "injected":
        metrics.count_injection(outcome.namespace, outcome.kind)
    elif outcome.result == "refused":
        metrics.count_failure(outcome.namespace, "refused")
    if logger.isEnabledFor(logging.INFO):
        logs.info(
            logger,
            f"admission {outcome.result}",
            {
                "uid": outcome.review["response"]["uid"],
                "namespace": outcome.namespace,
                "pod": outcome.pod,
                "result": outcome.result,
                "kind": outcome.kind or None,
                "detail": outcome.detail or None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
    return Response(encode_json(outcome.review), mimetype=JSON_TYPE)
