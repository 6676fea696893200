"""Driving `devcontainer up`: its argument list, its JSON log turned into named steps, its outcome.

The CLI writes one JSON object per line on stderr (`--log-format json`) and exactly one JSON line on
stdout with the outcome. Levels come from the CLI's own numbers (1 trace ... 5 error), never from the
words in a line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devcontainer_builder.log import Log
from devcontainer_builder.system import proc

CLI_LEVELS = {1: "trace", 2: "debug", 3: "info", 4: "warn", 5: "error"}
# Logged at level 5 whenever containers.dev is unreachable; the CLI carries on, so it is noise.
NOISE = ("Failed to fetch control manifest",)
STEP_NAMES = {
    "Starting container": "start container",
    "Inspecting container": "inspect container",
}


@dataclass
class Outcome:
    outcome: str
    container_id: str = ""
    remote_user: str = ""
    remote_workspace_folder: str = ""
    message: str = ""
    description: str = ""
    timed_out: bool = False
    returncode: int = 0
    raw: dict[str, Any] = field(default_factory=dict)
    failed_step: str = ""  # the named step the failure happened in, when it can be told
    fetched_manifest: bool = False  # the CLI fetched containers.dev's control manifest itself

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


@dataclass
class Step:
    name: str
    status: str  # succeeded or failed
    seconds: float


ENGINE_COMMANDS = ("docker", "podman")


def step_name(text: str) -> str | None:
    """The human name of a CLI start/stop pair worth showing, or None for the many internal ones."""
    if text in STEP_NAMES:
        return STEP_NAMES[text]
    command, _, args = text.removeprefix("Run: ").partition(" ")
    if not text.startswith("Run: ") or command.rsplit("/", 1)[-1] not in ENGINE_COMMANDS:
        return None
    if args.startswith(("build ", "buildx build ")):
        if "-t dev_container_feature_content_temp " in args:
            return "prepare features"
        if "updateUID.Dockerfile" in args:
            return "update remote user UID"
        return "build image"
    if args.startswith("pull "):
        return "pull image"
    return None


class ProgressParser:
    """Turns the CLI's stderr lines into log lines and named steps with durations."""

    def __init__(self, log: Log, on_step: Callable[[Step], None], shown_as: tuple[str, str] = ("", "")) -> None:
        self.log = log
        self.on_step = on_step
        # (the --docker-path given to the CLI, the engine CLI's name): lines say `docker run`, not the
        # path of the builder's policy guard
        self.shown_as = shown_as
        self.open: dict[str, tuple[str, float]] = {}  # CLI text or progress name -> (step name, start)
        self.partial: dict[str, str] = {}  # raw output not yet ended by a newline, per channel
        self.commands: dict[str, str] = {}  # command the CLI ran -> its step name, to place a failure
        self.failed: list[str] = []
        self.fetched_manifest = False

    def feed(self, line: str) -> None:
        if self.shown_as[0]:
            line = line.replace(self.shown_as[0], self.shown_as[1])
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            # stack traces and other plain text the CLI prints on errors
            self.log.debug(line, source="devcontainer")
            return
        kind = event.get("type")
        if kind == "progress":
            self._progress(event)
            return
        text = event.get("text")
        if not isinstance(text, str):
            return
        number = event.get("level")
        level = CLI_LEVELS.get(number, "info") if isinstance(number, int) else "info"
        if kind == "raw":
            self._raw(text, level, event.get("channel") or "")
        elif kind == "text":
            if text.startswith(NOISE):
                self.fetched_manifest = True
                level = "debug"
            self.log.emit(level, text, source="devcontainer")
        elif kind == "start":
            self._flush_partial()
            self.log.emit("debug" if level == "info" else level, text, source="devcontainer")
            name = step_name(text)
            if name:
                self.open[text] = (name, time.monotonic())
                self.commands[text.removeprefix("Run: ")] = name
                self.log.info(f"» {name}")
        elif kind == "stop":
            self._flush_partial()
            opened = self.open.pop(text, None)
            if opened:
                started = event.get("startTimestamp")
                stopped = event.get("timestamp")
                if isinstance(started, int) and isinstance(stopped, int):
                    seconds = max(0.0, (stopped - started) / 1000)
                else:
                    seconds = time.monotonic() - opened[1]
                self._step(Step(opened[0], "succeeded", seconds))

    def _raw(self, text: str, level: str, channel: str) -> None:
        # raw output arrives in arbitrary chunks: only complete lines go out, the rest waits for its end
        buffered = self.partial.pop(channel, "") + text
        head, sep, tail = buffered.rpartition("\n")
        if sep:
            self.log.emit(level, head, source="devcontainer")
        if tail:
            self.partial[channel] = tail

    def _flush_partial(self) -> None:
        for channel in list(self.partial):
            self.log.info(self.partial.pop(channel), source="devcontainer")

    def _progress(self, event: dict[str, Any]) -> None:
        name = str(event.get("name") or "")
        status = event.get("status")
        label = name.removeprefix("Running ").removesuffix("...").strip() or name
        if status == "running":
            self._flush_partial()
            self.open[f"progress:{name}"] = (label, time.monotonic())
            detail = event.get("stepDetail")
            self.log.info(f"» {label}" + (f": {detail}" if detail else ""))
        elif status in ("succeeded", "failed"):
            self._flush_partial()
            opened = self.open.pop(f"progress:{name}", None)
            seconds = time.monotonic() - opened[1] if opened else 0.0
            self._step(Step(label, status, seconds))

    def _step(self, step: Step) -> None:
        if step.status == "failed" and step.name == DOTFILES_STEP:
            # the CLI carries on: the user's dotfiles are theirs to fix, the workspace runs
            self.log.warn(
                f"the dotfiles (DEVCONTAINER_DOTFILES_REPOSITORY) could not be installed after {step.seconds:.1f} s; "
                "the workspace runs without them. The CLI's output above says why."
            )
            self.on_step(step)
            return
        if step.status == "failed":
            self.failed.append(step.name)
        if step.status == "succeeded":
            self.log.info(f"✔ {step.name} ({step.seconds:.1f} s)")
        else:
            self.log.error(f"✘ {step.name} failed after {step.seconds:.1f} s")
        self.on_step(step)

    def step_for_failure(self, message: str) -> str:
        """The step a failed outcome belongs to. A failed command keeps its `stop` event, so the
        outcome's "Command failed: <command>" is matched to the step that ran the command."""
        command = message.removeprefix("Command failed: ")
        if command != message and command in self.commands:
            return self.commands[command]
        return self.failed[-1] if self.failed else ""

    def finish(self, failed: bool) -> None:
        """Close what the CLI never closed: on failure those are the steps that failed."""
        self._flush_partial()
        for _key, (name, started) in list(self.open.items()):
            if name == "start container" and not failed:
                continue
            if failed:
                self._step(Step(name, "failed", time.monotonic() - started))
        self.open.clear()


DOTFILES_STEP = "Installing Dotfiles"


def up_args(
    cli: str,
    *,
    workspace: str,
    docker_path: str,
    id_labels: Mapping[str, str],
    config: str,
    override: bool,
    cache_from: Sequence[str],
    cache_to: str,
    remove_existing: bool,
    no_lockfile: bool,
    build_no_cache: bool = False,
    update_remote_user_uid: str = "",
    remote_env: Mapping[str, str] | None = None,
    compose_path: str = "",
    override_config: str = "",
    dotfiles_repository: str = "",
    dotfiles_install_command: str = "",
) -> list[str]:
    args = [cli, "up", "--log-format", "json", "--workspace-folder", workspace, "--docker-path", docker_path]
    if compose_path:
        args += ["--docker-compose-path", compose_path]
    for key, value in id_labels.items():
        args += ["--id-label", f"{key}={value}"]
    args += ["--override-config" if override else "--config", config]
    if override_config:  # its content, with config's folder for relative paths
        args += ["--override-config", override_config]
    for ref in cache_from:
        args += ["--cache-from", ref]
    if cache_to:
        args += ["--cache-to", cache_to]
    if remove_existing:
        args.append("--remove-existing-container")
    if build_no_cache:
        args.append("--build-no-cache")
    if no_lockfile:
        args.append("--no-lockfile")
    if update_remote_user_uid:
        args += ["--update-remote-user-uid-default", update_remote_user_uid]
    for key, value in (remote_env or {}).items():
        args += ["--remote-env", f"{key}={value}"]
    if dotfiles_repository:  # cloned and installed as the remote user after the hooks; a failure is no error
        args += ["--dotfiles-repository", dotfiles_repository]
        if dotfiles_install_command:
            args += ["--dotfiles-install-command", dotfiles_install_command]
    return args


def build_args(
    cli: str,
    *,
    workspace: str,
    docker_path: str,
    config: str,
    cache_from: Sequence[str],
    cache_to: str,
    no_cache: bool,
    no_lockfile: bool,
    compose_path: str = "",
) -> list[str]:
    """`devcontainer build`: the image `up` would build, into the engine's layer cache. It has no
    --override-config: a generated config is given as --config (it is named devcontainer.json)."""
    args = [cli, "build", "--log-format", "json", "--workspace-folder", workspace, "--docker-path", docker_path]
    if compose_path:
        args += ["--docker-compose-path", compose_path]
    args += ["--config", config]
    for ref in cache_from:
        args += ["--cache-from", ref]
    if cache_to:
        args += ["--cache-to", cache_to]
    if no_cache:
        args.append("--no-cache")
    if no_lockfile:
        args.append("--no-lockfile")
    return args


def parse_outcome(stdout: str, returncode: int, timed_out: bool) -> Outcome:
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "outcome" in data:
            return Outcome(
                outcome=str(data.get("outcome")),
                container_id=str(data.get("containerId") or ""),
                remote_user=str(data.get("remoteUser") or ""),
                remote_workspace_folder=str(data.get("remoteWorkspaceFolder") or ""),
                message=str(data.get("message") or ""),
                description=str(data.get("description") or ""),
                timed_out=timed_out,
                returncode=returncode,
                raw=data,
            )
    if timed_out:
        return Outcome("error", message="timed out", timed_out=True, returncode=returncode)
    return Outcome(
        "error",
        message="the devcontainer CLI printed no outcome",
        description=f"exit code {returncode}; see the build log for its error output",
        returncode=returncode,
    )


def run_up(
    args: list[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    log: Log,
    on_step: Callable[[Step], None],
    shown_as: tuple[str, str] = ("", ""),
    contain: bool = True,
) -> Outcome:
    """`contain`: the config has an initializeCommand, which the CLI runs beside the builder; whatever it
    leaves running is stopped when the CLI ends."""
    parser = ProgressParser(log, on_step, shown_as)
    log.debug("running " + " ".join(args))
    result = proc.run(args, timeout=timeout, env=env, on_stderr=parser.feed, capture_stderr=False, contain=contain)
    stdout = result.stdout.replace(shown_as[0], shown_as[1]) if shown_as[0] else result.stdout
    outcome = parse_outcome(stdout, result.returncode, result.timed_out)
    outcome.fetched_manifest = parser.fetched_manifest
    parser.finish(failed=not outcome.ok)
    if not outcome.ok:
        outcome.failed_step = parser.step_for_failure(outcome.message)
    return outcome
