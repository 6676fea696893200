"""`devcontainer-builder up`: clone or update, resolve the config, bring the devcontainer up.

Everything runs under the workspace lock, so a second `up` for the same workspace waits and then finds
the first one's container. Containers carry identity labels (workspace, role, config hash): a rerun
with an unchanged config reuses its container, a changed config replaces it, and nothing else of the
workspace's survives a successful run - one container per workspace.
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

from devcontainer_builder import config as configs
from devcontainer_builder import devcontainer_cli, git, state
from devcontainer_builder.engine import (
    LABEL_CONFIG,
    LABEL_LOCAL_FOLDER,
    LABEL_ROLE,
    LABEL_WORKSPACE,
    Engine,
    Labelled,
)
from devcontainer_builder.errors import EXIT_NOT_RUNNING, EXIT_RUNNING, BuildFailed, InputError, Terminated
from devcontainer_builder.lock import workspace_lock
from devcontainer_builder.log import FileSink, Log
from devcontainer_builder.options import Settings, secret_env_names
from devcontainer_builder.proc import Pending, last_line

ROLE_DEVCONTAINER = "devcontainer"
# Lifecycle commands (onCreate, postCreate, ...) run before the builder can configure git in the new
# container; this environment makes git trust the workspace for them whoever owns it. It is "command"
# scope config, which git honours for safe.directory. A devcontainer has a single user, so "*" is safe.
LIFECYCLE_GIT_ENV = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
# Configures git in the container to trust the workspace folder, whoever owns it. A fixed script:
# the folder is passed as $1, never spliced into the text.
SAFE_DIRECTORY_SCRIPT = (
    "command -v git >/dev/null 2>&1 || exit 0; "
    'git config --system --get-all safe.directory 2>/dev/null | grep -qxF -- "$1" && exit 0; '
    'git config --system --add safe.directory "$1"'
)


@dataclass
class Run:
    """What one `up` knows as it goes; turned into state.json at the end."""

    settings: Settings
    log: Log
    dirs: state.StateDir
    engine: Engine
    previous: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    steps: list[dict[str, Any]] = field(default_factory=list)
    containers_before: list[str] = field(default_factory=list)
    early_trust: Pending | None = None  # git's safe.directory, set while the CLI is still running hooks


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for the devcontainer CLI and docker: ours minus every secret. A repository's
    devcontainer.json can read the CLI's environment through ${localEnv:...}, so a token left here
    could be copied into the container by a hostile config."""
    hidden = set(secret_env_names()) | {"CODER_AGENT_TOKEN", "GITHUB_TOKEN"}
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
    engine = Engine(settings.docker_path, env)
    lock_timeout = settings.build_timeout + settings.git_timeout * (settings.git_retries + 3) + 120
    with workspace_lock(
        dirs.lock_file,
        lock_timeout,
        lambda holder: log.info(
            f"another devcontainer-builder (pid {holder}) is working on this workspace; waiting for it "
            f"(at most {lock_timeout} s)"
        ),
    ):
        run = Run(settings, log, dirs, engine, dirs.read_state())
        build_log = FileSink(dirs.start_build_log())
        log.add_sink(build_log)
        try:
            return _up_locked(run, cli, env, environ)
        finally:
            log.remove_sink(build_log)


def _up_locked(run: Run, cli: str, env: dict[str, str], environ: Mapping[str, str]) -> int:
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
        containers = Pending(run.engine.workspace_containers, settings.workspace_folder)
        checkout = _checkout(run, environ)
        resolved = _resolve(run)
        outcome = _bring_up(run, cli, env, resolved, containers.result())
        _after_up(run, outcome)
    except BuildFailed as err:
        _fail(run, base, err)
        return err.exit_code
    except Terminated as err:
        _fail(run, base, BuildFailed(f"stopped by {err} before the workspace was running", step="terminated"))
        return EXIT_NOT_RUNNING
    except OSError as err:
        _fail(run, base, BuildFailed(f"{err}; the workspace is not running", step="system"))
        return EXIT_NOT_RUNNING
    except Exception as err:  # a bug: record it like any failure, traceback in build.log only
        log.debug(traceback.format_exc())
        _fail(
            run,
            base,
            BuildFailed(
                f"unexpected error ({type(err).__name__}: {err}); this is a bug, see build.log", step="internal"
            ),
        )
        return EXIT_NOT_RUNNING
    total = time.monotonic() - run.started
    dirs.write_state(
        dict(
            base,
            status="running",
            container_id=outcome.container_id,
            config_hash=resolved.config_hash,
            config_path=resolved.path,
            config_kind=resolved.kind,
            remote_user=outcome.remote_user,
            remote_workspace_folder=outcome.remote_workspace_folder,
            branch=checkout.branch,
            commit=checkout.commit,
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


def _fail(run: Run, base: dict[str, Any], err: BuildFailed) -> None:
    message = run.log.redact(err.message)
    run.log.error(message)
    error = {"message": message, "step": err.step, "log_path": run.dirs.build_log}
    if err.detail:
        error["detail"] = run.log.redact(err.detail)[-4000:]
    run.dirs.write_state(
        dict(
            base,
            status="failed",
            error=error,
            failed_container_id=err.container_id,
            steps=run.steps,
            finished_at=state.now_iso(),
            duration_seconds=round(time.monotonic() - run.started, 3),
        )
    )
    run.dirs.record_event("build_failed", step=err.step, message=message)


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
        )
    finally:
        runner.close()
    quiet = ("cloned", "up-to-date", "fast-forwarded", "switched", "ahead")
    if checkout.action in quiet:
        log.info(checkout.message)
        run.dirs.record_event(
            "git_cloned" if checkout.action == "cloned" else "git_updated",
            action=checkout.action,
            branch=checkout.branch,
            commit=checkout.commit,
            message=checkout.message,
        )
    else:
        log.warn(checkout.message)
        run.dirs.record_event(
            "git_update_skipped",
            action=checkout.action,
            branch=checkout.branch,
            commit=checkout.commit,
            message=checkout.message,
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
            uid=settings.workspace_uid if os.geteuid() == 0 else None,
            gid=settings.workspace_gid if os.geteuid() == 0 else None,
        )
    except BuildFailed:
        raise
    except OSError as err:
        raise BuildFailed(f"cannot read the repository's config: {err}", step="config") from None
    run.log.info(f"config: {resolved.description}")
    run.dirs.record_event(
        "config_resolved",
        config_kind=resolved.kind,
        path=resolved.path,
        config_hash=resolved.config_hash,
    )
    return resolved


def _bring_up(
    run: Run, cli: str, env: dict[str, str], resolved: configs.ResolvedConfig, existing: list[Labelled]
) -> devcontainer_cli.Outcome:
    settings, log, engine = run.settings, run.log, run.engine
    run.containers_before = [container.id for container in existing]
    reused = _up_to_date(run, resolved, existing)
    if reused:
        return reused
    for container in existing:
        if container.role == ROLE_DEVCONTAINER and container.config_hash != resolved.config_hash:
            log.info(f"config changed since container {container.id[:12]} was built: removing it to rebuild")
            run.dirs.record_event(
                "config_changed", container_id=container.id, old=container.config_hash, new=resolved.config_hash
            )
            engine.remove(container.id)
            run.containers_before.remove(container.id)
    remove_existing = bool(settings.rebuild)
    if run.previous.get("status") == "failed" and run.previous.get("failed_container_id"):
        # a failed lifecycle command leaves its container; a plain `up` would reuse it and skip the command
        remove_existing = True
    cache_to = settings.cache_to
    if cache_to:
        problem = engine.cache_export_problem(cache_to)
        if problem:
            log.warn(
                f"DEVCONTAINER_CACHE_TO ({cache_to}) cannot be honoured: {problem}. Building without exporting a cache."
            )
            run.dirs.record_event("cache_to_ignored", reason=problem)
            cache_to = ""
    lockfile = os.path.join(os.path.dirname(resolved.path), "devcontainer-lock.json")
    args = devcontainer_cli.up_args(
        cli,
        workspace=settings.workspace_folder,
        docker_path=settings.docker_path,
        id_labels=identity_labels(settings.workspace_folder, ROLE_DEVCONTAINER, resolved.config_hash),
        config=resolved.path,
        override=resolved.override,
        cache_from=settings.cache_from,
        cache_to=cache_to,
        remove_existing=remove_existing,
        # do not add a lockfile the repository does not have; honour one it does have
        no_lockfile=resolved.override or not os.path.exists(lockfile),
        # the CLI would remap the remote user to the builder's uid: meaningless for root (uid 0 exists),
        # and it costs an extra image build
        update_remote_user_uid="never" if os.geteuid() == 0 else "",
        remote_env=LIFECYCLE_GIT_ENV,
    )

    def on_step(step: devcontainer_cli.Step) -> None:
        record = {"name": step.name, "status": step.status, "seconds": round(step.seconds, 3)}
        run.steps.append(record)
        run.dirs.record_event("step", **record)
        if step.name == "start container" and step.status == "succeeded" and run.early_trust is None:
            run.early_trust = Pending(_trust_started_container, run, resolved)

    outcome = devcontainer_cli.run_up(args, env=env, timeout=settings.build_timeout, log=log, on_step=on_step)
    if outcome.timed_out:
        raise BuildFailed(
            f"the build did not finish within {settings.build_timeout} s (DEVCONTAINER_BUILD_TIMEOUT) and was "
            "stopped; raise the timeout or make the build faster (a layer cache: DEVCONTAINER_CACHE_FROM).",
            step="build",
        )
    if not outcome.ok:
        detail = "; ".join(part for part in (outcome.description, outcome.message) if part)
        raise BuildFailed(
            f"devcontainer up failed: {detail or 'no reason given'}. The full output is in {run.dirs.build_log}.",
            step=_failed_step(run),
            detail=str(outcome.raw),
            container_id=outcome.container_id,
        )
    return outcome


def _up_to_date(
    run: Run, resolved: configs.ResolvedConfig, existing: list[Labelled]
) -> devcontainer_cli.Outcome | None:
    """The outcome `devcontainer up` would report, when running it could change nothing.

    That is when this workspace's only container is running, was brought up by the last successful run,
    carries the current config hash, and has no postAttachCommand (from the config, the image or a
    feature): on such a container the CLI only inspects and probes. Skipping it saves its whole
    start-up on every restart of the builder.
    """
    previous = run.previous
    if run.settings.rebuild or len(existing) != 1 or previous.get("status") != "running":
        return None
    container = existing[0]
    if (
        container.id != previous.get("container_id")
        or container.role != ROLE_DEVCONTAINER
        or container.config_hash != resolved.config_hash
        or container.state != "running"
        or container.has_post_attach
        or not previous.get("remote_user")
    ):
        return None
    run.log.info(f"container {container.id[:12]} is running with this config already: nothing to rebuild or run")
    run.dirs.record_event("container_reused", container_id=container.id)
    return devcontainer_cli.Outcome(
        "success",
        container_id=container.id,
        remote_user=previous["remote_user"],
        remote_workspace_folder=previous.get("remote_workspace_folder", ""),
    )


def _failed_step(run: Run) -> str:
    failed = [step["name"] for step in run.steps if step["status"] == "failed"]
    return failed[-1] if failed else "build"


def identity_labels(workspace: str, role: str, config_hash: str) -> dict[str, str]:
    return {
        LABEL_LOCAL_FOLDER: workspace,
        LABEL_WORKSPACE: workspace,
        LABEL_ROLE: role,
        LABEL_CONFIG: config_hash,
    }


def _after_up(run: Run, outcome: devcontainer_cli.Outcome) -> None:
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
    if outcome.container_id != run.previous.get("container_id") or run.previous.get("status") != "running":
        folder = outcome.remote_workspace_folder or run.settings.workspace_folder
        done = run.early_trust.result() if run.early_trust else None
        if done != (outcome.container_id, folder):
            _trust(run, outcome.container_id, folder)


def _trust(run: Run, container: str, folder: str) -> bool:
    """Make git in the container trust the workspace folder for every user (its system gitconfig)."""
    result = run.engine.exec(container, ["sh", "-c", SAFE_DIRECTORY_SCRIPT, "sh", folder])
    if not result.ok:
        run.log.warn(
            f"could not mark {folder} as a safe git directory in the container ({last_line(result.stderr)}); "
            "git may report 'dubious ownership' there"
        )
    return result.ok


def _trust_started_container(run: Run, resolved: configs.ResolvedConfig) -> tuple[str, str] | None:
    """Configure git in the container the CLI has just started, while it goes on with probes and hooks.

    The folder is where the CLI mounts the workspace unless the config says otherwise; when the
    outcome names another folder, or this finds no container, _after_up does it again.
    """
    folder = resolved.data.get("workspaceFolder")
    if not isinstance(folder, str) or "${" in folder:
        folder = f"/workspaces/{os.path.basename(run.settings.workspace_folder)}"
    try:
        containers = run.engine.workspace_containers(run.settings.workspace_folder)
    except BuildFailed:
        return None
    for container in containers:
        ours = container.config_hash == resolved.config_hash and container.role == ROLE_DEVCONTAINER
        if ours and container.state == "running" and _trust(run, container.id, folder):
            return container.id, folder
    return None
