"""Bringing one container of a workspace up with the devcontainer CLI, and what follows in it: the
builder's setup inside it, stale containers removed, Coder's agent started. Shared by the repository's
devcontainer and the fallback."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable

from devcontainer_builder.coder import agent
from devcontainer_builder.devcontainer_cli import control_manifest, driver, guard
from devcontainer_builder.devcontainer_cli.driver import Outcome
from devcontainer_builder.engine import compose, containers
from devcontainer_builder.engine.containers import Spec
from devcontainer_builder.engine.engine import Labelled, engine_problem
from devcontainer_builder.errors import BuildFailed, Terminated
from devcontainer_builder.ide import start as ide_start
from devcontainer_builder.state.record import AgentInfo, Event, IdeInfo
from devcontainer_builder.system.proc import Pending
from devcontainer_builder.up import decide
from devcontainer_builder.up.context import Run


def workspace_containers(run: Run) -> list[Labelled]:
    """The workspace's containers; an engine that does not answer yet is waited for, within bounds."""
    try:
        return run.engine.workspace_containers(run.settings.workspace_folder)
    except BuildFailed:
        timeout = run.settings.engine_timeout
        started = time.monotonic()
        problem = run.engine.wait_until_reachable(
            timeout,
            lambda why: run.log.warn(f"the container engine does not answer ({why}); waiting up to {timeout} s for it"),
        )
        if problem:
            raise BuildFailed(
                engine_problem(run.settings.docker_path, problem)
                + (
                    f" (waited {timeout} s: DEVCONTAINER_ENGINE_TIMEOUT)"
                    if time.monotonic() - started >= timeout
                    else " (not waited for: waiting does not change a refusal)"
                ),
                step="engine",
            ) from None
        run.log.info("the container engine answers")
        return run.engine.workspace_containers(run.settings.workspace_folder)


def _cache_to(run: Run, wanted: str) -> str:
    """DEVCONTAINER_CACHE_TO when the engine can honour it; else "" (said once, with the reason)."""
    if not wanted:
        return ""
    problem = run.engine.cache_export_problem(wanted)
    if not problem:
        return wanted
    run.log.warn(f"DEVCONTAINER_CACHE_TO ({wanted}) cannot be honoured: {problem}. Building without exporting a cache.")
    run.event(Event.CACHE_TO_IGNORED, reason=problem)
    return ""


def builds_an_image(config: dict[str, object], spec: Spec) -> bool:
    """The config has a Dockerfile or features to build (an image-only config only pulls); for a compose
    config, features or a build of the devcontainer's service (`devcontainer build` builds that one)."""
    if spec.compose_project:
        return bool(config.get("features")) or spec.builds_service
    return bool(config.get("build") or config.get("dockerFile") or config.get("features"))


def prebuild(run: Run, spec: Spec, *, no_cache: bool) -> None:
    """Build the image of a replacement container while the container it replaces keeps running: the
    user goes on working through the long part of a rebuild, and the `up` that then replaces the
    container finds every layer in the cache. A failure here fails the build, as `up`'s would."""
    settings = run.settings
    run.log.info("building the new image first; the current container keeps running until it is ready")
    lockfile = os.path.join(os.path.dirname(spec.config_path), "devcontainer-lock.json")
    args = driver.build_args(
        run.cli,
        workspace=settings.workspace_folder,
        docker_path=run.guard.docker_path,
        compose_path=run.guard.compose_path,
        config=spec.config_path,
        cache_from=() if no_cache else settings.cache_from,
        cache_to="" if no_cache else _cache_to(run, settings.cache_to),
        no_cache=no_cache,
        no_lockfile=spec.override or not os.path.exists(lockfile),
    )
    _run(run, args, contain=False, what="devcontainer build")


def run_cli(
    run: Run,
    spec: Spec,
    *,
    cache: bool,
    remove_existing: bool,
    no_cache: bool = False,
    ahead: Outcome | None = None,
) -> Outcome:
    """`devcontainer up` for one container of the workspace. The builder's setup inside the container
    starts as soon as the CLI reports it started, overlapping the CLI's probes and hooks; so do Coder's
    agent and the editor when `ahead` says where (decide.ahead_of_hooks)."""
    settings = run.settings
    cache_to = _cache_to(run, settings.cache_to) if cache and not no_cache else ""
    lockfile = os.path.join(os.path.dirname(spec.config_path), "devcontainer-lock.json")
    args = driver.up_args(
        run.cli,
        workspace=settings.workspace_folder,
        docker_path=run.guard.docker_path,
        compose_path=run.guard.compose_path,
        id_labels=containers.identity_labels(settings.workspace_folder, spec.role, spec.config_hash),
        config=spec.config_path,
        override=spec.override,
        override_config=spec.override_config,
        cache_from=settings.cache_from if cache and not no_cache else (),
        cache_to=cache_to,
        remove_existing=remove_existing,
        build_no_cache=no_cache,
        # do not add a lockfile the repository does not have; honour one it does have
        no_lockfile=spec.override or not os.path.exists(lockfile),
        # the CLI would remap the remote user to the builder's uid: meaningless for root (uid 0 exists),
        # and it costs an extra image build
        update_remote_user_uid="never" if os.geteuid() == 0 else "",
        remote_env=containers.LIFECYCLE_GIT_ENV,
        dotfiles_repository=settings.dotfiles_repository,
        dotfiles_install_command=settings.dotfiles_install_command,
    )
    early: list[Pending[tuple[str, str] | None]] = []

    def started(step: driver.Step) -> None:
        if step.name == "start container" and step.status == "succeeded" and not early:
            early.append(Pending(_when_started, run, spec, ahead))

    try:
        outcome = _run(run, args, contain=spec.runs_host_code, what="devcontainer up", on_step=started)
    except BaseException as err:
        # each of the thread's steps is bounded (the editor's by its budget); a SIGTERM waits a moment only
        run.configured = _joined(early, TERMINATED_WAIT if isinstance(err, Terminated) else None)
        if isinstance(err, BuildFailed):
            raise blame_service(run, spec, err) from None
        raise
    run.configured = _joined(early, None)
    if spec.compose_project:
        check_services(run, spec, outcome)
    return outcome


TERMINATED_WAIT = 3.0


def _joined(early: list[Pending[tuple[str, str] | None]], wait: float | None) -> tuple[str, str] | None:
    if not early:
        return None
    return early[0].result() if wait is None or early[0].done(wait) else None


def _when_started(run: Run, spec: Spec, ahead: Outcome | None) -> tuple[str, str] | None:
    """In the container the CLI has just started: the builder's setup and, beside it (ahead), the agent
    and then the editor."""
    beside = Pending(_start_ahead, run, ahead) if ahead is not None else None
    try:
        return containers.configure_when_started(run.engine, run.log, run.settings.workspace_folder, spec)
    finally:
        if beside is not None:
            beside.result()


def _start_ahead(run: Run, ahead: Outcome) -> None:
    """An agent that did not start here (not this container after all, no downloader) is started, and its
    failure reported, once the CLI has finished, as it would have been."""
    run.log.info("the container was started again: starting Coder's agent and the editor beside its hooks")
    try:
        start_agent(run, ahead)
    except Exception as err:  # never the CLI's failure's place: the start is done again after it
        run.log.debug(f"the agent's start beside the hooks: {type(err).__name__}: {err}")
        return
    agent_info = run.state.agent
    if run.settings.coder_init_script and (agent_info is None or agent_info.status not in ("started", "running")):
        return
    start_ide(run, ahead)
    run.started_ahead = ahead.container_id


def start_in(run: Run, outcome: Outcome) -> None:
    """Coder's agent, then the editor, in the container now up - unless they started in it already, as
    soon as it was started (run_cli's `ahead`)."""
    if run.started_ahead and run.started_ahead == outcome.container_id:
        return
    start_agent(run, outcome)
    start_ide(run, outcome)


def blame_service(run: Run, spec: Spec, err: BuildFailed) -> BuildFailed:
    """A compose project's failure, naming the service compose's output blames - or saying that this
    engine has no compose at all (asked only now: the CLI asks first on every run)."""
    if not spec.compose_project or err.step == "policy":
        return err
    problem = compose.problem(run.engine)
    if problem:
        return BuildFailed(f"the config uses Docker Compose, but {problem}.", step="config", detail=err.detail)
    service = compose.failing_service(f"{run.tail.text()}\n{err.message}", spec.compose_project, list(spec.services))
    if not service:
        return err
    return BuildFailed(
        f"the compose service {service!r} failed: {err.message}",
        step=err.step,
        detail=err.detail,
        container_id=err.container_id,
    )


def check_services(run: Run, spec: Spec, outcome: Outcome) -> None:
    """Every service of the project the CLI brought up is still running (or finished its job): one that
    exited with a failure fails the build, as a failing build would."""
    run.project_containers = [c for c in workspace_containers(run) if c.project == spec.compose_project]
    failed = compose.exited(run.engine, run.project_containers, just_started=True)
    if not failed:
        return
    first = failed[0]
    names = ", ".join(repr(item.service) for item in failed)
    raise BuildFailed(
        f"the compose service {first.service!r} is failing right after it started ({first.why}); "
        f"its last output:\n{first.logs or '(none)'}\nFix the service (services that stopped: {names}) and rebuild.",
        step="compose service",
        container_id=outcome.container_id,
    )


def check_mounts(run: Run, existing: list[Labelled]) -> None:
    """Containers about to be started again (the CLI starts a stopped devcontainer, compose its project)
    have their bind mounts checked again first: the policy checked them at creation, but a link put in
    place since then would lead the engine elsewhere."""
    stopped = [container.id for container in existing if container.state != "running"]
    refused = guard.escaped_mounts(run.guard, run.engine.docker, stopped)
    if refused is not None:
        raise refused


def remove_containers(run: Run, found: list[Labelled], why: str) -> None:
    """Remove containers of the workspace. A compose project goes as a whole - `compose down`, its
    network with it - and its named volumes stay (a database's data outlives rebuilds and failures)."""
    unfinished: set[str] = set()  # projects `compose down` did not take down: their containers go one by one
    for project in sorted({container.project for container in found if container.project}):
        volumes = compose.volumes(run.engine, project)
        kept = f"; its named volumes are kept ({', '.join(volumes)})" if volumes else ""
        anonymous = compose.anonymous_volumes(run.engine, [c for c in found if c.project == project])
        if anonymous:
            run.log.warn(
                f"{', '.join(anonymous)}: anonymous volumes, whose data the recreated services do not get back (it "
                "stays on the engine, unnamed). Name them in the compose file (volumes: - data:/path) to keep it."
            )
        run.log.info(f"taking the compose project {project} down ({why}){kept}")
        error = compose.down(run.engine, project)
        if error:
            run.log.warn(f"`compose down` of {project} did not finish: {error}; removing its containers one by one")
            unfinished.add(project)
        run.event(Event.COMPOSE_DOWN, project=project, reason=why, volumes_kept=volumes)
    for container in found:
        if not container.project or container.project in unfinished:
            run.engine.remove(container.id)
        run.event(Event.CONTAINER_REMOVED, container_id=container.id, reason=why)


def _run(
    run: Run,
    args: list[str],
    *,
    contain: bool,
    what: str,
    on_step: Callable[[driver.Step], None] = lambda step: None,
) -> Outcome:
    """One run of the devcontainer CLI, its progress recorded as steps; a failure raised as BuildFailed."""
    settings, log = run.settings, run.log

    def step(found: driver.Step) -> None:
        run.step(found.name, found.status, found.seconds)
        on_step(found)

    # else a proxy that never answers holds the CLI for ever; the copy in the state dir outlives a pod's /tmp
    manifest = control_manifest.refresh(log, run.env, run.dirs.file(control_manifest.FILE_NAME))
    run.guard.clear()
    outcome = driver.run_up(
        args,
        env=run.guard.env,
        timeout=settings.build_timeout,
        log=log,
        on_step=step,
        shown_as=(run.guard.docker_path, settings.docker_path),
        contain=contain,
    )
    if manifest != "skipped":
        moved = control_manifest.missing_after_run(run.env) or (
            "the devcontainer CLI fetched containers.dev's control manifest itself although the builder had just "
            "refreshed its cache: this CLI version keeps the cache elsewhere, so a proxy that holds containers.dev "
            "open can hang the build until DEVCONTAINER_BUILD_TIMEOUT. Pin the CLI the builder was tested with."
            if outcome.fetched_manifest
            else ""
        )
        if moved:
            log.warn(moved)
    if outcome.timed_out:
        raise BuildFailed(
            f"the build did not finish within {settings.build_timeout} s (DEVCONTAINER_BUILD_TIMEOUT) and was "
            "stopped; raise the timeout or make the build faster (a layer cache: DEVCONTAINER_CACHE_FROM).",
            step="build timeout",
        )
    if not outcome.ok:
        refused = run.guard.failure()
        if refused is not None:
            raise refused
        detail = "; ".join(part for part in (outcome.description, outcome.message) if part)
        failed = outcome.failed_step or "build"
        for record in reversed(run.state.steps):  # its `stop` event made it look successful
            if record.name == failed and record.status == "succeeded":
                record.status = "failed"
                run.event(Event.STEP, name=failed, status="failed", seconds=record.seconds)
                break
        raise BuildFailed(
            f"{what} failed: {detail or 'no reason given'}. The full output is in {run.dirs.build_log}.",
            step=failed,
            detail=str(outcome.raw),
            container_id=outcome.container_id,
        )
    return outcome


def after_up(run: Run, outcome: Outcome, spec: Spec, *, always_configure: bool) -> None:
    # Under the workspace lock nothing else creates this workspace's containers, so the list taken
    # before the build tells which ones are now stale (a fallback, a leftover duplicate) - unless the
    # last builder was killed mid-run, when what it started may have appeared since: ask again.
    before = run.containers_before
    keep = {outcome.container_id}
    if spec.compose_project:  # the project's services stay: as check_services found them, or found now
        project = run.project_containers or [c for c in workspace_containers(run) if c.project == spec.compose_project]
        keep |= {container.id for container in project}
    if decide.interrupted(run.previous):
        now = run.engine.workspace_containers(run.settings.workspace_folder)
        before = sorted(set(before) | {container.id for container in now})
    for container in decide.stale(before, keep):
        run.log.info(f"removing container {container[:12]}: it is no longer this workspace's container")
        run.engine.remove(container)
        run.event(Event.CONTAINER_REMOVED, container_id=container)
    new_container = outcome.container_id != run.previous.container_id
    if new_container or always_configure:
        folder = outcome.remote_workspace_folder or spec.remote_folder
        if run.configured != (outcome.container_id, folder):
            containers.configure(run.engine, run.log, outcome.container_id, folder, spec.banner)
        containers.own_volumes(run.engine, run.log, outcome.container_id, outcome.remote_user, spec.persist_targets)


def start_agent(run: Run, outcome: Outcome) -> None:
    """Coder's agent, in the running container, when the template gave its init script. An image the
    agent cannot be installed in (no curl, wget or busybox) is a failed build: the fallback has them."""
    settings, log = run.settings, run.log
    if not settings.coder_init_script:
        return
    started = agent.start(
        run.engine.docker,
        run.env,
        container=outcome.container_id,
        user=outcome.remote_user,
        init_script=settings.coder_init_script,
        agent_url=settings.coder_agent_url,
        agent_token=settings.coder_agent_token,
    )
    info = AgentInfo(started.status, started.pid, outcome.remote_user, started.log)
    run.state.agent = info
    who = f"as {outcome.remote_user or 'the image user'} in container {outcome.container_id[:12]}"
    if started.status == "started":
        log.info(f"Coder agent started (pid {started.pid}) {who}; its output: {started.log}")
        run.event(Event.AGENT_STARTED, pid=started.pid, user=outcome.remote_user, log=started.log)
        return
    if started.status == "running":
        log.info(f"Coder agent already running (pid {started.pid}) {who}: not starting another")
        run.event(Event.AGENT_RUNNING, pid=started.pid, user=outcome.remote_user)
        return
    if started.status == "no-downloader":
        raise BuildFailed(
            "the image has none of curl, wget or busybox, which Coder's agent init script needs to download the "
            "agent, so the workspace could not be reached from Coder. Add one to the image (for example "
            "RUN apt-get install -y curl in the Dockerfile, or a feature that installs it).",
            step="agent",
        )
    reason = {
        "exited": "it exited right after starting",
        "busy": "another start is under way in the container",
        "failed": "it could not be started",
    }.get(started.status, started.status)
    info.error = log.redact(started.detail)[-4000:]
    log.error(f"Coder agent not running {who}: {reason}. Its last output:\n{started.detail or '(none)'}")
    run.event(Event.AGENT_FAILED, status=started.status, reason=reason, log=started.log)


def start_ide(run: Run, outcome: Outcome) -> None:
    """The editor (ide/), after the agent so that it never delays it. It never fails the build: every
    problem is a warning, recorded in state.json for the status page."""
    settings, log = run.settings, run.log
    if settings.ide == "none" or not outcome.container_id:
        return
    target = ide_start.Target(
        run.engine,
        outcome.container_id,
        outcome.remote_user,
        outcome.remote_workspace_folder or containers.default_remote_folder(settings.workspace_folder, {}),
    )
    try:
        info = ide_start.start(settings, log, target, run.dirs.file("ide"))
    except Exception as err:  # a bug here costs the editor, never the workspace
        message = err.message if isinstance(err, BuildFailed) else f"{type(err).__name__}: {err}"
        log.debug(traceback.format_exc())
        log.warn(f"no editor: {log.redact(message)}")
        info = IdeInfo(status="failed", kind=settings.ide, error=log.redact(message)[-2000:])
    run.state.ide = info
    if info.status == "started":
        run.event(Event.IDE_STARTED, pid=info.pid, url=info.url, extensions=info.extensions, missing=info.missing)
    elif info.status == "running":
        run.event(Event.IDE_RUNNING, pid=info.pid, url=info.url)
    else:
        run.event(Event.IDE_UNAVAILABLE, status=info.status, error=info.error)
    for missing in info.missing:
        run.event(Event.EXTENSION_MISSING, extension=missing)
