"""Keep-alive's restart: the workspace's container stopped or died and comes back the way a workspace
start brings back a stopped container - started by the devcontainer CLI, so postStart and postAttach run
- with Coder's agent started in it.

Nothing else moves. The repository is not updated, its config is not read, no image is built, and what
the last build recorded (the config hash, the rebuild-suggestion baseline, the status) stays as it was:
a config the user is editing can neither break the restart nor turn it into a rebuild. The CLI is given
a config of the builder's own that names only the container's image and folder; for a container it
finds by its labels, the CLI takes the lifecycle commands from the container's own metadata label (as
they were when it was created), so the repository's current files play no part and no
`initializeCommand` runs on the builder's side.

A container that was removed cannot be restarted: the caller runs the whole of `up` instead.
"""

from __future__ import annotations

import dataclasses

from devcontainer_builder.devcontainer_cli import guard
from devcontainer_builder.devcontainer_cli.driver import Outcome
from devcontainer_builder.engine import compose, containers
from devcontainer_builder.engine.containers import ROLE_FALLBACK, Spec
from devcontainer_builder.errors import EXIT_NOT_RUNNING, EXIT_RUNNING, BuildFailed
from devcontainer_builder.state.record import ERROR_LOG, AgentInfo, Event, State
from devcontainer_builder.up import additions, bringup, decide, recovery
from devcontainer_builder.up.context import Run


def restart(run: Run) -> int | None:
    """The exit code; None when there is no container to restart (the caller builds one)."""
    previous, log = run.previous, run.log
    existing = bringup.workspace_containers(run)
    container = decide.previous_container(existing, previous)
    if container is None or decide.interrupted(previous) or not previous.remote_workspace_folder:
        log.info("keep-alive: the workspace's container is gone: bringing the workspace up as a start would")
        return None
    if guard.escaped_mounts(run.guard, run.engine.docker, [c.id for c in existing if c.state != "running"]):
        log.warn("keep-alive: a bind mount now leads outside the workspace: bringing the workspace up as a start would")
        return None  # whose own check refuses it and brings up the fallback
    run.event(Event.BUILD_STARTED, trigger=run.state.trigger, build_id=run.state.build_id, restart=True)
    log.info(f"keep-alive: starting container {container.id[:12]} again (no rebuild, no repository update)")
    if container.project:
        # every service of the project, in compose's order; then the CLI runs the devcontainer's hooks
        error = compose.start(run.engine, container.project)
        if error:
            log.warn(f"keep-alive: compose could not start every service of {container.project}: {error}")
        run.event(Event.COMPOSE_STARTED, project=container.project, error=error)
    path = run.dirs.file("generated/restart/devcontainer.json")
    folder = previous.remote_workspace_folder
    data = {"image": _image(run, container.id), "workspaceFolder": folder}
    recovery.write_config(path, data)
    spec = Spec(
        role=container.role,
        config_path=path,
        override=True,
        config_hash=container.config_hash,  # the identity labels it was created with: the CLI finds it
        remote_folder=previous.remote_workspace_folder,
        banner=containers.banner_script(previous.remote_workspace_folder, ERROR_LOG)
        if container.role == ROLE_FALLBACK
        else "",
    )
    spec = additions.apply(run, spec, data, additions.for_config(run, data))
    try:
        outcome = bringup.run_cli(
            run,
            spec,
            cache=False,
            remove_existing=False,
            ahead=decide.ahead_of_hooks(container, previous, container.role, container.config_hash),
        )
    except BuildFailed as err:
        late = err.step in decide.LATE_HOOKS and err.container_id == container.id
        if not (late or run.started_ahead == container.id):
            return not_restarted(run, err)
        message = log.redact(err.message)
        log.warn(f"keep-alive: {err.step} failed in the restarted container; it keeps running. {message}")
        run.event(Event.HOOK_FAILED, step=err.step, container_id=container.id, message=message)
        outcome = Outcome("success", container_id=container.id)
    outcome.remote_user = outcome.remote_user or previous.remote_user
    outcome.remote_workspace_folder = previous.remote_workspace_folder
    try:
        bringup.start_in(run, outcome)
    except BuildFailed as err:  # no downloader: nothing a restart changes
        return not_restarted(run, err)
    agent = run.state.agent
    run.dirs.update_state(lambda state: _restarted(state, agent, run))
    run.event(Event.CONTAINER_RUNNING, container_id=container.id, restarted=True, duration_seconds=run.seconds())
    log.info(f"keep-alive: container {container.id[:12]} is running again ({run.seconds():.1f} s)")
    return EXIT_RUNNING


def _image(run: Run, container: str) -> str:
    found = run.engine.inspect_format(container, "{{.Config.Image}}")
    return found or run.settings.fallback_image  # not pulled: the CLI finds the container by its labels


def _restarted(state: State, agent: AgentInfo | None, run: Run) -> State:
    return dataclasses.replace(
        state,
        agent=agent or state.agent,
        ide=run.state.ide or state.ide,
        pid=run.state.pid,
        build_log=run.dirs.build_log,
    )


def not_restarted(run: Run, err: BuildFailed) -> int:
    message = run.log.redact(err.message)
    run.log.error(f"keep-alive: the container could not be started again: {message}")
    run.event(Event.BUILD_FAILED, step=err.step, message=message, restart=True)
    return EXIT_NOT_RUNNING
