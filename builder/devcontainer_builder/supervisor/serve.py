"""`devcontainer-builder serve`: the long-running half of the builder.

It never builds by itself at start (`up` did that): it reads the state dir, takes no lock while idle,
writes serve.json (address, pid, version) for the `rebuild` command to find it, and runs three things
until SIGTERM: the HTTP API and page (app.py), the rebuild-suggestion watcher (suggestions.py) and
keep-alive (keepalive.py). SIGTERM ends it within a few seconds without touching the devcontainer; a
rebuild in progress is stopped the way SIGTERM stops `up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import resource
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from devcontainer_builder.engine import detect
from devcontainer_builder.engine.engine import Engine
from devcontainer_builder.errors import BuilderError, InputError
from devcontainer_builder.log import Log
from devcontainer_builder.settings.options import Settings
from devcontainer_builder.state.record import Event, State
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.supervisor.app import create_app, over_tcp, over_unix
from devcontainer_builder.supervisor.builder_agent import BuilderAgent
from devcontainer_builder.supervisor.builds import Build, Builds
from devcontainer_builder.supervisor.keepalive import KeepAlive
from devcontainer_builder.supervisor.status import RepositoryInfo, Supervisor
from devcontainer_builder.supervisor.suggestions import Suggestions
from devcontainer_builder.system import caps, clock, environment, files, lock

STOP_GRACE = 3.0  # for a rebuild in progress; the whole stop stays within 5 s


def hostport(host: str, port: int) -> str:
    """host:port as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


BIND_RETRY_MAX = 30.0  # seconds between tries while the TCP address is busy
# connections at once on each door (log streams included; app.py bounds those further): past them, 503
TCP_CONNECTIONS = 256
UNIX_CONNECTIONS = 64
REQUEST_HEAD_TIMEOUT = 10.0  # seconds a new connection has to send its request's head
UNIX_PATH_MAX = 100  # sun_path holds 108 bytes; a longer path is reached through /proc/self/fd


class AddressBusy(Exception):
    pass


def listen(address: tuple[str, int]) -> socket.socket:
    """The TCP socket, bound and listening; AddressBusy when the address is taken (serve waits for it
    rather than exiting: a busy address is never a permanent stop), InputError for any other failure."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise AddressBusy(hostport(host, port)) from None
        raise InputError(
            [
                f"cannot listen on {hostport(host, port)} ({err.strerror}); set DEVCONTAINER_SERVE_ADDRESS to an "
                "address of this machine (a port below 1024 needs CAP_NET_BIND_SERVICE: the VM's unit grants it)."
            ]
        ) from None
    sock.set_inheritable(False)
    return sock


@contextlib.contextmanager
def short_path(path: str) -> Iterator[str]:
    """`path`, or the same file through /proc/self/fd when it is too long for a unix socket's address."""
    if len(path.encode()) <= UNIX_PATH_MAX:
        yield path
        return
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


def listen_unix(path: str) -> socket.socket:
    """serve.sock, the trusted door: its owner's only (umask 077), in the state dir no devcontainer sees. A
    stale one is ours to replace: this process holds serve.lock."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with short_path(path) as where:
            previous = os.umask(0o077)
            try:
                sock.bind(where)
            finally:
                os.umask(previous)
        sock.listen(64)
    except OSError as err:
        sock.close()
        raise InputError([f"cannot listen on {path} ({err.strerror})."]) from None
    sock.set_inheritable(False)
    return sock


def page_key(agent_token: str) -> str:
    """The key in the page's address (`/k/KEY/`). With Coder's builder agent it is derived from that agent's
    token - the template computes the same value for the app's URL, and the devcontainer never holds that
    token - otherwise random for this supervisor (serve.json, readable by its owner only, gives the page's URL)."""
    if agent_token:
        return hashlib.sha256(f"devcontainer-builder status page:{agent_token}".encode()).hexdigest()
    return secrets.token_hex(16)


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


def _raise_file_limit() -> None:
    """The soft limit on open files up to the hard one (systemd's units start at 1,024): room for the
    bounded connections and everything keep-alive and the builds open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))


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
    unix = listen_unix(dirs.serve_socket)
    tcp: socket.socket | None = None
    with contextlib.suppress(AddressBusy):  # waited for below, with the other door open meanwhile
        tcp = listen(settings.serve_address)
    host, port = settings.serve_address if tcp is None else tcp.getsockname()[:2]
    _settle_process()
    stop = threading.Event()
    workers = _workers(settings, environ, child_environ, log, dirs=dirs, stop=stop, version=version,
                       address=hostport(host, port))  # fmt: skip
    key = settings.serve_page_key or page_key(settings.serve_agent_token)
    app = create_app(workers.sup)
    servers = [
        _server(over_unix(app), UNIX_CONNECTIONS),
        _server(over_tcp(app, key, settings.serve_hosts), TCP_CONNECTIONS),
    ]
    base = f"http://{hostport(host, port)}/"
    with _serve_file(dirs, host, port, version, page=f"{base}k/{key}/", log=log):
        dirs.record_event(Event.SERVE_STARTED, address=hostport(host, port), pid=os.getpid())
        _announce(settings, dirs, log, base=base, key=key)
        for thread in workers.threads:
            thread.start()

        def stopping() -> None:
            for server in servers:
                server.should_exit = True
            _stopping(stop, workers.builds, log, workers.own_agent)

        with _signals(stopping):
            asyncio.run(_run(servers, unix, _Door(tcp, settings.serve_address, stop, log, dirs)))
        stop.set()
        workers.keepalive.wake.set()
        workers.suggestions.wake()
        for thread in workers.threads:
            thread.join(timeout=1.0)
        dirs.record_event(Event.SERVE_STOPPED)
    log.info("devcontainer-builder serve: stopped")
    return 0


def _settle_process() -> None:
    # serve keeps its own CAP_NET_BIND_SERVICE (to listen again once a busy address is free); the programs it
    # runs - builds, hooks, the builder agent and its terminal - do not get it
    caps.drop_ambient()
    _raise_file_limit()
    # a log stream whose client has gone makes asyncio warn on every write until the stream notices
    logging.getLogger("asyncio").setLevel(logging.ERROR)


@dataclass(frozen=True)
class _Workers:
    """The supervisor's parts, and the threads that run them beside the servers."""

    sup: Supervisor
    builds: Builds
    suggestions: Suggestions
    keepalive: KeepAlive
    own_agent: BuilderAgent | None
    threads: list[threading.Thread]


def _workers(
    settings: Settings,
    environ: Mapping[str, str],
    child_environ: Mapping[str, str],
    log: Log,
    *,
    dirs: StateDir,
    stop: threading.Event,
    version: str,
    address: str,
) -> _Workers:
    choice = detect.choose_as_before(settings.docker_path, environ, dirs.read_state())
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
        address=address,
    )
    own_agent = (
        BuilderAgent(settings=settings, environ=dict(environ), dirs=dirs, log=log)
        if settings.serve_agent_init_script
        else None
    )
    threads = [
        threading.Thread(target=suggestions.run, name="suggestions", daemon=True),
        threading.Thread(target=keepalive.run, name="keepalive", daemon=True),
    ]
    if own_agent is not None:
        threads.append(threading.Thread(target=own_agent.run, name="builder-agent", daemon=True))
    return _Workers(sup, builds, suggestions, keepalive, own_agent, threads)


def _announce(settings: Settings, dirs: StateDir, log: Log, *, base: str, key: str) -> None:
    log.info(f"devcontainer-builder serve: status page and API on {base} and {dirs.serve_socket} (workspace "
             f"{settings.workspace_folder})")  # fmt: skip
    if not settings.coder_agent_url:
        # standalone, on the user's own terminal: the page with its key (its buttons need it); with Coder
        # the app's URL has it, and no log that leaves the machine does
        log.info(f"devcontainer-builder serve: open the status page at {base}k/{key}/")


class _BoundedH11(H11Protocol):
    """uvicorn's HTTP/1.1 connection, bounded: past the door's limit a new connection is closed at once, and
    one whose request has not arrived within REQUEST_HEAD_TIMEOUT is closed - uvicorn waits for a request
    head forever, so connections that never finish one would run serve out of file descriptors, the ones
    keep-alive and the builds need included."""

    limit = TCP_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limit:
            transport.abort()
            return
        self.loop.call_later(REQUEST_HEAD_TIMEOUT, self._head_overdue)

    def _head_overdue(self) -> None:
        cycle: object | None = self.cycle  # uvicorn types it as always set; it is None until a request
        if cycle is None and not self.transport.is_closing():
            self.transport.abort()


def _bounded(limit: int) -> type[_BoundedH11]:
    return type("BoundedH11", (_BoundedH11,), {"limit": limit})


def _server(app: Any, limit: int) -> uvicorn.Server:
    """`limit`: connections at once on this door (_BoundedH11)."""
    return _Server(
        uvicorn.Config(
            app,
            limit_concurrency=limit,
            # asyncio accepts up to `backlog` waiting connections in one go, before any can be turned away:
            # uvicorn's 2,048 would open that many files at once
            backlog=64,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            loop="asyncio",
            http=_bounded(limit),
            ws="none",
        )
    )


@dataclass
class _Door:
    """The TCP door: its socket (None while the address is busy) and what trying again needs."""

    sock: socket.socket | None
    address: tuple[str, int]
    stop: threading.Event
    log: Log
    dirs: StateDir


async def _run(servers: list[uvicorn.Server], unix: socket.socket, door: _Door) -> None:
    await asyncio.gather(servers[0].serve(sockets=[unix]), _serve_tcp(servers[1], door))


async def _serve_tcp(server: uvicorn.Server, door: _Door) -> None:
    """The TCP door; while its address is busy, tried again with a back-off until it is free or serve
    stops - the unix socket, keep-alive and the builder agent work meanwhile."""
    delay, tcp = 1.0, door.sock
    while tcp is None:
        try:
            tcp = listen(door.address)
        except AddressBusy as busy:
            if delay == 1.0:
                door.log.warn(
                    f"{busy} is in use by another process; the status page waits for it (trying again, every "
                    f"{BIND_RETRY_MAX:.0f} s at most); `devcontainer-builder rebuild` and `status` work meanwhile"
                )
                door.dirs.record_event(Event.SERVE_ADDRESS_BUSY, address=str(busy))
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if door.stop.is_set() or server.should_exit:
                    return
                await asyncio.sleep(0.2)
            delay = min(delay * 2, BIND_RETRY_MAX)
        else:
            door.log.info(f"devcontainer-builder serve: status page on http://{hostport(*door.address)}/ (free now)")
    await server.serve(sockets=[tcp])


@contextlib.contextmanager
def _signals(on_exit: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT start a graceful stop (streams end, a running build is stopped) and the process
    then exits 0 - uvicorn's own handler would re-raise the signal after the stop."""

    def handler(signum: int, frame: FrameType | None) -> None:
        on_exit()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
def _serve_file(dirs: StateDir, host: str, port: int, version: str, *, page: str, log: Log) -> Iterator[None]:
    """serve.json, for `devcontainer-builder rebuild` and `status` to find this supervisor; its owner's
    only, as it holds the page's address with its key."""
    data = {"address": hostport(host, port), "url": f"http://{hostport(host, port)}/", "page": page,
            "socket": dirs.serve_socket, "pid": os.getpid(), "version": version, "started_at": clock.iso()}  # fmt: skip
    try:
        files.write_atomic(dirs.serve_file, json.dumps(data, indent=1) + "\n", mode=0o600, sync=False)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise InputError([f"cannot write {dirs.serve_file} ({err.strerror})."]) from None
        # a full disk is not bad input (docs/state.md): exit 2 would keep a VM's unit down for good.
        # serve runs on; `rebuild` and `status` then find it by its socket, which needs no space
        log.warn(f"cannot write {dirs.serve_file} ({err.strerror}); serving on without it")
    try:
        yield
    finally:
        current = dirs.read_json(dirs.serve_file)
        if isinstance(current, dict) and current.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(dirs.serve_file)
        with contextlib.suppress(OSError):
            os.unlink(dirs.serve_socket)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: serve's (_signals) stops both doors at once."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
