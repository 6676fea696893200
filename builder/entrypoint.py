#!/usr/bin/env python3
"""The builder image's entrypoint. tini is PID 1 and forwards SIGTERM to this process.

(no arguments)        run the job the environment describes: DEVCONTAINER_BUILDER_MODE, default up
COMMAND [ARGS ...]    run that devcontainer-builder command (up, status, options) or --help, --version
"""

from __future__ import annotations

import os
import sys

from devcontainer_builder import options
from devcontainer_builder.cli import main as cli
from devcontainer_builder.errors import EXIT_INVALID_INPUT, InputError

USAGE = f"""usage: docker run [docker options] IMAGE [COMMAND [ARGS ...]]

Without a command the image runs the job its environment describes (DEVCONTAINER_BUILDER_MODE, one of
{", ".join(options.MODES)}; default up), as a Coder template starts it. With one, it runs that
devcontainer-builder command:

  up        clone or update the repository and bring its devcontainer up (or the fallback)
  status    show the workspace's state (--json for scripts)
  options   list every setting and its environment variable
  --help, --version

`IMAGE up --help` explains up's settings; `IMAGE options` lists them all.
"""


def main(argv: list[str]) -> None:
    if not argv:
        try:
            settings = options.load("entrypoint", {}, os.environ)
        except InputError as err:
            print(f"devcontainer-builder: {err.message}", file=sys.stderr)
            sys.exit(EXIT_INVALID_INPUT)
        argv = [settings.mode]
    elif argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    elif argv[0] != "--version" and argv[0] not in cli.commands:
        print(f"devcontainer-builder: unknown command {argv[0]!r}.\n\n{USAGE}", end="", file=sys.stderr)
        sys.exit(EXIT_INVALID_INPUT)
    cli.main(args=argv, prog_name="devcontainer-builder")


if __name__ == "__main__":
    main(sys.argv[1:])
