"""The in-namespace half of the emulator: runs as root, sets up mounts, becomes the container.

Run as ``python -I -S launcher.py <spec.json> <report-fd>``; imports only the standard library so it
starts in a few milliseconds and does not depend on the virtualenv's site-packages. Three modes:

``sandbox``
    The pod sandbox (what the pause container is to a kubelet): a new mount namespace in which the
    pod's memory volumes are mounted as tmpfs. It prints one JSON line (which volumes got a tmpfs)
    and then lives until its stdin closes or its parent dies. Because every mount lives in this
    namespace or in a container namespace derived from it, nothing is ever mounted on the host: when
    the processes end, the kernel drops the mounts, even if the test process was killed.

``container``
    Joins the sandbox's mount namespace, unshares a private copy and builds the container's root
    filesystem in it (see ``_RootBuilder``), chroots into it, drops to the container's uid, gid and
    groups and execs the container's command. The process keeps its pid, so the host's ``Popen`` is
    the container process itself.

``exec``
    Joins a running container's mount namespace and root (``kubectl exec``, exec probes, hooks).

Set-up failures are written as JSON to the report file descriptor (marked close-on-exec, so a
successful exec closes it empty, as ``subprocess`` does) and the launcher exits with 128, which is
what a container runtime reports for a container that could not start.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shlex
import signal
import stat
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

START_ERROR_EXIT_CODE = 128
EXEC_NOT_FOUND_EXIT_CODE = 127
MAX_SYMLINK_HOPS = 40
# Where an image's programs are installed: on the default PATH of every container.
INSTALL_DIRECTORY = "usr/local/bin"

# Host directories a container gets as recursive binds, like the special filesystems a runtime
# mounts; they are never made read-only by readOnlyRootFilesystem.
_KERNEL_FILESYSTEMS = frozenset({"proc", "sys", "dev"})

_libc = ctypes.CDLL(None, use_errno=True)


class LaunchError(Exception):
    """A set-up step failed; the container could not start."""


class ExecutableNotFound(LaunchError):
    """The command's executable is not in the container's filesystem."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise LaunchError(f"{what}: {os.strerror(code)}") from OSError(code, os.strerror(code))


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _unshare_private_mount_namespace() -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Without this, mounts made here would propagate back to the namespace we came from.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def _enter_mount_namespace(pid: int) -> None:
    descriptor = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(descriptor, CLONE_NEWNS), f"setns(mount namespace of {pid})")
    finally:
        os.close(descriptor)


def _die_with_parent() -> None:
    # Set after the uid change: the kernel clears the parent-death signal when credentials change.
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


# Sandbox --------------------------------------------------------------------------------------


def run_sandbox(spec: dict[str, Any]) -> NoReturn:
    _unshare_private_mount_namespace()
    backings: dict[str, str] = {}
    for volume in spec["volumes"]:
        path = volume["path"]
        os.makedirs(path, exist_ok=True)
        backing = "directory"
        if volume["tmpfs"]:
            options = "mode=0777"
            if volume.get("size_bytes"):
                options += f",size={volume['size_bytes']}"
            try:
                _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
                backing = "tmpfs"
            except LaunchError as error:
                cause = error.__cause__
                if not (isinstance(cause, OSError) and cause.errno == errno.EPERM):
                    raise
        backings[volume["name"]] = backing
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    sys.stdout.write(json.dumps({"backings": backings}) + "\n")
    sys.stdout.flush()
    # Lives until the emulator closes our stdin (or dies, which closes it too).
    sys.stdin.buffer.read()
    os._exit(0)


# Container root filesystem ------------------------------------------------------------------


class _RootBuilder:
    """Builds a container's root in a private mount namespace, without touching the host.

    The root is a fresh tmpfs holding, for every entry of the host's ``/``, a recursive bind of it
    (symlinks copied; ``/tmp`` private to the container). A mount target that does not exist is
    created only in a directory that lives on one of our own tmpfs mounts: when the nearest existing
    ancestor is a view of a host directory (``/home`` for ``/home/vault``), that directory is first
    *shadowed* in this namespace: a tmpfs is mounted over it and each of its host entries is bound
    back in, so the new directory appears to the container alone. Symlinks on the way (``/var/run``
    -> ``/run``) are resolved inside the container root, as a runtime does.

    Host paths an image needs (its interpreter) may sit below a directory others cannot traverse
    (``/root`` is 0700 while pyenv lives under it); such a directory is replaced by a 0755 tmpfs
    holding only the needed child, as if the image contained that path.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        # Paths relative to the root whose directory lives on a tmpfs of ours: safe to create in.
        self._owned: set[str] = {""}
        # Volume mount points: creating inside a volume is what runtimes do too.
        self._volume_targets: set[str] = set()
        # Mounts that make up the root filesystem itself (made read-only on request).
        self._root_mounts: list[str] = []

    def _inside(self, relative: str) -> str:
        return os.path.join(self.root, relative) if relative else self.root

    def build_base(self, *, exposed_host_paths: Iterable[str]) -> None:
        _mount("tmpfs", self.root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        self._root_mounts.append(self.root)
        with os.scandir("/") as entries:
            for entry in sorted(entries, key=lambda item: item.name):
                if entry.name == "tmp":
                    continue
                self._mirror(entry.path, entry.name, top_level=True)
        os.mkdir(self._inside("tmp"))
        os.chmod(self._inside("tmp"), 0o1777)  # noqa: S103  # /tmp is world-writable and sticky
        self._owned.add("tmp")
        for host_path in exposed_host_paths:
            # Only the directories are resolved: the last component may be one hop of a chain of
            # symbolic links, each of which must be reachable.
            directory, name = os.path.split(host_path)
            self._expose(os.path.join(os.path.realpath(directory), name))

    def _mirror(self, host_path: str, relative: str, *, top_level: bool = False) -> None:
        """Make ``relative`` in the root show ``host_path`` (a bind), in a directory of ours."""
        target = self._inside(relative)
        if os.path.islink(host_path):
            os.symlink(os.readlink(host_path), target)
            return
        if os.path.isdir(host_path):
            os.mkdir(target)
            _mount(host_path, target, None, MS_BIND | MS_REC)
        else:
            with open(target, "wb"):
                pass
            _mount(host_path, target, None, MS_BIND)
        if not (top_level and relative in _KERNEL_FILESYSTEMS):
            self._root_mounts.append(target)

    def _expose(self, host_path: str) -> None:
        parts = [part for part in host_path.split("/") if part]
        for depth in range(1, len(parts)):
            relative = "/".join(parts[:depth])
            if not os.path.lexists(self._inside(relative)):
                self._mirror("/" + relative, relative)
            if relative in self._owned:
                continue
            # A container may run in the directory's group (gid 0 without runAsGroup), where the
            # group's bits apply instead of the others': both must let it through.
            passable = stat.S_IXOTH | stat.S_IXGRP
            if os.stat("/" + relative).st_mode & passable == passable:
                continue
            target = self._inside(relative)
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
            self._root_mounts.append(target)
            self._owned.add(relative)

    def _shadow(self, relative: str, *, leave_out: Iterable[str] = ()) -> None:
        """Cover a host view with a tmpfs that binds back every host entry of it (but those
        left out, which the caller fills in itself)."""
        host_dir = "/" + relative
        mode = stat.S_IMODE(os.stat(host_dir).st_mode)
        names = sorted(set(os.listdir(self._inside(relative))) - set(leave_out))
        target = self._inside(relative)
        _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
        self._root_mounts.append(target)
        self._owned.add(relative)
        for name in names:
            self._mirror(os.path.join(host_dir, name), f"{relative}/{name}")

    def install_programs(self, programs: dict[str, str]) -> None:
        """Put each program on the PATH as ``/usr/local/bin/<name>``, the way an image has it.

        A wrapper script rather than a symlink: a virtualenv's python finds its ``pyvenv.cfg``
        next to the path it was started by, so it must be started by its own path.
        """
        if not programs:
            return
        directory = self.prepare_target("/" + INSTALL_DIRECTORY, directory=True)
        relative = os.path.relpath(directory, self.root)
        if relative not in self._owned:
            self._shadow(relative, leave_out=programs)
        for name, program in sorted(programs.items()):
            wrapper = os.path.join(directory, name)
            with open(wrapper, "w", encoding="utf-8") as handle:
                handle.write(f'#!/bin/sh\nexec {shlex.quote(program)} "$@"\n')
            os.chmod(wrapper, 0o755)  # noqa: S103  # a program every container user runs

    def _may_create_in(self, relative: str) -> bool:
        if relative in self._owned:
            return True
        return any(
            relative == volume or relative.startswith(volume + "/")
            for volume in self._volume_targets
        )

    def prepare_target(self, path: str, *, directory: bool) -> str:
        """Resolve ``path`` inside the root, creating what is missing; return the host-side path."""
        pending = [part for part in path.split("/") if part]
        current = ""
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                current = current.rpartition("/")[0]
                continue
            candidate = f"{current}/{part}" if current else part
            full = self._inside(candidate)
            if os.path.islink(full):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise LaunchError(f"too many symbolic links resolving {path}")
                link = os.readlink(full)
                if link.startswith("/"):
                    current = ""
                pending = [item for item in link.split("/") if item] + pending
                continue
            if not os.path.lexists(full):
                if not self._may_create_in(current):
                    self._shadow(current)
                if pending or directory:
                    os.mkdir(full, 0o755)
                    self._owned.add(candidate)
                else:
                    with open(full, "wb"):
                        pass
            current = candidate
        return self._inside(current)

    def bind_volume(self, source: str, target: str, *, read_only: bool) -> None:
        is_directory = os.path.isdir(source)
        host_target = self.prepare_target(target, directory=is_directory)
        _mount(source, host_target, None, MS_BIND | MS_REC)
        if read_only:
            _mount(None, host_target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        self._volume_targets.add(os.path.relpath(host_target, self.root))

    def hide(self, path: str) -> None:
        """Cover a host directory (the emulator's workdir) so the container sees it empty."""
        target = self._inside(path.strip("/"))
        if os.path.isdir(target) and not os.path.islink(target):
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "mode=0755")

    def make_read_only(self) -> None:
        for target in self._root_mounts:
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _find_executable(name: str, env: dict[str, str]) -> str:
    if "/" in name:
        return name
    for directory in env.get("PATH", os.defpath).split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ExecutableNotFound(f'exec: "{name}": executable file not found in $PATH')


def _become(spec: dict[str, Any]) -> None:
    os.chdir(spec["cwd"])
    os.setgroups(spec["groups"])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    if spec.get("no_new_privs"):
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.umask(0o022)


def _exec(spec: dict[str, Any]) -> NoReturn:
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec["env"]
    program = _find_executable(argv[0], env)
    os.execve(program, argv, env)  # noqa: S606  # becoming the container's command is the point


def run_container(spec: dict[str, Any], parent_pid: int) -> NoReturn:
    _enter_mount_namespace(spec["sandbox_pid"])
    _unshare_private_mount_namespace()
    builder = _RootBuilder(spec["rootfs"])
    builder.build_base(exposed_host_paths=spec["exposed_host_paths"])
    builder.install_programs(spec["programs"])
    # Parents before children, as runtimes order mounts.
    for mount in sorted(spec["mounts"], key=lambda item: item["target"].count("/")):
        builder.bind_volume(mount["source"], mount["target"], read_only=mount["read_only"])
    builder.prepare_target(spec["cwd"], directory=True)
    builder.hide(spec["hidden_path"])
    if spec["read_only_root"]:
        builder.make_read_only()
    os.chroot(spec["rootfs"])
    _become(spec)
    _die_with_parent()
    if os.getppid() != parent_pid:
        raise LaunchError("the emulator went away before the container started")
    _exec(spec)


def run_exec(spec: dict[str, Any], parent_pid: int) -> NoReturn:
    _enter_mount_namespace(spec["target_pid"])
    os.chroot(spec["rootfs"])
    _become(spec)
    _die_with_parent()
    if os.getppid() != parent_pid:
        raise LaunchError("the emulator went away before the command started")
    _exec(spec)


def main(argv: list[str]) -> NoReturn:
    spec_path, report_fd = argv[1], int(argv[2])
    os.set_inheritable(report_fd, False)
    parent_pid = os.getppid()
    try:
        with open(spec_path, encoding="utf-8") as handle:
            spec: dict[str, Any] = json.load(handle)
        os.unlink(spec_path)
        mode = spec["mode"]
        if mode == "sandbox":
            run_sandbox(spec)
        if mode == "container":
            run_container(spec, parent_pid)
        if mode == "exec":
            run_exec(spec, parent_pid)
        raise LaunchError(f"unknown launcher mode {mode!r}")
    except ExecutableNotFound as error:
        _report(report_fd, "StartError", str(error))
        os._exit(EXEC_NOT_FOUND_EXIT_CODE)
    except (LaunchError, OSError) as error:
        _report(report_fd, "StartError", str(error))
        os._exit(START_ERROR_EXIT_CODE)


def _report(report_fd: int, reason: str, message: str) -> None:
    text = f"emulator: {message}\n"
    with contextlib.suppress(OSError):
        sys.stderr.write(text)
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.write(report_fd, json.dumps({"reason": reason, "message": message}).encode())


if __name__ == "__main__":
    main(sys.argv)
