"""Keep-alive: the workspace's container and Coder's agent in it stay up.

The container stopped or died (engine restarted, OOM, `docker stop`): keep-alive starts it again - a
build of its own, single flight with rebuilds, whose `up` only restarts (up/restart.py): postStart hooks
run, nothing is rebuilt, the repository is not updated. A container removed by hand is brought up as a
workspace start would. The agent died inside a running container: it is started again. Each time an
event (`container_restarted`, `agent_restarted`).

A restart is good once the container has stayed up for STABLE seconds: one that dies again before (a
crash loop) counts as a failed attempt. Attempts back off (5 s up to 2 min); after
DEVCONTAINER_KEEPALIVE_ATTEMPTS failed attempts in a row the state says `failed` with the reason, and
keep-alive goes on trying at the slowest pace; the first good restart puts the status back. Idle, it
sleeps on the engine's event stream: no polling of the container, an agent check every AGENT_CHECK
seconds only when Coder's agent is configured.
"""

from __future__ import annotations

import subprocess
import threading
import time

from devcontainer_builder.coder import agent
from devcontainer_builder.engine import compose
from devcontainer_builder.engine.containers import ROLE_SERVICE
from devcontainer_builder.engine.engine import Engine
from devcontainer_builder.errors import BuildFailed
from devcontainer_builder.ide import start as ide_start
from devcontainer_builder.log import Log
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import KEEPALIVE, Event, State, Status
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.supervisor.builds import Build, Builds
from devcontainer_builder.system import proc, retry

AGENT_CHECK = 15.0
RECHECK = 60.0  # the container's status is asked for this often anyway (an event stream can break)
BACKOFF = (5.0, 120.0)  # seconds: the first wait between restart attempts, and the longest
STABLE = 15.0  # seconds a restarted container must stay up for the restart to count as good
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
        self._waits = retry.delays(*BACKOFF)
        self._next_attempt = 0.0
        self._probation: tuple[str, float] | None = None  # (container, monotonic time) until a restart is good

    def run(self) -> None:
        next_agent_check = 0.0
        troubled = False
        try:
            while not self.stop.is_set():
                try:
                    next_agent_check = self._round(next_agent_check)
                    troubled = False
                except OSError as err:
                    # out of file descriptors or processes (a flood of connections to serve, a full
                    # machine): keep-alive must outlive it, or the workspace reads healthy while its
                    # container is down. Said once per spell, tried again every few seconds.
                    if not troubled:
                        self.log.warn(f"keep-alive: {err.strerror or err}; trying again every {BACKOFF[0]:.0f} s")
                    troubled = True
                    self._drop_stream()
                    self.stop.wait(BACKOFF[0])
                    continue
                watching = self.settings.coder_init_script or self.settings.ide != "none"
                timeout = AGENT_CHECK if watching else RECHECK
                for due in (self._probation[1] if self._probation else 0.0, self._next_attempt):
                    if due > time.monotonic():  # a restart on probation, an attempt backing off
                        timeout = max(0.05, min(timeout, due - time.monotonic() + 0.05))
                self.wake.wait(timeout)
                self.wake.clear()
        finally:
            self._follow("", "")

    def _drop_stream(self) -> None:
        try:
            self._follow("", "")
        except OSError:
            self._stream, self._stream_for = None, ""

    def _round(self, next_agent_check: float) -> float:
        """One look at the container (and, when due, its agent and editor); the next agent check's time."""
        state = self.dirs.read_state()
        container = state.container_id if state.status in (Status.RUNNING, Status.DEGRADED) else ""
        if state.keepalive_error and state.status == Status.FAILED:
            container = state.container_id  # keep trying, at the slowest pace
        self._follow(container, state.compose_project if container else "")
        if container and self.builds.current is None:
            running = self._check(state, container)
            watched = self.settings.coder_init_script or self.settings.ide != "none"
            if running and time.monotonic() >= next_agent_check and watched:
                next_agent_check = time.monotonic() + AGENT_CHECK
                if self.settings.coder_init_script:
                    self._check_agent(state, container)
                self._check_ide(state, container)
        return next_agent_check

    # -- the container ------------------------------------------------------------------------------
    def _follow(self, container: str, project: str) -> None:
        """Keep an event stream open for `container` and the other services of its compose project (none
        for "")."""
        key = f"{container} {project}"
        if key == self._stream_for and (self._stream is None or self._stream.poll() is None):
            return
        if self._stream is not None:
            self._stream.stop(1.0)
            self._stream = None
        self._stream_for = key
        if not container:
            return
        argv = self.engine.events_argv(container, project)
        try:
            self._stream = proc.Child(argv, env=self.engine.env, stdout=subprocess.PIPE)
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

    def _check(self, state: State, container: str) -> bool:
        """Look at the container; restart it when it is down and the back-off allows. True when it runs."""
        try:
            status = self.engine.container_status(container)
        except BuildFailed as err:
            self.log.warn(f"keep-alive: {err.message}")
            return False
        probation = self._probation if self._probation is not None and self._probation[0] == container else None
        reason = ("" if status == "running" else f"it is {status}") if status else "it was removed"
        if not reason and state.compose_project:
            reason = self._services_down(state)
        if not reason:
            if probation is not None and time.monotonic() >= probation[1]:
                self._probation = None
                self._good(state)
            return True
        if probation is not None:  # the restart did not hold: a crash loop, not a one-off
            self._probation = None
            self._failed(state, f"it stopped again within {STABLE:.0f} s of being started ({reason})")
            state = self.dirs.read_state()
        if time.monotonic() < self._next_attempt:
            return False  # backing off; the wait ends when the next attempt is due
        self.log.warn(f"keep-alive: the workspace is down ({reason}; container {container[:12]}): starting it again")
        self.dirs.record_event(Event.CONTAINER_RESTARTED, container_id=container, reason=reason)
        started, _ = self.builds.request(KEEPALIVE)
        if started:
            self._next_attempt = time.monotonic() + next(self._waits)
        return False

    def _services_down(self, state: State) -> str:
        """The other services of the compose project that stopped with a failure, as a reason; or ""."""
        try:
            found = self.engine.workspace_containers(self.settings.workspace_folder)
        except BuildFailed:
            return ""
        ours = [c for c in found if c.role == ROLE_SERVICE and c.project == state.compose_project]
        failed = compose.exited(self.engine, ours, just_started=False)
        if not failed:
            return ""
        return "the compose service " + ", ".join(repr(item.service) for item in failed) + " stopped"

    def ended(self, build: Build) -> None:
        """A build ended (builds.on_end): a keep-alive build that brought the container back is on
        probation until it has stayed up STABLE seconds; one that did not is a failed attempt."""
        if build.trigger == KEEPALIVE:
            state = self.dirs.read_state()
            if build.exit_code == 0 and state.container_id:
                self._probation = (state.container_id, time.monotonic() + STABLE)
            else:
                self._failed(state, f"the restart ended with exit code {build.exit_code}; see the build log")
        elif build.exit_code == 0:
            self._probation = None  # a rebuild starts afresh
            self._waits = retry.delays(*BACKOFF)
        self.wake.set()

    def _good(self, state: State) -> None:
        self._waits = retry.delays(*BACKOFF)
        self._next_attempt = 0.0
        if not (state.keepalive_failures or state.keepalive_error):
            self.log.info("keep-alive: the workspace's container is running again")
            return

        def recovered(current: State) -> State:
            if current.keepalive_error and current.status == Status.FAILED:
                current.status = Status.DEGRADED if current.fallback else Status.RUNNING
            current.keepalive_failures, current.keepalive_error = 0, ""
            return current

        self.dirs.update_state(recovered)
        self.dirs.record_event(Event.KEEPALIVE_RECOVERED, failures=state.keepalive_failures)
        self.log.info(f"keep-alive: the workspace's container has stayed up for {STABLE:.0f} s after a restart")

    def _failed(self, state: State, why: str) -> None:
        failures = state.keepalive_failures + 1
        error = f"the devcontainer could not be kept running ({failures} attempts): {why}"
        limit = self.settings.keepalive_attempts

        def record(current: State) -> State:
            current.keepalive_failures = failures
            if failures >= limit:
                current.keepalive_error = error
                current.status = Status.FAILED
            return current

        self.log.warn(f"keep-alive: attempt {failures} failed: {why}")
        self.dirs.update_state(record)
        if failures >= limit:
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

    # -- the editor (ide/) --------------------------------------------------------------------------
    def _check_ide(self, state: State, container: str) -> None:
        if state.ide is None or state.ide.status not in ("started", "running"):
            return  # none was wanted, or it could not run here: nothing to bring back
        target = ide_start.Target(self.engine, container, state.remote_user, state.remote_workspace_folder)
        status, pid = ide_start.keep_running(self.settings, target)
        if status == "started":
            self.log.warn(f"keep-alive: code-server was not running in {container[:12]}: started it again")
            self.dirs.record_event(Event.IDE_STARTED, pid=pid, container_id=container, restarted=True)
            self.dirs.update_state(lambda s: _ide(s, status, pid))
        elif status not in ("running", "busy"):
            self.log.warn(f"keep-alive: code-server could not be started again ({status})")


def _ide(state: State, status: str, pid: str) -> State:
    if state.ide is not None:
        state.ide.status, state.ide.pid = status, pid
    return state


def _agent(state: State, started: agent.Started) -> State:
    if state.agent is not None:
        state.agent.status, state.agent.pid = started.status, started.pid
    return state
