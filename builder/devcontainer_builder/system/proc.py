"""Run a subprocess with a bound: argument lists only, output streamed by line, whole tree killed.

Every child starts in its own session so that a timeout or SIGTERM can kill the whole tree (the
devcontainer CLI starts docker clients of its own) instead of only the direct child. The children
running at any moment are known (`live()`), so that everything else below the builder - what a
repository's command left behind - can be told apart and stopped (reaper.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

from devcontainer_builder.errors import Terminated
from devcontainer_builder.system import reaper

T = TypeVar("T")

KILL_GRACE_SECONDS = 5.0
TERMINATED_GRACE_SECONDS = 1.0
READ_CHUNK = 64 * 1024  # a line longer than this is delivered in pieces: memory stays bounded
CAPTURE_LIMIT = 4 * 1024 * 1024

LineHandler = Callable[[str], None]
_live: set[int] = set()
_live_lock = threading.Lock()


def live() -> set[int]:
    """The pids of the children run() is waiting on right now."""
    with _live_lock:
        return set(_live)


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _reader(pipe: IO[bytes], handler: LineHandler | None, sink: list[str] | None) -> None:
    size = 0
    try:
        while True:
            chunk = pipe.readline(READ_CHUNK)
            if not chunk:
                break
            text = chunk.decode("utf-8", errors="replace")
            if handler is not None:
                # a failing handler must not stop the reading: the child would block on a full pipe
                with contextlib.suppress(Exception):
                    handler(text.rstrip("\n"))
            if sink is not None and size < CAPTURE_LIMIT:
                sink.append(text)
                size += len(text)
    finally:
        pipe.close()


_GENERIC_ERRORS = ("Could not read from remote repository", "the remote end hung up unexpectedly")


def last_line(text: str) -> str:
    """The line of a command's error output worth quoting: its first specific fatal/error line (git
    follows the real cause with generic ones), else its last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
    specific = [line for line in errors if not any(generic in line for generic in _GENERIC_ERRORS)]
    if specific:
        return specific[0]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "(no output)"


def wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for the child to exit, at most `timeout` seconds; True when it did.

    Popen.wait(timeout) polls with sleeps of up to 50 ms, which adds that much latency to every
    command. A pidfd becomes readable the moment the child exits.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, or the child is already reaped)
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return proc.poll() is not None
            if poller.poll(remaining * 1000):
                proc.wait()
                return True
    finally:
        os.close(fd)


def kill_tree(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_GRACE_SECONDS)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            # the leader is gone, but others in its group may still run: make sure they go too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


@functools.cache
def _death_signal_wrapper() -> list[str]:
    """setpriv (util-linux, in the image) makes the child get SIGKILL when the builder dies, even by
    SIGKILL. Only the direct child: what it started in turn is found by its run marker and stopped
    by the next builder (reaper.stop_dead_runs). Without setpriv that next builder does it all."""
    path = shutil.which("setpriv")
    return [path, "--pdeathsig", "KILL", "--"] if path else []


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    cwd: str | None = None,
    user: int | None = None,
    group: int | None = None,
    extra_groups: Sequence[int] = (),
    pass_fds: Sequence[int] = (),
    stdin_data: bytes | None = None,
    on_stdout: LineHandler | None = None,
    on_stderr: LineHandler | None = None,
    capture_stdout: bool = True,
    capture_stderr: bool = True,
    contain: bool = False,
) -> Result:
    """Run argv to its end or its timeout. `contain`: the child runs a repository's code (the
    devcontainer CLI runs initializeCommand); when it ends, whatever it left running is stopped."""
    argv = [str(a) for a in argv]
    started = time.monotonic()
    launch = _death_signal_wrapper() + argv
    extra: dict[str, Any] = {}
    if user is not None and os.geteuid() == 0 and user != 0:
        extra = {"user": user, "group": group, "extra_groups": list(extra_groups)}
    proc = subprocess.Popen(
        launch,
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        **extra,
    )
    with _live_lock:
        _live.add(proc.pid)
    try:
        return _finish(
            proc=proc,
            argv=argv,
            started=started,
            timeout=timeout,
            stdin_data=stdin_data,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            capture_stdout=capture_stdout,
            capture_stderr=capture_stderr,
            contain=contain,
        )
    finally:
        with _live_lock:
            _live.discard(proc.pid)


def _finish(
    *,
    proc: subprocess.Popen[bytes],
    argv: list[str],
    started: float,
    timeout: float,
    stdin_data: bytes | None,
    on_stdout: LineHandler | None,
    on_stderr: LineHandler | None,
    capture_stdout: bool,
    capture_stderr: bool,
    contain: bool,
) -> Result:
    out: list[str] = []
    err: list[str] = []
    threads = [
        threading.Thread(target=_reader, args=(proc.stdout, on_stdout, out if capture_stdout else None), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, on_stderr, err if capture_stderr else None), daemon=True),
    ]
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        if stdin_data is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin_data)
            except BrokenPipeError:
                pass
            finally:
                proc.stdin.close()
        if not wait(proc, timeout):
            timed_out = True
            kill_tree(proc)
    except BaseException as stopped:
        # SIGTERM'd, the builder itself is on a deadline (serve gives a rebuild 3 s): what it runs gets one
        # second, so that the builder still records how it ended
        kill_tree(proc, TERMINATED_GRACE_SECONDS if isinstance(stopped, Terminated) else KILL_GRACE_SECONDS)
        if contain:
            reaper.stop_strays()
        raise
    # what the child started in its own process group goes with it; with `contain`, so does anything
    # that left the group (setsid) and was handed to the builder, the subreaper, when its parent died
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if contain:
        reaper.stop_strays()
    for thread in threads:
        # a grandchild that inherited the pipe may keep it open: do not wait on it for ever
        thread.join(timeout=KILL_GRACE_SECONDS)
    return Result(
        argv=argv,
        returncode=proc.returncode,
        stdout="".join(out),
        stderr="".join(err),
        timed_out=timed_out,
        duration=time.monotonic() - started,
    )


class Pending(Generic[T]):
    """A call running in a thread; result() waits for it and re-raises what it raised.

    Used to overlap independent queries (a docker ps, a git status) that would otherwise each add a
    process's start-up time to every `up`.
    """

    def __init__(self, function: Callable[..., T], *args: object, **kwargs: object) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

        def target() -> None:
            try:
                self._value = function(*args, **kwargs)
            except BaseException as err:  # handed to the caller of result()
                self._error = err

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def done(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds; True when the call has finished (result() will not wait)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # target() set it, as no error was raised


class Child:
    """A long-running child (a rebuild's `up`, an event stream), in a session of its own and known to
    the reaper (live()) until it has been waited for."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        stdout: int | IO[bytes] | None = None,
        stderr: int | IO[bytes] | None = None,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.popen = subprocess.Popen(
            _death_signal_wrapper() + self.argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=dict(env),
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        self.pid = self.popen.pid
        with _live_lock:
            _live.add(self.pid)

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self.pid)

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None:
            self._forget()
        return code

    def wait(self, timeout: float) -> int | None:
        """Its exit code once it has exited, waiting at most `timeout` seconds; None while it runs."""
        if wait(self.popen, timeout):
            self._forget()
            return self.popen.returncode
        return None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, grace: float) -> int | None:
        """SIGTERM its process group, SIGKILL what is left after `grace` seconds; its exit code."""
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.signal(signal.SIGKILL)
            code = self.wait(KILL_GRACE_SECONDS)
        self.signal(signal.SIGKILL)  # the leader is gone: what else of its group is left goes too
        return code
