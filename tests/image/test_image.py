"""The builder image: goss's checks (goss.yaml, run inside it), testinfra's look at a running container
of it, and a scan of every layer for anything secret."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import testinfra
from support.images import BASE_IMAGE
from support.services import wait_for

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


def test_tini_becomes_pid_one_with_an_environment_free_of_secrets(image: str) -> None:
    """The entrypoint starts as PID 1, hands the secrets over on a pipe and executes tini without them:
    PID 1's environment - readable by any process of the same user - holds no secret."""
    secret = f"ghp_{uuid.uuid4().hex}"
    # a builder that stays up: files without git (its own home's) to use as they are, and an engine it waits for
    container = subprocess.run(
        ["docker", "run", "-d", "-e", f"GH_TOKEN={secret}", "-e", "DEVCONTAINER_REPOSITORY=/nonexistent",
         "-e", "DEVCONTAINER_WORKSPACE_FOLDER=/home/builder", "-e", "DEVCONTAINER_USE_EXISTING_FOLDER=true",
         "-e", "DOCKER_HOST=unix:///nonexistent.sock", "-e", "DEVCONTAINER_ENGINE_TIMEOUT=600", image],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    try:

        def pid_one() -> str:
            return subprocess.run(["docker", "exec", container, "cat", "/proc/1/cmdline"], capture_output=True,
                                  text=True, timeout=60, check=False).stdout  # fmt: skip

        try:
            wait_for(lambda: pid_one().startswith("/usr/bin/tini"), 60, "tini as PID 1")
        except AssertionError as error:
            logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=60,
                                  check=False)  # fmt: skip
            raise AssertionError(f"{error}; the builder printed:\n{logs.stdout}{logs.stderr}") from None
        # `docker exec` gives the process it starts the container's configured environment (an admin's
        # tool: kubectl exec does the same); env -i makes the probe itself clean, so what it finds is
        # what tini, the builder and their children hold
        environments = subprocess.run(
            ["docker", "exec", container, "env", "-i", "/bin/sh", "-c", "cat /proc/[0-9]*/environ; true"],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout  # fmt: skip
        assert "DEVCONTAINER_REPOSITORY=/nonexistent" in environments, "the environments were read"
        assert secret not in environments
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60, check=False)


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


def test_a_fresh_clone_builds_with_a_plain_docker_build(tmp_path: Path) -> None:
    """`docker build builder` as anyone's CI runs it: no `make`, no placeholder folder. Only the base image is
    named (no registry on these machines) and, on a network that intercepts TLS, its CA is put where the
    Dockerfile takes extra CAs from - never into the image (test_no_secret_or_key_material_in_any_layer)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    assert not (clone / "builder" / ".build-ca").exists()
    base = ["--build-arg", f"BASE={BASE_IMAGE}"]
    # without any CA folder at all, the stage that would use it builds
    subprocess.run(["docker", "build", "-q", *base, "--target", "toolchain", str(clone / "builder")],
                   capture_output=True, text=True, timeout=1800, check=True)  # fmt: skip
    host_cas = list(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if host_cas:  # this network intercepts TLS: its CA, where the README says to put it
        (clone / "builder" / ".build-ca").mkdir()
        for ca in host_cas:
            shutil.copy(ca, clone / "builder" / ".build-ca" / ca.name)
    built = subprocess.run(["docker", "build", "-q", *base, "-t", "dcb-plain-build:test", str(clone / "builder")],
                           capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    try:
        assert built.returncode == 0, built.stderr[-3000:]
        version = subprocess.run(["docker", "run", "--rm", "dcb-plain-build:test", "--version"],
                                 capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
        assert "devcontainer-builder" in version
    finally:
        subprocess.run(["docker", "rmi", "-f", "dcb-plain-build:test"], capture_output=True, timeout=120, check=False)
