"""Which container engine the builder drives: the one the admin named (DEVCONTAINER_DOCKER_PATH), else
the one the workspace's containers were made with (state.json) while it is installed, else the Docker
engine when its socket answers, else Podman when it is installed. Staying with the last build's engine
keeps a workspace's containers found when, say, a Docker engine appears on a Podman host later.

The choice costs no process: the socket is asked for `/_ping` directly, and a `docker` that is Podman
under another name - a link to it, or a compatibility script such as Debian's podman-docker - is told by
following the link and reading the script, because Podman behaves as Podman whatever its CLI is called.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from devcontainer_builder.engine.engine import DOCKER, PODMAN

DOCKER_SOCKET = "/var/run/docker.sock"
CONFIGURED = "set by DEVCONTAINER_DOCKER_PATH"
# a script line (not a comment) that runs podman: `exec /usr/bin/podman "$@"`, `podman "$@"`
RUNS_PODMAN = re.compile(rb"^[ \t]*(?:exec[ \t]+)?(?:[^\s#]*/)?podman(?:[ \t]|$)", re.MULTILINE)
PING_TIMEOUT = 2.0


@dataclass(frozen=True)
class Choice:
    path: str  # the engine's CLI, given to the devcontainer CLI as --docker-path
    kind: str  # DOCKER or PODMAN
    reason: str  # how it was chosen, for the log and state.json


def kind_of(path: str, search_path: str) -> str:
    """PODMAN for podman, a link to it, and a script that runs it (Debian's podman-docker); else DOCKER."""
    if os.path.basename(path).startswith(PODMAN):
        return PODMAN
    found = shutil.which(path, path=search_path)
    if not found:
        return DOCKER
    real = os.path.realpath(found)
    if os.path.basename(real).startswith(PODMAN):
        return PODMAN
    try:
        with open(real, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return DOCKER
    if head.startswith(b"#!") and RUNS_PODMAN.search(head):
        return PODMAN
    return DOCKER


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


def choose(configured: str, environ: Mapping[str, str], last: str = "", socket_path: str = DOCKER_SOCKET) -> Choice:
    """The engine for this run (see the module's docstring); `last` is state.json's `engine`."""
    search_path = environ.get("PATH", os.defpath)
    if configured:
        return Choice(configured, kind_of(configured, search_path), CONFIGURED)
    if last in (DOCKER, PODMAN) and shutil.which(last, path=search_path):
        return Choice(last, kind_of(last, search_path), "the engine of the workspace's last build (state.json)")
    docker = shutil.which(DOCKER, path=search_path)
    podman = shutil.which(PODMAN, path=search_path)
    if docker and environ.get("DOCKER_HOST"):
        return Choice(DOCKER, kind_of(DOCKER, search_path), "DOCKER_HOST is set")
    why = socket_answers(socket_path)
    if docker and not why:
        return Choice(DOCKER, kind_of(DOCKER, search_path), f"the Docker engine answers at {socket_path}")
    if podman:
        return Choice(PODMAN, PODMAN, f"{why}; Podman is installed")
    return Choice(DOCKER, DOCKER, f"{why} and Podman is not installed: trying docker")
