"""Writing files the one safe way: atomically (a reader or a crash sees the old file or the new one,
never half of either) and, when the builder runs as root, owned by the workspace's user."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    """Who files the builder creates in the workspace belong to; None when the builder is not root
    (then they belong to the builder, and chown would fail anyway)."""

    uid: int
    gid: int

    @staticmethod
    def for_workspace(uid: int, gid: int) -> Owner | None:
        return Owner(uid, gid) if os.geteuid() == 0 else None


def chown(path: str, owner: Owner | None) -> None:
    if owner is not None:
        os.chown(path, owner.uid, owner.gid, follow_symlinks=False)


def make_dirs(path: str, owner: Owner | None = None, mode: int = 0o755) -> None:
    """Create path and its missing parents; the ones created get the owner."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, mode)
            chown(folder, owner)


def write_atomic(
    path: str, data: str | bytes, *, mode: int = 0o644, owner: Owner | None = None, sync: bool = True
) -> None:
    """Replace path with data by rename(2) from a temporary file beside it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        chown(tmp, owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_regular(path: str, limit: int) -> bytes | None:
    """A regular file's bytes, at most `limit` of them; None when it is not a regular file, is longer, or
    cannot be read. Opened without blocking: a FIFO or a device in its place (/dev/zero) is an answer, not
    a hang or an endless read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read_text(path: str, limit: int | None = None) -> str | None:
    """The file's text (undecodable bytes replaced), None when it cannot be read; at most `limit` chars."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read() if limit is None else handle.read(limit)
    except OSError:
        return None
