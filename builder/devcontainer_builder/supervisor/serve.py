"""`devcontainer-builder serve`: the long-running half of the builder.

It never builds by itself at start (`up` did that): it reads the state dir, takes no lock while idle,
writes serve.json (address, pid, version) for the `rebuild` command to find it, and runs three things
until SIGTERM: the HTTP API and page (app.py), the rebuild-suggestion watcher (suggestions.py) and
keep-alive (keepalive.py). SIGTERM ends it within a few seconds without touching the devcontainer; a
rebuild in progress is stopped the way SIGTERM stops `up`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from types import FrameType

import uvicorn

from devcontainer_builder.engine import detect
from devcontainer_builder.engine.engine import Engine
from devcontainer_builder.errors import BuilderError, InputError
from devcontainer_builder.log import Log
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import Event, State
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.supervisor.app import create_app
from devcontainer_builder.supervisor.builder_agent import BuilderAgent
from devcontainer_builder.supervisor.builds import Build, Builds
from devcontainer_builder.supervisor.keepalive import KeepAlive
from devcontainer_builder.supervisor.status import RepositoryInfo, Supervisor
from devcontainer_builder.supervisor.suggestions import Suggestions
from devcontainer_builder.system import clock, environment, files, lock

STOP_GRACE = 3.0  # for a rebuild in progress; the whole stop stays within 5 s


def hostport(host: str, port: int) -> str:
    """host:port as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(address: tuple[str, int]) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise InputError(
            [
                f"cannot listen on {hostport(host, port)} ({err.strerror}); set DEVCONTAINER_SERVE_ADDRESS to a free "
                "address."
            ]
        ) from None
    sock.set_inheritable(False)
    return sock


def serve(
    settings: Settings, environ: Mapping[str, str], child_environ: Mapping[str, str], log: Log, version: str
) -> int:
    """`child_environ`: the builder's settings in environment form (flags included), without secrets -
    what each build's `up` gets."""

    def unwritable(path: str, err: OSError) -> None:
        log.warn(f"cannot write {path} ({err.strerror}); serving on, without recording it")

    dirs = StateDir(settings.state_dir, on_error=unwritable)
    try:
        dirs.ensure()
    except OSError as err:
        raise InputError([f"the state dir {settings.state_dir} cannot be created ({err.strerror})."]) from None
    serving = lock.try_lock(dirs.serve_lock_file)
    if serving is None:
        raise ServeConflict(
            f"another devcontainer-builder serve (pid {lock.holder(dirs.serve_lock_file)}) is serving the state "
            f"dir {settings.state_dir}; one supervisor per workspace. Stop it first, or ask it: "
            "`devcontainer-builder rebuild` and `status` find it through serve.json."
        )
    try:
        return _serve(settings, environ, child_environ, log, version=version, dirs=dirs)
    finally:
        os.close(serving)


class ServeConflict(BuilderError):
    """Another `serve` holds the workspace's supervisor lock: exit 1, nothing touched."""


def _serve(
    settings: Settings,
    environ: Mapping[str, str],
    child_environ: Mapping[str, str],
    log: Log,
    *,
    version: str,
    dirs: StateDir,
) -> int:
    # what a supervisor that was killed had asked for is nobody's now (this one holds the lock)
    dirs.update_state(_forget_request)
    sock = listen(settings.serve_address)
    host, port = sock.getsockname()[:2]
    # a log stream whose client has gone makes asyncio warn on every write until the stream notices
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    stop = threading.Event()
    choice = detect.choose_for(settings.docker_path, environ, dirs.read_state())
    engine = Engine(choice.path, environment.for_engine(environ, settings.workspace_folder), choice.kind)
    keepalive: KeepAlive | None = None

    def ended(build: Build) -> None:
        log.info(f"build {build.id} ({build.trigger}) ended with exit code {build.exit_code}")
        if keepalive is not None:
            keepalive.ended(build)

    builds = Builds(dirs, child_environ, on_end=ended)
    suggestions = Suggestions(settings.workspace_folder, dirs, log, stop)
    keepalive = KeepAlive(settings=settings, dirs=dirs, engine=engine, builds=builds, log=log, stop=stop)
    suggestions.on_change = keepalive.wake.set
    sup = Supervisor(
        settings=settings,
        dirs=dirs,
        builds=builds,
        suggestions=suggestions,
        log=log,
        repository=RepositoryInfo(settings, dict(environ), log),
        stop=stop,
        version=version,
        address=hostport(host, port),
    )
    own_agent = (
        BuilderAgent(settings=settings, environ=dict(environ), dirs=dirs, log=log)
        if settings.serve_agent_init_script
        else None
    )
    server = _Server(
        uvicorn.Config(
            create_app(sup),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            loop="asyncio",
            http="h11",
            ws="none",
        ),
        on_exit=lambda: _stopping(stop, builds, log, own_agent),
    )
    threads = [
        threading.Thread(target=suggestions.run, name="suggestions", daemon=True),
        threading.Thread(target=keepalive.run, name="keepalive", daemon=True),
    ]
    if own_agent is not None:
        threads.append(threading.Thread(target=own_agent.run, name="builder-agent", daemon=True))
    with _serve_file(dirs, host, port, version):
        dirs.record_event(Event.SERVE_STARTED, address=hostport(host, port), pid=os.getpid())
        log.info(f"devcontainer-builder serve: status page and API on http://{hostport(host, port)}/ (workspace "
                 f"{settings.workspace_folder})")  # fmt: skip
        for thread in threads:
            thread.start()
        server.run(sockets=[sock])
        stop.set()
        keepalive.wake.set()
        suggestions.wake()
        for thread in threads:
            thread.join(timeout=1.0)
        dirs.record_event(Event.SERVE_STOPPED)
    log.info("devcontainer-builder serve: stopped")
    return 0


def _forget_request(state: State) -> State:
    state.requested = None
    return state


def _stopping(stop: threading.Event, builds: Builds, log: Log, own_agent: BuilderAgent | None) -> None:
    if stop.is_set():
        return
    stop.set()  # ends the log streams, the watcher and keep-alive (woken up below)
    log.info("devcontainer-builder serve: stopping (SIGTERM); the devcontainer keeps running")
    threading.Thread(target=builds.stop, args=(STOP_GRACE,), daemon=True).start()
    if own_agent is not None:
        threading.Thread(target=own_agent.stop, args=(1.0,), daemon=True).start()


@contextlib.contextmanager
def _serve_file(dirs: StateDir, host: str, port: int, version: str) -> Iterator[None]:
    """serve.json, for `devcontainer-builder rebuild` and `status` to find this supervisor."""
    data = {"address": hostport(host, port), "url": f"http://{hostport(host, port)}/", "pid": os.getpid(),
            "version": version, "started_at": clock.iso()}  # fmt: skip
    try:
        files.write_atomic(dirs.serve_file, json.dumps(data, indent=1) + "\n", sync=False)
    except OSError as err:
        raise InputError([f"cannot write {dirs.serve_file} ({err.strerror})."]) from None
    try:
        yield
    finally:
        current = dirs.read_json(dirs.serve_file)
        if isinstance(current, dict) and current.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(dirs.serve_file)


class _Server(uvicorn.Server):
    """uvicorn's server, with its signal handling replaced: SIGTERM and SIGINT start a graceful stop
    (streams end, a running build is stopped) and the process then exits 0 - uvicorn's own handler would
    re-raise the signal after the stop."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.should_exit = True
        self.on_exit()
