"""Where the engines differ: which one the builder picks, and whose files the workspace holds under
rootless Podman. (The end-to-end behaviour every engine shares is tested on each of them in test_up.py,
test_fallback.py, test_agent.py, test_serve.py and test_hostile.py.)"""

from __future__ import annotations

import json
import pwd
import uuid
from pathlib import Path

import pytest
from support.builder import docker
from support.engines import EngineUnderTest
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote
from support.services import Registry

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]


def test_unset_the_engine_is_the_docker_engine_that_answers_and_is_recorded(remote: Remote, make_workspace) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE})})
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["engine"], state["engine_kind"]) == ("docker", "docker")
    assert state["engine_reason"] == "the Docker engine answers at /var/run/docker.sock"
    assert "engine: docker (the Docker engine answers at /var/run/docker.sock)" in run.stdout
    assert docker("inspect", "-f", "{{.State.Running}}", ws.container()) == "true"


@pytest.mark.parametrize("engine", ["podman"], indirect=True)
def test_a_docker_that_is_podmans_script_is_driven_as_podman(
    remote: Remote, make_workspace, engine: EngineUnderTest, sandbox: Path
) -> None:
    """Debian's podman-docker puts a `docker` script on PATH that runs podman: the builder sees Podman
    (its ps, events and keep-id differ) though the CLI is called docker."""
    shim = sandbox / "bin" / "docker"
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\nexec podman "$@"\n')
    shim.chmod(0o755)
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE, "remoteUser": "coder"})})
    ws = make_workspace(remote.url)
    path = f"{shim.parent}:{ws.builder_env()['PATH']}"
    run = ws.up(DEVCONTAINER_DOCKER_PATH=None, PATH=path)
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["engine"], state["engine_kind"], state["status"]) == ("docker", "podman", "running")
    assert "engine: docker, which is podman (" in run.stdout
    (container,) = ws.containers()
    assert engine.run("inspect", "-f", "{{.State.Running}}", container) == "true"
    again = ws.up(DEVCONTAINER_DOCKER_PATH=None, PATH=path)
    assert again.returncode == 0 and "nothing to rebuild" in again.stdout, again.output


@pytest.mark.parametrize("engine", ["rootless"], indirect=True)
def test_rootless_files_stay_the_users_on_the_host_and_the_remote_users_inside(
    remote: Remote, make_workspace, engine: EngineUnderTest
) -> None:
    """The keep-id question: rootless Podman maps the host user to the same uid in the container
    (--userns=keep-id, which the devcontainer CLI adds for a non-root remote user) and the CLI gives the
    remote user that uid, so neither side sees the other's files as a stranger's."""
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE, "remoteUser": "coder"}),
                   "README.md": "hi\n"})  # fmt: skip
    ws = make_workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    owner = pwd.getpwnam(engine.user)
    folder = f"/workspaces/{ws.folder.name}"
    assert (ws.folder / "README.md").stat().st_uid == owner.pw_uid, "the clone is the user's on the host"
    assert ws.exec("stat", "-c", "%U %u", f"{folder}/README.md") == f"coder {owner.pw_uid}"
    ws.exec("sh", "-c", f"echo made inside > {folder}/inside.txt && mkdir {folder}/build", user="coder")
    for made in ("inside.txt", "build"):
        info = (ws.folder / made).stat()
        assert (info.st_uid, info.st_gid) == (owner.pw_uid, owner.pw_gid), f"{made} is the user's on the host"
    assert ws.exec("id", "-un", user="coder") == "coder"
    assert "--userns=keep-id" in ws.build_log()


@pytest.mark.parametrize("engine", ["podman"], indirect=True)
def test_a_registry_cache_exported_by_one_podman_build_is_used_by_the_next(
    remote: Remote, make_workspace, engine: EngineUnderTest, registry: Registry, sandbox: Path
) -> None:
    """DEVCONTAINER_CACHE_TO and _FROM as written for buildx (type=registry,ref=...) work on Podman: buildah
    pushes the layers to the repository and a later build on a machine without them pulls them back."""
    token = uuid.uuid4().hex
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
                   ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {token} && date +%s%N > /built-at\n"})  # fmt: skip
    insecure = sandbox / "registries.conf"  # the test registry speaks plain HTTP
    insecure.write_text(f'[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n')
    ref = f"{registry.address}/cache/podman-{token[:8]}"
    first = make_workspace(remote.url, name="first", CONTAINERS_REGISTRIES_CONF=str(insecure),
                           DEVCONTAINER_CACHE_TO=f"type=registry,ref={ref}:cache")  # fmt: skip
    run = first.up()
    assert run.returncode == 0, run.output
    assert "cache_to_ignored" not in first.event_kinds()
    built_at = first.exec("cat", "/built-at")
    # forget every local trace of the build: only the registry can give the RUN layer back
    image = engine.run("inspect", "-f", "{{.ImageName}}", first.container())
    engine.run("rm", "-f", first.container())
    layers = engine.run("images", "-q", "--filter", f"reference={ref}").split()
    engine.run("rmi", "-f", image, *layers)
    engine.run("image", "prune", "-f")
    second = make_workspace(remote.url, name="second", CONTAINERS_REGISTRIES_CONF=str(insecure),
                            DEVCONTAINER_CACHE_FROM=f"type=registry,ref={ref}:cache")  # fmt: skip
    run = second.up()
    assert run.returncode == 0, run.output
    assert second.exec("cat", "/built-at") == built_at, "the RUN layer came from the registry"
    assert f"Cache pulled from remote {ref}:" in second.build_log()
