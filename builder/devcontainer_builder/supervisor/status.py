"""What the supervisor knows and answers with: the state, the build running, the suggestion, the
repository's branch and local changes, the head of a failed build's error log."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from devcontainer_builder.log import Log
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import ERROR_LOG, State, Status
from devcontainer_builder.state.report import build_in_progress
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.supervisor.builds import Builds, RateLimit
from devcontainer_builder.supervisor.suggestions import Suggestions
from devcontainer_builder.system import environment, files
from devcontainer_builder.workspace import checkout, git

REPOSITORY_TTL = 5.0
ERROR_HEAD_MAX = 4096


@dataclass
class RepositoryInfo:
    """The workspace's branch, commit and counts of local changes, refreshed in the background: a
    request never waits for git."""

    settings: Settings
    environ: dict[str, str]
    log: Log
    value: dict[str, Any] = field(default_factory=dict)
    checked: float = 0.0
    _busy: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> dict[str, Any]:
        if time.monotonic() - self.checked > REPOSITORY_TTL and self._busy.acquire(blocking=False):
            threading.Thread(target=self._refresh, daemon=True).start()
        return dict(self.value)

    def _refresh(self) -> None:
        try:
            folder = self.settings.workspace_folder
            if not os.path.isdir(os.path.join(folder, ".git")):
                self.value = {}
                return
            runner = git.make_git(
                self.log, self.settings.repository, env=environment.for_git(self.environ, folder), token="",
                username="", ssh_key="", known_hosts="", timeout=30, retries=1,
                uid=self.settings.workspace_uid, gid=self.settings.workspace_gid,
            )  # fmt: skip
            try:
                branch, commit = checkout.head(runner, folder)
                listed = runner.local(
                    ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=all"],
                    cwd=folder, touches_tree=True,
                )  # fmt: skip
            finally:
                runner.close()
            entries = [entry for entry in listed.stdout.split("\0") if len(entry) > 3] if listed.ok else []
            untracked = sum(entry.startswith("??") for entry in entries)
            self.value = {"branch": branch, "commit": commit, "modified": len(entries) - untracked,
                          "untracked": untracked}  # fmt: skip
        except Exception as err:  # a broken repository must not break the status page
            self.value = {"error": f"{type(err).__name__}: {err}"}
        finally:
            self.checked = time.monotonic()
            self._busy.release()


@dataclass
class Supervisor:
    settings: Settings
    dirs: StateDir
    builds: Builds
    suggestions: Suggestions
    log: Log
    repository: RepositoryInfo
    stop: threading.Event
    version: str
    address: str
    rebuilds: RateLimit = field(default_factory=RateLimit)

    def request_rebuild(self, full: bool) -> tuple[bool, dict[str, Any]]:
        accepted, build = self.builds.request("full-rebuild" if full else "rebuild")
        if accepted:
            self.rebuilds.record(time.monotonic())
            self.log.info(f"rebuild requested{' without the layer cache' if full else ''} (build {build.id})")
        return accepted, build.to_json()

    def build_phase(self, build_id: str) -> str:
        """Where build `build_id` is: "pending" (asked for, its log not begun), "running", "ended" (its log
        is build.log, it is over), or "unknown" (never heard of, or an older build's log has gone)."""
        current, last = self.builds.current, self.builds.last
        in_log = self.dirs.build_log_id() == build_id
        if current is not None and current.id == build_id:
            return "running" if in_log else "pending"
        if not in_log:
            return "unknown"
        if last is None or last.id != build_id:  # a build this supervisor did not start (`up` at start)
            return (
                "running" if build_in_progress(self.dirs) and self.dirs.read_state().build_id == build_id else "ended"
            )
        return "ended"

    def build_end(self, build_id: str) -> dict[str, Any]:
        last = self.builds.last
        code = last.exit_code if last is not None and last.id == build_id else None
        return {"build": build_id, "exit_code": code, "status": self.effective_status(self.dirs.read_state())}

    def effective_status(self, state: State) -> str:
        if self.builds.current is not None:  # this supervisor's own request is the one that counts
            return Status.BUILDING
        if state.status == Status.BUILDING and not build_in_progress(self.dirs):
            return "interrupted"
        return state.status or "none"

    def status_summary(self) -> dict[str, Any]:
        """What the page needs to redraw itself (small: sent on every change)."""
        state = self.dirs.read_state()
        current = self.builds.current
        return {
            "status": self.effective_status(state),
            "fallback": state.fallback,
            "error": _error(state),
            "rebuild_suggested": state.rebuild_suggested,
            "changed_files": state.changed_files,
            "suggestion_hash": state.suggestion_hash,
            "build": current.to_json() if current else None,
            "last_build": self.builds.last.to_json() if self.builds.last else None,
            "keepalive_error": state.keepalive_error,
            "compose_project": state.compose_project,
            "compose_volumes": state.compose_volumes,
            "updated_at": state.updated_at,
        }

    def status(self) -> dict[str, Any]:
        state = self.dirs.read_state()
        summary = self.status_summary()
        return {
            **summary,
            "state": state.to_json(),
            "repository": {"url": self.settings.repository.url, **self.repository.get()},
            "error_log_head": self._error_log_head() if state.fallback else None,
            "suggestion_note": self.suggestions.note,
            "suggestion_checked_at": self.suggestions.checked_at,
            "serve": {"pid": os.getpid(), "version": self.version, "address": self.address},
        }

    def _error_log_head(self) -> str:
        text = files.read_text(os.path.join(self.settings.workspace_folder, ERROR_LOG), ERROR_HEAD_MAX) or ""
        head = []
        for line in text.splitlines():
            if line.startswith("----"):
                break
            head.append(line)
        return "\n".join(head)


def _error(state: State) -> dict[str, Any] | None:
    if state.error is None:
        return None
    return {"step": state.error.step, "message": state.error.message}
