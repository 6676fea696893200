from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def idle_container(image: str) -> Iterator[str]:
    """A container of the image doing nothing, for goss and testinfra to look into."""
    container = subprocess.run(
        ["docker", "run", "-d", "--entrypoint", "sleep", image, "infinity"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    yield container
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60, check=False)
