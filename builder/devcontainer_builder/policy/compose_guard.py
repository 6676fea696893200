"""Every compose call of the devcontainer CLI, through the admin's policy (compose_rules.py).

The CLI runs compose as `<docker-path> compose ...` (and --docker-compose-path leads here too), so
docker-guard sends every compose call to rules.py, which hands it over. Compose talks to the engine
itself - no `docker run` passes the guard - so what is checked is the project as compose would run it.

- Compose reads the repository's files once: the builder checks what they read (compose_files.py) and
  at once renders them into a snapshot in the state dir. In every call the repository's files are
  replaced by that snapshot, and any other file, `--env-file` or `--project-directory` is refused, so a
  compose file changed in the workspace during the build is never read.
- Before each `up`, `create` and `build`, compose renders the merged, interpolated project (the snapshot
  and the CLI's own override files); compose_rules.py checks it; and compose runs that very rendered
  file, rewritten: the workspace's labels on every container, no builder labels on services that claim
  them, the templates' `../..:/workspaces` narrowed to the workspace, and no engine restarts for services
  whose bind mounts are re-checked before each start.
- The project is the workspace's: every call but `version`, `config` and `ls` must name it (-p), so a
  repository's `.env` or `name:` cannot point compose at another workspace's project. Compose commands
  the CLI does not use and that reach outside (`run`, `exec`, `cp`, `watch`, ...) are refused.

Runs inside the guard (python -I -S), so it imports only the standard library and its siblings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

try:
    from devcontainer_builder.policy import compose_rules, rules
except ImportError:  # in the guard: the package is not importable under -I -S; these files are beside this one
    import compose_rules  # type: ignore[import-not-found,no-redef]
    import rules  # type: ignore[import-not-found,no-redef]

CONFIG_TIMEOUT = 60.0
GLOBAL_VALUES = {"-f", "--file", "-p", "--project-name", "--project-directory", "--env-file", "--profile",
                 "--parallel", "--ansi", "--progress"}  # fmt: skip
GLOBAL_SWITCHES = {"--compatibility", "--dry-run", "--all-resources", "--verbose"}
KEPT_GLOBALS = {"--profile", "--parallel", "--ansi", "--progress", "--compatibility", "--dry-run", "--all-resources"}
# what each command may be given (options with a value, switches); everything else is refused
COMMANDS: dict[str, tuple[set[str], set[str]]] = {
    "up": ({"--pull", "-t", "--timeout", "--wait-timeout", "--scale", "--exit-code-from", "--attach",
            "--no-attach"},
           {"-d", "--detach", "--no-recreate", "--force-recreate", "--remove-orphans", "--no-build", "--build",
            "--no-deps", "--quiet-pull", "--wait", "--always-recreate-deps", "-V", "--renew-anon-volumes",
            "--no-start", "--no-color", "--no-log-prefix", "-y", "--abort-on-container-exit",
            "--abort-on-container-failure", "--timestamps", "--menu"}),
    "create": ({"--pull", "--scale"},
               {"--build", "--no-build", "--force-recreate", "--no-recreate", "--remove-orphans", "--quiet-pull",
                "-y"}),
    "build": ({"--build-arg", "-m", "--memory"},
              {"--no-cache", "--pull", "-q", "--quiet", "--with-dependencies"}),
}  # fmt: skip
CREATING = set(COMMANDS)
# acting on the project's existing containers only
PROJECT_COMMANDS = {"ps", "start", "stop", "restart", "down", "rm", "logs", "kill", "pause", "unpause", "top", "port",
                    "images", "events", "wait", "pull"}  # fmt: skip

# labels the builder uses to know containers; the CLI sets the devcontainer's own in its override file
OWN_LABELS = ("devcontainer-builder.", "devcontainer.")
ID_LABELS = ("devcontainer-builder.workspace", "devcontainer-builder.role", "devcontainer-builder.config")


def parse_globals(args: Sequence[str]) -> tuple[list[tuple[str, str]], str, list[str]] | None:
    """(global options, command, the command's arguments); None when a global option is unknown."""
    found, operands = rules.parse(args, GLOBAL_VALUES, GLOBAL_SWITCHES)
    options = [(name, value) for name, value in found if value is not None]
    if len(options) != len(found):
        return None
    return options, (operands[0] if operands else ""), operands[1:]


def project_of(options: list[tuple[str, str]]) -> str:
    return next((value for name, value in reversed(options) if name in ("-p", "--project-name")), "")


def whole_workspace(policy: Any, model: dict[str, Any]) -> None:
    """The devcontainer templates' `../..:/workspaces` - the workspace's parent, so that the repository is at
    /workspaces/<name> - becomes the workspace itself at that very place: the container sees its repository
    where it expects it, and nothing else of the engine's host (other workspaces, the builder's state)."""
    workspace = os.path.realpath(policy.workspace)
    parent = os.path.dirname(workspace)
    for service in (model.get("services") or {}).values():
        for volume in service.get("volumes") or []:
            bind = isinstance(volume, dict) and volume.get("type") == "bind" and bool(volume.get("target"))
            if bind and os.path.realpath(str(volume.get("source") or "/")) == parent:
                volume["source"] = workspace
                volume["target"] = str(volume["target"]).rstrip("/") + "/" + os.path.basename(workspace)


def swappable_binds(policy: Any, service: dict[str, Any]) -> bool:
    """The service bind-mounts something other than the workspace folder itself: a file or folder inside it,
    which a container (the devcontainer, with the workspace mounted) can replace with a link to `/`. The
    engine follows that link at the next start - so no start may happen that the builder does not check
    first (bringup.check_mounts)."""
    workspace = os.path.realpath(policy.workspace)
    return any(
        isinstance(volume, dict)
        and volume.get("type") == "bind"
        and os.path.realpath(str(volume.get("source") or "")) != workspace
        for volume in service.get("volumes") or []
    )


def no_restarts(policy: Any, model: dict[str, Any]) -> None:
    """The engine does not restart a service with such a bind mount by itself (`restart:`, a restart of
    the engine): keep-alive does, after checking where its mounts lead."""
    for service in (model.get("services") or {}).values():
        if swappable_binds(policy, service):
            service["restart"] = "no"
            ((service.get("deploy") or {}).get("restart_policy") or {}).clear()


def label(policy: Any, model: dict[str, Any]) -> None:
    """Every container of the project carries the workspace's labels; only the devcontainer's service
    keeps the identity the CLI gave it, and no other service can claim the builder's labels."""
    ours = dict(item.partition("=")[::2] for item in policy.labels)
    for name, service in (model.get("services") or {}).items():
        labels = service.get("labels") or {}
        if name == policy.service:
            kept = {k: v for k, v in labels.items() if not k.startswith(OWN_LABELS[0]) or k in ID_LABELS}
        else:
            kept = {key: value for key, value in labels.items() if not key.startswith(OWN_LABELS)}
            kept.update(ours)
        service["labels"] = kept


def render(policy: Any, options: list[tuple[str, str]], env: dict[str, str]) -> dict[str, Any]:
    """The project as compose would run it: the merged, interpolated model of the given files."""
    argv = [policy.docker, "compose", *_argv(options), "config", "--format", "json"]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=CONFIG_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        sys.stderr.write(f"devcontainer-builder: could not read the compose project ({err})\n")
        sys.exit(rules.REFUSED_EXIT)
    if result.returncode != 0:
        sys.stderr.buffer.write(result.stderr)
        sys.exit(result.returncode)
    try:
        model = json.loads(result.stdout)
    except ValueError:
        model = None
    if not isinstance(model, dict):
        sys.stderr.write("devcontainer-builder: compose config printed no project\n")
        sys.exit(rules.REFUSED_EXIT)
    return model


def write_checked(policy: Any, model: dict[str, Any]) -> str:
    """The checked project, where only the builder writes; named by its content."""
    text = json.dumps(model, indent=1, sort_keys=True)
    folder = policy.compose_dir
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{policy.project}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json")
    temporary = f"{path}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
    _prune(folder, policy.project, keep=path)
    return path


def _prune(folder: str, project: str, *, keep: str, count: int = 8) -> None:
    """The newest few checked files of the project stay (each `up` with features writes a new one)."""
    mine = [
        entry
        for entry in os.scandir(folder)
        if entry.name.startswith(f"{project}-") and "-source-" not in entry.name and entry.path != keep
    ]
    mine.sort(key=lambda entry: entry.stat(follow_symlinks=False).st_mtime, reverse=True)
    for entry in mine[count:]:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def substitute(policy: Any, command: str, options: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The global options with the repository's compose files replaced by the builder's snapshot of them
    (compose/snapshot: read once, right after they were checked), the CLI's own override files kept.
    Any other file, an env file or another project directory is refused: compose would read it unchecked."""
    kept: list[tuple[str, str]] = []
    placed = False
    for name, value in options:
        if name in ("-f", "--file"):
            real = os.path.realpath(value)
            if real in policy.sources:
                if not placed:
                    kept.append(("-f", policy.snapshot))
                    placed = True
                continue
            if not any(real.startswith(os.path.realpath(folder).rstrip("/") + "/") for folder in policy.build_dirs):
                refusal = _item(name, value, "a compose file the builder did not check")
                rules.refuse(policy, f"compose {command}", [refusal])
        elif name in ("--env-file", "--project-directory"):
            refusal = _item(name, value, f"{name}, which compose would read unchecked")
            rules.refuse(policy, f"compose {command}", [refusal])
        kept.append((name, value))
    return kept


def _argv(options: list[tuple[str, str]]) -> list[str]:
    argv: list[str] = []
    for name, value in options:
        argv += [name] if name in GLOBAL_SWITCHES else [name, value]
    return argv


def guarded(policy: Any, args: list[str]) -> list[str]:
    """The compose argument list to execute (after `compose`), or a refusal (exits)."""
    parsed = parse_globals(args[1:])
    if parsed is None:
        rules.refuse(policy, "compose", [_item("compose", " ".join(args[1:3]), "an unknown compose option")])
        raise SystemExit(rules.REFUSED_EXIT)  # not reached: refuse exits
    options, command, rest = parsed
    if command in ("version", "ls") or not command:
        return args
    if not policy.snapshot:
        rules.refuse(policy, f"compose {command}", [_item(command, "", "compose, for a config that does not use it")])
    if command == "config":
        if any(arg in ("-o", "--output") or arg.startswith("--output=") for arg in rest):
            rules.refuse(policy, "compose config", [_item("--output", "", "compose config writing a file")])
        return ["compose", *_argv(substitute(policy, command, options)), "config", *rest]
    if command not in CREATING and command not in PROJECT_COMMANDS:
        rules.refuse(policy, f"compose {command}", [_item(command, "", f"compose {command}, which the builder does "
                                                                         "not use and cannot check")])  # fmt: skip
    project = project_of(options)
    if not policy.project or project != policy.project:
        rules.refuse(policy, f"compose {command}", [_item("-p", project or "(none)",
                      f"a compose project other than the workspace's ({policy.project or 'none'})")])  # fmt: skip
    if command not in CREATING:
        return args
    values, switches = COMMANDS[command]
    found, _ = rules.parse(rest, values, switches, interspersed=True)
    unknown = [name for name, value in found if value is None]
    if unknown:
        reason = f"an option of compose {command} the builder does not know how to check"
        rules.refuse(policy, f"compose {command}", [_item(name, "", reason) for name in unknown])
    env = dict(os.environ)
    env.pop(rules.POLICY_VAR, None)
    options = substitute(policy, command, options)
    model = render(policy, options, env)
    whole_workspace(policy, model)
    refused = compose_rules.check_model(policy, model)
    if refused:
        rules.refuse(policy, f"compose {command}", refused)
    label(policy, model)
    no_restarts(policy, model)
    checked = write_checked(policy, model)
    kept = _argv([(name, value) for name, value in options if name in KEPT_GLOBALS])
    return ["compose", "--project-name", policy.project, "-f", checked, *kept, command, *rest]


def _item(option: str, value: str, reason: str) -> dict[str, str]:
    return {"option": option, "value": value, "reason": reason, "setting": ""}
