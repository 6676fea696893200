"""`devcontainer-builder up`: clone or update, resolve the config, bring the devcontainer up - and when
any of that fails, bring up the fallback image instead, with the failure explained inside it.

Everything runs under the workspace lock, so a second `up` for the same workspace waits and then finds
the first one's container. Containers carry identity labels (containers.py): a rerun with an unchanged
config reuses its container, a changed config replaces it, a fallback is replaced as soon as the
repository's config builds again, and nothing else of the workspace's survives a successful run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devcontainer_builder import agent, containers, control_manifest, devcontainer_cli, fallback, git, state
from devcontainer_builder import config as configs
from devcontainer_builder.containers import ROLE_DEVCONTAINER, ROLE_FALLBACK, Spec
from devcontainer_builder.engine import Engine, Labelled, engine_problem
from devcontainer_builder.errors import EXIT_NOT_RUNNING, EXIT_RUNNING, BuildFailed, InputError, Terminated
from devcontainer_builder.lock import workspace_lock
from devcontainer_builder.log import FileSink, Log, TailSink
from devcontainer_builder.options import Settings, secret_env_names
from devcontainer_builder.proc import Pending


@dataclass
class Run:
    """What one `up` knows as it goes; turned into state.json at the end."""

    settings: Settings
    log: Log
    dirs: state.StateDir
    engine: Engine
    cli: str
    env: dict[str, str]  # for the devcontainer CLI and docker: no secrets
    previous: dict[str, Any]
    tail: TailSink
    started: float = field(default_factory=time.monotonic)
    steps: list[dict[str, Any]] = field(default_factory=list)
    containers_before: list[str] = field(default_factory=list)
    checkout: git.Checkout | None = None
    resolved: configs.ResolvedConfig | None = None
    configured: tuple[str, str] | None = None  # (container, folder) the builder has set up already
    agent: dict[str, Any] | None = None  # how starting Coder's agent went, for state.json
    hook_failure: BuildFailed | None = None  # a postStart/postAttach that failed in a container kept running

    @property
    def uid(self) -> int | None:
        return self.settings.workspace_uid if os.geteuid() == 0 else None

    @property
    def gid(self) -> int | None:
        return self.settings.workspace_gid if os.geteuid() == 0 else None


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for the devcontainer CLI and docker: ours minus every secret. A repository's
    devcontainer.json can read the CLI's environment through ${localEnv:...}, so a token left here
    could be copied into the container by a hostile config."""
    hidden = set(secret_env_names()) | {"GITHUB_TOKEN"}
    return {k: v for k, v in environ.items() if k not in hidden and not k.startswith("DEVCONTAINER_BUILDER_GIT_")}


def preflight(settings: Settings, environ: Mapping[str, str]) -> str:
    """Tools the builder needs; returns the devcontainer CLI's path."""
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
            f"the container engine CLI {settings.docker_path!r} was not found; install it or set "
            "DEVCONTAINER_DOCKER_PATH."
        )
    if settings.repository.kind in ("ssh", "scp") and not shutil.which("ssh", path=path):
        problems.append(f"{settings.repository} is an ssh URL but ssh is not installed; install openssh-client.")
    if problems:
        raise InputError(problems)
    return cli or ""


def open_state_dir(settings: Settings) -> state.StateDir:
    dirs = state.StateDir(settings.state_dir)
    try:
        dirs.ensure()
        # a unique name: two builders starting together must not remove each other's probe
        with tempfile.NamedTemporaryFile(dir=dirs.path, prefix=".write-test-") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as err:
        raise InputError(
            [
                f"the state dir {settings.state_dir} cannot be written ({err.strerror}); set "
                "DEVCONTAINER_STATE_DIR to a writable folder."
            ]
        ) from None
    return dirs


def up(settings: Settings, environ: Mapping[str, str], log: Log) -> int:
    cli = preflight(settings, environ)
    dirs = open_state_dir(settings)
    env = child_env(environ)
    lock_timeout = settings.build_timeout + settings.git_timeout * (settings.git_retries + 3) + 120
    with workspace_lock(
        dirs.lock_file,
        lock_timeout,
        lambda holder: log.info(
            f"another devcontainer-builder (pid {holder}) is working on this workspace; waiting for it "
            f"(at most {lock_timeout} s)"
        ),
    ):
        run = Run(settings, log, dirs, Engine(settings.docker_path, env), cli, env, dirs.read_state(), TailSink())
        sinks = [FileSink(dirs.start_build_log()), run.tail]
        for sink in sinks:
            log.add_sink(sink)
        try:
            return _up_locked(run, environ)
        finally:
            for sink in sinks:
                log.remove_sink(sink)


def _up_locked(run: Run, environ: Mapping[str, str]) -> int:
    settings, log, dirs = run.settings, run.log, run.dirs
    base = {
        "status": "building",
        "fallback": False,
        "container_id": run.previous.get("container_id", ""),
        "config_hash": run.previous.get("config_hash", ""),
        "rebuild_suggested": False,
        "error": None,
        "workspace_folder": settings.workspace_folder,
        "repository": settings.repository.url,
        "requested_branch": settings.branch or "",
        "state_dir": dirs.path,
        "build_log": dirs.build_log,
        "pid": os.getpid(),
        "started_at": state.now_iso(),
    }
    dirs.write_state(base)
    dirs.record_event("build_started", workspace_folder=settings.workspace_folder, repository=settings.repository.url)
    log.info(f"devcontainer-builder up: {settings.repository} -> {settings.workspace_folder}")
    try:
        # which containers the workspace has does not depend on git: ask the engine meanwhile
        existing = Pending(_workspace_containers, run)
        run.checkout = _checkout(run, environ)
        run.resolved = _resolve(run)
        outcome = _bring_up(run, run.resolved, existing.result())
        _start_agent(run, outcome)
    except Terminated as err:
        stopped = BuildFailed(f"stopped by {err} before the workspace was running", step="terminated")
        log.error(stopped.message)
        dirs.record_event("build_failed", step=stopped.step, message=stopped.message)
        _record_failure(run, base, stopped)
        return EXIT_NOT_RUNNING
    except BuildFailed as err:
        return _recover(run, base, err)
    except OSError as err:
        return _recover(run, base, BuildFailed(str(err), step="system"))
    except Exception as err:  # a bug: recovered from like any failure; the traceback goes to build.log only
        log.debug(traceback.format_exc())
        return _recover(
            run, base, BuildFailed(f"unexpected error ({type(err).__name__}: {err}); this is a bug", step="internal")
        )
    if fallback.clear_error_log(settings.workspace_folder):
        log.info(f"removed {fallback.ERROR_LOG}: the repository's devcontainer builds again")
    total = time.monotonic() - run.started
    dirs.write_state(
        dict(
            base,
            status="running",
            error=_error(run, run.hook_failure) if run.hook_failure else None,
            container_id=outcome.container_id,
            config_hash=run.resolved.config_hash,
            config_path=run.resolved.path,
            config_kind=run.resolved.kind,
            remote_user=outcome.remote_user,
            remote_workspace_folder=outcome.remote_workspace_folder,
            branch=run.checkout.branch,
            commit=run.checkout.commit,
            agent=run.agent,
            steps=run.steps,
            finished_at=state.now_iso(),
            duration_seconds=round(total, 3),
        )
    )
    dirs.record_event(
        "container_running",
        container_id=outcome.container_id,
        remote_user=outcome.remote_user,
        remote_workspace_folder=outcome.remote_workspace_folder,
        duration_seconds=round(total, 3),
    )
    log.info(
        f"workspace running: container {outcome.container_id[:12]}, user {outcome.remote_user}, folder "
        f"{outcome.remote_workspace_folder} ({total:.1f} s)"
    )
    return EXIT_RUNNING


def _error(run: Run, err: BuildFailed) -> dict[str, Any]:
    error = {"message": run.log.redact(err.message), "step": err.step, "log_path": run.dirs.build_log}
    if err.detail:
        error["detail"] = run.log.redact(err.detail)[-4000:]
    return error


def _record_failure(run: Run, base: dict[str, Any], err: BuildFailed, **extra: Any) -> None:
    run.dirs.write_state(
        dict(
            base,
            status="failed",
            error=_error(run, err),
            failed_container_id=err.container_id,
            steps=run.steps,
            finished_at=state.now_iso(),
            duration_seconds=round(time.monotonic() - run.started, 3),
            **extra,
        )
    )


def _recover(run: Run, base: dict[str, Any], failure: BuildFailed) -> int:
    """The repository's devcontainer did not come up: run the fallback image with the failure in it."""
    log, dirs, settings = run.log, run.dirs, run.settings
    log.error(run.log.redact(failure.message))
    dirs.record_event("build_failed", step=failure.step, message=run.log.redact(failure.message))
    image = settings.fallback_image
    log.warn(
        f"bringing up the fallback image {image} so the workspace is usable; the failure is described in "
        f"{fallback.ERROR_LOG} in the workspace folder"
    )
    dirs.record_event("fallback_started", image=image, failed_step=failure.step)
    try:
        outcome, error_log = _bring_up_fallback(run, failure)
    except Terminated as err:
        _record_failure(run, base, failure, fallback_error={"message": f"stopped by {err}", "step": "terminated"})
        return EXIT_NOT_RUNNING
    except (BuildFailed, OSError) as second:
        second = second if isinstance(second, BuildFailed) else BuildFailed(str(second), step="system")
        log.error(f"the fallback image could not be brought up either: {log.redact(second.message)}")
        dirs.record_event("fallback_failed", image=image, step=second.step, message=log.redact(second.message))
        _record_failure(run, base, failure, fallback_error=_error(run, second))
        return EXIT_NOT_RUNNING
    total = time.monotonic() - run.started
    dirs.write_state(
        dict(
            base,
            status="degraded",
            fallback=True,
            error=dict(_error(run, failure), error_log=error_log),
            container_id=outcome.container_id,
            config_hash=run.resolved.config_hash if run.resolved else "",
            remote_user=outcome.remote_user,
            remote_workspace_folder=outcome.remote_workspace_folder,
            branch=run.checkout.branch if run.checkout else "",
            commit=run.checkout.commit if run.checkout else "",
            agent=run.agent,
            steps=run.steps,
            finished_at=state.now_iso(),
            duration_seconds=round(total, 3),
        )
    )
    dirs.record_event("fallback_running", container_id=outcome.container_id, image=image, error_log=error_log)
    log.warn(
        f"workspace running on the fallback image (degraded): container {outcome.container_id[:12]}, user "
        f"{outcome.remote_user}; see {error_log} inside it. Fix the cause and restart the workspace to rebuild."
    )
    return EXIT_RUNNING


def _bring_up_fallback(run: Run, failure: BuildFailed) -> tuple[devcontainer_cli.Outcome, str]:
    settings, engine = run.settings, run.engine
    folder = settings.workspace_folder
    if not os.path.isdir(folder):  # the clone failed: the user still gets a folder, holding the error log
        os.makedirs(folder)
        if run.uid is not None:
            os.chown(folder, run.uid, run.gid)
    remote_folder = containers.default_remote_folder(folder, {})
    remote_error_log = f"{remote_folder}/{fallback.ERROR_LOG}"
    text = fallback.error_log_text(
        fallback.Failure(
            step=failure.step,
            message=run.log.redact(failure.message),
            detail=run.log.redact(failure.detail),
            when=state.now_iso(),
            repository=settings.repository.url,
            branch=run.checkout.branch if run.checkout else (settings.branch or ""),
            commit=run.checkout.commit if run.checkout else "",
            config=run.resolved.description if run.resolved else "",
            build_log=run.dirs.build_log,
        ),
        remote_error_log,
        run.tail.text(),
    )
    fallback.write_error_log(folder, text, run.uid, run.gid)
    # a failed lifecycle command or a killed build leaves the repository's container behind
    existing = engine.workspace_containers(folder)
    for container in existing:
        if container.role == ROLE_DEVCONTAINER:
            engine.remove(container.id)
            run.dirs.record_event("container_removed", container_id=container.id, reason="build failed")
    path = run.dirs.file("generated/fallback/devcontainer.json")
    data = fallback.config(settings.repository.name, settings.fallback_image)
    fallback.write_config(path, data)
    spec = Spec(
        role=ROLE_FALLBACK,
        config_path=path,
        override=True,
        config_hash=configs.config_hash(path, data),
        remote_folder=remote_folder,
        banner=containers.banner_script(remote_folder, fallback.ERROR_LOG),
    )
    run.containers_before = [c.id for c in existing if c.role != ROLE_DEVCONTAINER]
    outcome = _run_cli(run, spec, cache=False, remove_existing=False)
    _after_up(run, outcome, spec, always_configure=True)
    _start_agent(run, outcome)
    return outcome, remote_error_log


def _start_agent(run: Run, outcome: devcontainer_cli.Outcome) -> None:
    """Coder's agent, in the running container, when the template gave its init script. An image the
    agent cannot be installed in (no curl, wget or busybox) is a failed build: the fallback has them."""
    settings, log = run.settings, run.log
    if not settings.coder_init_script:
        return
    started = agent.start(
        settings.docker_path,
        run.env,
        container=outcome.container_id,
        user=outcome.remote_user,
        init_script=settings.coder_init_script,
        agent_url=settings.coder_agent_url,
        agent_token=settings.coder_agent_token,
    )
    run.agent = {"status": started.status, "pid": started.pid, "user": outcome.remote_user, "log": started.log}
    who = f"as {outcome.remote_user or 'the image user'} in container {outcome.container_id[:12]}"
    if started.status == "started":
        log.info(f"Coder agent started (pid {started.pid}) {who}; its output: {started.log}")
        run.dirs.record_event("agent_started", pid=started.pid, user=outcome.remote_user, log=started.log)
        return
    if started.status == "running":
        log.info(f"Coder agent already running (pid {started.pid}) {who}: not starting another")
        run.dirs.record_event("agent_running", pid=started.pid, user=outcome.remote_user)
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
    run.agent["error"] = log.redact(started.detail)[-4000:]
    log.error(f"Coder agent not running {who}: {reason}. Its last output:\n{started.detail or '(none)'}")
    run.dirs.record_event("agent_failed", status=started.status, reason=reason, log=started.log)


def _workspace_containers(run: Run) -> list[Labelled]:
    """The workspace's containers; an engine that does not answer yet is waited for, within bounds."""
    try:
        return run.engine.workspace_containers(run.settings.workspace_folder)
    except BuildFailed:
        timeout = run.settings.engine_timeout
        problem = run.engine.wait_until_reachable(
            timeout,
            lambda why: run.log.warn(f"the container engine does not answer ({why}); waiting up to {timeout} s for it"),
        )
        if problem:
            raise BuildFailed(
                engine_problem(run.settings.docker_path, problem)
                + f" (waited {timeout} s: DEVCONTAINER_ENGINE_TIMEOUT)",
                step="engine",
            ) from None
        run.log.info("the container engine answers")
        return run.engine.workspace_containers(run.settings.workspace_folder)


def _checkout(run: Run, environ: Mapping[str, str]) -> git.Checkout:
    settings, log = run.settings, run.log
    previous_branch = run.previous.get("requested_branch")
    branch_changed = previous_branch is None or previous_branch != (settings.branch or "")
    runner = git.make_git(
        log,
        settings.repository,
        token=settings.gh_token or "",
        username=settings.git_username,
        ssh_key=settings.ssh_private_key or _read_key(settings.ssh_private_key_path),
        known_hosts=run.dirs.file("ssh_known_hosts"),
        timeout=settings.git_timeout,
        retries=settings.git_retries,
        uid=settings.workspace_uid,
        gid=settings.workspace_gid,
        base_env=environ,
        secret_names=secret_env_names(),
    )
    try:
        checkout = git.prepare(
            runner,
            settings.repository,
            settings.workspace_folder,
            branch=settings.branch or "",
            branch_changed=branch_changed,
            depth=settings.clone_depth,
            ignore_untracked=configs.is_generated,
            leftovers=(fallback.ERROR_LOG,),
        )
    finally:
        runner.close()
    quiet = ("cloned", "up-to-date", "fast-forwarded", "switched", "ahead")
    if checkout.action in quiet:
        log.info(checkout.message)
    else:
        log.warn(checkout.message)
    kind = (
        "git_cloned"
        if checkout.action == "cloned"
        else "git_updated"
        if checkout.action in quiet
        else "git_update_skipped"
    )
    run.dirs.record_event(
        kind, action=checkout.action, branch=checkout.branch, commit=checkout.commit, message=checkout.message
    )
    return checkout


def _read_key(path: str | None) -> str:
    if not path:
        return ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _resolve(run: Run) -> configs.ResolvedConfig:
    settings = run.settings
    try:
        resolved = configs.resolve(
            settings.workspace_folder,
            requested=settings.config or "",
            repo_name=settings.repository.name,
            images={key: getattr(settings, f"image_{key}") for key, _, _ in configs.PROJECT_TYPES},
            fallback_image=settings.fallback_image,
            generated_dir=run.dirs.file("generated"),
            uid=run.uid,
            gid=run.gid,
        )
    except OSError as err:
        raise BuildFailed(f"cannot read the repository's config: {err}", step="config") from None
    run.log.info(f"config: {resolved.description}")
    run.dirs.record_event(
        "config_resolved", config_kind=resolved.kind, path=resolved.path, config_hash=resolved.config_hash
    )
    return resolved


def _bring_up(run: Run, resolved: configs.ResolvedConfig, existing: list[Labelled]) -> devcontainer_cli.Outcome:
    settings, log, engine = run.settings, run.log, run.engine
    run.containers_before = [container.id for container in existing]
    if not settings.rebuild:
        current = containers.up_to_date(existing, run.previous, resolved.config_hash)
        if current:
            # `devcontainer up` would only inspect this container: skip its start-up entirely
            log.info(f"container {current.id[:12]} is running with this config already: nothing to rebuild or run")
            run.dirs.record_event("container_reused", container_id=current.id)
            return devcontainer_cli.Outcome(
                "success",
                container_id=current.id,
                remote_user=run.previous["remote_user"],
                remote_workspace_folder=run.previous.get("remote_workspace_folder", ""),
            )
    for container in existing:
        if container.role == ROLE_DEVCONTAINER and container.config_hash != resolved.config_hash:
            log.info(f"config changed since container {container.id[:12]} was built: removing it to rebuild")
            run.dirs.record_event(
                "config_changed", container_id=container.id, old=container.config_hash, new=resolved.config_hash
            )
            engine.remove(container.id)
            run.containers_before.remove(container.id)
    # a failed lifecycle command leaves its container; a plain `up` would reuse it and skip the command
    remove_existing = bool(settings.rebuild) or bool(
        run.previous.get("status") == "failed" and run.previous.get("failed_container_id")
    )
    spec = Spec(
        role=ROLE_DEVCONTAINER,
        config_path=resolved.path,
        override=resolved.override,
        config_hash=resolved.config_hash,
        remote_folder=containers.default_remote_folder(settings.workspace_folder, resolved.data),
    )
    try:
        outcome = _run_cli(run, spec, cache=True, remove_existing=remove_existing)
    except BuildFailed as err:
        kept = _keep_despite_late_hook(run, err)
        if kept is None:
            raise
        outcome = kept
    _after_up(run, outcome, spec, always_configure=run.previous.get("status") != "running")
    return outcome


# Hooks that run again in a container already in use (after a restart, on every attach)
LATE_HOOKS = ("postStartCommand", "postAttachCommand")


def _keep_despite_late_hook(run: Run, err: BuildFailed) -> devcontainer_cli.Outcome | None:
    """The container the last successful run brought up, with a postStart or postAttach command that
    now fails: it was built and set up, and the user has been working in it. Replacing it with the
    fallback would throw away everything they did outside the workspace folder, so it stays, and the
    failure is reported (warning, event, state) instead. None when that is not the case."""
    previous = run.previous
    if (
        err.step not in LATE_HOOKS
        or not err.container_id
        or err.container_id != previous.get("container_id")
        or previous.get("status") != "running"
        or not previous.get("remote_user")
    ):
        return None
    message = run.log.redact(err.message)
    run.log.warn(
        f"{err.step} failed in container {err.container_id[:12]}, which the last run brought up and which is "
        f"still running: keeping it rather than replacing it with the fallback. {message}"
    )
    run.dirs.record_event("hook_failed", step=err.step, container_id=err.container_id, message=message)
    run.hook_failure = err
    return devcontainer_cli.Outcome(
        "success",
        container_id=err.container_id,
        remote_user=previous["remote_user"],
        remote_workspace_folder=previous.get("remote_workspace_folder", ""),
    )


def _run_cli(run: Run, spec: Spec, *, cache: bool, remove_existing: bool) -> devcontainer_cli.Outcome:
    """`devcontainer up` for one container of the workspace; the builder's setup inside it starts as
    soon as the CLI reports the container started, overlapping the CLI's probes and hooks."""
    settings, log, engine = run.settings, run.log, run.engine
    cache_to = settings.cache_to if cache else ""
    if cache_to:
        problem = engine.cache_export_problem(cache_to)
        if problem:
            log.warn(
                f"DEVCONTAINER_CACHE_TO ({cache_to}) cannot be honoured: {problem}. Building without exporting a cache."
            )
            run.dirs.record_event("cache_to_ignored", reason=problem)
            cache_to = ""
    lockfile = os.path.join(os.path.dirname(spec.config_path), "devcontainer-lock.json")
    args = devcontainer_cli.up_args(
        run.cli,
        workspace=settings.workspace_folder,
        docker_path=settings.docker_path,
        id_labels=containers.identity_labels(settings.workspace_folder, spec.role, spec.config_hash),
        config=spec.config_path,
        override=spec.override,
        cache_from=settings.cache_from if cache else (),
        cache_to=cache_to,
        remove_existing=remove_existing,
        # do not add a lockfile the repository does not have; honour one it does have
        no_lockfile=spec.override or not os.path.exists(lockfile),
        # the CLI would remap the remote user to the builder's uid: meaningless for root (uid 0 exists),
        # and it costs an extra image build
        update_remote_user_uid="never" if os.geteuid() == 0 else "",
        remote_env=containers.LIFECYCLE_GIT_ENV,
    )
    early: list[Pending] = []

    def on_step(step: devcontainer_cli.Step) -> None:
        record = {"name": step.name, "status": step.status, "seconds": round(step.seconds, 3)}
        run.steps.append(record)
        run.dirs.record_event("step", **record)
        if step.name == "start container" and step.status == "succeeded" and not early:
            early.append(Pending(containers.configure_when_started, engine, log, settings.workspace_folder, spec))

    control_manifest.refresh(log, run.env)  # else a proxy that never answers holds the CLI for ever
    outcome = devcontainer_cli.run_up(args, env=run.env, timeout=settings.build_timeout, log=log, on_step=on_step)
    run.configured = early[0].result() if early else None
    if outcome.timed_out:
        raise BuildFailed(
            f"the build did not finish within {settings.build_timeout} s (DEVCONTAINER_BUILD_TIMEOUT) and was "
            "stopped; raise the timeout or make the build faster (a layer cache: DEVCONTAINER_CACHE_FROM).",
            step="build timeout",
        )
    if not outcome.ok:
        detail = "; ".join(part for part in (outcome.description, outcome.message) if part)
        step = outcome.failed_step or "build"
        for record in reversed(run.steps):  # its `stop` event made it look successful
            if record["name"] == step and record["status"] == "succeeded":
                record["status"] = "failed"
                run.dirs.record_event("step", name=step, status="failed", seconds=record["seconds"])
                break
        raise BuildFailed(
            f"devcontainer up failed: {detail or 'no reason given'}. The full output is in {run.dirs.build_log}.",
            step=step,
            detail=str(outcome.raw),
            container_id=outcome.container_id,
        )
    return outcome


def _after_up(run: Run, outcome: devcontainer_cli.Outcome, spec: Spec, *, always_configure: bool) -> None:
    # Under the workspace lock nothing else creates this workspace's containers, so the list taken
    # before the build tells which ones are now stale (a fallback, a leftover duplicate) - unless the
    # last builder was killed mid-run, when what it started may have appeared since: ask again.
    stale = run.containers_before
    if run.previous.get("status") == "building":
        stale = [container.id for container in run.engine.workspace_containers(run.settings.workspace_folder)]
    for container in stale:
        if container != outcome.container_id:
            run.log.info(f"removing container {container[:12]}: it is no longer this workspace's container")
            run.engine.remove(container)
            run.dirs.record_event("container_removed", container_id=container)
    new_container = outcome.container_id != run.previous.get("container_id")
    if new_container or always_configure:
        folder = outcome.remote_workspace_folder or spec.remote_folder
        if run.configured != (outcome.container_id, folder):
            containers.configure(run.engine, run.log, outcome.container_id, folder, spec.banner)
