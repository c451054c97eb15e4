"""``python -m certs``: certificates for admins who run their own process instead of auto TLS.

``generate`` writes ca.crt, tls.crt and tls.key (0600) for a Service and prints the base64 caBundle
to paste into the MutatingWebhookConfiguration. ``check`` says whether a certificate and key match
and how long they are valid. Bad input exits with status 2 and a message that names it.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from certs.authority import (
    KeyPair,
    dns_names,
    generate_ca,
    issue_serving_certificate,
    issued_by,
    key_matches,
    load_certificates,
    service_hosts,
    utcnow,
    validity_warnings,
)
from certs.files import write_file

# Kubernetes names: a Service is an RFC 1035 label, a namespace an RFC 1123 label.
_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAMESPACE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_LABEL = 63
OUTPUT_FILES = ("ca.crt", "tls.crt", "tls.key")


class UsageError(ValueError):
    """Bad input from the command line; the message says which and why."""


def service_name_problem(name: str) -> str | None:
    if not name:
        return "--service must not be empty"
    if len(name) > _MAX_LABEL or not _SERVICE_NAME.match(name):
        return (
            f"--service {name!r} is not a valid Service name: at most 63 characters, lower case "
            "letters, digits and '-', starting with a letter and ending with a letter or digit"
        )
    return None


def namespace_problem(name: str) -> str | None:
    if not name:
        return "--namespace must not be empty"
    if len(name) > _MAX_LABEL or not _NAMESPACE_NAME.match(name):
        return (
            f"--namespace {name!r} is not a valid namespace name: at most 63 characters, lower "
            "case letters, digits and '-', starting and ending with a letter or digit"
        )
    return None


def _writable_directory(path: Path) -> Path:
    """Create ``path`` if needed and prove a file can be written there (as root, os.access lies)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise UsageError(
            f"--out {str(path)!r} is not a writable directory: {error.strerror}"
        ) from None
    return path


def generate(
    *,
    service: str,
    namespace: str,
    out: Path,
    extra_hosts: Sequence[str] = (),
    ca_lifetime: datetime.timedelta,
    serving_lifetime: datetime.timedelta,
    force: bool = False,
) -> bytes:
    """Write the CA and serving certificate files; return the CA bundle (PEM)."""
    problems = [
        problem
        for problem in (service_name_problem(service), namespace_problem(namespace))
        if problem
    ]
    if any(not host.strip() for host in extra_hosts):
        problems.append("--host must not be empty")
    if ca_lifetime <= datetime.timedelta(0) or serving_lifetime <= datetime.timedelta(0):
        problems.append("--ca-days and --days must be positive")
    if problems:
        raise UsageError("; ".join(problems))
    directory = _writable_directory(out)
    existing = [name for name in OUTPUT_FILES if (directory / name).exists()]
    if existing and not force:
        raise UsageError(
            f"{directory} already holds {', '.join(existing)}; use --force to replace them"
        )
    ca = generate_ca(lifetime=ca_lifetime)
    hosts = service_hosts(service, namespace) + [host.strip() for host in extra_hosts]
    serving = issue_serving_certificate(ca, hosts, lifetime=serving_lifetime)
    write_file(directory / "tls.key", serving.key_pem, mode=0o600)
    write_file(directory / "tls.crt", serving.cert_pem, mode=0o644)
    write_file(directory / "ca.crt", ca.cert_pem, mode=0o644)
    # The CA key is not written: a CA that nobody can use again cannot sign anything else.
    return ca.cert_pem


def check(*, cert_file: Path, key_file: Path, ca_file: Path | None) -> list[str]:
    """Problems with a certificate and key (and optionally the CA that should have signed it)."""
    try:
        pair = KeyPair(cert_file.read_bytes(), key_file.read_bytes())
        certificate = pair.certificate
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    except ValueError:
        raise UsageError(f"{cert_file} is not a PEM certificate") from None
    problems = validity_warnings(certificate, now=utcnow(), label=str(cert_file))
    if not key_matches(pair):
        problems.append(f"{key_file} is not the key of {cert_file}")
    if ca_file is not None:
        try:
            authorities = load_certificates(ca_file.read_bytes())
        except (OSError, ValueError):
            raise UsageError(f"cannot read CA certificates from {ca_file}") from None
        if not any(issued_by(certificate, ca) for ca in authorities):
            problems.append(f"{cert_file} is not signed by a CA in {ca_file}")
    return problems


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m certs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("generate", help="write ca.crt, tls.crt, tls.key; print caBundle")
    make.add_argument("--service", required=True, help="the webhook's Service name")
    make.add_argument("--namespace", required=True, help="the Service's namespace")
    make.add_argument("--out", required=True, type=Path, help="directory for the files")
    make.add_argument(
        "--host", action="append", default=[], help="another DNS name or IP (repeatable)"
    )
    make.add_argument("--ca-days", type=int, default=365 * 5, help="CA lifetime (days)")
    make.add_argument("--days", type=int, default=365, help="serving certificate lifetime (days)")
    make.add_argument("--force", action="store_true", help="replace existing files")
    inspect = commands.add_parser("check", help="check a certificate, its key and its CA")
    inspect.add_argument("--cert", required=True, type=Path)
    inspect.add_argument("--key", required=True, type=Path)
    inspect.add_argument("--ca", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "generate":
            bundle = generate(
                service=arguments.service,
                namespace=arguments.namespace,
                out=arguments.out,
                extra_hosts=arguments.host,
                ca_lifetime=datetime.timedelta(days=arguments.ca_days),
                serving_lifetime=datetime.timedelta(days=arguments.days),
                force=arguments.force,
            )
            print(base64.b64encode(bundle).decode("ascii"))
            print(
                f"wrote {', '.join(str(arguments.out / name) for name in OUTPUT_FILES)}; "
                "the line above is the caBundle",
                file=sys.stderr,
            )
            return 0
        problems = check(cert_file=arguments.cert, key_file=arguments.key, ca_file=arguments.ca)
    except UsageError as error:
        parser.error(str(error))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not problems:
        certificate = load_certificates(arguments.cert.read_bytes())[0]
        print(
            f"ok: {', '.join(dns_names(certificate))} "
            f"valid until {certificate.not_valid_after_utc.isoformat()}"
        )
    return 1 if problems else 0
