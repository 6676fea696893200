"""Real servers on loopback for the tests: an OCI registry (Debian's docker-registry), sshd, a silent server."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up within {timeout} s")


class Registry:
    def __init__(self, root: Path, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None,
                 data: Path | None = None) -> None:  # fmt: skip
        """`tls`: a certificate and its key (https); `data`: another registry's storage, served too."""
        self.port = free_port()
        self.host = host
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.yml"
        certificate = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else ""
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {data or root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {host}:{self.port}\n{certificate}"
        )
        self.scheme = "https" if tls else "http"
        context = ssl.create_default_context(cafile=None) if tls else None
        if context is not None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the readiness poll only; clients check the certificate
        self.log = open(root / "registry.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=self.log, stderr=self.log)
        url = f"{self.scheme}://{self.address}/v2/"  # http or https, nothing else
        wait_for(lambda: urllib.request.urlopen(url, timeout=1, context=context).status == 200, 20, "registry")  # noqa: S310

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


class SSHServer:
    """sshd on loopback accepting one generated key for root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        self.port = free_port()
        host_key = root / "host_ed25519"
        self.client_key = root / "client_ed25519"
        for key in (host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
        authorized = root / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        authorized.chmod(0o600)
        config = root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        self.log = open(root / "sshd.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=self.log, stderr=self.log
        )

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_for(listening, 20, "sshd")

    def url(self, path: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


class SilentServer:
    """A TCP server that accepts every connection and never says a word: a proxy or firewall that
    holds connections open instead of refusing them."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections.append(connection)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self.connections:
            connection.close()
        self._sock.close()
