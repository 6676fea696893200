"""A repository's initializeCommand, run where it can do no harm.

The devcontainer CLI runs initializeCommand "on the host" before the build, in the workspace folder: a
string through `/bin/sh -c`, an array as an argument list, an object's values side by side, any failure
failing `up`. Here the host is the builder's side, which holds the engine's socket - on a privileged
engine that is the node. So there are two ways to run it:

- **sandbox** (the default): the builder runs it itself, before the CLI, in a throwaway container of the
  fallback image on the workspace's engine - the workspace folder mounted at its own path and nothing
  else, no network, every capability dropped, no-new-privileges, the workspace folder's owner as the
  user (never root on a rootful engine), bounded in pids, memory and time. Whatever it starts dies with
  the container, which goes when the command ends however it ends. The CLI then gets a copy of the
  config without the command.
- **full** (the admin's `DEVCONTAINER_ALLOWED_PRIVILEGES=initialize-command`): the CLI runs it beside the
  builder, with the engine, as before (docs/security.md says what that gives it).

A command that fails in the sandbox fails the build like any hook: recovery onto the fallback, the error
log naming it.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.system import proc
from devcontainer_builder.system.proc import last_line
from devcontainer_builder.up.context import Run

NAME = "initializeCommand"
FULL_MODE = "initialize-command"  # the admin's allowance: the CLI runs it with the engine
LABEL = "devcontainer-builder.initialize"  # never the workspace label: these containers are not the workspace's
PIDS_LIMIT = 256
MEMORY = "1g"
NOBODY = 65534
REMOVE_TIMEOUT = 60.0
OUTPUT_TAIL = 20  # lines of a failed command's output in the error message


@dataclass(frozen=True)
class Command:
    name: str  # the object form's key; "" for a string or an array
    argv: list[str]

    @property
    def shown(self) -> str:
        return f"{NAME} {self.name!r}" if self.name else NAME


def present(value: Any) -> bool:
    """As the CLI decides whether there is anything to run."""
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value) if isinstance(value, (list, dict)) else False


def full_mode(settings: Settings) -> bool:
    return FULL_MODE in settings.allowed_privileges


def sandboxed(settings: Settings, data: Mapping[str, Any]) -> bool:
    """The builder runs the config's initializeCommand in its sandbox (and the CLI never sees it)."""
    return present(data.get(NAME)) and not full_mode(settings)


def commands(value: Any, variables: Mapping[str, str]) -> list[Command]:
    """The argument lists the CLI would run, the config's variables substituted as the CLI does."""
    if isinstance(value, dict):
        found = []
        for key, entry in value.items():
            if not isinstance(entry, (str, list)):
                problem = f"a string or an array was expected, got {entry!r:.200}"
                raise BuildFailed(f"{NAME} {key!r}: {problem}", step="config")
            found += [Command(str(key), c.argv) for c in commands(entry, variables)]
        return found
    if isinstance(value, str):
        return [Command("", ["/bin/sh", "-c", substitute(value, variables)])] if value.strip() else []
    if isinstance(value, list):
        if not all(isinstance(part, str) for part in value):
            raise BuildFailed(f"{NAME}: an array of strings was expected, got {value!r:.200}", step="config")
        return [Command("", [substitute(part, variables) for part in value])] if value else []
    raise BuildFailed(f"{NAME}: a string, an array or an object was expected, got {value!r:.200}", step="config")


VARIABLE = re.compile(
    r"\$\{(localEnv|env|localWorkspaceFolder|localWorkspaceFolderBasename)(?::([^}:]*)(?::([^}]*))?)?\}"
)


def variables_for(folder: str) -> dict[str, str]:
    return {"localWorkspaceFolder": folder, "localWorkspaceFolderBasename": os.path.basename(folder)}


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """${localWorkspaceFolder} and its basename; ${localEnv:NAME[:default]} is its default or empty - the
    builder's environment is not the repository's to read (the sandbox's is the image's own)."""

    def one(match: re.Match[str]) -> str:
        kind, _, default = match.groups()
        if kind in ("localEnv", "env"):
            return default or ""
        return variables.get(kind, match.group(0))

    return VARIABLE.sub(one, text)


def without_command(data: Mapping[str, Any]) -> dict[str, Any]:
    """The config the CLI gets once the sandbox ran the command."""
    return {key: value for key, value in data.items() if key != NAME}


def container_user(run: Run, folder: str) -> list[str]:
    """Who the command runs as: the workspace folder's owner - never root on a rootful engine (nobody
    then) - and on rootless Podman the builder's own user, mapped to itself (keep-id)."""
    if run.engine.podman and os.geteuid() != 0:
        return ["--userns=keep-id", f"--user={os.geteuid()}:{os.getegid()}"]
    try:
        status = os.stat(folder)
    except OSError as err:
        raise BuildFailed(f"cannot read the workspace folder {folder}: {err.strerror}", step="config") from None
    if status.st_uid == 0:
        return [f"--user={NOBODY}:{NOBODY}"]
    return [f"--user={status.st_uid}:{status.st_gid}"]


def container_name(folder: str, index: int) -> str:
    return f"dcb-initialize-{hashlib.sha256(folder.encode()).hexdigest()[:12]}-{index}"


def docker_args(run: Run, command: Command, name: str, folder: str) -> list[str]:
    """`run` for one command: every option is the builder's own; the repository's text is only the
    command after the image."""
    return [
        "run", "--rm", f"--name={name}", f"--label={LABEL}={folder}",
        "--network=none", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        f"--pids-limit={PIDS_LIMIT}", f"--memory={MEMORY}",
        *container_user(run, folder),
        f"--volume={folder}:{folder}", f"--workdir={folder}",
        f"--entrypoint={command.argv[0]}", run.settings.fallback_image, *command.argv[1:],
    ]  # fmt: skip


def run_sandboxed(run: Run, value: Any) -> None:
    """Run the config's initializeCommand in its sandbox; BuildFailed naming the command when it fails."""
    folder = run.settings.workspace_folder
    found = commands(value, variables_for(folder))
    if not found:
        return
    names = [container_name(folder, index) for index in range(len(found))]
    remove(run, names)  # a run killed outright may have left one
    run.log.info(
        f"running {NAME} in a sandbox: a throwaway {run.settings.fallback_image} container with only the "
        "workspace folder, no network, no capability and no secret"
    )
    results: list[proc.Result | None] = [None] * len(found)

    def one(index: int) -> None:
        shown = found[index].shown
        results[index] = proc.run(
            [run.engine.docker, *docker_args(run, found[index], names[index], folder)],
            timeout=float(run.settings.build_timeout),
            env=run.engine.env,
            on_stdout=lambda line: run.log.info(f"{shown}: {line}"),
            on_stderr=lambda line: run.log.info(f"{shown}: {line}"),
        )

    threads = [threading.Thread(target=one, args=(index,), daemon=True) for index in range(len(found))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        remove(run, names)  # the command's processes die with its container, whatever stopped it
    for command, result in zip(found, results, strict=True):
        if result is None or not result.ok:
            raise failure(command, result)


def failure(command: Command, result: proc.Result | None) -> BuildFailed:
    if result is None:
        return BuildFailed(f"{command.shown} did not run", step=NAME)
    output = "\n".join((result.stdout + result.stderr).splitlines()[-OUTPUT_TAIL:])
    why = "timed out" if result.timed_out else f"failed (exit code {result.returncode})"
    engine_error = result.returncode == 125  # docker run's own failure: the sandbox could not start
    detail = f": {last_line(result.stderr)}" if engine_error and result.stderr else ""
    return BuildFailed(
        f"The {command.shown} in the devcontainer.json {why} in its sandbox{detail} (the command: "
        f"{' '.join(command.argv)[:300]})",
        step=NAME,
        detail=output,
    )


def remove(run: Run, names: list[str]) -> None:
    for name in names:
        proc.run([run.engine.docker, "rm", "-f", name], timeout=REMOVE_TIMEOUT, env=run.engine.env)
