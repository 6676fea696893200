"""`devcontainer-builder rebuild`: ask the running supervisor for a rebuild and follow its log to the
end; the exit code is the build's, as `up`'s would be. It asks through serve.sock in the state dir, never
through the TCP address: a process of the devcontainer may hold that address (on the VM's host network),
nobody but the supervisor can hold its socket."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

from devcontainer_builder.errors import EXIT_NOT_RUNNING
from devcontainer_builder.state.store import StateDir
from devcontainer_builder.system import lock

REQUEST_TIMEOUT = 10.0
_BUILD_ID = re.compile(r"[0-9a-f]{12}")
FOLLOW_TIMEOUT = 30.0  # silence on the stream longer than this (it beats every 15 s) means it broke


class Unreachable(Exception):
    """A supervisor holds the workspace, but serve.json does not say where it listens."""


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the supervisor's unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        from devcontainer_builder.supervisor.serve import short_path  # noqa: PLC0415 - serve imports uvicorn

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            with short_path(self.path) as where:
                sock.connect(where)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def find(dirs: StateDir) -> str | None:
    """The running supervisor's unix socket, or None when there is none: nobody holds the supervisor lock (a
    killed supervisor leaves serve.json behind, and its pid may be somebody else's now). Raises
    Unreachable when one holds it but serve.json is missing or not its own: building beside it would
    break single flight."""
    if not lock.held(dirs.serve_lock_file):
        return None
    holder = lock.holder(dirs.serve_lock_file)
    data = dirs.read_json(dirs.serve_file)
    if not isinstance(data, dict) or str(data.get("pid")) != holder or data.get("socket") != dirs.serve_socket:
        raise Unreachable(
            f"a supervisor (pid {holder}) is serving this workspace, but {dirs.serve_file} does not say where "
            "(missing, unreadable or not its own). Ask it through its status page, or stop it and run this again."
        )
    return dirs.serve_socket


def printable(text: str) -> str:
    """What a server said, safe for a terminal: no escape sequences or other control characters."""
    return "".join(char if char.isprintable() or char == "\t" else "?" for char in text)


def _post(where: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    connection = UnixConnection(where, REQUEST_TIMEOUT)
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read(65536) or b"{}")
        return response.status, answer if isinstance(answer, dict) else {}
    finally:
        connection.close()


def events(where: str, path: str) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events stream."""
    connection = UnixConnection(where, FOLLOW_TIMEOUT)
    with contextlib.closing(connection):
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise ValueError(f"the log answered {response.status}")
        event, data = "message", list[str]()
        while raw := response.readline(1 << 20):
            line = raw.decode("utf-8", "replace").rstrip("\n").rstrip("\r")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))


def rebuild(base: str, *, full: bool, wait: bool, say: Callable[[str], None]) -> int:
    """Through the supervisor's socket `base`: the build's exit code (0 running, 1 not), or 1 when the
    supervisor cannot be reached or refuses (too many rebuilds: it says when to ask again)."""
    try:
        status, answer = _post(base, "/api/rebuild", {"full": full})
    except (OSError, ValueError, http.client.HTTPException) as err:
        say(f"devcontainer-builder: the supervisor at {base} did not answer ({err}).")
        return EXIT_NOT_RUNNING
    if status == 429:
        why = printable(str(answer.get("error")))
        say(f"devcontainer-builder: the supervisor refused the rebuild (429: {why}).")
        return EXIT_NOT_RUNNING
    build = answer.get("build")
    build_id = str(build.get("id", "")) if isinstance(build, dict) else ""
    if not _BUILD_ID.fullmatch(build_id):
        say(f"devcontainer-builder: the supervisor at {base} gave no build id ({status}); is it a supervisor?")
        return EXIT_NOT_RUNNING
    if status == 409:
        say(f"a build is already running ({build_id}): following it instead of starting another")
    elif status != 202:
        why = printable(str(answer.get("error")))
        say(f"devcontainer-builder: the supervisor refused the rebuild ({status}: {why}).")
        return EXIT_NOT_RUNNING
    else:
        say(f"rebuild {build_id} started{' without the layer cache' if full else ''}")
    if not wait:
        return 0
    try:
        for event, data in events(base, f"/api/log?build={build_id}"):
            if event == "line":
                say(printable(data.split("] ", 1)[1] if "] " in data else data))
            elif event == "end":
                ended = json.loads(data)
                code = ended.get("exit_code")
                say(f"build {build_id} ended: {printable(str(ended.get('status')))} (exit code {printable(str(code))})")
                return code if code in (0, 1, 2) and isinstance(code, int) else EXIT_NOT_RUNNING
    except (OSError, ValueError, http.client.HTTPException) as err:
        say(f"devcontainer-builder: lost the build's log ({err}); `devcontainer-builder status` shows how it ends.")
        return EXIT_NOT_RUNNING
    say("devcontainer-builder: the supervisor stopped before the build ended.")
    return EXIT_NOT_RUNNING
