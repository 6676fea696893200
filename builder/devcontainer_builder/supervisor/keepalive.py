"""Keep-alive: the workspace's container and Coder's agent in it stay up.

The container stopped or died (engine restarted, OOM, `docker stop`) or was removed: keep-alive runs `up`
again (a build of its own, single flight with rebuilds), which starts a stopped container the way a
workspace start does - postStart hooks run - or builds a removed one anew, and starts the agent. The agent
died inside a running container: it is started again. Each time an event (`container_restarted`,
`agent_restarted`); attempts back off (5 s up to 2 min); after MAX_FAILURES attempts in a row that did
not bring the workspace back, the state says `failed` with the reason, and keep-alive keeps trying at
the slowest pace. Idle, it sleeps on the engine's event stream: no polling of the container, an agent
check every AGENT_CHECK seconds only when Coder's agent is configured.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time

from devcontainer_builder.coder import agent
from devcontainer_builder.engine.engine import Engine
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.log import Log
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import Event, State, Status
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.supervisor.builds import Build, Builds
from devcontainer_builder.system import proc, retry

AGENT_CHECK = 15.0
RECHECK = 60.0  # the container's status is asked for this often anyway (an event stream can break)
MAX_FAILURES = 5
ACTIONS = ("die", "stop", "kill", "destroy", "oom", "died", "remove")  # docker's, podman's


class KeepAlive:
    def __init__(
        self, *, settings: Settings, dirs: StateDir, engine: Engine, builds: Builds, log: Log, stop: threading.Event
    ) -> None:
        self.settings = settings
        self.dirs = dirs
        self.engine = engine
        self.builds = builds
        self.log = log
        self.stop = stop
        self.wake = threading.Event()  # an engine event, or the end of a build
        self._stream: proc.Child | None = None
        self._stream_for = ""
        self._waits = retry.delays(5.0, 120.0)
        self._next_attempt = 0.0
        self._restarting = ""  # the container a keep-alive build was started for

    def run(self) -> None:
        next_agent_check = 0.0
        try:
            while not self.stop.is_set():
                state = self.dirs.read_state()
                container = state.container_id if state.status in (Status.RUNNING, Status.DEGRADED) else ""
                if state.keepalive_failures >= MAX_FAILURES and state.status == Status.FAILED:
                    container = state.container_id  # keep trying, at the slowest pace
                self._follow(container)
                if container and self.builds.current is None and time.monotonic() >= self._next_attempt:
                    self._check(state, container)
                    if time.monotonic() >= next_agent_check and self.settings.coder_init_script:
                        next_agent_check = time.monotonic() + AGENT_CHECK
                        self._check_agent(state, container)
                timeout = AGENT_CHECK if self.settings.coder_init_script else RECHECK
                self.wake.wait(timeout)
                self.wake.clear()
        finally:
            self._follow("")

    # -- the container ------------------------------------------------------------------------------
    def _follow(self, container: str) -> None:
        """Keep an event stream open for `container` (none for "")."""
        if container == self._stream_for and (self._stream is None or self._stream.poll() is None):
            return
        if self._stream is not None:
            self._stream.stop(1.0)
            self._stream = None
        self._stream_for = container
        if not container:
            return
        try:
            self._stream = proc.Child(self.engine.events_argv(container), env=self.engine.env, stdout=subprocess.PIPE)
        except OSError as err:
            self.log.debug(f"no event stream for the container ({err}): checking every {RECHECK:.0f} s")
            return
        threading.Thread(target=self._read_events, args=(self._stream,), daemon=True).start()

    def _read_events(self, stream: proc.Child) -> None:
        pipe = stream.popen.stdout
        if pipe is None:
            return
        for raw in pipe:
            if raw.decode("utf-8", "replace").strip().split(":")[0] in ACTIONS:
                self.wake.set()
        self.wake.set()  # the stream ended: look again

    def _check(self, state: State, container: str) -> None:
        try:
            status = self.engine.container_status(container)
        except BuildFailed as err:
            self.log.warn(f"keep-alive: {err.message}")
            return
        if status == "running":
            if self._restarting == container and state.keepalive_failures:
                self.dirs.update_state(lambda s: dataclasses.replace(s, keepalive_failures=0, keepalive_error=""))
            self._restarting = ""
            self._waits = retry.delays(5.0, 120.0)
            return
        reason = f"it is {status}" if status else "it was removed"
        self.log.warn(
            f"keep-alive: the workspace's container {container[:12]} is not running ({reason}): starting it again"
        )
        self.dirs.record_event(Event.CONTAINER_RESTARTED, container_id=container, reason=reason)
        started, _ = self.builds.request("keepalive")
        if started:
            self._restarting = container
            self._next_attempt = time.monotonic() + next(self._waits)

    def ended(self, build: Build) -> None:
        """A build ended (builds.on_end): count a keep-alive build that did not bring the workspace back."""
        if build.trigger == "keepalive":
            state = self.dirs.read_state()
            back = build.exit_code == 0 and state.status in (Status.RUNNING, Status.DEGRADED)
            if back:
                self.log.info("keep-alive: the workspace is running again")
            else:
                self._failed(state, f"the restart ended with exit code {build.exit_code}")
        self.wake.set()

    def _failed(self, state: State, why: str) -> None:
        failures = state.keepalive_failures + 1
        error = f"the devcontainer could not be kept running ({failures} attempts): {why}"

        def record(current: State) -> State:
            current.keepalive_failures = failures
            current.keepalive_error = error
            if failures >= MAX_FAILURES:
                current.status = Status.FAILED
            return current

        self.dirs.update_state(record)
        if failures >= MAX_FAILURES:
            self.dirs.record_event(Event.KEEPALIVE_FAILED, failures=failures, message=error)
            self.log.error(f"keep-alive: {error}; still trying every 2 min. See the build log.")

    # -- the agent ----------------------------------------------------------------------------------
    def _check_agent(self, state: State, container: str) -> None:
        started = agent.start(
            self.engine.docker,
            self.engine.env,
            container=container,
            user=state.remote_user,
            init_script=self.settings.coder_init_script,
            agent_url=self.settings.coder_agent_url,
            agent_token=self.settings.coder_agent_token,
        )
        if started.status == "started":
            self.log.warn(f"keep-alive: Coder's agent was not running in {container[:12]}: started it again")
            self.dirs.record_event(Event.AGENT_RESTARTED, pid=started.pid, container_id=container)
            self.dirs.update_state(lambda s: _agent(s, started))
        elif not started.ok and started.status != "busy":
            self.log.warn(f"keep-alive: Coder's agent could not be started again ({started.status}): {started.detail}")


def _agent(state: State, started: agent.Started) -> State:
    if state.agent is not None:
        state.agent.status, state.agent.pid = started.status, started.pid
    return state
