"""DEVCONTAINER_CA_BUNDLE: a private CA (a proxy that intercepts TLS, an internal Git server) is trusted by
the builder's TLS clients beside the system's, without touching the system's store."""

from __future__ import annotations

import json
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest
from support.githttp import GitHTTPServer
from support.images import BASE_IMAGE
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


def private_ca(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA of the test's own and a certificate it signed for 127.0.0.1."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test private CA",
            "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", "server.pem", "-extfile", "san.ext")  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


def test_a_private_ca_is_trusted_only_when_the_admin_gives_it(sandbox: Path, make_workspace) -> None:
    ca, context = private_ca(sandbox / "ca")
    server = GitHTTPServer(sandbox / "remotes", f"ghp_{uuid.uuid4().hex}", tls=context).start()
    try:
        Remote(sandbox, "internal").commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
        url = server.url("internal")
        assert url.startswith("https://")
        untrusted = make_workspace(url, name="untrusted", GH_TOKEN=server.token)
        run = untrusted.up()
        state = untrusted.state()
        assert (state["status"], state["error"]["step"]) == ("degraded", "clone"), run.output
        assert "certificate" in state["error"]["message"].lower()
        trusted = make_workspace(url, name="trusted", GH_TOKEN=server.token, DEVCONTAINER_CA_BUNDLE=str(ca))
        run = trusted.up()
        assert run.returncode == 0, run.output
        assert trusted.state()["status"] == "running"
        assert (trusted.folder / ".devcontainer" / "devcontainer.json").exists()
    finally:
        server.stop()


def test_a_bundle_that_is_not_certificates_is_bad_input(sandbox: Path, make_workspace) -> None:
    (sandbox / "notes.txt").write_text("not a certificate\n")
    ws = make_workspace("https://example.com/r.git", DEVCONTAINER_CA_BUNDLE=str(sandbox / "notes.txt"))
    run = ws.up()
    assert run.returncode == 2
    assert "DEVCONTAINER_CA_BUNDLE" in run.stderr and "PEM bundle of CA certificates" in " ".join(run.stderr.split())
