"""Which engine the builder drives when DEVCONTAINER_DOCKER_PATH is unset (engine/detect.py), against real
unix sockets and real executables on a PATH of the test's own."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from devcontainer_builder.engine import detect


def tools(folder: Path, **scripts: str) -> dict[str, str]:
    """An environment whose PATH holds only the given executables (name -> script body)."""
    folder.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = folder / name
        path.write_text(body)
        path.chmod(0o755)
    return {"PATH": str(folder)}


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A unix socket answering like the Docker engine's /_ping; the answer can be changed."""
    path = str(tmp_path / "docker.sock")
    answer = [b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nContent-Length: 2\r\n\r\nOK"]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(answer[0])

    threading.Thread(target=serve, daemon=True).start()
    yield path, answer
    server.close()


DOCKER = '#!/bin/sh\necho "Docker version 28.2.2, build e6534b4"\n'
PODMAN = '#!/bin/sh\necho "podman version 4.3.1"\n'
PODMAN_DOCKER = (
    '#!/bin/sh\n[ -e /etc/containers/nodocker ] || echo "Emulate Docker CLI using podman."\nexec podman "$@"\n'
)


def test_the_admins_choice_wins_whatever_answers(tmp_path: Path, engine_socket) -> None:
    env = tools(tmp_path / "bin", docker=DOCKER, podman=PODMAN)
    choice = detect.choose("podman", env, last="docker", socket_path=engine_socket[0])
    assert (choice.path, choice.kind, choice.reason) == ("podman", "podman", detect.CONFIGURED)


def test_a_docker_engine_that_answers_is_chosen(tmp_path: Path, engine_socket) -> None:
    env = tools(tmp_path / "bin", docker=DOCKER, podman=PODMAN)
    choice = detect.choose("", env, socket_path=engine_socket[0])
    assert (choice.path, choice.kind) == ("docker", "docker")
    assert engine_socket[0] in choice.reason


def test_without_a_docker_engine_podman_is_chosen_and_the_reason_says_why(tmp_path: Path) -> None:
    env = tools(tmp_path / "bin", docker=DOCKER, podman=PODMAN)
    choice = detect.choose("", env, socket_path=str(tmp_path / "missing.sock"))
    assert (choice.path, choice.kind) == ("podman", "podman")
    assert choice.reason == f"there is no Docker socket at {tmp_path / 'missing.sock'}; Podman is installed"


def test_a_socket_that_is_not_a_docker_engine_does_not_count(tmp_path: Path, engine_socket) -> None:
    engine_socket[1][0] = b"SSH-2.0-OpenSSH_9.2\r\n"
    env = tools(tmp_path / "bin", docker=DOCKER, podman=PODMAN)
    choice = detect.choose("", env, socket_path=engine_socket[0])
    assert choice.path == "podman" and "not as a Docker engine" in choice.reason


def test_a_socket_nobody_listens_on_does_not_count(tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(dead))  # bound, never listening: connect is refused
    env = tools(tmp_path / "bin", podman=PODMAN, docker=DOCKER)
    choice = detect.choose("", env, socket_path=str(dead))
    assert choice.path == "podman" and "does not answer" in choice.reason


def test_docker_host_means_docker_even_before_its_engine_answers(tmp_path: Path) -> None:
    env = {**tools(tmp_path / "bin", docker=DOCKER, podman=PODMAN), "DOCKER_HOST": "tcp://127.0.0.1:2375"}
    choice = detect.choose("", env, socket_path=str(tmp_path / "missing.sock"))
    assert (choice.path, choice.reason) == ("docker", "DOCKER_HOST is set")


def test_the_last_builds_engine_is_kept_while_it_is_installed(tmp_path: Path, engine_socket) -> None:
    env = tools(tmp_path / "bin", docker=DOCKER, podman=PODMAN)
    kept = detect.choose("", env, last="podman", socket_path=engine_socket[0])
    assert (kept.path, kept.reason) == ("podman", "the engine of the workspace's last build (state.json)")
    os.unlink(tmp_path / "bin" / "podman")
    moved = detect.choose("", env, last="podman", socket_path=engine_socket[0])
    assert moved.path == "docker", "an engine that was uninstalled is not insisted on"


def test_nothing_installed_tries_docker_so_the_error_names_it(tmp_path: Path) -> None:
    choice = detect.choose("", tools(tmp_path / "bin"), socket_path=str(tmp_path / "missing.sock"))
    assert choice.path == "docker" and "Podman is not installed" in choice.reason


@pytest.mark.parametrize("name", ["docker", "/usr/local/bin/docker"])
def test_a_docker_that_is_podmans_script_is_podman(tmp_path: Path, engine_socket, name: str) -> None:
    """Debian's podman-docker installs /usr/bin/docker as a script that runs podman: it behaves as Podman."""
    env = tools(tmp_path / "bin", docker=PODMAN_DOCKER, podman=PODMAN)
    configured = str(tmp_path / "bin" / "docker") if name.startswith("/") else name
    assert detect.choose(configured, env).kind == "podman"
    assert detect.choose("", env, socket_path=engine_socket[0]).kind == "podman"


def test_a_real_docker_binary_is_docker(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "docker"
    binary.parent.mkdir()
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + b"podman" * 10)  # a binary that merely mentions podman
    binary.chmod(0o755)
    assert detect.kind_of("docker", str(binary.parent))[0] == "docker"


def test_a_docker_that_links_to_podman_is_podman(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    tools(folder, podman=PODMAN)
    (folder / "docker").symlink_to(folder / "podman")
    assert detect.kind_of("docker", str(folder))[0] == "podman"
    assert detect.choose(str(folder / "docker"), {"PATH": str(folder)}).kind == "podman"


@pytest.mark.parametrize(
    ("script", "kind"),
    [("#!/bin/sh\n# we dropped podman for docker\nPODMAN=/usr/bin/podman\necho 'Docker version 28.2.2'\n", "docker"),
     ('#!/bin/sh\n"$(command -v podman)" "$@"\n', "podman"), ('#!/bin/sh\nexec /usr/bin/env podman "$@"\n', "podman")],
    ids=["mentions-podman", "command-v", "env"],
)  # fmt: skip
def test_a_wrapper_is_what_it_runs_whatever_it_says_in_passing(tmp_path: Path, script: str, kind: str) -> None:
    env = tools(tmp_path / "bin", docker=script, podman=PODMAN)
    assert detect.kind_of("docker", env["PATH"])[0] == kind


def test_the_kind_is_asked_once_per_executable(tmp_path: Path) -> None:
    asked = tmp_path / "asked"
    env = tools(tmp_path / "bin", docker=f'#!/bin/sh\necho asked >> {asked}\necho "podman version 5.4.2"\n')
    kind, identity = detect.kind_of("docker", env["PATH"])
    assert (kind, asked.read_text()) == ("podman", "asked\n")
    assert detect.kind_of("docker", env["PATH"], known=(identity, kind)) == (kind, identity)
    assert asked.read_text() == "asked\n", "known: no process"
    (tmp_path / "bin" / "docker").write_text(DOCKER)  # replaced by another program
    assert detect.kind_of("docker", env["PATH"], known=(identity, kind))[0] == "docker"
