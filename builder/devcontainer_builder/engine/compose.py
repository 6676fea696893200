"""A workspace's Docker Compose project, around what the devcontainer CLI does with it.

One project per workspace, named from the workspace's path (project_name): the CLI takes it from
COMPOSE_PROJECT_NAME, the guard refuses any other, so a repository's `.env` or `name:` cannot move the
workspace onto another project. The builder itself takes projects down (a changed config, a rebuild,
a failure - named volumes are always kept), starts services that stopped, and tells which service a
failure belongs to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from devcontainer_builder.engine.engine import LABEL_PROJECT, Engine, Labelled
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.policy import compose_rules
from devcontainer_builder.system import files, proc
from devcontainer_builder.system.proc import last_line

DOWN_TIMEOUT = 10  # seconds each container gets to stop before it is killed


def project_name(workspace: str) -> str:
    """Lower-case letters, digits, - and _, as compose wants; unique per workspace path."""
    base = re.sub(r"[^a-z0-9_-]", "", os.path.basename(workspace.rstrip("/")).lower())[:40].lstrip("-_")
    return f"{base or 'workspace'}-{hashlib.sha256(workspace.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def snapshot(engine: Engine, paths: list[str], project: str, folder: str) -> str:
    """The project as the repository's compose files describe it, read once - right after config.py
    checked what they read - and written where only the builder writes: from here on compose reads this
    file instead of the repository's (compose_guard.py), so a file changed in the workspace meanwhile
    (by a hook of the running devcontainer, say) changes nothing. Profiles all included and kept."""
    argv = ["compose", *(arg for path in paths for arg in ("-f", path)), "--profile", "*", "config", "--format", "json"]
    result = proc.run([engine.docker, *argv], timeout=60.0, env={**engine.env, "COMPOSE_PROJECT_NAME": project})
    model = _json(result.stdout) if result.ok else None
    if model is None:
        missing = problem(engine)
        why = last_line(result.stderr) or ("it timed out" if result.timed_out else f"exit code {result.returncode}")
        raise BuildFailed(
            f"the config uses Docker Compose, but {missing}."
            if missing
            else f"compose cannot read the project's files: {why}",
            step="config",
            detail=result.stderr,
        )
    own_image_names(model, project)
    text = json.dumps(model, indent=1, sort_keys=True)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{project}-source-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json")
    files.write_atomic(path, text, sync=False, mode=0o600)
    return path


def _json(text: str) -> dict[str, Any] | None:
    try:
        model = json.loads(text)
    except ValueError:
        return None
    return model if isinstance(model, dict) else None


def own_image_names(model: dict[str, Any], project: str) -> None:
    """Every image the project builds is named PROJECT-SERVICE, whatever `image:` says: `build` with
    `image: <any tag>` would replace that image on the engine - the fallback, a base image, another
    workspace's. Services that run a built image by its old name get the new one."""
    services = model.get("services") or {}
    renamed: dict[str, str] = {}
    for name, service in services.items():
        if isinstance(service, dict) and service.get("build") is not None:
            if service.get("image"):
                renamed[str(service["image"])] = compose_rules.image_name(project, str(name))
            service["image"] = compose_rules.image_name(project, str(name))
    for service in services.values():
        if isinstance(service, dict) and service.get("build") is None and service.get("image") in renamed:
            service["image"] = renamed[service["image"]]


def problem(engine: Engine) -> str:
    """Why this engine cannot run a compose project, or ""."""
    result = engine._run(["compose", "version"], timeout=30.0)
    if result.ok:
        return ""
    why = last_line(result.stderr) or f"exit code {result.returncode}"
    if os.path.basename(engine.docker).startswith("podman"):
        return (
            f"Docker Compose configs are not supported with Podman here: `podman compose` does not work ({why}). "
            "It needs Podman 4.7 or later with a compose provider; or use an image or Dockerfile config"
        )
    return (
        f"Docker Compose v2 is not available (`{os.path.basename(engine.docker)} compose version` failed: {why}); "
        "install the docker-compose plugin (Debian trixie: the docker-compose package; the builder image ships it)"
    )


def down(engine: Engine, project: str) -> str:
    """Take the project down - containers and networks; named volumes stay. Returns compose's error, or ""."""
    result = engine.compose(project, ["down", "--remove-orphans", "--timeout", str(DOWN_TIMEOUT)])
    return "" if result.ok else last_line(result.stderr)


def volumes(engine: Engine, project: str) -> list[str]:
    """The project's named volumes (compose labels them with the project)."""
    result = engine._run(["volume", "ls", "--quiet", "--filter", f"label={LABEL_PROJECT}={project}"])
    return sorted(result.stdout.split()) if result.ok else []


ANONYMOUS = re.compile(r"[0-9a-f]{64}")


def anonymous_volumes(engine: Engine, containers: list[Labelled]) -> list[str]:
    """`service:/path` of each anonymous volume (an image's VOLUME, a `- /path` without a name) of the
    containers: `compose down` and a new container lose track of them - their data is not carried over."""
    found = []
    template = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{.Destination}}\n{{end}}{{end}}'
    for container in containers:
        for line in engine.inspect_format(container.id, template).splitlines():
            name, _, destination = line.partition(" ")
            if ANONYMOUS.fullmatch(name):
                found.append(f"{container.service or container.id[:12]}:{destination}")
    return found


def start(engine: Engine, project: str) -> str:
    """Start the project's stopped services. Returns compose's error, or ""."""
    result = engine.compose(project, ["start"])
    return "" if result.ok else last_line(result.stderr)


@dataclass(frozen=True)
class Exited:
    service: str
    container: str
    why: str  # exit code 4; exit code 1, restarted 3 times; unhealthy
    logs: str


# one line per container: its id, how often the engine restarted it, its State as JSON (a template that
# names State.Health fails when docker inspect is given several containers and one has no health check)
FAILING = "{{.Id}}\t{{.RestartCount}}\t{{json .State}}"


def exited(engine: Engine, containers: list[Labelled], *, just_started: bool) -> list[Exited]:
    """Services of the project that are failing: stopped with a non-zero code, or restarting. Right after
    `up` (`just_started`) also those the engine already restarted (a crash loop caught between two
    restarts is still one) and the unhealthy. A one-shot service that exited 0 and one that was never
    started (left out of `runServices`) are fine."""
    found: list[Exited] = []
    if not containers:
        return found
    answer = engine._run(["inspect", "--type", "container", "--format", FAILING, *(c.id for c in containers)])
    states: dict[str, tuple[str, dict[str, Any]]] = {}
    for line in answer.stdout.splitlines():
        full_id, restarts, text = [*line.split("\t", 2), "", ""][:3]
        state = _json(text)
        if state is not None:
            states[full_id] = (restarts, state)
    for container in containers:
        found_state = next((value for key, value in states.items() if key.startswith(container.id)), None)
        if found_state is None:
            continue  # gone meanwhile
        restarts, state = found_state
        status, code = str(state.get("Status", "")), str(state.get("ExitCode", ""))
        restarted = restarts not in ("", "0")
        unhealthy = (state.get("Health") or {}).get("Status") == "unhealthy"
        crashed = bool(state.get("Restarting")) or (just_started and (restarted or unhealthy))
        if status == "created" or (not crashed and (status == "running" or code == "0")):
            continue
        why = "unhealthy" if unhealthy else f"exit code {code}" + (f", restarted {restarts} times" if restarted else "")
        found.append(Exited(container.service, container.id, why, engine.logs_tail(container.id)))
    return found


# compose's words for a failing service, in its plain (non-terminal) progress output
_PATTERNS = (
    re.compile(r"Service '(?P<service>[^']+)' failed to build"),
    re.compile(r"target (?P<service>[\w.-]+): failed to solve"),
    re.compile(r"(?:^|[\]\s])[✘x]?\s*(?P<service>[\w.-]+) +Error\b"),  # " db Error pull access denied"
    re.compile(r"Container (?P<container>[\w.-]+)\s+Error\b"),
    re.compile(r"container (?P<container>[\w.-]+) (exited|is unhealthy)"),
    re.compile(r"\[(?P<service>[\w.-]+) (?:[\w.-]+ )?\d+/\d+\]"),  # a BuildKit step: [app stage 2/3]
    re.compile(r"compose .*\bbuild (?P<service>[\w.-]+)\.?$"),  # the CLI's "Command failed: ... build app"
)


def failing_service(text: str, project: str, services: list[str]) -> str:
    """The service compose's output blames for a failure (the last one it names after the last compose
    command started, so that a build that went well is not blamed for the `up` after it), or ""."""
    lines = text.splitlines()
    started = [index for index, line in enumerate(lines) if "Run: " in line and " compose " in line]
    for line in reversed(lines[started[-1] if started else 0 :]):
        for pattern in _PATTERNS:
            match = pattern.search(line)
            if not match:
                continue
            groups = match.groupdict()
            name = groups.get("service") or _service_of(groups.get("container") or "", project, services)
            if name in services:
                return name
    return ""


def _service_of(container: str, project: str, services: list[str]) -> str:
    """compose names containers PROJECT-SERVICE-N (PROJECT_SERVICE_N before 2.8)."""
    for separator in ("-", "_"):
        prefix = project + separator
        if container.startswith(prefix):
            service = container[len(prefix) :].rpartition(separator)[0]
            if service in services:
                return service
    return ""
