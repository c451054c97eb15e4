"""The Dockerfiles, read carefully since no image can be built here: hadolint is clean, the base
is pinned, dependency pins are complete and agree with pyproject.toml, the final stage runs as the
numeric user the manifests expect, read-only-root friendly, with exec-form entrypoints."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.manifests.conftest import find, rendered

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = {"webhook": ROOT / "Dockerfile.webhook", "agent": ROOT / "Dockerfile.agent"}
_PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")


def _lines(path: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _final_stage(path: Path) -> list[str]:
    lines = _lines(path)
    last_from = max(index for index, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def _pins(path: Path) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in _PIN.findall(path.read_text())}


def _runtime_dependencies() -> set[str]:
    """Every distribution the project needs at run time, transitively (no extras)."""
    found: set[str] = set()
    pending = [Requirement(r) for r in importlib.metadata.requires("vault-sidecar-injector") or []]
    while pending:
        requirement = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        pending += [Requirement(r) for r in importlib.metadata.requires(name) or []]
    return found


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_is_clean(image: str) -> None:
    assert HADOLINT.exists(), f"hadolint not found at {HADOLINT}: install the test extras"
    finished = subprocess.run(
        [str(HADOLINT), str(DOCKERFILES[image])],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_final_stage_is_small_non_root_and_read_only_friendly(image: str) -> None:
    path = DOCKERFILES[image]
    stages = [line for line in _lines(path) if line.startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage: wheels are built in a stage of their own"
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", path.read_text())
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    builder = re.search(r"ARG BUILDER_IMAGE=(\S+)", path.read_text())
    if builder is not None:
        # The wheels stage compiles for the final stage: the same Python, the same Debian.
        assert builder.group(1) == base.group(1).replace("-slim", ""), builder.group(1)
    final = _final_stage(path)
    text = "\n".join(final)
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert "--no-cache-dir" in text
    assert not any(line.startswith(("COPY --from", "ADD")) for line in final), (
        "wheels reach the final stage only through a build mount, never as a layer"
    )
    assert not re.search(r"\b(gcc|build-essential|apt-get)\b", text), "no compiler in the image"
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users == ["100:1000"]
    (entrypoint,) = [
        line.removeprefix("ENTRYPOINT ") for line in final if line.startswith("ENTRYPOINT ")
    ]
    assert json.loads(entrypoint) == ["python", "-m", image], "exec form, no shell"


def test_the_image_user_is_the_one_the_manifests_run_as() -> None:
    pod = find(rendered("default"), "Deployment", "vault-sidecar-injector")["spec"]["template"][
        "spec"
    ]
    context = pod["securityContext"]
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == "100:1000"


def test_both_images_pin_the_same_complete_set_that_pyproject_allows() -> None:
    webhook_pins, agent_pins = (_pins(DOCKERFILES[name]) for name in ("webhook", "agent"))
    assert webhook_pins == agent_pins
    assert set(webhook_pins) >= _runtime_dependencies(), "every runtime dependency is pinned"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        pinned = webhook_pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned), f"{requirement.name}=={pinned} vs {line}"


def test_the_build_context_leaves_out_everything_but_the_sources() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") :][:1] == ["*"], "deny everything first"
    allowed = {line.removeprefix("!").rstrip("/") for line in ignored if line.startswith("!")}
    assert allowed == {"pyproject.toml", "setup.py", "README.md", "webhook", "agent", "certs"}
    copied = {
        part.rstrip("/")
        for line in _lines(DOCKERFILES["webhook"])
        if line.startswith("COPY ") and "--from" not in line
        for part in line.split()[1:-1]
    }
    assert copied <= allowed, "everything the build copies is in the context"


def test_the_webhook_image_ships_the_compiled_admission_path_and_the_agent_does_not() -> None:
    webhook, agent = (_lines(DOCKERFILES[name]) for name in ("webhook", "agent"))
    stage = webhook[: next(i for i, line in enumerate(webhook) if line.startswith("RUN pip wheel"))]
    assert any("VSI_COMPILE=1" in line for line in stage if line.startswith("ENV "))
    assert not any("VSI_COMPILE" in line for line in agent)
    for lines in (webhook, agent):
        assert any(line.startswith("COPY ") and "setup.py" in line for line in lines)
