"""The real cluster, shared: one `kubernetes.sh up` a session, `down` at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import cluster as k8s


@pytest.fixture(scope="session")
def cluster() -> Iterator[k8s.Cluster]:
    try:
        yield k8s.up()
    finally:
        k8s.down()  # also after an `up` that failed half-way
