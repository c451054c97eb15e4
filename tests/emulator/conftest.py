"""Fixtures for the emulator's tests: an image table, a workdir, and a leftover check after each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.manifests import TOOL_IMAGE
from tests.support.emulator import (
    EmulatedPod,
    EmulatorOptions,
    Image,
    ImageTable,
    leftovers,
    this_python,
)
from tests.support.fake_kube import FakeKubeApiServer

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the emulator needs root: mount namespaces, tmpfs, chroot, setuid"
)

PodFactory = Callable[..., EmulatedPod]


@pytest.fixture
def images() -> ImageTable:
    return ImageTable(images={TOOL_IMAGE: Image()}, executables=this_python())


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pod"
    path.mkdir()
    yield path
    # Every emulator test also proves that nothing outlived its pod.
    left = leftovers(path)
    assert not left, f"left behind: {left}"


@pytest.fixture(scope="session")
def token_issuer() -> Iterator[FakeKubeApiServer]:
    """One fake API server for the whole session: making its RSA key takes a while."""
    with FakeKubeApiServer() as kube:
        yield kube


@pytest.fixture
def make_pod(images: ImageTable, workdir: Path, token_issuer: FakeKubeApiServer) -> PodFactory:
    """An ``EmulatedPod`` for a manifest, with this test's images, workdir and token issuer."""

    def build(manifest: dict[str, Any], **overrides: Any) -> EmulatedPod:
        arguments: dict[str, Any] = {
            "images": images,
            "workdir": workdir,
            "token_issuer": token_issuer,
            "options": EmulatorOptions(restart_backoff_seconds=0.2),
        }
        arguments.update(overrides)
        return EmulatedPod(manifest, **arguments)

    return build
