"""What the processes of one pytest run share when pytest-xdist runs the tests in several workers: a folder
of the run (made by the controller, removed by it at the end), and work done once under a file lock - the
builder image, the rootless user's install, the copies of the test images into a Podman store.

A serial run is its own controller: the same code, one process."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# how the kubernetes-marked tests stay together: one xdist group, so one worker runs them in their order
KUBERNETES_GROUP = "kubernetes"
GROUPS = "xdist-groups.json"


@contextmanager
def locked(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive lock on path, held for the block; waits at most timeout seconds for it."""
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{path} stayed locked for {timeout} s (another worker is stuck)") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(root: Path, name: str, make: Callable[[], str], timeout: float) -> str:
    """make()'s result, computed by the first worker of the run to ask; the others wait for it. A make()
    that failed is tried again by the next worker (each reports its own failure)."""
    done = root / f"{name}.done"
    with locked(root / f"{name}.lock", timeout):
        if not done.exists():
            done.write_text(make())
        return done.read_text()


def arrange(items: list[pytest.Item], run_root: Path | None) -> None:
    """The kubernetes-marked tests first, in their collected order and in one xdist group: they share one
    cluster (a session fixture, so one worker), `test_kubernetes_cluster.py` takes it down and up around the
    others, and together they are the run's longest chain, so they start at once. The rest keep their order.

    A worker also writes the groups to the run's folder for the controller's scheduler (GroupScheduling):
    xdist 3.8 passes them on by appending `@group` to the test's id, which pytest 9.2's structured ids
    ignore (pytest-dev/pytest-xdist#1386), so its own `--dist loadgroup` would spread the group out."""
    chain = [item for item in items if item.get_closest_marker("kubernetes")]
    for item in chain:
        item.add_marker(pytest.mark.xdist_group(KUBERNETES_GROUP))
    rest = [item for item in items if not item.get_closest_marker("kubernetes")]
    items[:] = chain + rest
    if run_root is not None:
        groups = {item.nodeid: KUBERNETES_GROUP for item in chain}
        written = run_root / f"groups-{os.getpid()}.json"
        written.write_text(json.dumps(groups))
        written.replace(run_root / GROUPS)  # whole: every worker collects the same tests


def make_scheduler(config: pytest.Config, log: Any, run_root: Path) -> Any:
    """xdist's loadgroup scheduler, told the groups through the run's folder (see arrange)."""
    from xdist.scheduler import LoadGroupScheduling

    class GroupScheduling(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            # read when the first scope is asked for: once every worker has collected (and written)
            if self.groups is None:
                path = run_root / GROUPS
                self.groups = json.loads(path.read_text()) if path.exists() else {}
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return GroupScheduling(config, log)
