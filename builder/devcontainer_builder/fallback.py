"""What a failed build leaves for the user: the error log in the workspace and the fallback's config.

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

ERROR_LOG = ".devcontainer-build-error.log"


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
        "command), commit it or keep it in this folder, then restart the workspace.",
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


def write_error_log(folder: str, text: str, uid: int | None, gid: int | None) -> str:
    path = os.path.join(folder, ERROR_LOG)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    if uid is not None:
        os.chown(tmp, uid, gid)
    os.replace(tmp, path)
    exclude_from_git(folder, uid, gid)
    return path


def exclude_from_git(folder: str, uid: int | None, gid: int | None) -> None:
    """Keep the error log out of `git status`, without touching the repository's .gitignore."""
    git_dir = os.path.join(folder, ".git")
    if not os.path.isdir(git_dir):
        return
    info = os.path.join(git_dir, "info")
    if not os.path.isdir(info):
        os.makedirs(info)
        if uid is not None:
            os.chown(info, uid, gid)
    exclude = os.path.join(info, "exclude")
    entry = f"/{ERROR_LOG}"
    try:
        with open(exclude, encoding="utf-8", errors="replace") as handle:
            present = entry in handle.read().splitlines()
    except FileNotFoundError:
        present = False
    if not present:
        created = not os.path.exists(exclude)
        with open(exclude, "a", encoding="utf-8") as handle:
            handle.write(f"\n# written by devcontainer-builder: a failed build's log\n{entry}\n")
        if created and uid is not None:
            os.chown(exclude, uid, gid)


def clear_error_log(folder: str) -> bool:
    """The real devcontainer runs again: the last failure's log has done its job."""
    try:
        os.unlink(os.path.join(folder, ERROR_LOG))
    except FileNotFoundError:
        return False
    return True


def config(repo_name: str, image: str) -> dict:
    """The fallback's devcontainer.json: only the image; the workspace is mounted where the CLI always
    mounts it. No lifecycle command of the repository runs here: they may be what failed."""
    return {"name": f"{repo_name} (fallback: the devcontainer build failed)", "image": image}


def write_config(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
