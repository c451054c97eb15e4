"""Command line of the webhook.

    python -m webhook serve [--bind HOST:PORT]
    python -m webhook mutate POD_FILE [--namespace NS]
    python -m webhook review REVIEW_FILE

``serve`` runs the webhook over TLS with settings from the ``AGENT_INJECT_*`` environment.
``mutate`` shows a cluster admin what the webhook would do to a pod (or to the pod template of a
Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob): the mutated object as YAML on
stdout, warnings on stderr; a refused pod prints every reason on stderr and exits 1.
``review`` answers an AdmissionReview request (JSON or YAML) with the response JSON.
Exit codes: 0 done, 1 pod refused, 2 bad input or settings.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import jsonpatch
import yaml

from webhook import logs
from webhook.admission import Reviewer, ReviewError
from webhook.server import ServeError, certificate_files, serve
from webhook.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


class InputError(ValueError):
    pass


def _read_document(path: str) -> Any:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    try:
        # YAML is a superset of JSON, so one loader reads both.
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid JSON or YAML ({error.__class__.__name__})") from None


def _pod_template_holder(document: dict[str, Any]) -> dict[str, Any] | None:
    """The dict holding ``template`` for a workload kind, or None for a Pod or anything else."""
    spec = document.get("spec")
    if not isinstance(spec, dict):
        return None
    if document.get("kind") == "CronJob":
        job = spec.get("jobTemplate")
        spec = job.get("spec") if isinstance(job, dict) else None
    elif document.get("kind") not in TEMPLATE_KINDS:
        return None
    if isinstance(spec, dict) and isinstance(spec.get("template"), dict):
        return spec
    return None


def _review_request(pod: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000000",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": pod,
        },
    }


def mutate(
    path: str, *, namespace: str | None, settings: Settings, out: TextIO, err: TextIO
) -> int:
    document = _read_document(path)
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected one Kubernetes object")
    holder = _pod_template_holder(document)
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    namespace = namespace or str((metadata or {}).get("namespace") or "default")
    if holder is not None:
        template = holder["template"]
        pod = {"apiVersion": "v1", "kind": "Pod", **template}
        pod.setdefault("metadata", {})
    elif document.get("kind") == "Pod":
        pod = document
    else:
        raise InputError(f"{path}: expected a Pod or a workload with a pod template")
    outcome = Reviewer(settings).review(_review_request(pod, namespace))
    response = outcome.review["response"]
    for warning in response.get("warnings", []):
        print(f"Warning: {warning}", file=err)
    if not response["allowed"]:
        print(response.get("status", {}).get("message", "refused"), file=err)
        return EXIT_REFUSED
    if outcome.result != "injected":
        print(f"not injected: {outcome.detail}", file=err)
        mutated_pod = pod
    else:
        operations = json.loads(base64.b64decode(response["patch"]))
        mutated_pod = jsonpatch.apply_patch(pod, operations)
    if holder is not None:
        holder["template"] = {
            key: mutated_pod[key] for key in ("metadata", "spec") if key in mutated_pod
        }
        result = document
    else:
        result = mutated_pod
    yaml.safe_dump(result, out, sort_keys=False, default_flow_style=False)
    return 0


def review(path: str, *, settings: Settings, out: TextIO) -> int:
    document = _read_document(path)
    try:
        outcome = Reviewer(settings).review(document)
    except ReviewError as error:
        raise InputError(f"{path}: not an AdmissionReview request: {error}") from None
    json.dump(outcome.review, out, indent=2)
    out.write("\n")
    return 0


def serve_command(settings: Settings, *, bind: str | None) -> int:
    logs.configure(settings.log_level, settings.log_format)
    try:
        with certificate_files(settings) as (cert_file, key_file):
            serve(settings, cert_file=cert_file, key_file=key_file, bind=bind)
    except ServeError as error:
        print(f"cannot start: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webhook", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the webhook over TLS (gunicorn)")
    serve_parser.add_argument("--bind", help="HOST:PORT, instead of AGENT_INJECT_LISTEN")
    mutate_parser = commands.add_parser("mutate", help="print the mutated pod as YAML")
    mutate_parser.add_argument("pod_file", metavar="POD_FILE", help="Pod or workload; - for stdin")
    mutate_parser.add_argument("--namespace", help="namespace of the pod (default: its own)")
    review_parser = commands.add_parser("review", help="answer an AdmissionReview request")
    review_parser.add_argument(
        "review_file", metavar="REVIEW_FILE", help="JSON or YAML; - for stdin"
    )
    return parser


def main(argv: Sequence[str] | None = None, *, env: dict[str, str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ if env is None else env)
    except SettingsError as error:
        for problem in error.problems:
            print(f"setting {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if arguments.command == "serve":
            return serve_command(settings, bind=arguments.bind)
        if arguments.command == "mutate":
            return mutate(
                arguments.pod_file,
                namespace=arguments.namespace,
                settings=settings,
                out=sys.stdout,
                err=sys.stderr,
            )
        return review(arguments.review_file, settings=settings, out=sys.stdout)
    except SettingsError as error:
        for problem in error.problems:
            print(f"setting {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InputError as error:
        print(str(error), file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)  # what a shell reports for a writer killed by SIGPIPE
