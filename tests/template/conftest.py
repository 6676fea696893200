"""The real cluster, shared: one `kubernetes.sh up` a session, `down` at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import cluster as k8s


@pytest.fixture(scope="session")
def cluster() -> Iterator[k8s.Cluster]:
    running = k8s.up()
    try:
        yield running
    finally:
        k8s.down()
