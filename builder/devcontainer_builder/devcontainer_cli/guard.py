"""Putting the admin's policy (policy/rules.py) between the devcontainer CLI and the engine, and reading back
what it refused."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devcontainer_builder.devcontainer_cli.control_manifest import cli_folder
from devcontainer_builder.engine.compose import project_name
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.policy import rules
from devcontainer_builder.system import proc

SHIM = os.path.join(os.path.dirname(os.path.abspath(rules.__file__)), "docker-guard")
COMPOSE_SHIM = os.path.join(os.path.dirname(SHIM), "docker-compose-guard")
PYTHON_VAR = "DEVCONTAINER_BUILDER_PYTHON"
ENGINE_VAR = "DEVCONTAINER_BUILDER_ENGINE"


@dataclass(frozen=True)
class Guard:
    docker_path: str  # what the CLI gets as --docker-path
    env: dict[str, str]  # the CLI's environment, with the policy in it
    report: str
    compose_path: str = COMPOSE_SHIM  # what the CLI gets as --docker-compose-path

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.report)

    def refusals(self) -> list[dict[str, Any]]:
        try:
            with open(self.report, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return []
        found = []
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and item not in found:
                found.append(item)
        return found

    def failure(self) -> BuildFailed | None:
        """The refusal, as the failure to report, when the policy refused something during the last run."""
        found = self.refusals()
        if not found:
            return None
        return refused([f"{item.get('reason', '')} ({item.get('option', '')})" for item in found],
                       [str(item.get("setting", "")) for item in found])  # fmt: skip


def refused(reasons: list[str], settings: list[str]) -> BuildFailed:
    wanted = sorted({setting for setting in settings if setting})
    fix = (
        f" If the admin wants to allow it, the template sets {', '.join(wanted)}."
        if wanted
        else " The builder cannot allow it."
    )
    return BuildFailed(
        "the devcontainer asks for more than the workspace's policy allows: "
        + "; ".join(reasons)
        + ". A repository cannot grant itself access to the host or extra privileges; remove it from the config"
        " (runArgs, mounts, capAdd, privileged, securityOpt, build options, or a feature that asks for it)." + fix,
        step="policy",
    )


@dataclass(frozen=True)
class Allowed:
    """What the admin's settings let a devcontainer ask for (DEVCONTAINER_ALLOWED_*, the network, the
    supervisor's port), for the workspace in `workspace_folder`."""

    workspace_folder: str
    docker_path: str  # DEVCONTAINER_DOCKER_PATH or the engine chosen
    mounts: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    privileges: tuple[str, ...] = ()
    reserved_port: int = 0  # the supervisor's: no container may publish it
    network: str = ""


def setup(
    allowed: Allowed, env: Mapping[str, str], report: str, *, cache_to: str, force_rm: bool, kind: str = "docker"
) -> Guard:
    """The CLI's --docker-path and environment, so that each `run`/`create`/`build` is checked first. kind is
    the engine's (docker or podman, engine/detect.py)."""
    engine = shutil.which(allowed.docker_path, path=env.get("PATH", os.defpath)) or allowed.docker_path
    build_dirs = tuple(folder for folder in [cli_folder(env)] if folder)
    policy = rules.Policy(
        workspace=os.path.realpath(allowed.workspace_folder),
        mounts=allowed.mounts,
        capabilities=allowed.capabilities,
        privileges=tuple(p for p in allowed.privileges if p != "initialize-command"),
        build_dirs=build_dirs,
        cache_to=cache_to,
        engine=kind,
        rootful=kind == "podman" and os.geteuid() == 0 and not env.get("CONTAINER_HOST"),
        docker=engine,
        report=report,
        force_rm=force_rm,
        compose_dir=os.path.join(os.path.dirname(report), "compose"),
        reserved_ports=(str(allowed.reserved_port),),
        network=allowed.network,
        owner=project_name(allowed.workspace_folder),
    )
    guarded = dict(env)
    guarded[rules.POLICY_VAR] = policy.to_text()
    guarded[PYTHON_VAR] = sys.executable
    guarded[ENGINE_VAR] = engine
    return Guard(SHIM, guarded, report)


def for_compose(
    guard: Guard,
    *,
    project: str,
    service: str,
    labels: Mapping[str, str],
    sources: Sequence[str] = (),
    snapshot: str = "",
) -> Guard:
    """The guard for a compose config: compose may act on the workspace's project only, whose name the
    CLI takes from COMPOSE_PROJECT_NAME (before a repository's .env or `name:`); every container of it
    gets `labels`; and compose reads `snapshot` wherever the CLI names the repository's files (`sources`)."""
    policy = rules.Policy.from_text(guard.env[rules.POLICY_VAR])
    policy.project, policy.service = project, service
    policy.labels = tuple(f"{key}={value}" for key, value in labels.items())
    policy.sources, policy.snapshot = tuple(os.path.realpath(path) for path in sources), snapshot
    env = dict(guard.env)
    env[rules.POLICY_VAR] = policy.to_text()
    env["COMPOSE_PROJECT_NAME"] = project
    return Guard(guard.docker_path, env, guard.report, guard.compose_path)


def escaped_mounts(guard: Guard, engine_docker: str, containers: Sequence[str]) -> BuildFailed | None:
    """The bind mounts of existing containers, checked again before the engine starts them: a container
    with the workspace mounted can replace a bind-mounted file or folder inside it with a link to `/`, and
    the engine follows the link at every start. A refusal when one now leads outside what the policy allows."""
    if not containers:
        return None
    policy = rules.Policy.from_text(guard.env[rules.POLICY_VAR])
    result = proc.run(
        [engine_docker, "inspect", "--type", "container", "--format", "{{.Id}}\t{{json .Mounts}}", *containers],
        timeout=60.0,
        env={k: v for k, v in guard.env.items() if k != rules.POLICY_VAR},
    )
    refusals = rules.Refusals(policy)
    for line in result.stdout.splitlines():
        container, _, text = line.partition("\t")
        try:
            mounts = json.loads(text)
        except ValueError:
            continue
        for mount in mounts if isinstance(mounts, list) else []:
            if isinstance(mount, dict) and mount.get("Type") == "bind":
                refusals.host_path(f"container {container[:12]}", str(mount.get("Source") or ""), "a bind mount of",
                                   mountable=True)  # fmt: skip
    if not refusals.found:
        return None
    failure = refused([f"{item['reason']} ({item['option']})" for item in refusals.found],
                      [item["setting"] for item in refusals.found])  # fmt: skip
    failure.message = (
        "a bind mount of an existing container now leads outside the workspace (something in the container "
        "replaced its source with a link since it was created), so it is not started again: " + failure.message
    )
    return failure
