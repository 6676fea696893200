"""Running `devcontainer-builder serve` for a test workspace, and talking to it over HTTP."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from support.builder import Workspace
from support.services import free_port, wait_for


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class Supervisor:
    def __init__(self, ws: Workspace, **env: str) -> None:
        self.ws = ws
        self.port = free_port()
        self.proc = ws.start(command="serve", DEVCONTAINER_SERVE_ADDRESS=f"127.0.0.1:{self.port}", **env)
        wait_for(self._healthy, 30, "serve's /healthz")
        # the page's own address, with its key, as Coder's app would open it (serve.json: the owner's only)
        self.page = json.loads((ws.state_dir / "serve.json").read_text())["page"]
        self.prefix = self.page.removeprefix(f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def url(self) -> str:
        """The status page as its owner opens it (through Coder's app: with the key)."""
        return self.page

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited: {self.proc.communicate()}")
        return self.request("GET", "/healthz").status == 200

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        *,
        keyed: bool = True,
    ) -> Answer:
        """A request as the page sends it (`keyed`: under the page's key), or as any local process can."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, self._path(path, keyed), body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = {"raw": raw.decode("utf-8", "replace")}
            return Answer(response.status, parsed if isinstance(parsed, dict) else {"value": parsed},
                          {k.lower(): v for k, v in response.getheaders()})  # fmt: skip
        finally:
            connection.close()

    def _path(self, path: str, keyed: bool) -> str:
        return self.prefix + path if keyed and not path.startswith("/healthz") else path

    def sse(self, path: str, headers: dict[str, str] | None = None, timeout: float = 120) -> list[tuple[str, str, str]]:
        """A Server-Sent Events stream read to its end: (event, data, id) of each message."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", self._path(path, True), headers=headers or {})
            response = connection.getresponse()
            assert response.status == 200, (response.status, response.read())
            messages, fields = [], {"event": "message", "data": [], "id": ""}
            for raw in response:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if fields["data"]:
                        messages.append((fields["event"], "\n".join(fields["data"]), fields["id"]))
                    fields = {"event": "message", "data": [], "id": ""}
                elif line.startswith(("event:", "id:")):
                    fields[line.split(":", 1)[0]] = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    fields["data"].append(line[5:].removeprefix(" "))
            return messages
        finally:
            connection.close()

    def post(self, path: str, data: object, *, keyed: bool = True) -> Answer:
        return self.request("POST", path, json.dumps(data), {"Content-Type": "application/json"}, keyed=keyed)

    def status(self) -> dict[str, Any]:
        answer = self.request("GET", "/api/status")
        assert answer.status == 200, answer
        return answer.body

    def wait_status(self, wanted: str, timeout: float = 300) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.status())
            return found["status"] == wanted

        wait_for(reached, timeout, f"status {wanted!r} (last: {found.get('status')})")
        return found

    def wait_build_end(self, timeout: float = 300) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def ended() -> bool:
            found.update(self.status())
            return found["build"] is None and found["status"] != "building"

        wait_for(ended, timeout, "the build's end")
        return found

    def stop(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=10)
        return self.proc.returncode, time.monotonic() - started
