"""Builds the supervisor starts: a rebuild asked for on the API, or keep-alive bringing a stopped
container back. One at a time (single flight); each is an `up` child process - the very pipeline a
workspace start runs, with the workspace lock, recovery and the agent - given the supervisor's
settings in its environment and its secrets on a pipe, never in the environment."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from devcontainer_builder.settings import secrets
from devcontainer_builder.state.record import (
    BUILD_ID_VAR,
    KEEPALIVE,
    TRIGGER_VAR,
    ErrorInfo,
    Event,
    Requested,
    State,
    Status,
)
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.system import clock, proc, reaper

TRIGGERS = ("rebuild", "full-rebuild", KEEPALIVE)


@dataclass
class Build:
    id: str
    trigger: str  # rebuild, full-rebuild, keepalive
    started_at: str
    started: float = field(default_factory=time.monotonic)
    exit_code: int | None = None  # None while it runs
    ended_at: str = ""

    @property
    def running(self) -> bool:
        return self.exit_code is None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "trigger": self.trigger,
            "full": self.trigger == "full-rebuild",
            "started_at": self.started_at,
            "seconds": round(time.monotonic() - self.started, 1) if self.running else None,
            "running": self.running,
            "exit_code": self.exit_code,
            "ended_at": self.ended_at,
        }


@dataclass
class RateLimit:
    """At most `limit` rebuilds asked for in any `window` seconds, whoever asks: a page left open with a
    script, or a loop in a terminal, cannot rebuild the workspace over and over. Keep-alive is not counted."""

    limit: int = 5
    window: float = 300.0
    started: list[float] = field(default_factory=list)

    def wait_needed(self, now: float) -> int:
        """Seconds until another rebuild may start (0: now)."""
        self.started = [at for at in self.started if now - at < self.window]
        if len(self.started) < self.limit:
            return 0
        return max(1, math.ceil(self.started[0] + self.window - now))

    def record(self, now: float) -> None:
        self.started.append(now)


class Builds:
    """Starts builds, one at a time, and remembers the last one."""

    def __init__(
        self,
        dirs: StateDir,
        environ: Mapping[str, str],
        on_end: Callable[[Build], None] = lambda build: None,
    ) -> None:
        self.dirs = dirs
        self.environ = dict(environ)  # the settings in environment form, secrets excluded
        self.on_end = on_end
        self.current: Build | None = None
        self.last: Build | None = None
        self._child: proc.Child | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def request(self, trigger: str) -> tuple[bool, Build]:
        """(True, the new build) - or (False, the build already running): never two at once."""
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {trigger!r}")
        with self._lock:
            if self.current is not None:
                return False, self.current
            if self._stopping:
                raise RuntimeError("the supervisor is stopping")
            build = Build(os.urandom(6).hex(), trigger, clock.iso())
            self.current = build
        if trigger != KEEPALIVE:
            self.dirs.record_event(Event.REBUILD_REQUESTED, build_id=build.id, full=trigger == "full-rebuild")
        # what `status` shows at once, before the child has started (the child keeps it as it is)
        self.dirs.update_state(lambda state: _requested(state, build))
        try:
            self._start(build)
        except OSError as err:
            reason = str(err)
            with self._lock:
                self.current = None
            build.exit_code, build.ended_at = 1, clock.iso()
            self.dirs.update_state(lambda state: _not_started(state, reason))
            self.last = build
            raise
        return True, build

    def _start(self, build: Build) -> None:
        flags = {"rebuild": ["--rebuild"], "full-rebuild": ["--rebuild-full"], KEEPALIVE: []}[build.trigger]
        env = dict(self.environ, **{BUILD_ID_VAR: build.id, TRIGGER_VAR: build.trigger})
        fds: tuple[int, ...] = ()
        if secrets.received:
            fd = secrets.handover(secrets.received)
            env[secrets.FD_VAR] = str(fd)
            fds = (fd,)
        try:
            self._child = proc.Child(
                [sys.executable, "-m", "devcontainer_builder", "up", *flags], env=env, pass_fds=fds
            )
        finally:
            for fd in fds:
                os.close(fd)
        threading.Thread(target=self._wait, args=(build, self._child), name=f"build-{build.id}", daemon=True).start()

    def _wait(self, build: Build, child: proc.Child) -> None:
        code = None
        while code is None:
            code = child.wait(3600)
        reaper.stop_strays()  # what a killed `up` left behind is now the supervisor's to stop
        build.exit_code, build.ended_at = code, clock.iso()
        self.dirs.update_state(_done)
        with self._lock:
            self.current = None
            self._child = None
            self.last = build
        self.on_end(build)

    def wait(self, timeout: float) -> Build | None:
        """The last build once none is running, waiting at most `timeout` seconds; None if one still runs."""
        deadline = time.monotonic() + timeout
        while self.current is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.last if self.current is None else None

    def stop(self, grace: float) -> None:
        """No new build; a running one is stopped the way SIGTERM stops `up` (it records it)."""
        with self._lock:
            self._stopping = True
            child = self._child
        if child is not None:
            child.signal(signal.SIGTERM)
            if child.wait(grace) is None:
                child.stop(0.5)


def _requested(state: State, build: Build) -> State:
    state.requested = Requested(build.id, build.trigger, build.started_at, os.getpid())
    return state


def _done(state: State) -> State:
    state.requested = None
    return state


def _not_started(state: State, reason: str) -> State:
    state.requested = None
    state.status = Status.FAILED
    state.error = ErrorInfo(f"the build could not be started: {reason}", "rebuild")
    return state
