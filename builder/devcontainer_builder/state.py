"""The state dir: state.json (atomic), events.jsonl (append-only) and the build logs.

state.json is replaced with rename(2), so a reader - or a crash - only ever sees a whole file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

STATUSES = ("building", "running", "degraded", "failed")


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StateDir:
    path: str

    @property
    def state_file(self) -> str:
        return os.path.join(self.path, "state.json")

    @property
    def events_file(self) -> str:
        return os.path.join(self.path, "events.jsonl")

    @property
    def build_log(self) -> str:
        return os.path.join(self.path, "build.log")

    @property
    def previous_build_log(self) -> str:
        return os.path.join(self.path, "build.previous.log")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.path, "workspace.lock")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def ensure(self) -> None:
        os.makedirs(self.path, mode=0o755, exist_ok=True)

    def read_state(self) -> dict[str, Any]:
        try:
            with open(self.state_file, encoding="utf-8") as handle:
                data = json.load(handle)
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        state = dict(state, updated_at=now_iso())
        atomic_write(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def record_event(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        if "kind" in fields or "time" in fields:
            raise ValueError("an event's fields cannot be called kind or time")
        event = {"time": now_iso(), "kind": kind, **fields}
        line = json.dumps(event, sort_keys=False) + "\n"
        # one write(2) of a short line with O_APPEND: concurrent writers never interleave inside a line
        fd = os.open(self.events_file, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # a line cut short by a crash or a full disk stays on its own line
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        return event

    def read_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        try:
            with open(self.events_file, encoding="utf-8", errors="replace") as handle:
                lines = handle.readlines()
        except FileNotFoundError:
            return []
        events = []
        for raw in lines[-limit:] if limit else lines:
            try:
                events.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a line cut by a full disk: skip it, keep the rest
        return events

    def start_build_log(self) -> str:
        """Keep the previous build's log beside the new one, so a failure is not overwritten by a retry."""
        if os.path.exists(self.build_log):
            os.replace(self.build_log, self.previous_build_log)
        return self.build_log


def atomic_write(path: str, text: str, mode: int = 0o644) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
