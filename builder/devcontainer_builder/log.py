"""One stream of log lines, cleaned and redacted once, fanned out to sinks.

Sinks: the terminal (filtered by level), the state dir's build.log (everything), and - when Coder is
configured - the Coder log sender. Redaction happens here, before any sink sees a line, so no sink can
forget it.
"""

from __future__ import annotations

import collections
import contextlib
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol, TextIO

from devcontainer_builder.system import clock

LEVELS = ("trace", "debug", "info", "warn", "error")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
REDACTED = "********"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPECIAL = re.compile(r"[\x00-\x1f\x7f]")  # anything clean() would change, newlines included


class Line(NamedTuple):
    # a NamedTuple rather than a frozen dataclass: one is made for every line of every build
    time: float
    level: str
    text: str
    source: str = "builder"


class Sink(Protocol):
    def write(self, line: Line) -> None: ...

    def close(self) -> None: ...


_TERMINAL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (an 8-bit CSI is \x9b)


def printable(text: str) -> str:
    """One line for a terminal: every control character (an escape sequence's start among them) replaced,
    so text a repository controls - a file name, a branch - cannot drive the reader's terminal."""
    return _TERMINAL_CONTROL.sub("\ufffd", text)


def clean(text: str) -> list[str]:
    """Strip ANSI escapes, keep the last frame of \\r progress updates, replace NUL and controls."""
    if text.isprintable() or not _SPECIAL.search(text):  # most build output: one plain line
        text = text.rstrip()
        return [text] if text else []
    pieces = []
    for raw in _ANSI.sub("", text).split("\n"):
        piece = raw.rstrip("\r")
        if "\r" in piece:
            frames = [frame for frame in piece.split("\r") if frame.strip()]
            piece = frames[-1] if frames else ""
        piece = _CONTROL.sub("\ufffd", piece).rstrip()
        if piece:
            pieces.append(piece)
    return pieces


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if not secret or len(secret) < 4:
            return  # too short to redact without mangling ordinary text; such a value is no real secret
        variants = {secret, urllib.parse.quote(secret, safe=""), secret.strip()}
        # multi-line secrets (SSH keys) are also redacted line by line
        variants.update(part for part in secret.splitlines() if len(part.strip()) >= 8)
        for variant in variants:
            if variant and variant not in self._secrets:
                self._secrets.append(variant)
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


_TERMINAL_PREFIX = {"warn": "warning: ", "error": "error: "}


class TerminalSink:
    """Progress on stdout; the builder's own warnings and errors on stderr, where scripts look."""

    def __init__(self, level: str = "info", stream: TextIO | None = None, errors: TextIO | None = None) -> None:
        self.rank = LEVEL_RANK[level]
        self.stream = stream if stream is not None else sys.stdout
        self.errors = errors if errors is not None else (stream if stream is not None else sys.stderr)

    def write(self, line: Line) -> None:
        if LEVEL_RANK[line.level] < self.rank:
            return
        own = line.source == "builder"
        stream = self.errors if own and line.level in _TERMINAL_PREFIX else self.stream
        prefix = _TERMINAL_PREFIX.get(line.level, "") if own else ""
        try:
            stream.write(f"{prefix}{line.text}\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not fail the build

    def close(self) -> None:
        pass


def listing(items: list[str], limit: int = 8) -> str:
    """The first `limit` items and how many more, for a log line that names paths."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def format_line(line: Line) -> str:
    """A line as build.log shows it: time, level, source, text."""
    return f"{clock.iso(line.time)} {line.level:<5} [{line.source}] {line.text}"


class FileSink:
    """The build log in the state dir: every level, with time, level and source. A disk that fills up
    loses log lines, never the build: the first failure is reported through on_error, once."""

    def __init__(self, path: str, on_error: Callable[[str, OSError], None] | None = None) -> None:
        self.path = path
        self.on_error = on_error
        self.file: TextIO | None = None
        try:
            self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError as err:
            self._failed(err)

    def _failed(self, err: OSError) -> None:
        if self.on_error is not None:
            report, self.on_error = self.on_error, None
            report(self.path, err)

    def write(self, line: Line) -> None:
        if self.file is None:
            return
        try:
            self.file.write(format_line(line) + "\n")
            self.file.flush()
        except OSError as err:
            self._failed(err)
        except ValueError:
            pass  # closed

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()


class TailSink:
    """The last lines of the build, kept for the error log a failure leaves in the workspace."""

    def __init__(self, size: int = 200) -> None:
        self.lines: collections.deque[Line] = collections.deque(maxlen=size)

    def write(self, line: Line) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass

    def text(self) -> str:
        return "\n".join(format_line(line) for line in self.lines)


class Log:
    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redact = redactor or Redactor()
        self.sinks: list[Sink] = []
        # stderr and stdout readers of one process log from two threads; re-entrant because a sink that
        # fails (a full disk) reports it through this same log
        self._lock = threading.RLock()

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)
            sink.close()

    def emit(self, level: str, text: str, source: str = "builder", exclude: Sink | None = None) -> None:
        now = time.time()
        redacted = self.redact(text)
        pieces = clean(redacted)
        with self._lock:
            for piece in pieces:
                # cleaning can join a secret that escape codes had split: redact what changed again.
                # tuple.__new__: a NamedTuple's own constructor is Python code, run for every line.
                text = piece if piece == redacted else self.redact(piece)
                line = tuple.__new__(Line, (now, level, text, source))
                for sink in self.sinks:
                    if sink is not exclude:
                        sink.write(line)

    def trace(self, text: str, source: str = "builder") -> None:
        self.emit("trace", text, source)

    def debug(self, text: str, source: str = "builder") -> None:
        self.emit("debug", text, source)

    def info(self, text: str, source: str = "builder") -> None:
        self.emit("info", text, source)

    def warn(self, text: str, source: str = "builder") -> None:
        self.emit("warn", text, source)

    def error(self, text: str, source: str = "builder") -> None:
        self.emit("error", text, source)

    def close(self) -> None:
        for sink in list(self.sinks):
            sink.close()
        self.sinks.clear()
