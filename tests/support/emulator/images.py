"""Images as local commands: what an image reference means to the emulator.

An ``Image`` stands for what a container runtime reads from an image's config: ENTRYPOINT, CMD,
WORKDIR, ENV and USER. ``ImageTable`` maps image references to images and, separately, executable
names to host programs (``"python"`` -> this virtualenv's interpreter), so a ``command:`` override,
an exec probe or ``pod.exec`` that names ``python`` runs the same interpreter as the image would:
the program of an argv is replaced, and every container has each of them on its PATH as
``/usr/local/bin/<name>`` (so ``sh -c "python ..."`` works too).

The processes run as the pod's uids (often not root). What the caller must ensure: every host file a
container runs or imports is readable (and executable, for programs) by "others", and every
directory on the way to it is traversable by others, except ancestors of a mapped executable: those
are made reachable inside the container (see ``launcher._RootBuilder``), because a real image would
contain its interpreter. The repository checkout and the virtualenv must therefore be world-readable
(they are with the default umask 022).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DIGEST = re.compile(r"@sha256:[0-9a-f]+$")
_TAG = re.compile(r":[\w][\w.-]*$")


@dataclass(frozen=True)
class Image:
    """What a container runtime takes from an image: the defaults a pod spec can override."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = "/"
    env: Mapping[str, str] = field(default_factory=dict)
    user: int = 0
    group: int = 0


class UnknownImage(KeyError):
    """The image reference is not in the table (what a cluster reports as ErrImagePull)."""


@dataclass(frozen=True)
class ImageTable:
    """Image references to images, and executable names to host programs."""

    images: Mapping[str, Image]
    executables: Mapping[str, str] = field(default_factory=dict)

    def image(self, reference: str) -> Image:
        """The image for ``reference``: an exact match first, then without digest, then tag."""
        without_digest = _DIGEST.sub("", reference)
        last_segment_start = without_digest.rfind("/") + 1
        without_tag = without_digest[:last_segment_start] + _TAG.sub(
            "", without_digest[last_segment_start:]
        )
        for candidate in (reference, without_digest, without_tag):
            if candidate in self.images:
                return self.images[candidate]
        raise UnknownImage(f"image {reference!r} is not in the emulator's image table")

    def resolve_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with its program replaced by the host program the table maps it to."""
        if not argv:
            return []
        program = self.executables.get(argv[0], argv[0])
        return [program, *argv[1:]]

    def exposed_host_paths(self) -> list[str]:
        """Every hop of every mapped executable's symlink chain: the container must reach them."""
        paths: list[str] = []
        for program in self.executables.values():
            current = program
            for _ in range(40):
                if current in paths:
                    break
                paths.append(current)
                if not os.path.islink(current):
                    break
                target = os.readlink(current)
                current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        return paths


def this_python() -> dict[str, str]:
    """Executables mapping for this virtualenv's interpreter under its usual names."""
    return dict.fromkeys(("python", "python3"), sys.executable)
