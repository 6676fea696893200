"""A git HTTP server that wants a token: `git http-backend` (smart HTTP, as GitHub speaks it) behind
Basic auth, on loopback. It can also fail on purpose (503s) to exercise the builder's retries, and it
records the Authorization headers it saw."""

from __future__ import annotations

import base64
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class GitHTTPServer:
    def __init__(
        self,
        project_root: Path,
        token: str,
        username: str = "x-access-token",
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.project_root = project_root
        self.token = token
        self.username = username
        self.fail_next = 0  # answer this many requests with 503 before serving normally
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, authorised)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, 0), self._handler())
        self.scheme = "http"
        if tls is not None:  # https, with a certificate of the test's own CA
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def url(self, repo_name: str) -> str:
        return f"{self.base_url}/{repo_name}.git"

    def start(self) -> GitHTTPServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _authorised(self) -> bool:
                header = self.headers.get("Authorization", "")
                expected = base64.b64encode(f"{outer.username}:{outer.token}".encode()).decode()
                return header == f"Basic {expected}"

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                body = self._body() if self.command == "POST" else b""
                authorised = self._authorised() or not outer.token  # no token: a public repository
                with outer.lock:
                    outer.requests.append((self.command, self.path, authorised))
                    failing = outer.fail_next > 0
                    if failing:
                        outer.fail_next -= 1
                if failing:
                    self.send_error(503, "Service Unavailable")
                    return
                if not authorised:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                env = {
                    "GIT_PROJECT_ROOT": str(outer.project_root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": outer.username,
                    "REMOTE_ADDR": "127.0.0.1",
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "PATH": "/usr/bin:/bin",
                }
                result = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60, check=False
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve
            do_POST = _serve

        return Handler
