"""The engines the end-to-end tests run the builder on: Docker; Podman run by root; and Podman rootless,
with the builder run as an ordinary user (dcb-user, made by tests/env/provision.sh with subordinate ids,
overlay storage and a runtime dir).

Podman's store is not Docker's: the test images are copied in from the Docker engine
(`podman pull docker-daemon:...`), once per store, again when Docker's copy changed."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.images import BASE_IMAGE, FALLBACK_IMAGE

ROOT = Path(__file__).resolve().parents[2]
LABEL_WORKSPACE = "devcontainer-builder.workspace"
# these machines lack CAP_SYS_RESOURCE, and rootful Podman's default ulimits need it (docs/engines.md)
ROOTFUL_CONF = ROOT / "tests" / "env" / "podman-containers.conf"
ROOTLESS_USER = "dcb-user"


@dataclass(frozen=True)
class EngineUnderTest:
    name: str  # docker, podman, rootless
    cli: str  # docker or podman
    user: str = ""  # "": the tests' own user (root); else the account the engine and the builder run as
    env: dict[str, str] = field(default_factory=dict)  # what the engine's CLI needs beyond PATH

    @property
    def podman(self) -> bool:
        return self.cli == "podman"

    def as_user(self, argv: list[str]) -> list[str]:
        """argv run as the engine's user (itself when that is the tests' user)."""
        if not self.user:
            return argv
        account = pwd.getpwnam(self.user)
        return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--", *argv]

    def process_env(self, base: dict[str, str]) -> dict[str, str]:
        env = {**base, **self.env}
        if self.user:
            account = pwd.getpwnam(self.user)
            env.update(HOME=account.pw_dir, USER=self.user, LOGNAME=self.user)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(
            self.as_user([self.cli, *args]),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.process_env({"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}),
            cwd="/",
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name}: {self.cli} {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def containers_of(self, workspace: str, all_states: bool = True) -> list[str]:
        flags = ["-a"] if all_states else []
        out = self.run("ps", *flags, "-q", "--no-trunc", "--filter", f"label={LABEL_WORKSPACE}={workspace}")
        return out.split()

    def remove_containers_under(self, prefix: str, label: str = LABEL_WORKSPACE) -> None:
        """Remove every container whose `label` (the builder's workspace label; devcontainer.local_folder
        for the raw CLI's too) names a folder under prefix (a test's sandbox)."""
        if not self.podman:
            return  # support.builder.remove_containers_under does Docker's, for every test
        found = json.loads(self.run("ps", "-a", "--format", "json", check=False) or "[]")
        doomed = [c["Id"] for c in found if (c.get("Labels") or {}).get(label, "").startswith(prefix)]
        if doomed:
            self.run("rm", "-f", *doomed, check=False, timeout=300)

    def load_images(self, images: Iterable[str] = (BASE_IMAGE, FALLBACK_IMAGE)) -> None:
        """Copy the test images from the Docker engine into Podman's store, unless there already."""
        if not self.podman:
            return
        for image in images:
            wanted = _docker_image_id(image)
            if self.run("image", "inspect", "--format", "{{.Id}}", image, check=False) != wanted:
                self.run("pull", "-q", f"docker-daemon:{image}", timeout=600)

    def own(self, *paths: Path) -> None:
        """Make folders the engine's user may write (the rootless builder's workspace and state)."""
        if not self.user:
            return
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            account = pwd.getpwnam(self.user)
            shutil.chown(path, account.pw_uid, account.pw_gid)


def _docker_image_id(image: str) -> str:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().removeprefix("sha256:")


def rootless_runtime_dir() -> str:
    return f"/run/user/{pwd.getpwnam(ROOTLESS_USER).pw_uid}"


def check_rootless_network() -> None:
    """Fail with the cause, not 17 puzzling build failures, where the rootless user cannot open the tun
    device slirp4netns needs (some machines have it 0600 root; tests/env/provision.sh restores 0666)."""
    mode = os.stat("/dev/net/tun").st_mode & 0o777 if os.path.exists("/dev/net/tun") else None
    if mode is None or mode & 0o006 != 0o006:
        shown = "missing" if mode is None else f"mode {mode:04o}"
        pytest.fail(
            f"/dev/net/tun is {shown}: rootless Podman's network (slirp4netns) cannot open it as "
            f"{ROOTLESS_USER}; run tests/env/provision.sh test, which gives it Debian's mode 0666"
        )


def make(name: str) -> EngineUnderTest:
    if name == "docker":
        return EngineUnderTest("docker", "docker")
    if name == "podman":
        return EngineUnderTest("podman", "podman", env={"CONTAINERS_CONF": str(ROOTFUL_CONF)})
    if name == "rootless":
        check_rootless_network()
        return EngineUnderTest("rootless", "podman", ROOTLESS_USER, {"XDG_RUNTIME_DIR": rootless_runtime_dir()})
    raise ValueError(f"no engine {name!r}")


DOCKER = make("docker")


ENGINES = ("docker", "podman", "rootless")
# a test that must hold on every engine takes the `engine` fixture through this
on_every_engine = pytest.mark.parametrize("engine", ENGINES, indirect=True)
