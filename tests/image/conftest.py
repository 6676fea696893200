from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "devcontainer-builder:dev"


@pytest.fixture(scope="session")
def image(docker_engine: None) -> str:
    """The builder image, built by the same `make image` the README and moon use (cached layers make
    a rebuild of an unchanged tree take seconds)."""
    result = subprocess.run(["make", "-s", "image", f"IMAGE={IMAGE}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=1800, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return IMAGE


@pytest.fixture(scope="session")
def idle_container(image: str) -> Iterator[str]:
    """A container of the image doing nothing, for goss and testinfra to look into."""
    container = subprocess.run(
        ["docker", "run", "-d", "--entrypoint", "sleep", image, "infinity"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    yield container
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60, check=False)
