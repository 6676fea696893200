"""The state dir: state.json (atomic), events.jsonl (append-only), the build logs, the locks.

Writes here must never turn a running workspace into a reported failure: a full disk or a read-only
volume makes a write fail, the failure is reported once per file through `on_error` (the build log and
the terminal say which path cannot be written and why), and the last good state.json stays as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from devcontainer_builder.state.record import State
from devcontainer_builder.system import clock, files

BUILD_HEADER = "build log of build "
EVENTS_KEEP = 2000  # lines kept when events.jsonl is compacted
EVENTS_MAX_BYTES = 4 * 1024 * 1024
JSON_MAX = 4 * 1024 * 1024  # state.json, serve.json, inputs.json: far larger than any the builder writes
WriteError = Callable[[str, OSError], None]


def _ignore(path: str, err: OSError) -> None:
    pass


@dataclass
class StateDir:
    path: str
    on_error: WriteError = _ignore
    _reported: set[str] = field(default_factory=set)

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
        """Held by the builder for the whole of a build: one build per workspace at a time."""
        return os.path.join(self.path, "workspace.lock")

    @property
    def state_lock_file(self) -> str:
        """Held for a moment around each read-modify-write of state.json (the builder and `serve` both
        write fields of it)."""
        return os.path.join(self.path, "state.lock")

    @property
    def serve_lock_file(self) -> str:
        """Held by `serve` for as long as it runs: one supervisor per workspace."""
        return os.path.join(self.path, "serve.lock")

    @property
    def serve_file(self) -> str:
        return os.path.join(self.path, "serve.json")

    @property
    def serve_socket(self) -> str:
        """The supervisor's unix socket: the trusted way in, for `rebuild` and `status`."""
        return os.path.join(self.path, "serve.sock")

    @property
    def inputs_file(self) -> str:
        """What the last build took (files and digests): the baseline for rebuild suggestions."""
        return os.path.join(self.path, "inputs.json")

    def read_json(self, path: str) -> object:
        """The JSON document in the regular file at `path` (at most JSON_MAX bytes); None otherwise - a
        FIFO, a device, a huge or malformed file is no document, never a hang or a traceback."""
        data = files.read_regular(path, JSON_MAX)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: `[[[[...` nested deeper than the parser goes
            return None

    def write_json(self, path: str, data: object) -> bool:
        try:
            files.write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n", sync=False)
        except OSError as err:
            self._failed(path, err)
            return False
        return True

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def ensure(self) -> None:
        os.makedirs(self.path, mode=0o755, exist_ok=True)

    def failed(self, path: str, err: OSError) -> None:
        """A write to `path` failed: reported once per file, whoever found it (the state dir or a log sink)."""
        self._failed(path, err)

    def _failed(self, path: str, err: OSError) -> None:
        if path not in self._reported:
            self._reported.add(path)
            self.on_error(path, err)

    # -- state.json ---------------------------------------------------------------------------------
    def read_state(self) -> State:
        return State.from_json(self.read_json(self.state_file))

    def write_state(self, state: State) -> bool:
        """Replace state.json; False (and the problem reported) when it cannot be written."""
        state.updated_at = clock.iso()
        text = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
        try:
            files.write_atomic(self.state_file, text)
        except OSError as err:
            self._failed(self.state_file, err)
            return False
        return True

    @contextlib.contextmanager
    def _state_lock(self) -> Iterator[None]:
        try:
            fd = os.open(self.state_lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield  # an unwritable dir: the write below reports it
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update_state(self, change: Callable[[State], State]) -> State:
        """Read state.json, write back what `change` makes of it, with no other writer in between."""
        with self._state_lock():
            state = change(self.read_state())
            self.write_state(state)
            return state

    # -- events.jsonl -------------------------------------------------------------------------------
    def record_event(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        if "kind" in fields or "time" in fields:
            raise ValueError("an event's fields cannot be called kind or time")
        event = {"time": clock.iso(), "kind": str(kind), **fields}
        line = json.dumps(event) + "\n"
        try:
            # one write(2) of a short line with O_APPEND: concurrent writers never interleave inside a line
            fd = os.open(self.events_file, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = "\n" + line  # a line cut short by a crash or a full disk stays on its own line
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as err:
            self._failed(self.events_file, err)
        return event

    def compact_events(self) -> None:
        """Keep events.jsonl bounded: past EVENTS_MAX_BYTES, keep its last EVENTS_KEEP lines."""
        try:
            if os.path.getsize(self.events_file) <= EVENTS_MAX_BYTES:
                return
            with self._state_lock(), open(self.events_file, "rb") as handle:
                handle.seek(-min(EVENTS_MAX_BYTES, os.path.getsize(self.events_file)), os.SEEK_END)
                tail = handle.read().split(b"\n")[1:]  # the first is probably cut
                files.write_atomic(self.events_file, b"\n".join(tail[-EVENTS_KEEP - 1 :]))
        except OSError:
            return

    def read_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last `limit` events (all of them for None)."""
        events = self.events_after(None)[0]
        return events[-limit:] if limit is not None else events

    def events_after(self, cursor: str | None, limit: int | None = None) -> tuple[list[dict[str, Any]], str]:
        """The first `limit` events written after `cursor` (None: from the beginning), and the cursor to ask
        with next time - just past the last event returned. The cursor is the file's inode and a byte
        offset: a compacted file starts over."""
        try:
            # non-blocking: a FIFO in its place must not hang `status`
            handle = os.fdopen(os.open(self.events_file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
        except OSError:
            return [], "0:0"
        with handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return [], "0:0"
            inode, _, offset_text = (cursor or "").partition(":")
            offset = int(offset_text) if inode == str(info.st_ino) and offset_text.isdigit() else 0
            if offset > info.st_size:
                offset = 0
            handle.seek(offset)
            data = handle.read(info.st_size - offset)
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for next time
        events: list[dict[str, Any]] = []
        position = offset
        for raw in complete.splitlines(keepends=True):
            if limit is not None and len(events) >= limit:
                break
            position += len(raw)
            try:
                event = json.loads(raw)
            except (ValueError, RecursionError):
                continue  # a line cut by a crash or a full disk, or nested deeper than the parser goes
            if isinstance(event, dict):
                events.append(event)
        return events, f"{info.st_ino}:{position}"

    # -- build logs -----------------------------------------------------------------------------------
    def start_build_log(self, build_id: str) -> str:
        """A new build.log, its first line naming the build that writes it (the supervisor's log stream
        tells builds apart by it: an inode number is reused); the previous build's log is kept beside it,
        so a failure is not overwritten by a retry."""
        try:
            if os.path.exists(self.build_log):
                os.replace(self.build_log, self.previous_build_log)
            with open(self.build_log, "w", encoding="utf-8") as handle:
                handle.write(f"{clock.iso()} debug [builder] {BUILD_HEADER}{build_id}\n")
        except OSError as err:
            self._failed(self.build_log, err)
        return self.build_log

    def build_log_id(self) -> str:
        """The build that wrote build.log ("" when its first line does not say: an older builder's log)."""
        try:
            with open(self.build_log, "rb") as handle:
                first = handle.readline(256).decode("utf-8", "replace")
        except OSError:
            return ""
        _, found, rest = first.partition(BUILD_HEADER)
        build_id = rest.strip()
        return build_id if found and len(build_id) == 12 and all(c in "0123456789abcdef" for c in build_id) else ""
