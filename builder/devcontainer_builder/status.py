"""`devcontainer-builder status`: what state.json and events.jsonl say, for people and for scripts."""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

from devcontainer_builder.state import StateDir

EVENTS_SHOWN = 15


def build_in_progress(dirs: StateDir) -> bool:
    """True while some builder holds the workspace lock; a 'building' state without it is stale."""
    try:
        fd = os.open(dirs.lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def collect(dirs: StateDir) -> dict[str, Any]:
    current = dirs.read_state()
    if current.get("status") == "building" and not build_in_progress(dirs):
        current["stale"] = True
    return {"state": current, "events": dirs.read_events(limit=EVENTS_SHOWN), "state_dir": dirs.path}


def render(report: dict[str, Any]) -> str:
    current = report["state"]
    if not current:
        return f"no build has run yet (no state.json in {report['state_dir']})\n"
    status = current.get("status", "unknown")
    if current.get("stale"):
        status += " (stale: no builder holds the workspace lock; the last build was interrupted)"
    lines = [f"{'status:':<14}{status}"]
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
        value = current.get(key)
        if value in (None, ""):
            continue
        if key == "container_id":
            value = str(value)[:12]
        if key == "duration_seconds":
            value = f"{value} s"
        if key == "rebuild_suggested":
            value = "suggested" if value else "not needed"
        lines.append(f"{label + ':':<14}{value}")
    error = current.get("error")
    if isinstance(error, dict):
        lines.append(f"{'error:':<14}[{error.get('step', '?')}] {error.get('message', '')}")
    steps = current.get("steps") or []
    if steps:
        lines.append("steps:")
        lines += [f"  {s['status']:<9} {s['name']} ({s['seconds']:.1f} s)" for s in steps]
    if report["events"]:
        lines.append("recent events:")
        for event in report["events"]:
            extra = {k: v for k, v in event.items() if k not in ("time", "kind")}
            summary = extra.get("message") or ", ".join(f"{k}={v}" for k, v in list(extra.items())[:3])
            lines.append(f"  {event.get('time', '')}  {event.get('kind', '')}  {summary}")
    return "\n".join(lines) + "\n"


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
