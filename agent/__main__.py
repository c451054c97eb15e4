"""``python -m agent --mode init|sidecar|ready``.

Configuration: the JSON of ``agent.config.AgentConfig`` from the environment variable
``VSI_AGENT_CONFIG``, or from the file named by ``VSI_AGENT_CONFIG_FILE``. An invalid document
prints every problem and exits 2. ``--mode ready`` exits 0 iff the readiness file exists (the
native sidecar's startup probe).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from agent.config import CONFIG_ENV, CONFIG_FILE_ENV, AgentConfig, ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


def load_config(environ: Mapping[str, str]) -> AgentConfig:
    """The configuration from the environment; raises ConfigError listing every problem."""
    text = environ.get(CONFIG_ENV)
    path = environ.get(CONFIG_FILE_ENV)
    if text is None and path:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise ConfigError(
                [f"{CONFIG_FILE_ENV}: cannot read {path} ({error.strerror})"]
            ) from None
    if text is None:
        raise ConfigError([f"no configuration: set {CONFIG_ENV} or {CONFIG_FILE_ENV}"])
    return AgentConfig.from_json(text)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("init", "sidecar", "ready"), required=True)
    arguments = parser.parse_args(argv)
    environment = os.environ if environ is None else environ
    try:
        config = load_config(environment)
    except ConfigError as error:
        print("invalid agent configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if arguments.mode == "ready":
        if not config.readiness_file:
            print("no readiness_file in the configuration", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK if os.path.exists(config.readiness_file) else EXIT_FAILED

    # Imported only here: the readiness probe above must stay fast (no hvac, no requests).
    from agent import logs  # noqa: PLC0415
    from agent.runner import Agent  # noqa: PLC0415

    logs.configure(config, mode=arguments.mode)
    agent = Agent(config)
    try:
        if arguments.mode == "init":
            return agent.run_init()
        return agent.run_sidecar()
    finally:
        agent.vault.close()
        agent.metrics.close()


if __name__ == "__main__":
    sys.exit(main())
