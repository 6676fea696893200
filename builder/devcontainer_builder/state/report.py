"""`devcontainer-builder status`: what state.json and events.jsonl say, for people and for scripts."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from dataclasses import dataclass
from typing import Any

from devcontainer_builder.log import printable
from devcontainer_builder.state.record import State, Status
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.system import lock

EVENTS_SHOWN = 15


def build_in_progress(dirs: StateDir) -> bool:
    """True while some builder holds the workspace lock; a 'building' state without it is stale."""
    return lock.held(dirs.lock_file)


def requested(state: State, dirs: StateDir) -> bool:
    """A build the supervisor has asked for and that has not ended - as long as that supervisor is
    there: one that was killed leaves its request behind, and that must not read 'building' for ever."""
    return state.requested is not None and lock.held(dirs.serve_lock_file)


@dataclass
class Report:
    state: State
    events: list[dict[str, Any]]
    dirs: StateDir
    stale: bool  # 'building', but no builder holds the lock: the last build was interrupted
    exists: bool  # state.json was found
    unreadable: bool = False  # something is at state.json's path, but no state: a FIFO, a device, garbage
    container_now: str | None = None  # the engine's word on the container (running, exited, "" gone); None: not asked

    @property
    def container_lost(self) -> bool:
        """The state says running, the engine says its container is not (removed, stopped, engine restarted)."""
        return self.container_now is not None and self.container_now != "running"

    def to_json(self) -> dict[str, Any]:
        state = self.state.to_json()
        if self.stale:
            state["stale"] = True
        found = {"state": state if self.exists else {}, "events": self.events, "state_dir": self.dirs.path}
        return {**found, "error": _unreadable(self)} if self.unreadable else found


def collect(dirs: StateDir, events: int = EVENTS_SHOWN) -> Report:
    current = dirs.read_state()
    stale = current.status == Status.BUILDING and not build_in_progress(dirs)
    exists = bool(current.status)
    unreadable = not exists and os.path.lexists(dirs.state_file)
    return Report(current, dirs.read_events(limit=events) if events else [], dirs, stale, exists, unreadable)


def _unreadable(report: Report) -> str:
    return (
        f"{report.dirs.state_file} holds no state the builder wrote (not a regular file, too large, or not its "
        "JSON); the next build replaces it"
    )


def render(report: Report) -> str:
    current = report.state
    if report.unreadable:
        return _unreadable(report) + "\n"
    if not report.exists:
        return f"no build has run yet (no state.json in {report.dirs.path})\n"
    status = current.status or "unknown"
    if report.stale:
        status += " (stale: no builder holds the workspace lock; the last build was interrupted)"
    if report.container_lost:
        now = report.container_now or "gone (removed, or the engine lost it)"
        status += f", but its container is {now}: start the workspace again, or `rebuild`"
    lines = [f"{'status:':<14}{status}"]
    values = dataclasses.asdict(current)
    fields = (
        ("fallback", "fallback"),
        ("container", "container_id"),
        ("workspace", "workspace_folder"),
        ("repository", "repository"),
        ("branch", "branch"),
        ("commit", "commit"),
        ("config", "config_path"),
        ("config hash", "config_hash"),
        ("remote user", "remote_user"),
        ("rebuild", "rebuild_suggested"),
        ("updated", "updated_at"),
        ("duration", "duration_seconds"),
        ("build log", "build_log"),
    )
    for label, key in fields:
        value = values.get(key)
        if value in (None, ""):
            continue
        if key == "container_id":
            value = str(value)[:12]
        if key == "duration_seconds":
            value = f"{value} s"
        if key == "rebuild_suggested":
            value = "suggested: " + ", ".join(current.changed_files[:5]) if value else "not needed"
        lines.append(f"{label + ':':<14}{value}")
    if current.error is not None:
        lines.append(f"{'error:':<14}[{current.error.step or '?'}] {current.error.message}")
    if current.steps:
        lines.append("steps:")
        lines += [f"  {s.status:<9} {s.name} ({s.seconds:.1f} s)" for s in current.steps]
    if report.events:
        lines.append("recent events:")
        for event in report.events:
            extra = {k: v for k, v in event.items() if k not in ("time", "kind")}
            summary = extra.get("message") or ", ".join(f"{k}={v}" for k, v in list(extra.items())[:3])
            lines.append(f"  {event.get('time', '')}  {event.get('kind', '')}  {summary}")
    # file names, branches and messages come from the repository: nothing in them reaches the terminal raw
    return "\n".join(printable(line) for line in lines) + "\n"


def _seconds_since(stamp: str) -> int | None:
    try:
        started = datetime.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None
    return max(0, int(datetime.datetime.now(datetime.UTC).timestamp() - started))


def short(report: Report) -> str:
    """One line for Coder's agent metadata: `running`, `degraded: postCreateCommand failed`, `building 45 s`,
    `rebuild suggested` - from the state dir alone, without asking the engine."""
    state = report.state
    if report.unreadable:
        return "state unreadable"
    if not report.exists:
        return "no build yet"
    asked = requested(state, report.dirs)
    if asked or (state.status == Status.BUILDING and not report.stale):
        started = state.requested.at if asked and state.requested else state.started_at
        seconds = _seconds_since(started)
        return "building" + (f" {seconds} s" if seconds is not None else "")
    if report.stale:
        return "interrupted: restart the workspace to build again"
    step = state.error.step if state.error else ""
    if state.status == Status.RUNNING:
        line = f"running ({step} failed)" if step else "running"
    elif state.status == Status.DEGRADED:
        line = f"degraded: {step} failed" if step else "degraded"
    elif state.status == Status.FAILED:
        line = f"failed: {state.keepalive_error}" if state.keepalive_error else f"failed: {step or 'unknown'}"
    else:
        line = state.status
    return printable(line + (", rebuild suggested" if state.rebuild_suggested else ""))


def as_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
