"""Rendering the kustomize overlays once per test session, with the real kubectl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
KUBECTL_FALLBACK = Path("/usr/bin/kubectl")
OVERLAYS = {
    "default": MANIFESTS,
    "cert-manager": MANIFESTS / "overlays/cert-manager",
    "native-sidecar": MANIFESTS / "overlays/native-sidecar",
    "example": MANIFESTS / "overlays/example",
}


def kubectl() -> str:
    """The kubectl binary; its absence fails the test (rendering is the thing under test)."""
    found = shutil.which("kubectl") or (
        str(KUBECTL_FALLBACK) if KUBECTL_FALLBACK.exists() else None
    )
    if found is None:
        pytest.fail(
            "kubectl is not installed (looked on PATH and at /usr/bin/kubectl): it is needed to "
            "render manifests/ with `kubectl kustomize`; install kubectl to run these tests"
        )
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    finished = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert finished.returncode == 0, f"kubectl kustomize {directory} failed:\n{finished.stderr}"
    return [document for document in yaml.safe_load_all(finished.stdout) if document]


_RENDERED: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture(params=sorted(OVERLAYS), ids=lambda name: f"overlay {name}")
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    name = str(request.param)
    if name not in _RENDERED:
        _RENDERED[name] = render(OVERLAYS[name])
    return name, _RENDERED[name]


def rendered(name: str) -> list[dict[str, Any]]:
    if name not in _RENDERED:
        _RENDERED[name] = render(OVERLAYS[name])
    return _RENDERED[name]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry.get("value", "") for entry in container.get("env", [])}
