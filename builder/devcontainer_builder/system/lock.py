"""Locks in the state dir: the workspace lock, so two `up` runs never race the devcontainer CLI into two
containers, and the supervisor's, so one `serve` serves a workspace.

flock(2) on a file in the state dir: the kernel releases it when the holder dies, so a killed builder
never leaves the workspace locked, and "is it held" is an honest answer to "is that process still
there" (a pid file could name a reused pid).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

from devcontainer_builder.errors import BuilderError

POLL_SECONDS = 0.2


class LockTimeout(BuilderError):
    """Another builder kept the workspace for longer than a whole build may take: exit 1, nothing touched."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


def held(path: str) -> bool:
    """Somebody holds the lock at `path` now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO in its place is an answer, not a hang
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def holder(path: str) -> str:
    """The pid the holder of the lock at `path` wrote into it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return "unknown"
    try:
        return _holder(fd)
    finally:
        os.close(fd)


def try_lock(path: str) -> int | None:
    """The lock at `path`, taken without waiting, as an open descriptor (closing it releases the lock);
    None when somebody else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


@contextlib.contextmanager
def workspace_lock(path: str, timeout: float, on_wait: Callable[[str], None]) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    on_wait(_holder(fd))
                    waited = True
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another devcontainer-builder (pid {_holder(fd)}) has held the workspace lock {path} "
                        f"for more than {timeout:.0f} s; it is still building this workspace. Wait for it to "
                        "finish or stop it, then run `up` again.",
                        step="lock",
                    ) from None
                time.sleep(POLL_SECONDS)
        with contextlib.suppress(OSError):  # a full disk: the lock holds without the pid in it
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
