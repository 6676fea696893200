"""`devcontainer-builder up`: prepare the repository -> resolve its config -> bring the devcontainer up ->
start Coder's agent in it; and when any of that fails, recover onto the fallback image.

Everything runs under the workspace lock, so a second `up` for the same workspace waits and then finds
the first one's container. What a killed builder left running is stopped first. Which container to
reuse, keep or replace is decided in decide.py; how one container is brought up, in bringup.py;
the fallback, in recovery.py.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import traceback
from collections.abc import Mapping

from devcontainer_builder.devcontainer_cli import guard
from devcontainer_builder.devcontainer_cli.driver import Outcome
from devcontainer_builder.engine import compose, containers, detect
from devcontainer_builder.engine.containers import ROLE_DEVCONTAINER, ROLE_SERVICE, Spec
from devcontainer_builder.engine.engine import LABEL_LOCAL_FOLDER, Engine, Labelled
from devcontainer_builder.errors import EXIT_NOT_RUNNING, EXIT_RUNNING, BuildFailed, InputError, Terminated
from devcontainer_builder.log import Log
from devcontainer_builder.settings import limits
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import ERROR_LOG, KEEPALIVE, Event, State, Status
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.system import environment, reaper
from devcontainer_builder.system.lock import workspace_lock
from devcontainer_builder.system.proc import Pending
from devcontainer_builder.up import additions, bringup, decide, initialize, recovery, restart
from devcontainer_builder.up.context import Run, initial_state
from devcontainer_builder.workspace import checkout, config, fingerprint, git, layout


def preflight(settings: Settings, environ: Mapping[str, str]) -> str:
    """Tools the builder needs; returns the devcontainer CLI's path. settings.docker_path is the chosen
    engine's (choose_engine)."""
    problems = []
    path = environ.get("PATH", os.defpath)
    cli = shutil.which("devcontainer", path=path)
    if not cli:
        problems.append(
            "the devcontainer CLI is not on PATH; install it with `npm install -g @devcontainers/cli@0.89.0` "
            "(the builder image ships it)."
        )
    if not shutil.which("git", path=path):
        problems.append("git is not installed or not on PATH; install git.")
    if not shutil.which(settings.docker_path, path=path):
        problems.append(
            f"the container engine CLI {settings.docker_path!r} was not found; install Docker or Podman, or set "
            "DEVCONTAINER_DOCKER_PATH to the one that is installed."
        )
    if settings.repository.kind in ("ssh", "scp") and not shutil.which("ssh", path=path):
        problems.append(f"{settings.repository} is an ssh URL but ssh is not installed; install openssh-client.")
    if problems:
        raise InputError(problems)
    return cli or ""


def open_state_dir(settings: Settings, log: Log) -> StateDir:
    """The state dir, created. A folder the builder may not write is bad input (exit 2); a full disk is
    not: the build goes on and says where its state could not be written."""

    def unwritable(path: str, err: OSError) -> None:
        lost = "its log is on the terminal" if path == dirs.build_log else "the workspace's state is not recorded"
        log.warn(f"cannot write {path} ({err.strerror}); the build goes on, {lost}")

    dirs = StateDir(settings.state_dir, on_error=unwritable)
    try:
        dirs.ensure()
        # a unique name: two builders starting together must not remove each other's probe
        with tempfile.NamedTemporaryFile(dir=dirs.path, prefix=".write-test-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        if err.errno == 28 and os.path.isdir(dirs.path):  # ENOSPC: full, but there
            unwritable(dirs.path, err)
            return dirs
        raise InputError(
            [
                f"the state dir {settings.state_dir} cannot be written ({err.strerror}); set DEVCONTAINER_STATE_DIR "
                "to a folder the builder may write (it keeps state.json, events and build logs there)."
            ]
        ) from None
    return dirs


def choose_engine(settings: Settings, environ: Mapping[str, str], dirs: StateDir) -> tuple[Settings, detect.Choice]:
    """The engine for this run (engine/detect.py), with settings.docker_path set to its CLI."""
    choice = detect.choose_as_before(settings.docker_path, environ, dirs.read_state())
    return dataclasses.replace(settings, docker_path=choice.path), choice


def allowed(settings: Settings) -> guard.Allowed:
    """What the admin's settings let the repository's devcontainer ask for, as the guard enforces it."""
    return guard.Allowed(
        workspace_folder=settings.workspace_folder,
        docker_path=settings.docker_path,
        mounts=settings.allowed_mounts,
        capabilities=settings.allowed_capabilities,
        privileges=settings.allowed_privileges,
        reserved_port=settings.serve_address[1],
        network=settings.network,
    )


def claim_folder(settings: Settings) -> None:
    """A folder that already holds files but no clone of the repository is someone's: a typo in
    DEVCONTAINER_WORKSPACE_FOLDER must not hand it to the devcontainer (exit 2, before anything is written)."""
    why = checkout.unclaimed(settings.workspace_folder, settings.repository, (ERROR_LOG,))
    if why and not settings.use_existing_folder and not _cloned_before(settings):
        raise InputError(
            [
                f"DEVCONTAINER_WORKSPACE_FOLDER {settings.workspace_folder} already exists and is not a clone of "
                f"{settings.repository}: {why}. The builder does not mount a folder it did not clone into the "
                "devcontainer, read-write. Point DEVCONTAINER_WORKSPACE_FOLDER at a new or empty folder, or set "
                "DEVCONTAINER_USE_EXISTING_FOLDER=true to use these files as they are."
            ]
        )


def _cloned_before(settings: Settings) -> bool:
    """The folder is the workspace's own clone, which its user changed since (another origin, say): the
    last run recorded a checkout of the repository there. The update then leaves it as it is."""
    previous = StateDir(settings.state_dir).read_state()
    return (
        bool(previous.commit)
        and previous.workspace_folder == settings.workspace_folder
        and checkout.same_remote(previous.repository, settings.repository.url)
    )


def up(settings: Settings, environ: Mapping[str, str], log: Log, *, trigger: str = "start", build_id: str = "") -> int:
    claim_folder(settings)
    dirs = open_state_dir(settings, log)
    settings, choice = choose_engine(settings, environ, dirs)
    cli = preflight(settings, environ)
    timeout = limits.lock_timeout(settings)
    with workspace_lock(
        dirs.lock_file,
        timeout,
        lambda holder: log.info(
            f"another devcontainer-builder (pid {holder}) is working on this workspace; waiting for it "
            f"(at most {timeout:.0f} s)"
        ),
    ):
        stopped = reaper.stop_dead_runs(settings.workspace_folder)
        env = environment.for_engine(environ, settings.workspace_folder)
        engine = Engine(settings.docker_path, env, choice.kind)
        previous = dirs.read_state()
        settings = once(settings, previous, log)
        dirs.compact_events()
        cache_to = settings.cache_to
        run = Run(
            settings=settings,
            environ=environ,
            log=log,
            dirs=dirs,
            engine=engine,
            cli=cli,
            env=env,
            guard=guard.setup(
                allowed(settings),
                env,
                dirs.file("policy-refusals.jsonl"),
                cache_to=cache_to,
                force_rm=True,
                kind=choice.kind,
            ),
            previous=previous,
            state=initial_state(settings, previous, dirs, trigger, build_id or os.urandom(6).hex()),
        )
        run.state.engine, run.state.engine_kind, run.state.engine_reason = choice.path, choice.kind, choice.reason
        run.state.engine_identity = choice.identity
        with run.logging():
            if stopped:
                log.info(f"stopped {len(stopped)} processes left running by a builder that was killed")
                run.event(Event.STALE_RUN_STOPPED, processes=len(stopped))
            if trigger == KEEPALIVE:
                restarted = _restart(run)
                if restarted is not None:
                    return restarted
            return _pipeline(run)


def once(settings: Settings, previous: State, log: Log) -> Settings:
    """A rebuild request with an identity is honoured once: the same request seen again (the pod or
    container started again with the same environment) is a plain start."""
    wanted = settings.rebuild or settings.rebuild_full
    if wanted and settings.rebuild_id and settings.rebuild_id == previous.rebuild_id:
        log.info("the rebuild this start asks for (DEVCONTAINER_REBUILD_ID) was done already: starting as usual")
        return dataclasses.replace(settings, rebuild=False, rebuild_full=False)
    return settings


def _restart(run: Run) -> int | None:
    try:
        return restart.restart(run)
    except Terminated as err:
        run.log.error(f"keep-alive: stopped by {err} while starting the container again")
        return EXIT_NOT_RUNNING
    except (BuildFailed, OSError) as err:
        failure = err if isinstance(err, BuildFailed) else BuildFailed(str(err), step="system")
        return restart.not_restarted(run, failure)


def _pipeline(run: Run) -> int:
    settings, log = run.settings, run.log
    run.save()
    run.event(
        Event.BUILD_STARTED,
        workspace_folder=settings.workspace_folder,
        repository=settings.repository.url,
        trigger=run.state.trigger,
        build_id=run.state.build_id,
    )
    log.info(f"devcontainer-builder up: {settings.repository} -> {settings.workspace_folder}")
    if run.state.engine_reason != detect.CONFIGURED:
        kind, path = run.state.engine_kind, run.state.engine
        shim = "" if os.path.basename(path) == kind else f", which is {kind}"
        log.info(f"engine: {path}{shim} ({run.state.engine_reason})")
    try:
        # which containers the workspace has does not depend on git: ask the engine meanwhile
        existing = Pending(bringup.workspace_containers, run)
        run.checkout = prepare(run)
        run.resolved = resolve(run)
        outcome = bring_up(run, existing.result())
        bringup.start_in(run, outcome)
    except Terminated as err:
        return _terminated(run, err)
    except BuildFailed as err:
        return recover(run, err)
    except OSError as err:
        return recover(run, BuildFailed(str(err), step="system"))
    except Exception as err:  # a bug: recovered from like any failure; the traceback goes to build.log only
        log.debug(traceback.format_exc())
        return recover(
            run, BuildFailed(f"unexpected error ({type(err).__name__}: {err}); this is a bug", step="internal")
        )
    return _running(run, outcome)


def prepare(run: Run) -> checkout.Checkout:
    """Clone the repository, or bring it up to date when no local byte is at stake."""
    settings, log = run.settings, run.log
    previous_branch = run.previous.requested_branch
    runner = git.make_git(
        log,
        settings.repository,
        env=environment.for_git(run.environ, settings.workspace_folder),
        token=settings.gh_token,
        username=settings.git_username,
        ssh_key=settings.ssh_private_key or _read_key(settings.ssh_private_key_path),
        known_hosts=run.dirs.file("ssh_known_hosts"),
        timeout=settings.git_timeout,
        retries=settings.git_retries,
        uid=settings.workspace_uid,
        gid=settings.workspace_gid,
    )
    try:
        result = checkout.prepare(
            runner,
            settings.repository,
            settings.workspace_folder,
            branch=settings.branch,
            branch_changed=previous_branch is None or previous_branch != settings.branch,
            depth=settings.clone_depth,
            builders_own=_builders_own,
            leftovers=(ERROR_LOG,),
        )
    finally:
        runner.close()
    if result.moved_as_planned:
        log.info(result.message)
    else:
        log.warn(result.message)
    kind = (
        Event.GIT_CLONED
        if result.action == "cloned"
        else Event.GIT_UPDATED
        if result.moved_as_planned
        else Event.GIT_UPDATE_SKIPPED
    )
    run.event(
        kind,
        action=result.action,
        branch=result.branch,
        commit=result.commit,
        message=result.message,
        **({"at_stake": result.at_stake[:50]} if result.at_stake else {}),
    )
    return result


def _builders_own(path: str) -> bool:
    """Files the builder wrote into the workspace itself, which an update may replace."""
    return os.path.basename(path) == ERROR_LOG or (
        path.endswith("/.devcontainer/devcontainer.json") and config.is_generated(path)
    )


def _read_key(path: str) -> str:
    if not path:
        return ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(64 * 1024)


def resolve(run: Run) -> config.ResolvedConfig:
    """Find or generate the config, and check it against the admin's policy before anything runs."""
    settings = run.settings

    def read() -> config.ResolvedConfig:
        try:
            return config.resolve(
                settings.workspace_folder,
                requested=settings.config,
                repo_name=settings.repository.name,
                images={key: getattr(settings, f"image_{key}") for key, _, _ in config.PROJECT_TYPES},
                fallback_image=settings.fallback_image,
                generated_dir=run.dirs.file("generated"),
                owner=run.owner,
            )
        except OSError as err:
            raise BuildFailed(f"cannot read the repository's config: {err}", step="config") from None

    resolved = read()
    if initialize.sandboxed(settings, resolved.data):
        # on every `up`, as the CLI runs it, and before the config's hash is taken: what it writes (a file
        # the Dockerfile copies) is part of the build from the first run on, not a change at the second
        initialize.run_sandboxed(run, resolved.data[initialize.NAME])
        resolved = read()
    run.log.info(f"config: {resolved.description}")
    compose_config = bool(layout.compose_files(resolved.path, resolved.data))
    run.additions = additions.for_config(run, resolved.data, compose_config=compose_config)
    resolved = dataclasses.replace(resolved, config_hash=run.additions.rehash(resolved.config_hash))
    run.event(Event.CONFIG_RESOLVED, config_kind=resolved.kind, path=resolved.path, config_hash=resolved.config_hash)
    return resolved


def bring_up(run: Run, existing: list[Labelled]) -> Outcome:
    """Reuse the running container when nothing changed; otherwise `devcontainer up`, replacing what
    must be replaced."""
    settings, log, resolved = run.settings, run.log, run.resolved_config()
    run.containers_before = [container.id for container in existing]
    rebuild = settings.rebuild or settings.rebuild_full
    if rebuild and settings.rebuild_id:
        run.state.rebuild_id = settings.rebuild_id  # recorded with the state this run writes, whatever its end
    plan = decide.plan_up(existing, run.previous, resolved.config_hash, rebuild=rebuild)
    if plan.reuse is not None:
        return _reuse(run, plan.reuse)
    spec = _spec(run, resolved)
    prebuilt = decide.prebuild_first(existing, plan, spec.runs_host_code) and bringup.builds_an_image(
        resolved.data, spec
    )
    if prebuilt:
        # an initializeCommand may write what the build needs: only `up` runs it, so no build before it
        bringup.prebuild(run, spec, no_cache=settings.rebuild_full)
    removing = _remove_replaced(run, existing, plan, spec, config_hash=resolved.config_hash)
    bringup.check_mounts(run, [c for c in existing if c not in removing])
    if not removing:
        _start_stopped_services(run, existing, spec.compose_project)
    if plan.reason:
        log.info(f"recreating the devcontainer: {plan.reason}")
    record_inputs(run, resolved.path)
    kept = [] if plan.remove_existing else [container for container in existing if container not in removing]
    try:
        outcome = bringup.run_cli(
            run,
            spec,
            cache=not prebuilt,  # the layers are in the engine's cache now
            remove_existing=plan.remove_existing,
            no_cache=settings.rebuild_full and not prebuilt,
            ahead=decide.ahead_of_hooks(
                decide.previous_container(kept, run.previous), run.previous, spec.role, spec.config_hash
            ),
        )
    except BuildFailed as err:
        if run.started_ahead and run.started_ahead == run.previous.container_id:
            # the user may be at work in it already (its agent started beside the hooks): a hook or probe
            # that fails or hangs now is reported, and the container stays
            err.container_id = err.container_id or run.started_ahead
        elif not decide.keep_despite_late_hook(err.step, err.container_id, run.previous):
            raise
        outcome = _keep_despite_late_hook(run, err)
    bringup.after_up(run, outcome, spec, always_configure=run.previous.status != Status.RUNNING)
    return outcome


def _reuse(run: Run, container: Labelled) -> Outcome:
    # `devcontainer up` would only inspect this container: skip its start-up entirely
    run.log.info(f"container {container.id[:12]} is running with this config already: nothing to rebuild or run")
    run.event(Event.CONTAINER_REUSED, container_id=container.id)
    return Outcome(
        "success",
        container_id=container.id,
        remote_user=run.previous.remote_user,
        remote_workspace_folder=run.previous.remote_workspace_folder,
    )


def _spec(run: Run, resolved: config.ResolvedConfig) -> Spec:
    """The devcontainer to bring up: the repository's config, its compose project, the admin's additions."""
    settings = run.settings
    sandboxed = initialize.sandboxed(settings, resolved.data)  # it ran already (resolve)
    spec = Spec(
        role=ROLE_DEVCONTAINER,
        config_path=resolved.path,
        override=resolved.override,
        config_hash=resolved.config_hash,
        remote_folder=containers.default_remote_folder(settings.workspace_folder, resolved.data),
        runs_host_code=initialize.present(resolved.data.get(initialize.NAME)) and not sandboxed,
    )
    if layout.compose_files(resolved.path, resolved.data):
        spec = for_compose(run, spec, resolved)
    data = initialize.without_command(resolved.data) if sandboxed else resolved.data
    return additions.apply(run, spec, data, run.additions, rewrite=sandboxed)


def _remove_replaced(
    run: Run, existing: list[Labelled], plan: decide.Plan, spec: Spec, *, config_hash: str
) -> list[Labelled]:
    """Removes the containers the plan replaces (a compose project's as a whole); returns them."""
    removing = [container for container, _ in plan.remove]
    for container, why in plan.remove:
        run.log.info(f"{why} since container {container.id[:12]} was built: removing it to rebuild")
        run.event(Event.CONFIG_CHANGED, container_id=container.id, old=container.config_hash, new=config_hash)
    if spec.compose_project and (removing or plan.remove_existing):
        # the project is recreated as a whole: no service of the old config runs beside the new one
        removing += [c for c in existing if c.project == spec.compose_project and c not in removing]
    if removing:
        bringup.remove_containers(run, removing, "config changed" if plan.remove else plan.reason)
    for container in removing:
        run.removed.append(container.id)
        if container.id in run.containers_before:
            run.containers_before.remove(container.id)
    return removing


def _start_stopped_services(run: Run, existing: list[Labelled], project: str) -> None:
    """The compose project's other services, when the devcontainer runs and they do not."""
    stopped = decide.stopped_services(existing, project)
    if not stopped:
        return
    names = ", ".join(sorted({container.service for container in stopped}))
    run.log.info(f"starting the compose project's stopped services ({names})")
    error = compose.start(run.engine, project)
    if error:
        run.log.warn(f"compose could not start them: {error}")
    run.event(Event.COMPOSE_STARTED, project=project, services=names, error=error)


def for_compose(run: Run, spec: Spec, resolved: config.ResolvedConfig) -> Spec:
    """A compose config: the workspace's own project, and a guard that lets compose act on it alone."""
    project = compose.project_name(run.settings.workspace_folder)
    service = str(resolved.data["service"])
    labels = containers.identity_labels(run.settings.workspace_folder, ROLE_SERVICE, resolved.config_hash)
    labels.pop(LABEL_LOCAL_FOLDER)  # the CLI finds the devcontainer by it: only the devcontainer has it
    sources = layout.compose_files(resolved.path, resolved.data)
    snapshot = compose.snapshot(run.engine, sources, project, run.dirs.file("compose"))
    run.guard = guard.for_compose(
        run.guard, project=project, service=service, labels=labels, sources=sources, snapshot=snapshot
    )
    project_files = fingerprint.compose_project(resolved.path, resolved.data)
    run.log.info(f"compose project {project}: the devcontainer is the service {service!r}")
    run.compose_project = project
    volumes = compose.volumes(run.engine, project) if run.settings.rebuild or run.settings.rebuild_full else []
    if volumes:
        run.log.info(
            f"this rebuild recreates every service of the project and keeps its named volumes ({', '.join(volumes)}): "
            "their data survives. Remove them yourself (docker volume rm) to start from empty."
        )
    return dataclasses.replace(
        spec,
        compose_project=project,
        services=tuple(project_files.services),
        builds_service=any(build.service == service for build in project_files.builds),
    )


def record_inputs(run: Run, config_path: str) -> None:
    """What this build takes - the baseline the supervisor's rebuild suggestions compare against."""
    inputs = fingerprint.build_inputs(run.settings.workspace_folder, config_path)
    run.dirs.write_json(run.dirs.inputs_file, {"config_path": config_path, **inputs.to_json()})


def _failed_config(run: Run) -> str:
    """The config the failed build would have used, if one was found."""
    if run.resolved is not None:
        return run.resolved.path
    try:
        found = config.find(run.settings.workspace_folder, run.settings.config)
    except (BuildFailed, OSError):
        return ""
    return found[0] if found else ""


def _keep_despite_late_hook(run: Run, err: BuildFailed) -> Outcome:
    message = run.log.redact(err.message)
    run.log.warn(
        f"{err.step} failed in container {err.container_id[:12]}, which the last run brought up and which is still "
        f"running: keeping it rather than replacing it with the fallback. {message}"
    )
    run.event(Event.HOOK_FAILED, step=err.step, container_id=err.container_id, message=message)
    run.hook_failure = err
    return Outcome(
        "success",
        container_id=err.container_id,
        remote_user=run.previous.remote_user,
        remote_workspace_folder=run.previous.remote_workspace_folder,
    )


def _running(run: Run, outcome: Outcome) -> int:
    log, resolved = run.log, run.resolved_config()
    if recovery.clear_error_log(run.settings.workspace_folder):
        log.info(f"removed {ERROR_LOG}: the repository's devcontainer builds again")
    run.finished(
        Status.RUNNING,
        outcome,
        fallback=False,
        error=run.error(run.hook_failure) if run.hook_failure else None,
        fallback_error=None,
        failed_container_id="",
        config_hash=resolved.config_hash,
        config_path=resolved.path,
        config_kind=resolved.kind,
        rebuild_suggested=False,
        changed_files=[],
        keepalive_failures=0,
        keepalive_error="",
        compose_project=run.compose_project,
        compose_volumes=compose.volumes(run.engine, run.compose_project) if run.compose_project else [],
    )
    total = run.seconds()
    run.event(
        Event.CONTAINER_RUNNING,
        container_id=outcome.container_id,
        remote_user=outcome.remote_user,
        remote_workspace_folder=outcome.remote_workspace_folder,
        duration_seconds=total,
    )
    log.info(
        f"workspace running: container {outcome.container_id[:12]}, user {outcome.remote_user}, folder "
        f"{outcome.remote_workspace_folder} ({total:.1f} s)"
    )
    return EXIT_RUNNING


def _terminated(run: Run, err: Terminated) -> int:
    previous = run.previous
    if _still_running(run):
        # a rebuild stopped before it replaced anything: the workspace runs on as it was
        run.log.warn(
            f"stopped by {err} before the new container replaced {previous.container_id[:12]}, which keeps running "
            "as it was; rebuild again to apply the change"
        )
        run.event(Event.BUILD_FAILED, step="terminated", message=f"stopped by {err}; the container runs on as it was")
        run.finished(previous.status, None, fallback=previous.fallback, error=previous.error, agent=previous.agent)
        return EXIT_RUNNING
    stopped = BuildFailed(f"stopped by {err} before the workspace was running", step="terminated")
    run.log.error(stopped.message)
    run.event(Event.BUILD_FAILED, step=stopped.step, message=stopped.message)
    run.finished(Status.FAILED, None, error=run.error(stopped))
    return EXIT_NOT_RUNNING


def _still_running(run: Run) -> bool:
    """The container the last run left running is still there and running, untouched by this one."""
    previous = run.previous
    if previous.status not in (Status.RUNNING, Status.DEGRADED) or not previous.container_id:
        return False
    if previous.container_id in run.removed:
        return False
    try:
        return run.engine.container_status(previous.container_id) == "running"
    except BuildFailed:
        return False


def recover(run: Run, failure: BuildFailed) -> int:
    """The repository's devcontainer did not come up: run the fallback image with the failure in it."""
    log, settings = run.log, run.settings
    message = log.redact(failure.message)
    log.error(message)
    run.event(Event.BUILD_FAILED, step=failure.step, message=message)
    image = settings.fallback_image
    log.warn(
        f"bringing up the fallback image {image} so the workspace is usable; the failure is described in "
        f"{ERROR_LOG} in the workspace folder"
    )
    run.event(Event.FALLBACK_STARTED, image=image, failed_step=failure.step)
    failed_container = {"failed_container_id": failure.container_id}
    config_path = _failed_config(run) if failure.step not in ("terminated", "engine", "clone") else ""
    if config_path:  # fixing it is what a rebuild is for: the supervisor suggests one once it changes
        try:
            record_inputs(run, config_path)
        except (BuildFailed, OSError) as err:
            log.debug(f"could not record the failed config's inputs: {err}")
    try:
        outcome, error_log = recovery.bring_up(run, failure)
    except Terminated as err:
        run.finished(
            Status.FAILED,
            None,
            error=run.error(failure),
            fallback_error=run.error(BuildFailed(f"stopped by {err}", step="terminated")),
            **failed_container,
        )
        return EXIT_NOT_RUNNING
    except (BuildFailed, OSError) as second:
        second = second if isinstance(second, BuildFailed) else BuildFailed(str(second), step="system")
        log.error(f"the fallback image could not be brought up either: {log.redact(second.message)}")
        run.event(Event.FALLBACK_FAILED, image=image, step=second.step, message=log.redact(second.message))
        run.finished(
            Status.FAILED, None, error=run.error(failure), fallback_error=run.error(second), **failed_container
        )
        return EXIT_NOT_RUNNING
    run.finished(
        Status.DEGRADED,
        outcome,
        fallback=True,
        error=run.error(failure, error_log=error_log),
        fallback_error=None,
        config_hash=run.resolved.config_hash if run.resolved else "",
        config_path=run.resolved.path if run.resolved else "",
        config_kind=run.resolved.kind if run.resolved else "",
        rebuild_suggested=False,
        changed_files=[],
        **failed_container,
    )
    run.event(Event.FALLBACK_RUNNING, container_id=outcome.container_id, image=image, error_log=error_log)
    log.warn(
        f"workspace running on the fallback image (degraded): container {outcome.container_id[:12]}, user "
        f"{outcome.remote_user}; see {error_log} inside it. Fix the cause and rebuild (the status page's Rebuild "
        "button, `devcontainer-builder rebuild`, or a restart of the workspace)."
    )
    return EXIT_RUNNING
