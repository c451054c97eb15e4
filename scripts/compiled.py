"""A build of the project with the admission path compiled by mypyc, in a directory of its own.

    .venv/bin/python scripts/compiled.py build          # prints the directory
    .venv/bin/python scripts/compiled.py test [ARGS]    # the webhook's tests against that build

The webhook image compiles ``setup.COMPILED_MODULES`` (VSI_COMPILE=1); the repository itself
stays pure Python, so an edit is never shadowed by a stale extension. This copies the sources
(and the tests) to ``.build/compiled``, compiles the modules there in place, and checks that
each one imports as an extension. Whatever runs from that directory (pytest, ``python -m webhook
serve``, the benchmark's servers) imports the compiled modules, as the image does. The build is
redone only when a copied file changed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DESTINATION = REPOSITORY / ".build" / "compiled"
COPIED_DIRECTORIES = ("webhook", "agent", "certs", "tests", "scripts")
COPIED_FILES = ("pyproject.toml", "setup.py")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", ".hypothesis")
HASH_FILE = ".source-hash"
OWNER_FILE = ".compiled-build"


class BuildError(RuntimeError):
    pass


def _sources() -> list[Path]:
    files = [REPOSITORY / name for name in COPIED_FILES]
    for directory in COPIED_DIRECTORIES:
        files += sorted(
            path
            for path in (REPOSITORY / directory).rglob("*")
            if path.is_file()
            and "__pycache__" not in path.parts
            and ".hypothesis" not in path.parts
            and path.suffix not in (".pyc", ".so")
        )
    return files


def _source_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    for path in files:
        digest.update(str(path.relative_to(REPOSITORY)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def compiled_modules() -> list[str]:
    """setup.COMPILED_MODULES as module names (webhook/patch.py -> webhook.patch)."""
    spec = importlib.util.spec_from_file_location("_project_setup", REPOSITORY / "setup.py")
    assert spec is not None
    assert spec.loader is not None
    setup_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_module)  # defines the list; setup() runs only as __main__
    paths: list[str] = setup_module.COMPILED_MODULES
    return [path.removesuffix(".py").replace("/", ".") for path in paths]


def build(destination: Path = DEFAULT_DESTINATION) -> Path:
    """The compiled build in ``destination``, made or brought up to date; raises BuildError."""
    files = _sources()
    wanted = _source_hash(files)
    marker = destination / HASH_FILE
    if marker.exists() and marker.read_text() == wanted:
        return destination
    if destination.exists():
        # Only a directory this script made (finished or not), or an empty one, is replaced.
        if not (destination / OWNER_FILE).exists() and any(destination.iterdir()):
            raise BuildError(f"{destination} is not empty and holds no build of ours")
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    (destination / OWNER_FILE).write_text("made by scripts/compiled.py; replaced on rebuild\n")
    for name in COPIED_FILES:
        shutil.copy2(REPOSITORY / name, destination / name)
    for directory in COPIED_DIRECTORIES:
        shutil.copytree(REPOSITORY / directory, destination / directory, ignore=SKIPPED)
    finished = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=destination,
        env={**os.environ, "VSI_COMPILE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        tail = "\n".join((finished.stdout + finished.stderr).splitlines()[-30:])
        raise BuildError(f"mypyc build failed (exit {finished.returncode}):\n{tail}")
    check_compiled(destination)
    marker.write_text(wanted)
    return destination


def check_compiled(destination: Path) -> None:
    """Every compiled module imports from ``destination`` as an extension, not as source."""
    modules = compiled_modules()
    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    print(name, importlib.import_module(name).__file__)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe, *modules],
        cwd=destination,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        raise BuildError(f"the compiled modules do not import:\n{finished.stderr[-2000:]}")
    for line in finished.stdout.splitlines():
        name, location = line.split(" ", 1)
        if not location.startswith(str(destination)) or not location.endswith(".so"):
            raise BuildError(f"{name} imports from {location}, not from the compiled build")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("build", "test"))
    parser.add_argument("--dest", type=Path, default=DEFAULT_DESTINATION)
    arguments, pytest_arguments = parser.parse_known_args()
    try:
        destination = build(arguments.dest.resolve())
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    if arguments.command == "build":
        print(destination)
        return 0
    print(f"testing the compiled build in {destination}", file=sys.stderr)
    # The webhook's own tests: every compiled module is on their path (golden reviews,
    # hypothesis fuzzing, the CLI, gunicorn over TLS); and the agent configuration's, for the
    # compiled agent.config_rules (every kind of invalid document, the JSON round trip).
    command = [
        *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider"),
        *("tests/webhook", "tests/agent/test_config.py"),
    ]
    return subprocess.run([*command, *pytest_arguments], cwd=destination, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
