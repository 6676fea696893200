"""The quick start (docs/overview.md), followed as an ordinary user on a machine without /workspaces: install the
package into a virtualenv of one's own, run `up` on a real repository, read `status`."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from support import user_install
from support.builder import docker, remove_containers_under
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.needs_root, pytest.mark.usefixtures("docker_engine")]

USER = "dcb-user"  # made by tests/env/provision.sh: not root, in the engine socket's group


def as_user(home: Path, *argv: str, env: dict[str, str] | None = None, timeout: float = 600):
    return user_install.as_user(USER, home, *argv, env=env, timeout=timeout)


@pytest.fixture
def user_home(sandbox: Path) -> Path:
    if os.path.exists("/workspaces"):
        pytest.fail("this machine has /workspaces: the quick start's defaults would not be the home-based ones")
    return sandbox / "home"


def test_the_quick_start_works_as_an_ordinary_user(user_home: Path, remote: Remote, sandbox: Path) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE}), "README.md": "hi\n"})
    path = f"{user_install.install(USER, user_home)}:{os.environ['PATH']}"
    env = {"PATH": path, "DEVCONTAINER_REPOSITORY": remote.url, "DEVCONTAINER_FALLBACK_IMAGE": FALLBACK_IMAGE}
    try:
        up = as_user(user_home, "devcontainer-builder", "up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        folder = user_home / "workspaces" / "project"
        state_dir = user_home / ".local" / "state" / "devcontainer-builder" / "project"
        assert (folder / "README.md").read_text() == "hi\n"
        assert folder.stat().st_uid == pwd.getpwnam(USER).pw_uid
        status = as_user(user_home, "devcontainer-builder", "status", "--state-dir", str(state_dir), env=env)
        assert status.returncode == 0 and "running" in status.stdout, status.stdout + status.stderr
        again = as_user(user_home, "devcontainer-builder", "up", env=env)
        assert again.returncode == 0 and "nothing to rebuild" in again.stdout, again.stdout + again.stderr
        container = docker("ps", "-q", "--filter", f"label=devcontainer-builder.workspace={folder}")
        assert container, "the workspace's container runs"
    finally:
        remove_containers_under(str(user_home))
        remove_containers_under(str(sandbox))
