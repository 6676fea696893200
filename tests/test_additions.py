"""What the admin adds to every container without touching the repository's devcontainer.json: its
network (DEVCONTAINER_NETWORK) and named volumes that outlive rebuilds (DEVCONTAINER_PERSIST)."""

from __future__ import annotations

import json
import os

import pytest
from devcontainer_builder.engine import compose
from support.engines import EngineUnderTest, on_every_engine
from support.images import FALLBACK_IMAGE
from support.repos import Remote
from support.repos import git as run_git

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

CONFIG = {"image": FALLBACK_IMAGE, "postCreateCommand": "echo v1 > /tmp/version",
          "mounts": ["type=tmpfs,target=/opt/tool-state"]}  # fmt: skip  # the admin's volume wins there


def net_namespace_inside(ws) -> str:
    return ws.exec("stat", "-L", "-c", "%i", "/proc/self/ns/net")


@on_every_engine
def test_the_admins_network_is_the_containers_and_the_config_is_untouched(
    remote: Remote, make_workspace, engine: EngineUnderTest
) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps(CONFIG)})
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    isolated = net_namespace_inside(ws)
    assert isolated != str(os.stat("/proc/self/ns/net").st_ino), "by default the container has a network of its own"
    run = ws.up(DEVCONTAINER_NETWORK="host")
    assert run.returncode == 0, run.output
    assert "config_changed" in ws.event_kinds(), "a new network is a new container"
    assert net_namespace_inside(ws) == str(os.stat("/proc/self/ns/net").st_ino)
    assert engine.run("inspect", "-f", "{{.HostConfig.NetworkMode}}", ws.container()) == "host"
    assert run_git("status", "--porcelain", cwd=ws.folder) == "", "the repository's devcontainer.json is as it was"
    again = ws.up(DEVCONTAINER_NETWORK="host")
    assert again.returncode == 0 and "nothing to rebuild" in again.stdout, again.output


def test_a_repository_cannot_take_the_host_network_the_admin_did_not_give(remote: Remote, make_workspace) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({**CONFIG, "runArgs": ["--network=host"]})})
    ws = make_workspace(remote.url)
    run = ws.up(DEVCONTAINER_NETWORK="bridge")
    assert run.returncode == 0, run.output
    state = ws.state()
    assert state["status"] == "degraded"
    assert "the admin gives every container the network bridge" in state["error"]["message"]


@on_every_engine
def test_persisted_folders_outlive_rebuilds_and_config_changes(
    remote: Remote, make_workspace, engine: EngineUnderTest
) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps(CONFIG)})  # the user comes from the image
    ws = make_workspace(remote.url, DEVCONTAINER_PERSIST="~/.vscode-server /opt/tool-state /workspaces")
    try:
        run = ws.up()
        assert run.returncode == 0, run.output
        assert "keeping ~/.vscode-server in volume" in run.stdout and "(at /home/coder/.vscode-server)" in run.stdout
        assert "/workspaces, the workspace folder or around it: not persisted" in run.output, "never over the clone"
        assert "the repository's mount at /opt/tool-state gives way to DEVCONTAINER_PERSIST's volume" in run.output
        ws.exec("sh", "-c", "echo extension > ~/.vscode-server/installed && echo root-made > /opt/tool-state/x",
                user="coder")  # fmt: skip
        first = ws.container()
        remote.commit({".devcontainer/devcontainer.json": json.dumps({**CONFIG, "postCreateCommand": "true"})})
        assert ws.up().returncode == 0
        assert ws.run("--full", command="rebuild").returncode == 0
        assert ws.container() != first
        assert ws.exec("cat", "/home/coder/.vscode-server/installed", user="coder") == "extension"
        assert ws.exec("cat", "/opt/tool-state/x") == "root-made"
        assert ws.exec("stat", "-c", "%U", "/home/coder/.vscode-server") == "coder", "the editor may write there"
        project = compose.project_name(str(ws.folder))
        ours = [name for name in engine.run("volume", "ls", "-q").split() if name.startswith(f"{project}-")]
        assert len(ours) == 2, ours
        assert run_git("status", "--porcelain", cwd=ws.folder) == ""
    finally:
        for container in ws.containers():
            engine.run("rm", "-f", container, check=False)
        project = compose.project_name(str(ws.folder))
        for name in engine.run("volume", "ls", "-q", check=False).split():
            if name.startswith(f"{project}-"):
                engine.run("volume", "rm", name, check=False)
