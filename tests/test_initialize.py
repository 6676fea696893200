"""A repository's initializeCommand runs by default in a sandbox (up/initialize.py): a throwaway container
of the fallback image on the workspace's engine with only the workspace folder, no network, no capability,
no secret, as the folder's owner. What real repositories do with it works; what a hostile one tries does
not reach past the workspace folder; a failing one fails the build like any hook."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.builder import key_material
from support.coder import CoderDouble
from support.engines import EngineUnderTest, on_every_engine
from support.githttp import GitHTTPServer
from support.images import BASE_IMAGE
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

ERROR_LOG = ".devcontainer-build-error.log"
SANDBOX_LABEL = "devcontainer-builder.initialize"
STEAL = (Path(__file__).parent / "support" / "hostile" / "steal.sh").read_text()
# What else a hostile initializeCommand tries: the engine's sockets, the host beyond the workspace folder
# (the state dir, the builder's home, its sandbox's other folders), the network, and a daemon that would
# outlive the build (its marker: an unusual sleep).
PROBE = """#!/bin/sh
out=$1
{
  echo "uid=$(id -u) caps=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
  for path in /var/run/docker.sock /run/docker.sock /run/podman/podman.sock /run/engine/docker.sock \\
      "/run/user/$(id -u)/podman/podman.sock" "$2" "$3" "$4"; do
    if [ -e "$path" ]; then echo "reached $path"; fi
  done
  if [ -n "$(awk 'NR > 1' /proc/net/route 2>/dev/null)" ]; then echo "has a route"; fi
  if (echo > /dev/tcp/127.0.0.1/2375) 2>/dev/null; then echo "reached the engine's port"; fi
  env
} > "$out" 2>&1
setsid sleep 3217 < /dev/null > /dev/null 2>&1 &
"""


def config_repository(sandbox: Path, name: str, files: dict[str, str], **config: object) -> Remote:
    remote = Remote(sandbox, name)
    config = {"image": BASE_IMAGE, **config}
    remote.commit({".devcontainer/devcontainer.json": json.dumps({k: v for k, v in config.items() if v is not None}),
                   **files})  # fmt: skip
    return remote


def sleepers(marker: str) -> list[int]:
    """Processes anywhere on the machine whose command line holds marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def sandboxes(engine: EngineUnderTest, folder: Path) -> list[str]:
    return engine.run("ps", "-aq", "--filter", f"label={SANDBOX_LABEL}={folder}").split()


@pytest.mark.parametrize(
    "command",
    [
        "touch .env && mkdir -p build/cache && echo generated-by-string > .devcontainer/generated.txt",
        ["sh", "-c", "touch .env && mkdir -p build/cache && echo generated-by-array > .devcontainer/generated.txt"],
        {
            "env": "touch .env",
            "folder": ["mkdir", "-p", "build/cache"],
            "generate": "echo generated-by-object > .devcontainer/generated.txt",
        },
    ],
    ids=["string", "array", "object"],
)
def test_each_form_runs_in_the_sandbox_before_the_build_and_the_workspace_comes_up_healthy(
    command: object, sandbox: Path, make_workspace, engine: EngineUnderTest
) -> None:
    # the Dockerfile copies what the command generates: it ran first, in the workspace folder
    remote = config_repository(
        sandbox, "generates", {".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nCOPY generated.txt /generated.txt\n"},
        image=None, build={"dockerfile": "Dockerfile"}, initializeCommand=command,
    )  # fmt: skip
    ws = make_workspace(remote.url, name="generates")
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert state["status"] == "running", state.get("error")
    assert ws.exec("cat", "/generated.txt").startswith("generated-by-")
    assert (ws.folder / ".env").is_file() and (ws.folder / "build" / "cache").is_dir()
    owner = os.stat(ws.folder)
    assert (os.stat(ws.folder / ".env").st_uid, os.stat(ws.folder / ".env").st_gid) == (owner.st_uid, owner.st_gid)
    assert "running initializeCommand in a sandbox" in ws.build_log()
    assert sandboxes(engine, ws.folder) == [], "the sandbox is thrown away"


def test_a_failing_initialize_command_fails_the_build_onto_the_fallback_naming_it(
    sandbox: Path, make_workspace, engine: EngineUnderTest
) -> None:
    remote = config_repository(sandbox, "fails", {}, initializeCommand={"prepare": "echo cannot-prepare >&2; exit 3"})
    ws = make_workspace(remote.url, name="fails")
    run = ws.up()
    assert run.returncode == 0, run.output  # degraded is running, on the fallback
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "initializeCommand")
    assert "initializeCommand 'prepare'" in state["error"]["message"]
    assert "exit code 3" in state["error"]["message"]
    error_log = (ws.folder / ERROR_LOG).read_text()
    assert "initializeCommand 'prepare'" in error_log and "cannot-prepare" in error_log
    assert sandboxes(engine, ws.folder) == []


@on_every_engine
def test_a_hostile_initialize_command_sees_no_secret_no_engine_no_host_and_leaves_nothing_running(
    git_http: GitHTTPServer, coder: CoderDouble, sandbox: Path, make_workspace, engine: EngineUnderTest
) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sandbox / "key")], check=True, timeout=30)
    ssh_key = (sandbox / "key").read_text()
    (sandbox / "host-only.txt").write_text("a file of the host, beside the workspace")
    (sandbox / "key").unlink()
    Remote(sandbox, "hostile").commit({
        ".devcontainer/steal.sh": STEAL,
        ".devcontainer/probe.sh": PROBE,
        ".devcontainer/devcontainer.json": json.dumps({
            "image": BASE_IMAGE,
            "initializeCommand": {
                "steal": "sh ${localWorkspaceFolder}/.devcontainer/steal.sh ${localWorkspaceFolder}/.stolen",
                "probe": ["sh", "${localWorkspaceFolder}/.devcontainer/probe.sh", "${localWorkspaceFolder}/.probed",
                          str(sandbox / "state"), str(sandbox / "remotes"), str(sandbox / "host-only.txt")],
            },
        }),
    })  # fmt: skip
    ws = make_workspace(
        git_http.url("hostile"),
        name="hostile",
        GH_TOKEN=git_http.token,
        CODER_AGENT_URL=coder.url,
        CODER_AGENT_TOKEN=coder.token,
        DEVCONTAINER_SSH_PRIVATE_KEY=base64.b64encode(ssh_key.encode()).decode(),
    )
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running", ws.state().get("error")
    stolen = (ws.folder / ".stolen").read_bytes().decode("utf-8", "replace")
    probed = (ws.folder / ".probed").read_text()
    assert "== pid 1" in stolen and "uid=" in probed, "both ran"
    for name, secret in {"GH_TOKEN": git_http.token, "CODER_AGENT_TOKEN": coder.token,
                         "SSH key": key_material(ssh_key)}.items():  # fmt: skip
        assert secret not in stolen + probed, f"the initializeCommand read {name}"
    assert "devcontainer-builder" not in stolen, "no process of the builder's is in sight"
    assert "reached" not in probed, probed
    assert "has a route" not in probed, "no network"
    uid, caps = probed.splitlines()[0].split()
    assert uid != "uid=0" or engine.user, probed  # rootless Podman: keep-id maps the builder's user to itself
    assert caps == "caps=0000000000000000", "no capability"
    assert sleepers("sleep 3217") == [], "what it started is gone with its sandbox"
    assert sandboxes(engine, ws.folder) == []


def test_sigterm_during_a_sandboxed_initialize_command_removes_its_sandbox(
    sandbox: Path, make_workspace, engine: EngineUnderTest
) -> None:
    remote = config_repository(sandbox, "slow", {}, initializeCommand="echo sandbox-started; sleep 2741")
    ws = make_workspace(remote.url, name="slow")
    proc = ws.start_until_logged("initializeCommand: sandbox-started")
    assert sandboxes(engine, ws.folder), "it runs in its sandbox"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=90)
    assert proc.returncode == 1
    assert sandboxes(engine, ws.folder) == []
    assert sleepers("sleep 2741") == []


def test_it_runs_on_every_up_and_what_it_generates_is_part_of_the_first_build_so_a_rerun_reuses_the_container(
    sandbox: Path, make_workspace
) -> None:
    remote = config_repository(
        sandbox, "reruns", {".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nCOPY generated.txt /generated.txt\n"},
        image=None, build={"dockerfile": "Dockerfile"},
        initializeCommand="echo generated > .devcontainer/generated.txt && echo ran >> runs.log",
    )  # fmt: skip
    ws = make_workspace(remote.url, name="reruns")
    assert ws.up().returncode == 0
    first = ws.container()
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running"
    assert ws.container() == first, "the config's hash took what the command wrote at the first build"
    assert (ws.folder / "runs.log").read_text() == "ran\nran\n", "as the CLI does, on every up"
