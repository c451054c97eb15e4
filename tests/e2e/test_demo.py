"""`make demo` runs to its end: the demo as a subprocess, its exit code and the lines that show
each step happened (so CI proves the README's first command works)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import needs_root
from tests.e2e.stack import REPOSITORY

pytestmark = [pytest.mark.slow, needs_root]

DEMO = REPOSITORY / "scripts" / "demo.py"
# The demo is meant to take about a minute; well past that something is wrong.
DEMO_BUDGET_SECONDS = 120

STEPS_SEEN = [
    pytest.param("== 3. Starting the webhook over TLS", id="the webhook serves over TLS"),
    pytest.param(
        "webhook log: admission injected (init-and-sidecar)",
        id="the webhook logged the admission",
    ),
    pytest.param(
        "containers  vault-agent-init: init container, vault-sidecar-injector-agent:0.1.0 "
        "args --mode init; uid 100 gid 1000, read-only root, seccomp RuntimeDefault",
        id="the summary names the injected init container and its security context",
    ),
    pytest.param(
        "app mounts  orders: /vault/secrets (vault-secrets, read-only)",
        id="the summary shows the app's read-only secrets mount",
    ),
    pytest.param(
        "Warning: vault.hashicorp.com/agent-inject-secrets-db: unknown annotation",
        id="a misspelt annotation gets a warning",
    ),
    pytest.param("vault-agent-init | wrote /vault/secrets/db", id="the init container renders"),
    pytest.param("ok  /vault/secrets is a tmpfs", id="the secrets live on an in-memory volume"),
    pytest.param(
        "ok  one credential for the pod: 1 lease in Vault, 1 user in PostgreSQL",
        id="one database credential per pod start",
    ),
    pytest.param("ROTATION of database/creds/orders", id="the sidecar rotates the credential"),
    pytest.param(
        "ok  the app read version 2 from /vault/secrets/config", id="a KV change reaches the app"
    ),
    pytest.param("ok  the app's previous credential is refused now", id="the old credential dies"),
    pytest.param(
        "ok  leases left under database/creds/orders/: 0; database users left: 0",
        id="everything is revoked at stop",
    ),
    pytest.param("every step passed", id="the demo says it passed"),
]


@pytest.fixture(scope="module")
def demo_run() -> tuple[subprocess.CompletedProcess[str], float]:
    # The same command as the Makefile's recipe, with this interpreter (the project's venv).
    # Under `make test` the parent make's variables would make this one chatty: drop them.
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    recipe = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "demo"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert any(line.endswith(" scripts/demo.py") for line in recipe), recipe
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
        timeout=DEMO_BUDGET_SECONDS + 60,
    )
    return finished, time.monotonic() - started


def test_the_demo_exits_zero_within_its_budget(
    demo_run: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    finished, seconds = demo_run
    assert finished.returncode == 0, (finished.stdout + finished.stderr)[-5000:]
    assert seconds < DEMO_BUDGET_SECONDS


@pytest.mark.parametrize("expected", STEPS_SEEN)
def test_the_demo_shows_each_step(
    demo_run: tuple[subprocess.CompletedProcess[str], float], expected: str
) -> None:
    finished, _seconds = demo_run
    assert expected in finished.stdout


def test_the_demo_prints_usernames_but_no_password_or_token(
    demo_run: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    output = demo_run[0].stdout + demo_run[0].stderr
    # The demo redacts (and fails on) any secret it knows; these catch what it might not know.
    # Booleans: on failure pytest would print the output, and with it what leaked.
    redacted = "<redacted>" in output
    password = re.search(r"password=(?!\{\{)", output) is not None
    token = re.search(r"\b(?:hvs|s|root)[.-][A-Za-z0-9]{20,}", output) is not None
    assert not redacted, "the demo printed a secret it knows (redacted, and it failed)"
    assert not password, "a password appears in the demo's output"
    assert not token, "something shaped like a Vault token appears in the demo's output"
    assert re.search(r"logged in as v-kubernet-orders-\S+", output)
