"""The one capability the builder may be given: CAP_NET_BIND_SERVICE, as an ambient capability of the VM's
unit, so `serve` can listen on a port below 1024 - one a rootless devcontainer on the VM's network cannot
take (its capabilities count in its own user namespace only, not in the VM's network namespace).

Ambient capabilities pass to every program a process runs. Nothing but `serve`'s own bind needs this one:
`up` (and so the devcontainer CLI, git and every hook) drops it at once, and `serve` at start - clearing
the ambient set keeps the process's own capability, so `serve` can still listen when a busy address frees
up, while every program it runs (a build, the builder agent and its terminal) starts without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


def drop_ambient() -> None:
    """Clear the ambient set (a no-op when it is empty, or on a kernel without ambient capabilities)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    except (OSError, AttributeError):
        return
