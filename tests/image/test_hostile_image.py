"""The hostile initializeCommand again, this time in the builder image as a template runs it: non-root (the
image's user), tini as PID 1, the secrets given as environment variables of the container."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.builder import docker, key_material
from support.coder import CoderDouble, bridge_gateway, make_double
from support.githttp import GitHTTPServer
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

STEAL = (Path(__file__).parents[1] / "support" / "hostile" / "steal.sh").read_text()
SOCKET = "/var/run/docker.sock"


@pytest.fixture
def services(sandbox: Path) -> Iterator[tuple[GitHTTPServer, CoderDouble]]:
    gateway = bridge_gateway()  # where containers reach the host
    git = GitHTTPServer(sandbox / "remotes", f"ghp_{uuid.uuid4().hex}", host=gateway).start()
    coder = make_double(host=gateway)
    yield git, coder
    git.stop()
    coder.stop()


def test_initialize_command_as_the_images_user_reads_no_secret(
    image: str, sandbox: Path, services: tuple[GitHTTPServer, CoderDouble]
) -> None:
    git, coder = services
    Remote(sandbox, "hostile").commit(
        {
            ".devcontainer/steal.sh": STEAL,
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "image": BASE_IMAGE,
                    "initializeCommand": "sh ${localWorkspaceFolder}/.devcontainer/steal.sh "
                    "${localWorkspaceFolder}/.stolen",
                }
            ),
        }
    )
    key_file = sandbox / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True, timeout=30)
    ssh_key = key_file.read_text()
    key_file.unlink()
    # the host's engine resolves bind mounts on the host: the workspaces are at the same path on both sides
    workspaces = sandbox / "workspaces"
    workspaces.mkdir()
    os.chown(workspaces, 1000, 1000)
    secrets = {
        "GH_TOKEN": git.token,
        "CODER_AGENT_TOKEN": coder.token,
        "DEVCONTAINER_SSH_PRIVATE_KEY": base64.b64encode(ssh_key.encode()).decode(),
    }
    env = {
        "DEVCONTAINER_REPOSITORY": git.url("hostile"),
        "DEVCONTAINER_WORKSPACE_FOLDER": str(workspaces / "hostile"),
        "DEVCONTAINER_STATE_DIR": str(workspaces / ".devcontainer-builder"),
        "DEVCONTAINER_FALLBACK_IMAGE": FALLBACK_IMAGE,
        "DEVCONTAINER_ALLOWED_PRIVILEGES": "initialize-command",
        "CODER_AGENT_URL": f"http://{bridge_gateway()}:{coder.port}",
        **secrets,
    }
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    name = f"dcb-hostile-{uuid.uuid4().hex[:8]}"
    try:
        result = subprocess.run(
            ["docker", "run", "--name", name, "--group-add", str(os.stat(SOCKET).st_gid),
             "-v", f"{SOCKET}:{SOCKET}", "-v", f"{workspaces}:{workspaces}", *flags, image],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        dump = (workspaces / "hostile" / ".stolen").read_text()
        assert dump.startswith("uid=1000"), "the image's user ran it"
        assert "== pid 1: /usr/bin/tini" in dump
        assert "(environ unreadable)" in dump, "the builder itself is not readable (non-dumpable)"
        for name_of, secret in {**secrets, "the decoded SSH key": key_material(ssh_key)}.items():
            assert secret not in dump, f"the initializeCommand read {name_of}"
        # and nothing of it survived the build step
        daemon = (workspaces / "hostile" / ".stolen.daemon").read_text().strip()
        processes = docker("top", name, check=False) if docker("ps", "-q", "--filter", f"name={name}") else ""
        assert f" {daemon} " not in processes
    finally:
        docker("rm", "-f", name, check=False)
        containers = docker(
            "ps", "-aq", "--filter", f"label=devcontainer-builder.workspace={workspaces / 'hostile'}", check=False
        ).split()
        if containers:
            docker("rm", "-f", *containers, check=False)
