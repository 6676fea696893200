"""The `devcontainer-builder` command's first steps, before any other import: move secrets off the
process environment (settings/secrets.py explains why) and protect the process, then run the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

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


WORKSPACES_STATE_DIR = "/workspaces/.devcontainer-builder"


def quick_status(args: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """`status --short`, which Coder's agent metadata runs every few seconds, answered from the state dir
    without loading the command line or the settings (a third of the time); it starts nothing and reads
    no secret. None for anything else, and whenever the state dir is not plainly given (a flag or
    DEVCONTAINER_STATE_DIR, or /workspaces beside it): the full command then answers, or says what is
    wrong."""
    if not args or args[0] != "status" or "--short" not in args[1:]:
        return None
    rest = [arg for arg in args[1:] if arg != "--short"]
    state_dir = environ.get("DEVCONTAINER_STATE_DIR", "")
    if len(rest) == 2 and rest[0] == "--state-dir":
        state_dir = rest[1]
    elif len(rest) == 1 and rest[0].startswith("--state-dir="):
        state_dir = rest[0].partition("=")[2]
    elif rest:
        return None
    if not state_dir and os.path.isdir("/workspaces"):
        state_dir = WORKSPACES_STATE_DIR
    if not os.path.isabs(state_dir) or "\0" in state_dir:
        return None
    from devcontainer_builder.state import report  # noqa: PLC0415
    from devcontainer_builder.state.store import StateDir  # noqa: PLC0415

    found = report.collect(StateDir(state_dir), events=0)
    sys.stdout.write(report.short(found) + "\n")
    return 0 if found.state.status in ("running", "degraded") else 1


def main() -> None:
    quick = quick_status(sys.argv[1:], os.environ)
    if quick is not None:
        sys.exit(quick)
    secure()
    from devcontainer_builder.cli import main as cli  # noqa: PLC0415 - after the secrets are safe

    cli(prog_name="devcontainer-builder")


if __name__ == "__main__":
    main()
