"""Build of vault-sidecar-injector: pure Python, or with the admission path compiled by mypyc.

Everything else lives in pyproject.toml. With VSI_COMPILE=1 the modules below are compiled to C
extensions by mypyc (as black and mypy ship themselves): same source, same behaviour, about half
the CPU per admission. The webhook image is built that way; a plain install (and `make test`'s
editable one) stays pure Python, and `make test` also runs the webhook's tests against a
compiled build (scripts/compiled.py). The modules are typed with mypy --strict, which mypyc needs.
"""

from __future__ import annotations

import os

from setuptools import setup

# The code every admission runs. Of agent/ only the configuration (its classes, rules and JSON
# writer, which the webhook runs for every pod): the sidecar is I/O-bound. Not the Flask or
# gunicorn glue.
COMPILED_MODULES = [
    "agent/config.py",
    "agent/config_rules.py",
    "webhook/admission.py",
    "webhook/annotations.py",
    "webhook/containers.py",
    "webhook/injection.py",
    "webhook/patch.py",
    "webhook/values.py",
    "webhook/wire.py",
]


def _extensions() -> list[object]:
    if os.environ.get("VSI_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 - only a compiling build has mypy

    return list(mypycify(COMPILED_MODULES, opt_level="3"))


# setuptools runs this file as __main__ (also through pip); scripts/compiled.py imports it for
# the list above.
if __name__ == "__main__":
    setup(ext_modules=_extensions())
