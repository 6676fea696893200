"""Stopping processes the builder did not mean to leave running.

Two kinds. Strays: a repository's initializeCommand can start daemons (`setsid sleep &`) that leave
their process group; the builder is a child subreaper (settings/secrets.protect_process), so such a
process becomes the builder's own child when its parent exits, and `stop_strays()` stops every
descendant that is not under a child the builder is waiting on. Dead runs: a builder killed outright
(SIGKILL, OOM) cannot clean up; every child it starts carries a run marker in its environment
(MARKER=<workspace key>/<pid>/<start time>), and the next builder for the workspace stops every process
whose marker names a run that is no longer alive (`stop_dead_runs()`).

Podman has no daemon: each container is watched by a `conmon` that double-forks away from `podman run`,
and rootless Podman keeps a pause process holding its user namespace (plus slirp4netns or pasta for
the network). Those are handed to the builder like any orphan, but they are the containers, not strays:
they and what runs under them are spared (ENGINE_HELPERS). That gives a repository's allowed
initializeCommand nothing it lacks, since it has the engine and can start a detached container anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time

MARKER = "DEVCONTAINER_BUILDER_RUN"
# what Podman leaves running for its containers (the executables' names)
ENGINE_HELPERS = frozenset({"conmon", "podman", "catatonit", "slirp4netns", "pasta", "pasta.avx2", "rootlessport",
                            "aardvark-dns", "netavark"})  # fmt: skip


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time in clock ticks) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
    try:
        return int(fields[1]), fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid in _pids():
        info = _stat(pid)
        if info is not None:
            tree.setdefault(info[0], []).append(pid)
    return tree


def _subtree(tree: dict[int, list[int]], root: int) -> list[int]:
    found, queue = [], list(tree.get(root, []))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(tree.get(pid, []))
    return found


def _kill_and_reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    # our own children (strays handed to us) must be waited for, or they stay zombies
    deadline = time.monotonic() + 2.0
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child: gone, or someone else's to reap
                pending.discard(pid)
                continue
            if done:
                pending.discard(pid)
        if pending:
            time.sleep(0.01)


def stop_strays() -> list[int]:
    """SIGKILL every descendant of this process that is not under a child run() is waiting on; returns
    their pids. Zombies among this process's children that nobody waits for are reaped."""
    from devcontainer_builder.system import proc  # noqa: PLC0415 - proc imports this module

    tree = children_map()
    keep: set[int] = set()
    for pid in proc.live():
        keep.add(pid)
        keep.update(_subtree(tree, pid))
    for pid in _subtree(tree, os.getpid()):
        if pid not in keep and _engine_helper(pid):
            keep.add(pid)
            keep.update(_subtree(tree, pid))
    strays = [pid for pid in _subtree(tree, os.getpid()) if pid not in keep]
    if strays:
        _kill_and_reap(strays)
    return strays


def _engine_helper(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) in ENGINE_HELPERS
    except OSError:
        return False


def workspace_key(workspace: str) -> str:
    return hashlib.sha256(workspace.encode()).hexdigest()[:16]


def marker(workspace: str) -> str:
    """This run's marker value: the workspace, and this process as (pid, start time)."""
    info = _stat(os.getpid())
    started = info[2] if info else 0
    return f"{workspace_key(workspace)}/{os.getpid()}/{started}"


def _alive(pid: int, started: int) -> bool:
    info = _stat(pid)
    return info is not None and info[2] == started and info[1] != "Z"


def _marker_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:  # another user's process, or gone: not one of ours
        return ""
    prefix = MARKER.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("ascii", "replace")
    return ""


def stop_dead_runs(workspace: str) -> list[int]:
    """SIGKILL every process left by a builder of this workspace that is no longer alive."""
    key = workspace_key(workspace)
    me = os.getpid()
    doomed = []
    for pid in _pids():
        if pid == me:
            continue
        value = _marker_of(pid)
        owner_key, _, rest = value.partition("/")
        if owner_key != key:
            continue
        owner, _, started = rest.partition("/")
        if not (owner.isdigit() and started.isdigit()):
            continue
        if int(owner) != me and not _alive(int(owner), int(started)):
            doomed.append(pid)
    if doomed:
        _kill_and_reap(doomed)
    return doomed
