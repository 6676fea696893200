"""Linux inotify, for the few folders the supervisor watches (the config's, the build context's, the
state dir). Watching is event-driven: an idle supervisor sleeps in poll(2) and costs no CPU."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
from dataclasses import dataclass

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
CHANGES = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
    | IN_DELETE_SELF | IN_MOVE_SELF
)  # fmt: skip
_EVENT = struct.Struct("iIII")


@dataclass(frozen=True)
class Event:
    folder: str  # the watched folder the event happened in
    name: str  # the entry's name in it ("" for the folder itself)
    mask: int

    @property
    def overflowed(self) -> bool:
        return bool(self.mask & IN_Q_OVERFLOW)


class Inotify:
    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = int(self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._folders: dict[int, str] = {}  # watch descriptor -> folder
        self._watches: dict[str, int] = {}
        self._interrupt_read, self._interrupt_write = os.pipe()

    def interrupt(self) -> None:
        """Make a read() that is waiting return at once (from another thread)."""
        with contextlib.suppress(OSError):
            os.write(self._interrupt_write, b"!")

    @property
    def folders(self) -> set[str]:
        return set(self._watches)

    def watch(self, folder: str) -> bool:
        """Watch a folder's entries; False when it cannot be watched (gone, or the watch limit)."""
        if folder in self._watches:
            return True
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(folder), CHANGES | IN_ONLYDIR))
        if wd < 0:
            return False
        self._folders[wd] = folder
        self._watches[folder] = wd
        return True

    def unwatch(self, folder: str) -> None:
        wd = self._watches.pop(folder, None)
        if wd is not None:
            self._folders.pop(wd, None)
            self._libc.inotify_rm_watch(self.fd, wd)

    def read(self, timeout: float | None) -> list[Event]:
        """The events that arrive within `timeout` seconds (None: wait for the first), [] on timeout."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._interrupt_read, select.POLLIN)
        ready = {fd for fd, _ in poller.poll(None if timeout is None else max(0, int(timeout * 1000)))}
        if self._interrupt_read in ready:
            os.read(self._interrupt_read, 1024)
            return []
        if self.fd not in ready:
            return []
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        events, offset = [], 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            name = os.fsdecode(raw.rstrip(b"\0"))
            folder = self._folders.get(wd, "")
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF) and not name:
                self._watches.pop(folder, None)
                self._folders.pop(wd, None)
            events.append(Event(folder, name, mask))
        return events

    def close(self) -> None:
        if self.fd >= 0:
            for fd in (self.fd, self._interrupt_read, self._interrupt_write):
                os.close(fd)
            self.fd = -1
