"""serve.sock: a unix socket's address holds 108 bytes, a state dir's path may be longer."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from devcontainer_builder.supervisor import client, serve


def test_a_socket_deep_in_a_long_path_is_listened_on_and_reached(tmp_path: Path) -> None:
    folder = tmp_path / ("d" * 60) / ("e" * 60)
    folder.mkdir(parents=True)
    path = str(folder / "serve.sock")
    assert len(path) > 108
    sock = serve.listen_unix(path)
    assert (folder / "serve.sock").stat().st_mode & 0o077 == 0, "its owner's only"

    def answer() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(4096)
            body = json.dumps({"ok": True}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = threading.Thread(target=answer)
    server.start()
    connection = client.UnixConnection(path, timeout=10)
    connection.request("GET", "/healthz")
    assert json.loads(connection.getresponse().read()) == {"ok": True}
    connection.close()
    server.join(10)
    sock.close()
