"""Coder's `builder` agent, in the supervisor's own container: the workspace's status page app and a
terminal that work while the devcontainer is being rebuilt, is down, or could not be built at all.

The template gives its init script (DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT) and token
(DEVCONTAINER_SERVE_AGENT_TOKEN). `serve` runs the script in a session of its own with an environment
built from an allow-list - how to reach the engine and the network, the state dir, the agent's own URL
and token; never the builder's other secrets - and starts it again when it exits, backing off from 1 s
to 1 min. Its output goes to builder-agent.log in the state dir.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

from devcontainer_builder.log import Log
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import Event
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.system import environment, proc, retry

LOG_MAX = 1024 * 1024  # the log starts afresh past this, at the next start
STEADY = 60.0  # an agent that ran this long before it exited starts again at once


def environment_for(settings: Settings, environ: dict[str, str]) -> dict[str, str]:
    env = environment.for_engine(environ, settings.workspace_folder)
    env.update(
        CODER_AGENT_URL=settings.coder_agent_url,
        CODER_AGENT_TOKEN=settings.serve_agent_token,
        # the terminal's `devcontainer-builder status` and `rebuild` find this workspace
        DEVCONTAINER_STATE_DIR=settings.state_dir,
    )
    return env


class BuilderAgent:
    def __init__(self, *, settings: Settings, environ: dict[str, str], dirs: StateDir, log: Log) -> None:
        self.settings = settings
        self.env = environment_for(settings, environ)
        self.dirs = dirs
        self.log = log
        self.stopping = threading.Event()
        self.child: proc.Child | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        waits = retry.delays(1.0, 60.0)
        while not self.stopping.is_set():
            started = time.monotonic()
            code = self._run_once()
            if self.stopping.is_set():
                return
            ran = time.monotonic() - started
            if ran >= STEADY:
                waits = retry.delays(1.0, 60.0)
            delay = next(waits)
            self.log.warn(
                f"Coder's builder agent exited (code {code}) after {ran:.0f} s; starting it again in {delay:.0f} s "
                f"(its output: {self.log_path})"
            )
            self.dirs.record_event(Event.SERVE_AGENT_EXITED, exit_code=code, seconds=round(ran, 1))
            self.stopping.wait(delay)

    @property
    def log_path(self) -> str:
        return self.dirs.file("builder-agent.log")

    def _run_once(self) -> int | None:
        try:
            if os.path.getsize(self.log_path) > LOG_MAX:
                os.unlink(self.log_path)
        except OSError:
            pass
        try:
            output = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it; closed below
        except OSError:
            output = None
        try:
            with self._lock:
                if self.stopping.is_set():
                    return None
                self.child = proc.Child(
                    ["sh", "-c", self.settings.serve_agent_init_script],
                    env=self.env,
                    stdout=output if output is not None else subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                )
            self.log.info(f"Coder's builder agent started (pid {self.child.pid}); its output: {self.log_path}")
            self.dirs.record_event(Event.SERVE_AGENT_STARTED, pid=self.child.pid)
            code = None
            while code is None and not self.stopping.is_set():
                code = self.child.wait(1.0)
            return code
        except OSError as err:
            self.log.warn(f"Coder's builder agent could not be started: {err}")
            return None
        finally:
            if output is not None:
                output.close()

    def stop(self, grace: float) -> None:
        self.stopping.set()
        with self._lock:
            child = self.child
        if child is not None and child.poll() is None:
            child.stop(grace)
