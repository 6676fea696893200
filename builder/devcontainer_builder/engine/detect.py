"""Which container engine the builder drives: the one the admin named (DEVCONTAINER_DOCKER_PATH), else
the one the workspace's containers were made with (state.json) while it is installed, else the Docker
engine when its socket answers, else Podman when it is installed. Staying with the last build's engine
keeps a workspace's containers found when, say, a Docker engine appears on a Podman host later.

Podman behaves as Podman whatever its CLI is called (Debian's podman-docker script, a link, a wrapper), so
which kind an executable is comes from the executable itself: a name or link target `podman`, else what
`CLI --version` answers, asked once per executable (its real path, size and time, kept in state.json as
`engine_identity`) - the devcontainer CLI tells them apart the same way. The socket is asked for `/_ping`
directly; a warm `up` starts no process for any of this.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from devcontainer_builder.engine.engine import DOCKER, PODMAN
from devcontainer_builder.system import environment, proc

DOCKER_SOCKET = "/var/run/docker.sock"
CONFIGURED = "set by DEVCONTAINER_DOCKER_PATH"
VERSION_TIMEOUT = 15.0
PING_TIMEOUT = 2.0


@dataclass(frozen=True)
class Choice:
    path: str  # the engine's CLI, given to the devcontainer CLI as --docker-path
    kind: str  # DOCKER or PODMAN
    reason: str  # how it was chosen, for the log and state.json
    identity: str = ""  # the executable's real path, size and time: its kind is known while they hold


def identity_of(path: str, search_path: str) -> str:
    """real path:size:mtime of the executable path names, or "" when there is none."""
    found = shutil.which(path, path=search_path)
    if not found:
        return ""
    real = os.path.realpath(found)
    try:
        info = os.stat(real)
    except OSError:
        return ""
    return f"{real}:{info.st_size}:{info.st_mtime_ns}"


def kind_of(path: str, search_path: str, known: tuple[str, str] = ("", "")) -> tuple[str, str]:
    """(DOCKER or PODMAN, the executable's identity). `known` is a (identity, kind) found before."""
    identity = identity_of(path, search_path)
    real = identity.rsplit(":", 2)[0]
    if os.path.basename(path).startswith(PODMAN) or os.path.basename(real).startswith(PODMAN):
        return PODMAN, identity
    if not identity:
        return DOCKER, identity
    if known[0] == identity and known[1] in (DOCKER, PODMAN):
        return known[1], identity
    env = {**environment.minimal(os.environ), "PATH": search_path}  # a wrapper finds what the engine would
    result = proc.run([real, "--version"], timeout=VERSION_TIMEOUT, env=env)
    said = (result.stdout + result.stderr).lower() if result.ok else ""
    return (PODMAN if "podman" in said else DOCKER), identity


def socket_answers(path: str = DOCKER_SOCKET, timeout: float = PING_TIMEOUT) -> str:
    """ "" when a Docker engine answers /_ping on the unix socket, else why not (in words)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(64)
    except FileNotFoundError:
        return f"there is no Docker socket at {path}"
    except PermissionError:
        return f"uid {os.getuid()} may not use the Docker socket at {path}"
    except OSError as err:
        return f"the Docker socket at {path} does not answer ({err.strerror or err})"
    if answer.startswith(b"HTTP/1.") and b" 200 " in answer[:16]:
        return ""
    return f"the Docker socket at {path} answers, but not as a Docker engine"


class Remembered(Protocol):
    """What state.json remembers of the engine of the workspace's last build (the state's own fields:
    this module reads them without depending on the state's package)."""

    engine: str
    engine_identity: str
    engine_kind: str


def choose_as_before(configured: str, environ: Mapping[str, str], last: Remembered) -> Choice:
    """choose(), told which engine the workspace's last build used and what kind it was."""
    return choose(configured, environ, last=last.engine, known=(last.engine_identity, last.engine_kind))


def choose(
    configured: str,
    environ: Mapping[str, str],
    last: str = "",
    socket_path: str = DOCKER_SOCKET,
    known: tuple[str, str] = ("", ""),
) -> Choice:
    """The engine for this run (see the module's docstring); `last` is state.json's `engine`, `known` its
    (`engine_identity`, `engine_kind`)."""
    search_path = environ.get("PATH", os.defpath)

    def chosen(path: str, reason: str) -> Choice:
        kind, identity = kind_of(path, search_path, known)
        return Choice(path, kind, reason, identity)

    if configured:
        return chosen(configured, CONFIGURED)
    if last in (DOCKER, PODMAN) and shutil.which(last, path=search_path):
        return chosen(last, "the engine of the workspace's last build (state.json)")
    docker = shutil.which(DOCKER, path=search_path)
    podman = shutil.which(PODMAN, path=search_path)
    if docker and environ.get("DOCKER_HOST"):
        return chosen(DOCKER, "DOCKER_HOST is set")
    why = socket_answers(socket_path)
    if docker and not why:
        return chosen(DOCKER, f"the Docker engine answers at {socket_path}")
    if podman:
        return chosen(PODMAN, f"{why}; Podman is installed")
    return Choice(DOCKER, DOCKER, f"{why} and Podman is not installed: trying docker")
