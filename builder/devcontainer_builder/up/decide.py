"""Which of a workspace's containers to reuse, keep, replace or remove: every such rule, in one place.

Plain functions of what the engine reports (the workspace's labelled containers) and what the last
run recorded (state.json), so each rule is tested on its own (tests/unit/test_decide.py).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from devcontainer_builder.devcontainer_cli.driver import Outcome
from devcontainer_builder.engine.containers import ROLE_DEVCONTAINER, ROLE_FALLBACK, ROLE_SERVICE
from devcontainer_builder.engine.engine import Labelled
from devcontainer_builder.state.record import State, Status

# hooks that run again in a container already in use (after a restart, on every attach)
LATE_HOOKS = ("postStartCommand", "postAttachCommand")


@dataclass(frozen=True)
class Plan:
    """What to do before (or instead of) running `devcontainer up` for the repository's config."""

    reuse: Labelled | None = None  # up to date and running: no CLI run at all
    remove: list[tuple[Labelled, str]] = field(default_factory=list)  # (container, why) to remove first
    remove_existing: bool = False  # --remove-existing-container: recreate so create hooks run again
    reason: str = ""  # why remove_existing, for the log


def interrupted(previous: State) -> bool:
    """The last run stopped while building (killed outright): nothing it brought up can be trusted. Only
    meaningful under the workspace lock, when no other build can be in progress."""
    return previous.status == Status.BUILDING


def up_to_date(existing: list[Labelled], previous: State, config_hash: str) -> Labelled | None:
    """The container `devcontainer up` would find and leave as it is, if there is one: this workspace's
    only container (besides the other services of its compose project, all running with the same
    config), running, brought up by the last successful run, with the current config hash and no
    postAttachCommand (from the config, the image or a feature). On such a container the CLI would only
    inspect and probe."""
    primary = [container for container in existing if container.role != ROLE_SERVICE]
    if len(primary) != 1 or previous.status != Status.RUNNING or not previous.remote_user:
        return None
    container = primary[0]
    unchanged = (
        container.id == previous.container_id
        and container.role == ROLE_DEVCONTAINER
        and container.config_hash == config_hash
        and container.state == "running"
        and not container.has_post_attach
        and all(
            other.config_hash == config_hash and other.state == "running" and other.project == container.project
            for other in existing
            if other.role == ROLE_SERVICE
        )
    )
    return container if unchanged else None


def stopped_services(existing: list[Labelled], project: str) -> list[Labelled]:
    """Other services of the devcontainer's compose project that are not running while the devcontainer
    is: the CLI leaves a running devcontainer's project alone, so the builder starts them."""
    primary = [c for c in existing if c.role == ROLE_DEVCONTAINER and c.project == project and c.state == "running"]
    if not project or not primary:
        return []
    return [c for c in existing if c.role == ROLE_SERVICE and c.project == project and c.state != "running"]


def plan_up(existing: list[Labelled], previous: State, config_hash: str, *, rebuild: bool) -> Plan:
    stale = interrupted(previous)
    if not rebuild and not stale:
        current = up_to_date(existing, previous, config_hash)
        if current:
            return Plan(reuse=current)
    remove = [
        (container, "config changed")
        for container in existing
        if container.role in (ROLE_DEVCONTAINER, ROLE_SERVICE) and container.config_hash != config_hash
    ]
    if rebuild:
        return Plan(remove=remove, remove_existing=True, reason="a rebuild was asked for")
    if stale:
        return Plan(
            remove=remove,
            remove_existing=True,
            reason="the last build was interrupted: its container may have skipped lifecycle commands",
        )
    if previous.status == Status.FAILED and previous.failed_container_id:
        # a failed lifecycle command leaves its container; a plain `up` would reuse it and skip the command
        return Plan(remove=remove, remove_existing=True, reason="its lifecycle command failed last time")
    return Plan(remove=remove)


def previous_container(existing: list[Labelled], previous: State) -> Labelled | None:
    """The container the last run recorded, if the workspace still has it."""
    return next((container for container in existing if container.id == previous.container_id), None)


def wait_for(metadata: str) -> str:
    """The waitFor of a container's merged config, from its devcontainer.metadata label: the last entry
    that sets it wins, as in the CLI's own merge; "" when none does (the spec's default then applies:
    updateContentCommand)."""
    entries = None
    if len(metadata) <= MAX_METADATA:
        with contextlib.suppress(ValueError, RecursionError):  # a base image's label, nested deep on purpose
            entries = json.loads(metadata) if metadata else []
    if not isinstance(entries, list):
        return "unreadable"  # read as a wait for every hook: nothing starts ahead of them
    # the CLI's merge skips an empty one too
    found = [entry["waitFor"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("waitFor"), str)]
    return next((value for value in reversed(found) if value), "")


MAX_METADATA = 256 * 1024


def ahead_of_hooks(container: Labelled | None, previous: State, role: str, config_hash: str) -> Outcome | None:
    """Where Coder's agent and the editor may start as soon as the engine has started `container` again -
    beside the CLI's environment probe and its postStart and postAttach hooks, not after them - or None.

    Only the container the last run brought up and set up (its user and folder are known), stopped since,
    and started again as it is: its create hooks ran long ago, and the spec has tools connect once
    updateContentCommand is done (waitFor's default), which a restart does not run again. A config whose
    waitFor names postStartCommand or postAttachCommand keeps the agent waiting for the whole `up`. Not for
    a compose project's devcontainer: `compose up` starts it, and the CLI reports no start of its own.
    role, config_hash: the container the CLI is to start (another one - the fallback of the last run, say -
    is replaced, not started)."""
    if (
        container is None
        or container.id != previous.container_id
        or (container.role, container.config_hash) != (role, config_hash)
        or container.role not in (ROLE_DEVCONTAINER, ROLE_FALLBACK)
        or container.project
        or container.state == "running"
        or previous.status not in (Status.RUNNING, Status.DEGRADED)
        or not previous.remote_user
        or not previous.remote_workspace_folder
        or wait_for(container.metadata) in (*LATE_HOOKS, "unreadable")
    ):
        return None
    return Outcome(
        "success",
        container_id=container.id,
        remote_user=previous.remote_user,
        remote_workspace_folder=previous.remote_workspace_folder,
    )


def prebuild_first(existing: list[Labelled], plan: Plan, runs_host_code: bool) -> bool:
    """Build the new image before the running container it replaces goes, so the user keeps a container
    for the length of the build - unless an initializeCommand must run first (only `up` runs it)."""
    replaced = [container for container, _ in plan.remove]
    if plan.remove_existing:
        replaced += [container for container in existing if container.role == ROLE_DEVCONTAINER]
    return not runs_host_code and any(container.state == "running" for container in replaced)


def keep_despite_late_hook(step: str, container: str, previous: State) -> bool:
    """The container the last successful run brought up, now with a failing postStart or postAttach
    command: it was built and set up, and the user has been working in it. Replacing it with the
    fallback would throw away everything done outside the workspace folder, so it stays (and the failure
    is reported)."""
    return (
        step in LATE_HOOKS
        and bool(container)
        and container == previous.container_id
        and previous.status == Status.RUNNING
        and bool(previous.remote_user)
    )


def stale(before: list[str], keep: set[str]) -> list[str]:
    """After a successful run, every other container of the workspace is stale (a fallback, a leftover):
    all but the one now running and the other services of its compose project."""
    return [container for container in before if container not in keep]


def before_fallback(existing: list[Labelled]) -> list[Labelled]:
    """The repository's containers go before the fallback comes up (a failed postCreate leaves one; a
    failed compose project, its services)."""
    return [container for container in existing if container.role in (ROLE_DEVCONTAINER, ROLE_SERVICE)]
