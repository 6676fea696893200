"""moon's tasks are the make targets: the same build, test and push, tried for real against a registry."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
from support import shared
from support.services import Registry

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "devcontainer-builder"
MOON = str(CACHE / "moon" / "node_modules" / ".bin" / "moon")


def moon(*args: str, **env: str) -> subprocess.CompletedProcess:
    # CI=true: in CI moon diffs against the default branch, which must exist in a fresh clone.
    return subprocess.run(
        [MOON, *args], cwd=ROOT, env={**os.environ, "CI": "true", **env}, capture_output=True, text=True, timeout=1800,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize(("task", "target"), [("build", "image"), ("test", "test"), ("push", "push")])
def test_each_task_is_the_make_target(task: str, target: str) -> None:
    result = moon("task", f"devcontainer-builder:{task}", "--json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert (config["command"], config["args"]) == ("make", [target])


def test_push_builds_and_pushes_to_a_registry(image: str, registry: Registry, run_root: Path) -> None:
    version = (ROOT / "builder" / "version.txt").read_text().strip()
    # its `make image` is the image fixture's, which another worker may be running
    with shared.locked(run_root / "image.lock", 1900):
        result = moon("run", "devcontainer-builder:push", REGISTRY=registry.address)
    assert result.returncode == 0, result.stdout + result.stderr
    with urllib.request.urlopen(f"http://{registry.address}/v2/devcontainer-builder/tags/list", timeout=10) as response:
        assert version in json.load(response)["tags"]
    tag = f"{registry.address}/devcontainer-builder:{version}"
    try:
        pushed = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True, text=True,
                                check=True, timeout=60).stdout  # fmt: skip
        local = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image], capture_output=True, text=True,
                               check=True, timeout=60).stdout  # fmt: skip
        assert pushed == local
    finally:
        # the registry's port is the run's: its tag would stay in the engine's list after every run
        subprocess.run(["docker", "image", "rm", tag], capture_output=True, timeout=60, check=False)


def test_push_without_a_registry_says_what_to_set() -> None:
    result = subprocess.run(["make", "-s", "push", "REGISTRY="], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)  # fmt: skip
    assert result.returncode == 2
    assert "set REGISTRY" in result.stderr
