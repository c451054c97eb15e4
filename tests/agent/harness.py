"""Running the agent as the pod would: ``python -m agent`` subprocesses, pod directories, configs,
and the audit lines they print."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent.config import (
    AgentConfig,
    AuthConfig,
    LifecycleConfig,
    PodIdentity,
    TemplateConfig,
    VaultConnection,
    replace,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


@dataclass(frozen=True)
class AppIdentity:
    role: str
    namespace: str
    service_account: str
    token_file: Path


@dataclass(frozen=True)
class PodDirs:
    """The agent's view of a pod: the shared secrets volume and its private state volume."""

    root: Path
    secrets: Path
    state: Path

    @classmethod
    def create(cls, root: Path) -> PodDirs:
        secrets = root / "vault" / "secrets"
        state = root / "home" / "vault"
        secrets.mkdir(parents=True)
        state.mkdir(parents=True)
        return cls(root=root, secrets=secrets, state=state)

    def file(self, name: str) -> Path:
        return self.secrets / name


def template(
    pod: PodDirs, name: str, vault_path: str, contents: str | None = None, **options: Any
) -> TemplateConfig:
    return TemplateConfig(
        name=name,
        destination=str(pod.file(name)),
        vault_path=vault_path,
        contents=contents,
        **options,
    )


def agent_config(
    *,
    vault_url: str,
    identity: AppIdentity,
    pod: PodDirs,
    templates: Sequence[TemplateConfig],
    lifecycle: LifecycleConfig | None = None,
    min_backoff: float = 1.0,
    max_backoff: float = 5.0,
    **overrides: Any,
) -> AgentConfig:
    config = AgentConfig(
        vault=VaultConnection(address=vault_url, timeout_seconds=10.0),
        auth=AuthConfig(
            role=identity.role,
            method="jwt",
            mount_path="auth/jwt",
            token_file=str(identity.token_file),
            min_backoff_seconds=min_backoff,
            max_backoff_seconds=max_backoff,
        ),
        pod=PodIdentity(namespace=identity.namespace, service_account=identity.service_account),
        templates=tuple(templates),
        lifecycle=lifecycle or LifecycleConfig(revoke_grace_seconds=0.0, init_timeout_seconds=20.0),
        state_dir=str(pod.state),
        log_format="json",
        log_level="debug",
    )
    return replace(config, **overrides) if overrides else config


def _environment(config: AgentConfig, extra: Mapping[str, str] | None) -> dict[str, str]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VSI_AGENT_CONFIG": config.to_json(),
        "POD_NAME": "test-pod",
        "POD_NAMESPACE": config.pod.namespace,
        "PYTHONPATH": str(REPO_ROOT),
    }
    environment.update(extra or {})
    return environment


@dataclass
class AgentProcess:
    """``python -m agent --mode <mode>``; audit lines (stdout) and logs (stderr) go to files."""

    mode: str
    config: AgentConfig
    directory: Path
    extra_env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def stdout_path(self) -> Path:
        return self.directory / f"agent-{self.mode}.out"

    @property
    def stderr_path(self) -> Path:
        return self.directory / f"agent-{self.mode}.err"

    def start(self) -> AgentProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "--mode", self.mode],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_environment(self.config, self.extra_env),
                cwd=self.directory,
            )
        return self

    def wait(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def audit(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [line for line in lines if line.get("audit")]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.audit() if line["event"] == event]

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        """Everything the agent printed: for checks that no secret ever appears."""
        return self.stdout_path.read_text(errors="replace") + self.logs()

    def __enter__(self) -> AgentProcess:
        return self if self.process is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.kill()


def run_agent(
    mode: str, config: AgentConfig, directory: Path, *, timeout: float = 60.0
) -> AgentProcess:
    """Run a mode that ends by itself (init, ready) to completion."""
    process = AgentProcess(mode, config, directory).start()
    try:
        process.wait(timeout)
    finally:
        process.kill()
    return process


def wait_for(
    predicate: Callable[[], T | bool | None],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def parse_map_file(path: Path) -> dict[str, str]:
    """The ``key: value`` lines of the default ``map`` format."""
    result = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(": ")
        result[key] = value
    return result
