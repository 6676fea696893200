"""Recovery: a build that failed still gives a running workspace, on the fallback image, with the error
log in the workspace folder and a banner on the first shell.

The error log starts with a short banner (what failed, why, where the details are, how to rebuild) that
the fallback container shows on the first interactive shell; below a '----' line come the failure's
full text, the devcontainer CLI's outcome and the last lines of the build log. It is excluded from git
through .git/info/exclude, so `git status` never shows it.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from typing import Any

from devcontainer_builder.devcontainer_cli.driver import Outcome
from devcontainer_builder.engine import containers
from devcontainer_builder.engine.containers import ROLE_FALLBACK, Spec
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.state.record import ERROR_LOG
from devcontainer_builder.system import clock, files
from devcontainer_builder.up import additions, bringup, decide
from devcontainer_builder.up.context import Run
from devcontainer_builder.workspace import fingerprint


@dataclass(frozen=True)
class Failure:
    """A failed build, as the error log and state.json describe it."""

    step: str
    message: str
    detail: str  # the CLI's outcome JSON or the failing command's error output
    when: str
    repository: str
    branch: str
    commit: str
    config: str  # which config was being built, when one was found
    build_log: str  # the complete log, in the state dir


def banner(failure: Failure, remote_error_log: str) -> list[str]:
    why = failure.message.strip().splitlines()[0] if failure.message.strip() else "unknown"
    if len(why) > 400:
        why = why[:400] + "…"
    lines = [
        "This workspace runs the FALLBACK image: its devcontainer could not be built.",
        f"Failed step: {failure.step or 'unknown'}",
        *textwrap.wrap(f"Why: {why}", 96, subsequent_indent="     "),
        f"Details: {remote_error_log}",
        "To rebuild: fix the cause (usually .devcontainer/devcontainer.json, its Dockerfile or a lifecycle",
        "command), commit it or keep it in this folder, then rebuild: the Rebuild button on the workspace's",
        "devcontainer status page, or restart the workspace with the 'Rebuild devcontainer' option.",
    ]
    rule = "=" * 100
    return [rule, *lines, rule]


def error_log_text(failure: Failure, remote_error_log: str, tail: str) -> str:
    source = failure.repository + (f" (branch {failure.branch}" if failure.branch else "")
    if failure.commit:
        source += f", commit {failure.commit[:12]}" if failure.branch else f" (commit {failure.commit[:12]}"
    if failure.branch or failure.commit:
        source += ")"
    sections = [
        "\n".join(banner(failure, remote_error_log)),
        "----",
        f"When:        {failure.when}",
        f"Repository:  {source}",
        f"Config:      {failure.config or '(none resolved)'}",
        f"Failed step: {failure.step}",
        "",
        "What failed:",
        textwrap.indent(failure.message.strip(), "  "),
    ]
    if failure.detail.strip():
        sections += ["", "Details (the devcontainer CLI's outcome or the command's error output):"]
        sections.append(textwrap.indent(failure.detail.strip(), "  "))
    sections += [
        "",
        "The last lines of the build log:",
        textwrap.indent(tail, "  ") if tail else "  (none)",
        "",
        f"The complete build log is {failure.build_log} on the builder, and in the workspace's build log in Coder.",
        "",
    ]
    return "\n".join(sections)


def write_error_log(folder: str, text: str, owner: files.Owner | None) -> str:
    path = os.path.join(folder, ERROR_LOG)
    files.write_atomic(path, text, owner=owner)  # rename(2) replaces a link planted there, not its target
    exclude_from_git(folder, owner)
    return path


def exclude_from_git(folder: str, owner: files.Owner | None) -> None:
    """Keep the error log out of `git status`, without touching the repository's .gitignore. The files
    written are the repository's own (.git/info/exclude): links there are not followed."""
    info = os.path.join(folder, ".git", "info")
    if os.path.islink(os.path.join(folder, ".git")) or not os.path.isdir(os.path.join(folder, ".git")):
        return
    if os.path.islink(info):
        return
    if not os.path.isdir(info):
        os.mkdir(info)
        files.chown(info, owner)
    exclude = os.path.join(info, "exclude")
    entry = f"/{ERROR_LOG}"
    try:
        fd = os.open(exclude, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    except OSError:
        return  # a link, or no room: the log shows as untracked, nothing worse
    try:
        if os.fstat(fd).st_size == 0 and owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        content = b""
        while chunk := os.read(fd, 65536):
            content += chunk
        if entry not in content.decode("utf-8", "replace").splitlines():
            os.write(fd, f"\n# written by devcontainer-builder: a failed build's log\n{entry}\n".encode())
    finally:
        os.close(fd)


def clear_error_log(folder: str) -> bool:
    """The real devcontainer runs again: the last failure's log has done its job."""
    try:
        os.unlink(os.path.join(folder, ERROR_LOG))
    except FileNotFoundError:
        return False
    return True


def config(repo_name: str, image: str) -> dict[str, Any]:
    """The fallback's devcontainer.json: only the image; the workspace is mounted where the CLI always
    mounts it. No lifecycle command of the repository runs here: they may be what failed."""
    return {"name": f"{repo_name} (fallback: the devcontainer build failed)", "image": image}


def write_config(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_atomic(path, json.dumps(data, indent=2) + "\n", sync=False)


def bring_up(run: Run, failure: BuildFailed) -> tuple[Outcome, str]:
    """The fallback image, with the failure explained inside it: returns its outcome and the error log's
    path inside the container."""
    settings, engine = run.settings, run.engine
    folder = settings.workspace_folder
    if not os.path.isdir(folder):  # the clone failed: the user still gets a folder, holding the error log
        files.make_dirs(folder, run.owner)
    remote_folder = containers.default_remote_folder(folder, {})
    remote_error_log = f"{remote_folder}/{ERROR_LOG}"
    text = error_log_text(
        Failure(
            step=failure.step,
            message=run.log.redact(failure.message),
            detail=run.log.redact(failure.detail),
            when=clock.iso(),
            repository=settings.repository.url,
            branch=run.checkout.branch if run.checkout else (settings.branch or ""),
            commit=run.checkout.commit if run.checkout else "",
            config=run.resolved.description if run.resolved else "",
            build_log=run.dirs.build_log,
        ),
        remote_error_log,
        run.tail.text(),
    )
    try:
        write_error_log(folder, text, run.owner)
    except OSError as err:  # a full disk must not keep the user out of the workspace
        run.log.warn(f"could not write {ERROR_LOG} into {folder} ({err.strerror}); the failure is in the build log")
    existing = engine.workspace_containers(folder)
    removed = decide.before_fallback(existing)
    bringup.remove_containers(run, removed, "build failed")
    path = run.dirs.file("generated/fallback/devcontainer.json")
    data = config(settings.repository.name, settings.fallback_image)
    write_config(path, data)
    added = additions.for_config(run, data)
    spec = Spec(
        role=ROLE_FALLBACK,
        config_path=path,
        override=True,
        config_hash=added.rehash(fingerprint.config_hash(folder, path, data)),
        remote_folder=remote_folder,
        banner=containers.banner_script(remote_folder, ERROR_LOG),
    )
    spec = additions.apply(run, spec, data, added)
    run.containers_before = [c.id for c in existing if c not in removed]
    outcome = bringup.run_cli(run, spec, cache=False, remove_existing=False)
    bringup.after_up(run, outcome, spec, always_configure=True)
    bringup.start_agent(run, outcome)
    bringup.start_ide(run, outcome)
    return outcome, remote_error_log
