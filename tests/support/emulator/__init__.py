"""A pod emulator for tests and the demo: runs a Pod manifest as local processes, like a kubelet.

Quick start::

    images = ImageTable(
        images={"app:1": Image(entrypoint=("python", "-m", "app"))},
        executables=this_python(),
    )
    pod_manifest = apply_service_account_admission(bare_pod)   # what the API server adds
    with EmulatedPod(pod_manifest, images=images, token_issuer=fake_kube, workdir=tmp_path) as pod:
        pod.wait_until_running(timeout=20)
        print(pod.exec("app", ["python", "-c", "print(open('/vault/secrets/db').read())"]).stdout)
        print(pod.logs("vault-agent-init"))
    assert not leftovers(tmp_path)

Needs root (mount namespaces, tmpfs, chroot, uid changes). See ``pod`` for the lifecycle,
``launcher`` for how a container's filesystem view is built, ``images`` for what the caller must
make readable to the containers' uids.
"""

from tests.support.emulator.fields import NodeFacts
from tests.support.emulator.images import Image, ImageTable, UnknownImage, this_python
from tests.support.emulator.inspection import Leftovers, leftovers
from tests.support.emulator.manifest import ContainerKind, InvalidPod
from tests.support.emulator.pod import (
    ContainerStatus,
    EmulatedPod,
    EmulatorError,
    EmulatorOptions,
    PodEvent,
    PodFailed,
    PodPhase,
    prefixed_printer,
)
from tests.support.emulator.process import ExecResult
from tests.support.emulator.serviceaccount import (
    TOKEN_MOUNT_PATH,
    apply_service_account_admission,
)
from tests.support.emulator.tokens import TokenIssuer
from tests.support.emulator.volumes import VolumeBacking

__all__ = [
    "TOKEN_MOUNT_PATH",
    "ContainerKind",
    "ContainerStatus",
    "EmulatedPod",
    "EmulatorError",
    "EmulatorOptions",
    "ExecResult",
    "Image",
    "ImageTable",
    "InvalidPod",
    "Leftovers",
    "NodeFacts",
    "PodEvent",
    "PodFailed",
    "PodPhase",
    "TokenIssuer",
    "UnknownImage",
    "VolumeBacking",
    "apply_service_account_admission",
    "leftovers",
    "prefixed_printer",
    "this_python",
]
