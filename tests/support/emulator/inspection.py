"""What an emulated pod could leave behind: processes and mounts that refer to its workdir.

Container processes are chrooted into ``<workdir>/containers/...``; the sandbox and launchers have
``<workdir>/run/...`` on their command line. A process is the pod's when its root, working
directory or command line is under the workdir. Mounts are looked for in this process's mount
namespace (the host's): the emulator never mounts there, so any is a bug.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Leftovers:
    processes: tuple[int, ...]
    mounts: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.processes or self.mounts)


def _is_under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def pod_processes(workdir: Path) -> list[int]:
    directory = str(workdir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            links = [os.readlink(entry / "root"), os.readlink(entry / "cwd")]
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            if any(_is_under(link, directory) for link in links) or any(
                directory.encode() in argument for argument in arguments
            ):
                found.append(int(entry.name))
    return found


def host_mounts_under(workdir: Path) -> list[str]:
    directory = str(workdir.resolve())
    mount_points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            mount_point = line.split()[4].replace("\\040", " ")
            if _is_under(mount_point, directory):
                mount_points.append(mount_point)
    return mount_points


def leftovers(workdir: Path) -> Leftovers:
    return Leftovers(tuple(pod_processes(workdir)), tuple(host_mounts_under(workdir)))
