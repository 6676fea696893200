"""The Coder log sink: every build line to the workspace's build log in Coder, never blocking the build.

write() only appends to an in-memory queue; a background thread sends batches to Coder's agent API
(`PATCH /api/v2/workspaceagents/me/logs`; docs/coder.md). The queue has a byte cap: when Coder is slow
or down the oldest unsent lines are dropped and counted, and one line later says how many and where the
full log is.
Coder keeps at most 1,048,576 bytes of output per agent: the sender stays under it and ends with a
line saying the log was cut, rather than letting Coder reject batches.
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from devcontainer_builder.log import LEVEL_RANK, Line
from devcontainer_builder.system import clock, retry

_SURROGATES = re.compile("[\ud800-\udfff]")
SOURCE_NAME = "Devcontainer build"
SOURCE_ICON = "/emojis/1f4e6.png"
SOURCE_NAMESPACE = uuid.UUID("5f0c3c1e-6d7b-4f64-9a55-6c2b7d0d8e21")
COLUMN = 1024  # Coder stores each line in a 1024-character column
TOTAL_CAP = 1_048_576  # bytes of output Coder accepts per agent, all sources together
RESERVE = 2048  # kept back for the line that says the log was cut
QUEUE_CAP = 2 * 1024 * 1024  # accounted bytes of unsent lines kept in memory
LINE_OVERHEAD = 120  # what one queued line costs beyond its text, roughly (object, timestamp)
BATCH_LINES = 5000
BATCH_BYTES = 512 * 1024  # Coder takes up to 1 MiB a request
FLUSH_SECONDS = 0.25  # the oldest queued line waits at most this long before a batch goes out
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
BACKOFF_START = 0.5
BACKOFF_MAX = 8.0
GRACE_SECONDS = 5.0  # how long close() waits for the tail to reach a reachable Coder
STALL_SECONDS = 1.0  # a request unanswered this long means Coder is not answering: close() stops waiting


def source_id(workspace: str) -> str:
    """The same id for every run of a workspace, so a restarted builder reuses its log source."""
    return str(uuid.uuid5(SOURCE_NAMESPACE, workspace))


def split_long(text: str) -> list[str]:
    """Lines over Coder's 1024 characters, in pieces marked as continued, so no tail is lost."""
    if len(text) <= COLUMN:
        return [text]
    size = COLUMN - 2
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return [("…" if i else "") + piece + ("…" if i < len(pieces) - 1 else "") for i, piece in enumerate(pieces)]


@dataclass(slots=True)
class Entry:
    produced: float  # monotonic time, for the latency the benchmark reports
    moment: float  # wall-clock time of the line, formatted only when sent (off the build's thread)
    level: str
    output: str
    size: int  # UTF-8 bytes of output: what Coder counts against its cap

    def json(self) -> str:
        # by hand rather than json.dumps of a dict: this is the sender's hot loop, and the C string
        # encoder does the one part that needs escaping
        output = encode_basestring(self.output)
        return f'{{"created_at":"{clock.iso(self.moment, 6)}","output":{output},"level":"{self.level}"}}'


def logs_body(source: str, entries: list[Entry]) -> bytes:
    """The PATCH body; bytes, so http.client sends headers and body in one write (see _post)."""
    return f'{{"log_source_id":"{source}","logs":[{",".join(entry.json() for entry in entries)}]}}'.encode()


@dataclass
class Stats:
    sent_lines: int = 0
    sent_bytes: int = 0
    dropped_lines: int = 0
    rejected_batches: int = 0
    state: str = "starting"  # streaming, unreachable, unauthorized, cut, stopped
    accepted_at: list[tuple[float, float]] = field(default_factory=list)  # (produced, accepted): bench only


class CoderLogSink:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        workspace: str,
        full_log: str,
        notify: Callable[[str, str], None],
        level: str = "info",
        queue_cap: int = QUEUE_CAP,
        total_cap: int = TOTAL_CAP,
        grace: float = GRACE_SECONDS,
        record_latency: bool = False,
    ) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.source = source_id(workspace)
        self.full_log = full_log
        self.notify = notify  # terminal and build.log only: never back into this sink
        self.rank = LEVEL_RANK[level]
        self.queue_cap = queue_cap
        self.total_cap = total_cap
        self.grace = grace
        self.record_latency = record_latency
        self.stats = Stats()
        self._queue: collections.deque[Entry] = collections.deque()
        self._queued_bytes = 0
        self._reported_drops = 0
        self._lock = threading.Lock()  # guards the queue; write() holds it for microseconds
        self._wake = threading.Event()  # set when the sender has something new to look at
        self._closed = threading.Event()  # ends a back-off at once
        self._closing = False
        self._stopped = False
        self._failing = False  # the last request failed (connection error, timeout, 5xx)
        self._inflight_since: float | None = None
        self._warned_unreachable = False
        self._thread = threading.Thread(target=self._run, name="coder-log", daemon=True)
        self._thread.start()

    # -- the producer side: called for every line, must never wait on the network ----------------
    def write(self, line: Line) -> None:
        if self._stopped or LEVEL_RANK[line.level] < self.rank:
            return
        text = line.text
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates (undecodable file names): Coder takes valid UTF-8 only
            text = _SURROGATES.sub("\ufffd", text)
            size = len(text.encode("utf-8"))
        produced = time.monotonic()
        if len(text) <= COLUMN:
            entries = [Entry(produced, line.time, line.level, text, size)]
        else:
            entries = [Entry(produced, line.time, line.level, p, len(p.encode("utf-8"))) for p in split_long(text)]
        with self._lock:
            was_empty = not self._queue
            for entry in entries:
                self._queue.append(entry)
                self._queued_bytes += entry.size + LINE_OVERHEAD
            while self._queued_bytes > self.queue_cap and self._queue:
                dropped = self._queue.popleft()
                self._queued_bytes -= dropped.size + LINE_OVERHEAD
                self.stats.dropped_lines += 1
            wake = was_empty or len(self._queue) >= BATCH_LINES or self._queued_bytes >= BATCH_BYTES
        if wake:  # the sender's flush clock starts, or a batch is full
            self._wake.set()

    def _answering(self) -> bool:
        """False once Coder has failed a request, or left one unanswered for STALL_SECONDS."""
        started = self._inflight_since
        return not self._failing and (started is None or time.monotonic() - started < STALL_SECONDS)

    def close(self) -> None:
        """Send what is queued, waiting at most the grace period, and only while Coder answers."""
        with self._lock:
            self._closing = True
        self._closed.set()
        self._wake.set()
        deadline = time.monotonic() + self.grace
        while self._thread.is_alive() and time.monotonic() < deadline and self._answering():
            self._thread.join(timeout=0.02)
        with self._lock:
            left = len(self._queue)
            self._stopped = True
        self._wake.set()
        if left and self.stats.state in ("streaming", "starting", "unreachable"):
            self.notify(
                "warn",
                f"{left} log lines were not sent to Coder before exit (no answer in time); the full log is in "
                f"{self.full_log}",
            )

    # -- the sender thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._stream()
        except Exception as err:  # a bug must not pass silently, nor take the build down
            self.stats.state = "stopped"
            with self._lock:
                self._stopped = True
            self.notify(
                "warn", f"build log streaming to Coder stopped on an internal error ({err!r}); see {self.full_log}"
            )

    def _stream(self) -> None:
        import requests  # noqa: PLC0415 - imported here so the build never waits for it

        session = requests.Session()
        session.headers.update({"Coder-Session-Token": self.token, "Content-Type": "application/json"})
        self._requests = requests
        self._session = session
        registered = False
        waits = retry.delays(BACKOFF_START, BACKOFF_MAX)
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            outcome = "ok" if registered else self._register()
            if outcome == "ok":
                registered = True
                outcome = self._send(batch)
            if outcome == "stop":
                break
            if outcome == "retry":
                self._put_back(batch)
                self._back_off(next(waits))
                continue
            waits = retry.delays(BACKOFF_START, BACKOFF_MAX)
        session.close()

    def _next_batch(self) -> list[Entry] | None:
        """Wait for a batch worth sending: enough lines, enough bytes, or an old enough first line."""
        while True:
            with self._lock:
                if self._stopped:
                    return None
                timeout: float | None = None
                if self._queue:
                    age = time.monotonic() - self._queue[0].produced
                    full = len(self._queue) >= BATCH_LINES or self._queued_bytes >= BATCH_BYTES
                    if full or self._closing or age >= FLUSH_SECONDS:
                        return self._take_batch()
                    timeout = FLUSH_SECONDS - age
                elif self._closing:
                    return None
                # cleared under the lock: a line written after this sets it again, so none is missed
                self._wake.clear()
            self._wake.wait(timeout)

    def _take_batch(self) -> list[Entry]:
        batch: list[Entry] = []
        size = 0
        while self._queue and len(batch) < BATCH_LINES and size < BATCH_BYTES:
            entry = self._queue.popleft()
            self._queued_bytes -= entry.size + LINE_OVERHEAD
            batch.append(entry)
            size += entry.size
        return batch

    def _put_back(self, batch: list[Entry]) -> None:
        with self._lock:
            self._queue.extendleft(reversed(batch))
            self._queued_bytes += sum(entry.size + LINE_OVERHEAD for entry in batch)
            while self._queued_bytes > self.queue_cap and self._queue:
                dropped = self._queue.popleft()
                self._queued_bytes -= dropped.size + LINE_OVERHEAD
                self.stats.dropped_lines += 1

    def _back_off(self, delay: float) -> None:
        """Wait before a retry; a closing sink gives up instead."""
        with self._lock:
            if self._closing or self._stopped:
                self._stopped = True
                return
        if retry.sleep(delay, self._closed):
            with self._lock:
                self._stopped = True

    def _post(self, method: str, path: str, body: dict[str, Any] | bytes) -> tuple[int, str]:
        """(status, message); status 0 for a connection error or a timeout."""
        self._inflight_since = time.monotonic()
        try:
            # bytes, not str: http.client then sends headers and body in one write, where a str body
            # goes out in a second write that Nagle holds back for the delayed ACK (40 ms a request)
            payload = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
            response = self._session.request(
                method, self.base + path, data=payload, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
            )
        except self._requests.RequestException as err:
            self._failing = True
            return 0, type(err).__name__
        finally:
            self._inflight_since = None
        self._failing = response.status_code >= 500
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = response.text[:200]
        return response.status_code, message

    def _unreachable(self, status: int, message: str) -> None:
        self.stats.state = "unreachable"
        if not self._warned_unreachable:
            self._warned_unreachable = True
            reason = f"HTTP {status} {message}".strip() if status else message
            self.notify(
                "warn",
                f"Coder's log API at {self.base} is not answering ({reason}); the build goes on, the log stays "
                f"in {self.full_log}, and lines are sent when Coder is back",
            )

    def _unauthorized(self, message: str) -> str:
        self.stats.state = "unauthorized"
        self._stopped = True
        self.notify(
            "warn",
            f"Coder refused the agent token ({message or 'HTTP 401'}); build log streaming to Coder stopped. "
            f"The full log is in {self.full_log}.",
        )
        return "stop"

    def _register(self) -> str:
        status, message = self._post(
            "POST",
            "/api/v2/workspaceagents/me/log-source",
            {"id": self.source, "display_name": SOURCE_NAME, "icon": SOURCE_ICON},
        )
        if status == 201:
            return "ok"
        if status == 401:
            return self._unauthorized(message)
        if status == 0 or status >= 500:
            self._unreachable(status, message)
            return "retry"
        # a 4xx other than 401 is a bug on our side: carry on, lines then show under "Logs"
        self.notify("warn", f"Coder refused to register the log source (HTTP {status} {message}); sending anyway")
        return "ok"

    def _send(self, batch: list[Entry]) -> str:
        # lines dropped since the last batch are announced by a note made now, so its count is exact
        # and a failed attempt cannot lose it (it is made again, with the new count, next time)
        drops = self.stats.dropped_lines - self._reported_drops
        if drops:
            note = (
                f"{drops} log lines were dropped while Coder was slow or unreachable; the full log is in "
                f"{self.full_log}"
            )
            batch = [Entry(time.monotonic(), time.time(), "warn", note, len(note.encode())), *batch]
        outcome = self._fit_and_send(batch)
        if outcome == "ok":
            self._reported_drops += drops
        return outcome

    def _fit_and_send(self, batch: list[Entry]) -> str:
        room = self.total_cap - RESERVE - self.stats.sent_bytes
        fits: list[Entry] = []
        used = 0
        for entry in batch:
            if used + entry.size > room:
                break
            fits.append(entry)
            used += entry.size
        if fits:
            outcome = self._patch(fits)
            if outcome != "ok" or len(fits) == len(batch):
                return outcome
        return self._cut()

    def _patch(self, entries: list[Entry]) -> str:
        status, message = self._post("PATCH", "/api/v2/workspaceagents/me/logs", logs_body(self.source, entries))
        if status == 200:
            if self.stats.state != "streaming" and self._warned_unreachable:
                self.notify("info", "Coder's log API answers again; streaming the build log resumed")
            self.stats.state = "streaming"
            self.stats.sent_lines += len(entries)
            self.stats.sent_bytes += sum(entry.size for entry in entries)
            if self.record_latency:
                now = time.monotonic()
                self.stats.accepted_at.extend((entry.produced, now) for entry in entries)
            return "ok"
        if status == 401:
            return self._unauthorized(message)
        if status == 413:
            return self._cut()
        if status == 0 or status >= 500:
            self._unreachable(status, message)
            return "retry"
        # 400: Coder says the batch is malformed - a bug here; drop it and keep going
        self.stats.rejected_batches += 1
        self.notify(
            "warn",
            f"Coder rejected {len(entries)} log lines (HTTP {status} {message}); they are only in {self.full_log}",
        )
        return "ok"

    def _cut(self) -> str:
        """Coder's 1 MiB is (nearly) used up: say so in one last line if it still fits, then stop."""
        self.stats.state = "cut"
        with self._lock:
            self._stopped = True
            self._queue.clear()
            self._queued_bytes = 0
        note = (
            f"The build log in Coder stops here: Coder keeps at most {TOTAL_CAP} bytes per workspace agent. "
            f"The full log is in {self.full_log}."
        )
        last = Entry(time.monotonic(), time.time(), "warn", note, len(note.encode()))
        self._post("PATCH", "/api/v2/workspaceagents/me/logs", logs_body(self.source, [last]))
        self.notify(
            "warn", f"the build log sent to Coder reached Coder's 1 MiB limit; the rest is only in {self.full_log}"
        )
        return "stop"
