"""``python -m agent``: configuration sources, the readiness probe, and what the agent imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.__main__ import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_OK, load_config, main
from agent.config import CONFIG_ENV, CONFIG_FILE_ENV, ConfigError
from tests.agent.harness import REPO_ROOT

MINIMAL = {
    "vault": {"address": "http://127.0.0.1:8200"},
    "auth": {"role": "app"},
    "pod": {"namespace": "shop", "service_account": "orders"},
}


def test_the_environment_variable_wins_over_the_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**MINIMAL, "auth": {"role": "from-file"}}))
    both = {CONFIG_ENV: json.dumps(MINIMAL), CONFIG_FILE_ENV: str(config_file)}
    assert load_config(both).auth.role == "app"
    assert load_config({CONFIG_FILE_ENV: str(config_file)}).auth.role == "from-file"


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        pytest.param({}, "no configuration", id="nothing configured"),
        pytest.param(
            {CONFIG_FILE_ENV: "/nonexistent/config.json"}, "cannot read", id="a missing file"
        ),
        pytest.param({CONFIG_ENV: "{not json"}, "not valid JSON", id="not JSON"),
    ],
)
def test_configuration_problems_are_reported(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(environ)


def test_a_bad_configuration_exits_2_with_every_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = {**MINIMAL, "vault": {"address": "vault:8200"}, "auth": {"role": ""}}
    code = main(["--mode", "sidecar"], {CONFIG_ENV: json.dumps(document)})
    assert code == EXIT_BAD_CONFIG
    error = capsys.readouterr().err
    assert "vault.address" in error
    assert "auth.role" in error


def test_ready_is_true_only_once_the_readiness_file_exists(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    environ = {CONFIG_ENV: json.dumps({**MINIMAL, "readiness_file": str(ready)})}
    assert main(["--mode", "ready"], environ) == EXIT_FAILED
    ready.write_text("ready\n")
    assert main(["--mode", "ready"], environ) == EXIT_OK


def test_ready_without_a_readiness_file_configured_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--mode", "ready"], {CONFIG_ENV: json.dumps(MINIMAL)}) == EXIT_FAILED
    assert "no readiness_file" in capsys.readouterr().err


def test_the_agent_imports_neither_webhook_libraries_nor_heavy_clients() -> None:
    """The agent never imports flask, kubernetes or webhook; it also stays off hvac, requests,
    cryptography and prometheus_client (start-up time and memory in every pod)."""
    probe = (
        "import sys, agent.__main__, agent.runner, agent.logs\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
        ).stdout.split()
    )
    forbidden = {
        "flask",
        "kubernetes",
        "webhook",
        "hvac",
        "requests",
        "urllib3",
        "cryptography",
        "prometheus_client",
    }
    assert loaded & forbidden == set()
    assert "agent" in loaded
