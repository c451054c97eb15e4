"""Benchmark of the admission webhook over TLS, against the framework's floor in the same run.

Starts ``python -m webhook serve`` (gunicorn, TLS, the settings' default workers and threads) and,
with the same gunicorn options, a floor server whose /mutate reads the body and returns a fixed
``allowed`` AdmissionReview. The webhook runs twice: "mutate" as its image ships it, with the
admission path compiled by mypyc (scripts/compiled.py builds it under .build/compiled), and
"mutate-pure", the same source under the interpreter (skip it with --no-pure). The targets are
judged on "mutate". Drives both with keep-alive HTTPS connections at concurrency 1, 16
and 64, posting a realistic pod (3 containers, 4 secrets), and prints admissions per second and
p50/p99 latency for each, plus the mutate/floor throughput ratio.

    .venv/bin/python scripts/bench_webhook.py [--seconds 5] [--concurrency 1 16 64]

The load generator runs on the same 2 cores as the servers (asyncio, raw HTTP/1.1), so absolute
numbers include its cost; the ratio to the floor is the figure that travels between machines.
Each row also reports the CPU time the server processes (gunicorn master and workers, read from
/proc) and the client processes spent per admission, which move less than throughput when
another job shares the machine, and "others %": the share of the machine's CPU that processes
outside the benchmark used during the row (re-run rows where it is not near 0).
The webhook logs at its production default (info: one JSON line per admission, to /dev/null
here), because admins keep that line on. The 1-minute load average is printed before and after.
Targets (issue 2): mutate throughput >= 60% of the floor, p99 < 25 ms at 16 connections, no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from scripts.compiled import BuildError  # noqa: E402
from scripts.compiled import build as build_compiled  # noqa: E402
from tests.webhook.server_support import (  # noqa: E402
    free_port,
    running_server,
    server_environment,
    write_tls_files,
)

TARGET_RATIO = 0.60
TARGET_P99_MS_AT_16 = 25.0
FLOOR_RESPONSE = json.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "fixed", "allowed": True},
    }
).encode()


def realistic_review() -> dict[str, Any]:
    """A pod as the API server sends it: 3 containers, 4 secrets, a ServiceAccount mount."""
    prefix = "vault.hashicorp.com/"
    annotations = {
        prefix + "agent-inject": "true",
        prefix + "role": "orders",
        prefix + "agent-inject-secret-db": "database/creds/orders",
        prefix + "agent-inject-template-db": (
            '{{ with secret "database/creds/orders" -}}\n'
            "postgresql://{{ .Data.username }}:{{ .Data.password }}@db:5432/orders\n{{- end }}"
        ),
        prefix + "agent-inject-secret-config": "kv/data/orders/config",
        prefix + "agent-inject-secret-api-key": "kv/data/orders/api",
        prefix + "agent-inject-file-api-key": "api-key.env",
        prefix + "agent-inject-default-template": "env",
        prefix + "agent-inject-secret-tls": "pki/issue/orders",
        prefix + "agent-inject-perms-tls": "0600",
        prefix + "agent-limits-mem": "96Mi",
    }
    mount = {
        "name": "kube-api-access-7q2xk",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }
    containers = [
        {
            "name": name,
            "image": f"registry.example/{name}:1.4.2",
            "ports": [{"containerPort": port, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "volumeMounts": [mount],
        }
        for name, port in (("orders", 8080), ("metrics-exporter", 9100), ("log-shipper", 2020))
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "orders-7d9f8c6b5-",
            "namespace": "shop",
            "labels": {"app": "orders", "pod-template-hash": "7d9f8c6b5"},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "orders-7d9f8c6b5",
                    "uid": "5d3c1f0e-9a2b-4c8d-8e7f-6a5b4c3d2e1f",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": "orders",
            "containers": containers,
            "volumes": [
                {
                    "name": "kube-api-access-7q2xk",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                    },
                }
            ],
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "shop",
            "object": pod,
        },
    }


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    error_samples: list[str]
    seconds: float
    latencies_ms: list[float]
    server_cpu_seconds: float
    client_cpu_seconds: float
    # CPU time the whole machine spent outside the benchmark's own processes during the row.
    other_cpu_seconds: float

    def __add__(self, other: Result) -> Result:
        """Two rounds of one row as one: counts, times and latencies added up."""
        return Result(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            error_samples=(self.error_samples + other.error_samples)[:MAX_ERROR_SAMPLES],
            seconds=self.seconds + other.seconds,
            latencies_ms=self.latencies_ms + other.latencies_ms,
            server_cpu_seconds=self.server_cpu_seconds + other.server_cpu_seconds,
            client_cpu_seconds=self.client_cpu_seconds + other.client_cpu_seconds,
            other_cpu_seconds=self.other_cpu_seconds + other.other_cpu_seconds,
        )


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])  # field 6: session id


def _server_pids(port: int) -> list[int]:
    """The gunicorn master serving ``port`` and its workers: running_server starts the master
    in a session of its own, so every process in that session belongs to the server."""
    needle = f"127.0.0.1:{port}".encode()
    sessions = {
        int(entry.name): _session_of(int(entry.name))
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
    }
    masters = {
        pid for pid, session in sessions.items() if session == pid and needle in _cmdline(pid)
    }
    return [pid for pid, session in sessions.items() if session in masters]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _maps_extensions_from(pids: list[int], build: Path) -> bool:
    """Whether every gunicorn worker among ``pids`` has the build's compiled modules mapped."""
    needle = str(build / "webhook") + "/"
    workers = [pid for pid in pids if pid != min(pids)]
    found = []
    for pid in workers:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            return False
        found.append(any(needle in line and ".so" in line for line in maps.splitlines()))
    return bool(found) and all(found)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _CLOCK_TICKS


def _machine_busy_seconds() -> float:
    """CPU time every process on the machine has used since boot (first line of /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def load_average() -> float:
    return os.getloadavg()[0]


MAX_ERROR_SAMPLES = 3


async def _connection(
    port: int, body: bytes, expect: bytes, deadline: float, ca_file: str
) -> tuple[list[str], list[float]]:
    """Requests on one keep-alive connection until the deadline: what went wrong with each
    failed answer, and the latency of every answer."""
    context = ssl.create_default_context(cafile=ca_file)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    head = (
        f"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    errors: list[str] = []
    latencies: list[float] = []
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(head + body)
            status_and_headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in status_and_headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if not status_and_headers.startswith(b"HTTP/1.1 200") or expect not in payload:
                status = status_and_headers.split(b"\r\n", 1)[0].decode(errors="replace")
                errors.append(f"{status}: {payload[:80]!r}")
    finally:
        writer.close()
    return errors, latencies


def _client_process(
    port: int, connections: int, seconds: float, ca_file: str, load: tuple[bytes, bytes]
) -> tuple[list[str], list[float], float]:
    body, expect = load
    started = time.process_time()

    async def run() -> tuple[list[str], list[float]]:
        deadline = time.monotonic() + seconds
        results = await asyncio.gather(
            *(_connection(port, body, expect, deadline, ca_file) for _ in range(connections)),
            return_exceptions=True,
        )
        errors: list[str] = []
        latencies: list[float] = []
        for result in results:
            if isinstance(result, BaseException):
                # The connection broke: its answers so far are lost with it.
                errors.append(f"connection failed: {result!r}")
            else:
                errors += result[0]
                latencies += result[1]
        return errors, latencies

    errors, latencies = asyncio.run(run())
    return errors, latencies, time.process_time() - started


def drive(port: int, *, concurrency: int, seconds: float, ca_file: str, expect: bytes) -> Result:
    body = json.dumps(realistic_review()).encode()
    processes = 1 if concurrency == 1 else 2
    shares = [
        concurrency // processes + (1 if i < concurrency % processes else 0)
        for i in range(processes)
    ]
    server = _server_pids(port)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        server_before = _cpu_seconds(server)
        machine_before = _machine_busy_seconds()
        outcomes = pool.starmap(
            _client_process, [(port, share, seconds, ca_file, (body, expect)) for share in shares]
        )
        server_cpu = _cpu_seconds(server) - server_before
        machine = _machine_busy_seconds() - machine_before
    latencies = [value for _, values, _ in outcomes for value in values]
    errors = [error for errors, _, _ in outcomes for error in errors]
    return Result(
        requests=len(latencies),
        errors=len(errors),
        error_samples=errors[:MAX_ERROR_SAMPLES],
        seconds=seconds,
        latencies_ms=latencies,
        server_cpu_seconds=server_cpu,
        client_cpu_seconds=sum(cpu for _, _, cpu in outcomes),
        other_cpu_seconds=max(0.0, machine - server_cpu - sum(cpu for _, _, cpu in outcomes)),
    )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def serve_floor() -> None:
    """The floor server (run as a subprocess): same gunicorn options, fixed response."""
    from flask import Flask, Response, request

    from webhook.server import resolve_certificate_files, serve
    from webhook.settings import Settings

    def factory() -> Any:
        app = Flask("floor")

        @app.post("/mutate")
        def mutate() -> Response:
            request.get_data(cache=False)
            return Response(FLOOR_RESPONSE, mimetype="application/json")

        return app

    settings = Settings.from_env(os.environ)
    cert_file, key_file = resolve_certificate_files(settings)
    bind = sys.argv[sys.argv.index("--bind") + 1]
    serve(settings, cert_file=cert_file, key_file=key_file, bind=bind, app_factory=factory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", default="2", help="AGENT_INJECT_WORKERS for both servers")
    parser.add_argument("--threads", default="1", help="AGENT_INJECT_THREADS for both servers")
    parser.add_argument(
        "--log-level", default="info", help="AGENT_INJECT_LOG_LEVEL (info: the production line)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the whole sweep this many times, rows summed"
    )
    parser.add_argument(
        "--no-pure",
        action="store_true",
        help="skip the pure-Python webhook (by default it runs beside the compiled one)",
    )
    arguments = parser.parse_args()
    load_before = load_average()
    rows: dict[tuple[str, int], Result] = {}
    # Each round's request count per row, for the spread of the ratio between rounds.
    requests_by_round: dict[tuple[str, int], list[int]] = {}
    # "mutate" is the webhook as its image ships it, compiled with mypyc (scripts/compiled.py);
    # "mutate-pure" is the same source run by the interpreter, as in the repository.
    try:
        compiled_build: Path | None = build_compiled()
    except BuildError as error:
        print(f"no compiled build, the pure one stands in for it: {error}", file=sys.stderr)
        compiled_build = None
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as directory, ExitStack() as servers:
        tls = write_tls_files(Path(directory))
        env = server_environment(
            tls,
            AGENT_INJECT_LOG_LEVEL=arguments.log_level,
            AGENT_INJECT_WORKERS=arguments.workers,
            AGENT_INJECT_THREADS=arguments.threads,
        )
        # -P: nothing but PYTHONPATH ahead of the installed packages, not the working directory.
        mutate_command = [sys.executable, "-P", "-m", "webhook", "serve"]
        floor_command = [sys.executable, str(Path(__file__).resolve()), "--serve-floor"]
        builds = {"mutate": compiled_build or REPOSITORY}
        if compiled_build is not None and not arguments.no_pure:
            builds["mutate-pure"] = REPOSITORY
        targets: dict[str, tuple[int, bytes]] = {}
        for name, source in builds.items():
            port = servers.enter_context(
                running_server(
                    {**env, "PYTHONPATH": str(source)}, command=mutate_command, port=free_port()
                )
            )
            targets[name] = (port, b'"patch"')
        floor_port = servers.enter_context(
            running_server(env, command=floor_command, port=free_port())
        )
        targets["floor"] = (floor_port, b'"allowed"')
        for port, expect in targets.values():
            drive(port, concurrency=4, seconds=1.0, ca_file=str(tls.ca_file), expect=expect)
        # After the warm-up every worker has loaded the app: the compiled one must be mapped.
        if compiled_build is not None and not _maps_extensions_from(
            _server_pids(targets["mutate"][0]), compiled_build
        ):
            print("mutate: the server does not run the compiled modules", file=sys.stderr)
            return 1
        # Every target at one level back to back, so a neighbour's job that starts mid-run
        # skews one level of all rather than every level of one target.
        # With --rounds N the whole sweep runs N times and each row adds its rounds up: the
        # machine drifts (the floor alone moves by +-10% between runs), and interleaving the
        # targets round by round spreads the drift over all of them. Each round a different
        # target opens every level: the first row of a level follows the lighter rows of the
        # level below (1 connection leaves the machine partly idle), which can favour it.
        order = list(targets.items())
        for round_index in range(arguments.rounds):
            shift = round_index % len(order)
            for concurrency in arguments.concurrency:
                for name, (port, expect) in order[shift:] + order[:shift]:
                    result = drive(
                        port,
                        concurrency=concurrency,
                        seconds=arguments.seconds,
                        ca_file=str(tls.ca_file),
                        expect=expect,
                    )
                    requests_by_round.setdefault((name, concurrency), []).append(result.requests)
                    earlier = rows.get((name, concurrency))
                    rows[(name, concurrency)] = result if earlier is None else earlier + result
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{arguments.seconds:.0f} s per row and round, {arguments.rounds} round(s), "
        f"{arguments.workers} workers x {arguments.threads} threads, "
        f"log level {arguments.log_level}; "
        f"load average (1 min) {load_before:.2f} before, {load_average():.2f} after"
    )
    header = (
        "target",
        "conns",
        "requests",
        "errors",
        "adm/s",
        "p50 ms",
        "p99 ms",
        "server us/adm",
        "client us/adm",
        "others %",
    )
    print("{:<11} {:>5} {:>9} {:>6} {:>8} {:>8} {:>8} {:>13} {:>13} {:>8}".format(*header))
    cpus = os.cpu_count() or 1
    for (name, concurrency), result in sorted(rows.items()):
        rate = result.requests / result.seconds
        per_admission = 1e6 / max(1, result.requests)
        print(
            f"{name:<11} {concurrency:>5} {result.requests:>9} {result.errors:>6} {rate:>8.0f} "
            f"{statistics.median(result.latencies_ms or [float('nan')]):>8.2f} "
            f"{percentile(result.latencies_ms, 0.99):>8.2f} "
            f"{result.server_cpu_seconds * per_admission:>13.0f} "
            f"{result.client_cpu_seconds * per_admission:>13.0f} "
            f"{result.other_cpu_seconds / result.seconds / cpus * 100:>8.0f}"
        )
    for (name, concurrency), result in sorted(rows.items()):
        for sample in result.error_samples:
            print(f"error, {name} at {concurrency} connections: {sample}")
    for name in builds:
        verdicts = []
        for concurrency in arguments.concurrency:
            mutate, floor = rows[(name, concurrency)], rows[("floor", concurrency)]
            ratio = mutate.requests / floor.requests if floor.requests else 0.0
            verdict = f"c={concurrency}: {name}/floor throughput {ratio:.0%}"
            if arguments.rounds > 1:
                pairs = zip(
                    requests_by_round[(name, concurrency)],
                    requests_by_round[("floor", concurrency)],
                    strict=True,
                )
                each = ", ".join(f"{m / f:.0%}" if f else "-" for m, f in pairs)
                verdict += f" (rounds: {each})"
            verdicts.append(verdict)
        print("; ".join(verdicts))
    if 16 in arguments.concurrency:
        p99 = percentile(rows[("mutate", 16)].latencies_ms, 0.99)
        ratio_16 = rows[("mutate", 16)].requests / max(1, rows[("floor", 16)].requests)
        errors = sum(result.errors for result in rows.values())
        ratio_verdict = "met" if ratio_16 >= TARGET_RATIO else "MISSED"
        p99_verdict = "met" if p99 < TARGET_P99_MS_AT_16 else "MISSED"
        shipped = "compiled, as the image ships it" if compiled_build else "pure Python"
        print(
            f"targets at 16 connections ({shipped}): "
            f"throughput >= {TARGET_RATIO:.0%} of floor {ratio_verdict} "
            f"({ratio_16:.0%}); p99 < {TARGET_P99_MS_AT_16:.0f} ms {p99_verdict} ({p99:.1f} ms); "
            f"errors: {errors}"
        )
    return 0


if __name__ == "__main__":
    if "--serve-floor" in sys.argv:
        serve_floor()
    else:
        sys.exit(main())
