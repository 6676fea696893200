"""The builder image: goss's checks (goss.yaml, run inside it), testinfra's look at a running container
of it, and a scan of every layer for anything secret."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import testinfra

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

ROOT = Path(__file__).resolve().parents[2]
GOSS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "devcontainer-builder" / "bin" / "goss"
SECRET_FILES = re.compile(r"(^|/)(\.npmrc|\.pypirc|\.git-credentials|\.netrc|id_rsa|id_ed25519|id_ecdsa|credentials)$")
SECRET_TEXT = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----|ghp_[A-Za-z0-9]{20,}|_authToken=|glpat-[A-Za-z0-9-]{10,}"
)


@pytest.fixture(scope="session")
def host(idle_container: str):
    return testinfra.get_host(f"docker://{idle_container}")


def test_goss_validates_the_image(idle_container: str) -> None:
    assert GOSS.exists(), f"{GOSS} is missing: run tests/env/provision.sh test"
    subprocess.run(["docker", "cp", str(GOSS), f"{idle_container}:/tmp/goss"], check=True, timeout=60)
    subprocess.run(
        ["docker", "cp", str(ROOT / "goss.yaml"), f"{idle_container}:/tmp/goss.yaml"], check=True, timeout=60
    )
    result = subprocess.run(
        ["docker", "exec", idle_container, "/tmp/goss", "-g", "/tmp/goss.yaml", "validate", "--no-color"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Count: \d+, Failed: 0", result.stdout)


def test_it_runs_as_the_non_root_builder_user(host) -> None:
    assert host.user().name == "builder"
    assert host.user().uid == 1000
    assert host.user("builder").group == "builder"


@pytest.mark.parametrize(
    ("package", "version"),
    [("git", "1:2.4"), ("docker-cli", "26."), ("docker-buildx", "0.13"), ("nodejs", "20."),
     ("python3", "3.13"), ("tini", "0.19"), ("openssh-client", "1:10"), ("ca-certificates", "2025")],
)  # fmt: skip
def test_the_tools_come_from_debian(host, package: str, version: str) -> None:
    installed = host.package(package)
    assert installed.is_installed
    assert installed.version.startswith(version)


def test_build_only_tools_stay_out_of_the_image(host) -> None:
    for package in ("npm", "python3-venv", "python3-pip", "build-essential"):
        assert not host.package(package).is_installed, package
    assert not host.exists("pip")
    assert not host.file("/root/.npm").exists


def test_the_devcontainer_cli_is_the_pinned_one(host) -> None:
    pinned = json.loads((ROOT / "builder" / "package.json").read_text())["dependencies"]["@devcontainers/cli"]
    assert host.check_output("devcontainer --version") == pinned


def test_file_ownership(host) -> None:
    workspaces = host.file("/workspaces")
    assert (workspaces.user, workspaces.group, workspaces.mode) == ("builder", "builder", 0o755)
    for path in (
        "/opt/devcontainer-builder",
        "/opt/devcontainer-cli",
        "/usr/local/lib/devcontainer-builder/entrypoint.py",
    ):
        installed = host.file(path)
        assert installed.user == "root", path
        assert not installed.mode & 0o022, f"{path} must not be writable by the builder"
    assert host.run("touch /opt/devcontainer-builder/x").rc != 0
    assert host.file("/home/builder").user == "builder"


def test_version_and_labels(image: str, host) -> None:
    version = (ROOT / "builder" / "version.txt").read_text().strip()
    assert host.file("/usr/local/share/devcontainer-builder/version.txt").content_string.strip() == version
    labels = json.loads(
        subprocess.run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image],
                       capture_output=True, text=True, check=True, timeout=60).stdout
    )  # fmt: skip
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert f"version {version}" in host.check_output("devcontainer-builder-entrypoint --version")


def test_tini_is_pid_one_and_forwards_sigterm(image: str) -> None:
    entrypoint = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .Config.Entrypoint}}", image],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert json.loads(entrypoint)[0] == "/usr/bin/tini"


def debian_files(container: str) -> set[str]:
    """Paths Debian packages installed: their contents are Debian's (ssh's format strings, gnutls's
    self-test key), not something this build could have baked in."""
    listing = subprocess.run(
        ["docker", "exec", container, "sh", "-c", "cat /var/lib/dpkg/info/*.list"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    paths = set()
    for line in listing.splitlines():
        path = line.strip().lstrip("/")
        paths.add(path)
        if path.startswith(("bin/", "sbin/", "lib/", "lib64/")):  # merged /usr
            paths.add("usr/" + path)
    return paths


def test_no_secret_is_baked_into_any_layer(image: str, idle_container: str) -> None:
    packaged = debian_files(idle_container)
    saved = subprocess.run(["docker", "save", image], capture_output=True, check=True, timeout=600).stdout
    found = []
    layers = 0
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        for member in archive.getmembers():
            if not member.name.endswith("layer.tar"):
                continue
            layers += 1
            with tarfile.open(fileobj=archive.extractfile(member)) as layer:
                for entry in layer.getmembers():
                    if SECRET_FILES.search(entry.name):
                        found.append(f"{member.name}: {entry.name}")
                    if entry.name.startswith("usr/local/share/ca-certificates/") and entry.isfile():
                        found.append(f"{member.name}: build-time CA {entry.name}")
                    if entry.isfile() and entry.size < 5_000_000 and entry.name not in packaged:
                        data = layer.extractfile(entry).read()
                        if SECRET_TEXT.search(data):
                            found.append(f"{member.name}: {entry.name} holds key or token material")
    assert layers >= 5 and len(packaged) > 1000
    assert found == []
    history = subprocess.run(["docker", "history", "--no-trunc", image], capture_output=True, text=True,
                             check=True, timeout=60).stdout  # fmt: skip
    assert not SECRET_TEXT.search(history.encode())
    assert "TOKEN=" not in history and "PASSWORD=" not in history
