"""A strict stand-in for Coder's workspace-agent log API (as Coder's server implements it).

It rejects what Coder rejects - a token that is not a UUID or not an agent's, an empty batch, a bad
level, malformed JSON, a NUL byte, a batch that would take the agent past 1,048,576 bytes of output -
and keeps what Coder keeps (each output cut to 1024 characters), recording every request and line for
assertions. Fault modes make it slow, failing, dropping connections, refusing them, or a black hole.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_CAP = 1_048_576
# What the double serves as /bin/coder-linux-amd64: a stand-in for `coder agent` that tells the double it
# connected - with its token, as the real agent authenticates - and then stays up like the real one.
STAND_IN_AGENT = r"""#!/bin/sh
[ "${1:-}" = agent ] || { echo "usage: coder agent" >&2; exit 2; }
[ -n "${CODER_AGENT_TOKEN:-}" ] || { echo "CODER_AGENT_TOKEN is not set" >&2; exit 1; }
body=$(printf '{"pid": %s, "hostname": "%s", "uid": %s}' "$$" "$(cat /etc/hostname)" "$(id -u)")
until printf 'header = "Coder-Session-Token: %s"\n' "$CODER_AGENT_TOKEN" |
  curl -fsS --config - -X POST -H 'Content-Type: application/json' --data "$body" \
    "${CODER_AGENT_URL%/}/api/v2/workspaceagents/me/test-connected" >/dev/null; do
  sleep 1  # the token reaches curl through its config on stdin, never as an argument
done
echo "agent connected"
while :; do sleep 3600; done
"""
# The same, with a stand-in for Coder's web terminal (CoderDouble.terminal): it asks for a command the test
# queued for it, runs it as the real agent runs a terminal's shell - its own child, with its user, groups,
# environment and namespaces - and sends back the output and exit code.
TERMINAL_AGENT = STAND_IN_AGENT.replace(
    "while :; do sleep 3600; done\n",
    r"""say() { printf 'header = "Coder-Session-Token: %s"\n' "$CODER_AGENT_TOKEN"; }
api="${CODER_AGENT_URL%/}/api/v2/workspaceagents/me"
out=$(mktemp)
while :; do
  if command=$(say | curl -fsS --config - "$api/test-command") && [ -n "$command" ]; then
    sh -c "$command" > "$out" 2>&1 < /dev/null
    code=$?
    say | curl -fsS --config - -X POST -H "X-Exit-Code: $code" --data-binary "@$out" "$api/test-command-result" >/dev/null
  fi
  sleep 0.5
done
""",
)
COLUMN = 1024
LEVELS = {"trace", "debug", "info", "warn", "error"}


@dataclass
class Received:
    time: float
    source_id: str
    level: str
    output: str  # as stored: at most 1024 characters
    created_at: str


@dataclass
class Agent:
    id: str
    logs_bytes: int = 0
    overflowed: bool = False
    sources: dict[str, dict] = field(default_factory=dict)
    logs: list[Received] = field(default_factory=list)


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class CoderDouble:
    def __init__(self, log_cap: int = LOG_CAP, host: str = "127.0.0.1") -> None:
        self.log_cap = log_cap
        self.host = host
        self.connections: list[dict] = []  # stand-in agents that reported in
        self.token = str(uuid.uuid4())
        self.agents = {self.token: Agent(str(uuid.uuid4()))}
        self.requests: list[dict] = []  # method, path, status, body (text), time
        self.lock = threading.Lock()
        # fault modes
        self.delay = 0.0  # seconds before answering
        self.fail_next = 0  # answer this many requests with 500
        self.drop_next = 0  # close this many connections without an answer
        self.black_hole = False  # when True: accept, read, never answer (until stop())
        self.terminal = False  # when True: the stand-in agent runs the commands run_in_agent() queues
        self.commands: dict[str, list[str]] = {}  # token -> commands queued for that agent
        self.results: dict[str, list[tuple[int, str]]] = {}  # token -> (exit code, output) of each
        self._released = threading.Event()
        self.server = ThreadingHTTPServer((host, 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CoderDouble:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    # -- what it saw ------------------------------------------------------------------------------
    @property
    def agent(self) -> Agent:
        return self.agents[self.token]

    def add_agent(self) -> str:
        """A second agent of the workspace (a template's `builder` agent); its token."""
        token = str(uuid.uuid4())
        self.agents[token] = Agent(str(uuid.uuid4()))
        return token

    def run_in_agent(self, token: str, command: str, timeout: float = 60) -> tuple[int, str]:
        """command run from the agent's terminal (needs `terminal`): its exit code and output."""
        with self.lock:
            done = len(self.results.setdefault(token, []))
            self.commands.setdefault(token, []).append(command)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results[token]) > done:
                    return self.results[token][done]
            time.sleep(0.2)
        raise AssertionError(f"the agent never ran {command!r} (is it connected, with `terminal` set?)")

    def register(self, token: str) -> None:
        """An agent of the workspace's latest build, with the token its provider made (terraform's state)."""
        with self.lock:
            self.agents.setdefault(token, Agent(str(uuid.uuid4())))

    def outputs_of(self, token: str) -> list[str]:
        with self.lock:
            return [entry.output for entry in self.agents[token].logs]

    def outputs(self) -> list[str]:
        with self.lock:
            return [entry.output for entry in self.agent.logs]

    def lines(self) -> list[Received]:
        with self.lock:
            return list(self.agent.logs)

    def bodies(self) -> str:
        with self.lock:
            return "\n".join(request["body"] for request in self.requests)

    def statuses(self, path_part: str = "") -> list[int]:
        with self.lock:
            return [r["status"] for r in self.requests if path_part in r["path"]]

    # -- the API ----------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in separate writes here; without TCP_NODELAY the client's
                # delayed ACK would add 40 ms to every answer, which Coder's own server does not
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _reply(self, status: int, payload: dict | None = None) -> None:
                body = json.dumps(payload or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                text = raw.decode("utf-8", "replace")
                status = self._answer(raw)
                with double.lock:
                    double.requests.append(
                        {"method": self.command, "path": self.path, "status": status, "body": text, "time": time.time()}
                    )

            def _injected(self) -> int | None:
                """The failure a test asked for (no answer, a dropped connection, a 500), or None."""
                if double.black_hole:
                    double._released.wait(timeout=600)
                    self.close_connection = True
                    return 0
                with double.lock:
                    dropping = double.drop_next > 0
                    if dropping:
                        double.drop_next -= 1
                    failing = not dropping and double.fail_next > 0
                    if failing:
                        double.fail_next -= 1
                if double.delay:
                    time.sleep(double.delay)
                if dropping:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return -1
                if failing:
                    self._reply(500, {"message": "Internal error (injected)."})
                    return 500
                return None

            def _answer(self, raw: bytes) -> int:
                injected = self._injected()
                if injected is not None:
                    return injected
                if self.command == "GET" and self.path == "/bin/coder-linux-amd64":
                    body = (TERMINAL_AGENT if double.terminal else STAND_IN_AGENT).encode()  # public, as Coder's
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return 200
                token = self.headers.get("Coder-Session-Token", "")
                if not _is_uuid(token):
                    self._reply(401, {"message": "Workspace agent token invalid."})
                    return 401
                agent = double.agents.get(token)
                if agent is None:
                    self._reply(401, {"message": "Workspace agent not authorized."})
                    return 401
                if self.command == "POST" and self.path == "/api/v2/workspaceagents/me/log-source":
                    return self._log_source(agent, raw)
                if self.command == "PATCH" and self.path == "/api/v2/workspaceagents/me/logs":
                    return self._logs(agent, raw)
                if self.command == "POST" and self.path == "/api/v2/workspaceagents/me/test-connected":
                    data = self._json(raw) or {}
                    with double.lock:
                        double.connections.append(dict(data, token=token, time=time.time()))
                    self._reply(200, {})
                    return 200
                if self.command == "GET" and self.path == "/api/v2/workspaceagents/me/test-command":
                    with double.lock:
                        queued = double.commands.get(token) or []
                        command = queued.pop(0) if queued else ""
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(command.encode())))
                    self.end_headers()
                    self.wfile.write(command.encode())
                    return 200
                if self.command == "POST" and self.path == "/api/v2/workspaceagents/me/test-command-result":
                    with double.lock:
                        double.results.setdefault(token, []).append(
                            (int(self.headers.get("X-Exit-Code", "-1")), raw.decode(errors="replace"))
                        )
                    self._reply(200, {})
                    return 200
                self._reply(404, {"message": "Route not found."})
                return 404

            def _json(self, raw: bytes) -> dict | None:
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return None
                return data if isinstance(data, dict) else None

            def _log_source(self, agent: Agent, raw: bytes) -> int:
                data = self._json(raw)
                if data is None or not _is_uuid(data.get("id")):
                    self._reply(400, {"message": "Invalid log source."})
                    return 400
                name = data.get("display_name")
                if not isinstance(name, str) or not name or len(name) > 127:
                    self._reply(400, {"message": "Invalid display name."})
                    return 400
                with double.lock:
                    agent.sources[data["id"]] = {"display_name": name, "icon": data.get("icon", "")}
                self._reply(
                    201,
                    {
                        "workspace_agent_id": agent.id,
                        "id": data["id"],
                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "display_name": name,
                        "icon": data.get("icon", ""),
                    },
                )
                return 201

            def _logs(self, agent: Agent, raw: bytes) -> int:
                data = self._json(raw)
                if data is None or not _is_uuid(data.get("log_source_id")) or not isinstance(data.get("logs"), list):
                    self._reply(400, {"message": "Request body must be valid JSON."})
                    return 400
                logs = data["logs"]
                if not logs:
                    self._reply(400, {"message": "No logs provided."})
                    return 400
                size = 0
                for entry in logs:
                    level = entry.get("level", "") if isinstance(entry, dict) else None
                    if level not in LEVELS and level != "":
                        self._reply(400, {"message": "Invalid log level provided."})
                        return 400
                    output = entry.get("output", "")
                    if not isinstance(output, str):
                        self._reply(400, {"message": "Request body must be valid JSON."})
                        return 400
                    if "\x00" in output:  # PostgreSQL refuses NUL in text
                        self._reply(500, {"message": "Failed to upload logs"})
                        return 500
                    size += len(output.encode("utf-8"))
                now = time.time()
                with double.lock:
                    if agent.logs_bytes + size > double.log_cap:
                        agent.overflowed = True
                        over = True
                    else:
                        over = False
                        agent.logs_bytes += size
                        for entry in logs:
                            agent.logs.append(
                                Received(
                                    now,
                                    data["log_source_id"],
                                    entry.get("level") or "info",
                                    entry["output"][:COLUMN],
                                    entry.get("created_at", ""),
                                )
                            )
                if over:
                    self._reply(413, {"message": "Logs limit exceeded"})
                    return 413
                self._reply(200, {})
                return 200

            do_POST = _handle
            do_PATCH = _handle
            do_GET = _handle

        return Handler


def refused_url() -> str:
    """An address where nothing listens: every connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_double(log_cap: int = LOG_CAP, host: str = "127.0.0.1") -> CoderDouble:
    return CoderDouble(log_cap, host).start()


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge, which containers can reach."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", b"docker0"))  # SIOCGIFADDR
    return socket.inet_ntoa(packed[20:24])


# A line that must reach the container byte for byte: quotes, $, backticks, backslashes, spaces.
QUOTED = "single ' double \" dollar $HOME backtick ` backslash \\ and  two spaces"


def init_script(access_url: str) -> str:
    """An init script in the shape of Coder's coder_agent.init_script for linux (it downloads the stand-in
    agent this double serves and execs it)."""
    return f"""#!/usr/bin/env sh
set -eu
trap 'echo "=== agent script exited; sleeping to keep its log"; sleep 86400' EXIT
cat > "${{HOME:-/tmp}}/init-script-saw" <<'QUOTED'
{QUOTED}
QUOTED
ACCESS_URL='{access_url}/'
BINARY_DIR=$(mktemp -d -t coder.XXXXXX)
cd "$BINARY_DIR"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL "${{ACCESS_URL}}bin/coder-linux-amd64" -o coder
elif command -v wget >/dev/null 2>&1; then
  wget -q "${{ACCESS_URL}}bin/coder-linux-amd64" -O coder
elif command -v busybox >/dev/null 2>&1; then
  busybox wget -q "${{ACCESS_URL}}bin/coder-linux-amd64" -O coder
else
  echo "error: no download tool found, please install curl, wget or busybox wget"
  exit 1
fi
chmod +x coder
export CODER_AGENT_AUTH=token
export CODER_AGENT_URL="$ACCESS_URL"
trap - EXIT
exec ./coder agent
"""
