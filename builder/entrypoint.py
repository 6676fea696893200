#!/usr/bin/env python3
"""The builder image's entrypoint.

(no arguments)        run the job the environment describes: DEVCONTAINER_BUILDER_MODE, up, serve or
                      up-serve (up, then serve)
COMMAND [ARGS ...]    run that devcontainer-builder command (`--help` lists them) or --help, --version

Started as PID 1 by the container runtime, with the template's secrets in its environment. It moves
them onto a pipe and executes tini with a clean environment, so that PID 1 - whose environment any
process of the same user could read - holds no secret; tini then starts this script again, which
receives the secrets and runs the command (launch.py explains the whole arrangement).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from devcontainer_builder import launch

TINI = "/usr/bin/tini"
USAGE_HEAD = """usage: docker run [docker options] IMAGE [COMMAND [ARGS ...]]

Without a command the image runs the job its environment describes (DEVCONTAINER_BUILDER_MODE, one of
up, serve, up-serve; default up), as a Coder template starts it. With one, it runs that devcontainer-builder
command:

"""
USAGE_TAIL = """  --help, --version

`IMAGE up --help` explains up's settings; `IMAGE options` lists them all.
"""


def usage(cli: Any) -> str:
    """The commands as click knows them: one list, so a new command cannot be missing here."""
    lines = [f"  {name:<16}{command.get_short_help_str(limit=86)}" for name, command in cli.commands.items()]
    return USAGE_HEAD + "\n".join(lines) + "\n" + USAGE_TAIL


def main(argv: list[str]) -> None:
    launch.secure(exec_prefix=[TINI, "--"] if os.getpid() == 1 and os.path.exists(TINI) else [])
    from devcontainer_builder.cli import main as cli  # noqa: PLC0415 - after the secrets are safe
    from devcontainer_builder.errors import EXIT_INVALID_INPUT, InputError  # noqa: PLC0415
    from devcontainer_builder.settings import options  # noqa: PLC0415

    if not argv:
        try:
            settings = options.load("entrypoint", {}, os.environ)
        except InputError as err:
            print(f"devcontainer-builder: {err.message}", file=sys.stderr)
            sys.exit(EXIT_INVALID_INPUT)
        if settings.mode == "up-serve":
            up_then_serve(cli, EXIT_INVALID_INPUT)
            return
        argv = [settings.mode]
    elif argv[0] in ("-h", "--help", "help"):
        print(usage(cli), end="")
        return
    elif argv[0] != "--version" and argv[0] not in cli.commands:
        print(f"devcontainer-builder: unknown command {argv[0]!r}.\n\n{usage(cli)}", end="", file=sys.stderr)
        sys.exit(EXIT_INVALID_INPUT)
    cli.main(args=argv, prog_name="devcontainer-builder")


def up_then_serve(cli: Any, invalid: int) -> None:
    """One container on a Docker host: `up`, then `serve` whatever the build's outcome - the status page
    and the Rebuild button are how a user gets out of a failed build - unless the input is invalid or
    SIGTERM stopped `up` (the container is being stopped)."""
    from devcontainer_builder import cli as commands  # noqa: PLC0415

    try:
        cli.main(args=["up"], prog_name="devcontainer-builder")
    except SystemExit as done:
        if done.code == invalid or commands.terminated_by:
            raise
    cli.main(args=["serve"], prog_name="devcontainer-builder")


if __name__ == "__main__":
    main(sys.argv[1:])
