"""The README's quick start, followed as an ordinary user on a machine without /workspaces: install the
package into a virtualenv of one's own, run `up` on a real repository, read `status`."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
from support.builder import CLI_BIN, ROOT, docker, remove_containers_under
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.needs_root, pytest.mark.usefixtures("docker_engine")]

USER = "dcb-user"  # made by tests/env/provision.sh: not root, in the engine socket's group


def as_user(
    home: Path, *argv: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    account = pwd.getpwnam(USER)
    clean = {"HOME": str(home), "USER": USER, "LOGNAME": USER, "PATH": os.environ["PATH"], "LANG": "C.UTF-8",
             **(env or {})}  # fmt: skip
    return subprocess.run(
        ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--", *argv],
        capture_output=True, text=True, env=clean, timeout=timeout, check=False, cwd=home,
    )  # fmt: skip


@pytest.fixture
def user_home(sandbox: Path) -> Path:
    if os.path.exists("/workspaces"):
        pytest.fail("this machine has /workspaces: the quick start's defaults would not be the home-based ones")
    account = pwd.getpwnam(USER)
    home = sandbox / "home"
    home.mkdir()
    # what `pip install ./builder` and `npm install @devcontainers/cli` leave, in the user's own folders
    shutil.copytree(
        ROOT / "builder", home / "src" / "builder", ignore=shutil.ignore_patterns("node_modules", "*.egg-info")
    )
    shutil.copytree(Path(CLI_BIN).parent, home / "cli" / "node_modules", symlinks=True)
    subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(home)], check=True, timeout=60)
    return home


def test_the_quick_start_works_as_an_ordinary_user(user_home: Path, remote: Remote, sandbox: Path) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE}), "README.md": "hi\n"})
    venv = user_home / "venv"
    made = as_user(user_home, "/usr/bin/python3", "-m", "venv", str(venv))  # Debian's, as a user has it
    assert made.returncode == 0, made.stderr
    pip = as_user(user_home, str(venv / "bin" / "pip"), "install", "-q", str(user_home / "src" / "builder"),
                  env={"PIP_CERT": os.environ.get("PIP_CERT", ""), "PIP_DEFAULT_TIMEOUT": "120"})  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    path = f"{venv / 'bin'}:{user_home / 'cli' / 'node_modules' / '.bin'}:{os.environ['PATH']}"
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
