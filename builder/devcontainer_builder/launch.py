"""The `devcontainer-builder` command's first steps, before any other import: move secrets off the
process environment (settings/secrets.py explains why) and protect the process, then run the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from devcontainer_builder.settings import secrets


def secure(exec_prefix: Sequence[str] = ()) -> None:
    """Return in a process whose environment holds no secret, with the secrets in secrets.received.

    When secrets are in this process's environment, or when `exec_prefix` (tini, for PID 1) is given,
    this does not return: it re-executes the same command line (after `exec_prefix`) without them,
    handing them over on a pipe."""
    handed = secrets.receive(os.environ)
    present = secrets.in_environment(os.environ)
    if present or exec_prefix:
        fd = secrets.handover({**handed, **present})
        env = secrets.clean_environment(os.environ, present)
        env[secrets.FD_VAR] = str(fd)
        argv = [*exec_prefix, sys.executable, *sys.orig_argv[1:]]
        os.execve(argv[0], argv, env)  # noqa: S606 - this very command line again
    secrets.received.update(handed)
    secrets.protect_process()


def main() -> None:
    secure()
    from devcontainer_builder.cli import main as cli  # noqa: PLC0415 - after the secrets are safe

    cli(prog_name="devcontainer-builder")


if __name__ == "__main__":
    main()
