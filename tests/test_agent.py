"""Coder's agent, started inside the devcontainer by `up`: connected, alone, and the only keeper of the token."""

from __future__ import annotations

import json
import pwd
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from support.builder import Run, Workspace, docker
from support.coder import QUOTED, CoderDouble, bridge_gateway, init_script, make_double
from support.engines import EngineUnderTest, on_every_engine
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

IMAGE = BASE_IMAGE  # has none of curl, wget, busybox
WITH_CURL = FALLBACK_IMAGE
AGENT_DIR = "/home/coder/.cache/devcontainer-builder/agent"


@pytest.fixture
def coder() -> Iterator[CoderDouble]:
    server = make_double(host=bridge_gateway())  # the agent calls in from a container
    yield server
    server.stop()


@pytest.fixture
def gh_token() -> str:
    return f"ghp_{uuid.uuid4().hex}"


@pytest.fixture
def workspace(make_workspace, coder: CoderDouble, gh_token: str):
    url = f"http://{bridge_gateway()}:{coder.port}"

    def make(repository: str, **env: str) -> Workspace:
        return make_workspace(
            repository,
            CODER_AGENT_URL=url,
            CODER_AGENT_TOKEN=coder.token,
            CODER_INIT_SCRIPT=init_script(url),
            GH_TOKEN=gh_token,  # a host secret that must never reach the container
            **env,
        )

    return make


def wait_for_connections(coder: CoderDouble, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(coder.connections) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return list(coder.connections)


def agents_in(ws: Workspace) -> list[str]:
    """Command lines of the agent processes in the workspace's container."""
    out = ws.exec("sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' < $f; echo; done", user="root")
    return [line for line in out.splitlines() if line.strip().endswith("coder agent")]


def container_leaks(ws: Workspace, secret: str) -> list[str]:
    """Everywhere in the container a secret can hide, except the agent's own environment."""
    cid = ws.container()
    places = []
    if secret in ws.engine.run("inspect", cid):
        places.append("docker inspect")
    argv = ws.exec("sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' < $f; echo; done", user="root")
    if secret in argv:
        places.append("a process's arguments")
    files = ws.engine.run("exec", "-u", "root", cid, "grep", "-rlsF", "--exclude-dir=proc", "--exclude-dir=sys",
                          "--exclude-dir=dev", "--", secret, "/", check=False).split()  # fmt: skip
    places += [f"file {name}" for name in files]
    return places


@on_every_engine
def test_the_agent_connects_from_inside_the_devcontainer(
    remote: Remote, workspace, coder: CoderDouble, gh_token: str, engine: EngineUnderTest
) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": WITH_CURL})})
    ws = workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    (connection,) = wait_for_connections(coder, 1)
    container = ws.container()
    assert connection["hostname"] == container[:12], "the agent runs in the devcontainer, not in the builder"
    assert connection["token"] == coder.token
    # as the remote user, whom rootless Podman's container gives the workspace owner's uid (keep-id)
    assert connection["uid"] == (pwd.getpwnam(engine.user).pw_uid if engine.user else 1000)
    state = ws.state()
    assert state["agent"]["status"] == "started" and state["agent"]["user"] == "coder"
    assert "agent_started" in ws.event_kinds()
    assert "Coder agent started" in run.stdout
    # the script arrived byte for byte: quotes, $, backticks, backslashes and spaces intact
    assert ws.exec("cat", "/home/coder/init-script-saw") == QUOTED
    # the agent token lives in the agent's environment only
    assert container_leaks(ws, coder.token) == []
    environ = ws.exec("sh", "-c", f"tr '\\000' '\\n' < /proc/{connection['pid']}/environ", user="coder")
    assert f"CODER_AGENT_TOKEN={coder.token}" in environ
    # host secrets never enter the container in any form: files, arguments, any process's environment
    assert container_leaks(ws, gh_token) == []
    for user in ("root", "coder"):  # each can read the environment of its own processes
        every_environ = ws.exec("sh", "-c", "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\000' '\\n'; true", user=user)
        assert gh_token not in every_environ
    assert ws.exec("stat", "-c", "%a", AGENT_DIR) == "700"


def test_a_rerun_keeps_the_one_agent(remote: Remote, workspace, coder: CoderDouble) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": WITH_CURL})})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    (first,) = wait_for_connections(coder, 1)
    run = ws.up()
    assert run.returncode == 0, run.output
    assert "already running" in run.stdout
    assert ws.state()["agent"]["status"] == "running"
    assert ws.state()["agent"]["pid"] == str(first["pid"]), "the agent found running is the first one"
    assert len(agents_in(ws)) == 1


def test_running_the_init_script_again_refuses(remote: Remote, workspace, coder: CoderDouble) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": WITH_CURL})})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    wait_for_connections(coder, 1)
    result = subprocess.run(
        ["docker", "exec", "-u", "coder", ws.container(), "sh", f"{AGENT_DIR}/init.sh"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert "already runs in this container" in result.stderr
    assert len(agents_in(ws)) == 1


def test_a_dead_agent_is_started_again(remote: Remote, workspace, coder: CoderDouble) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": WITH_CURL})})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    (first,) = wait_for_connections(coder, 1)
    ws.exec("kill", "-9", str(first["pid"]), user="root")
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["agent"]["status"] == "started"
    second = wait_for_connections(coder, 2)[1]
    assert second["pid"] != first["pid"] and second["hostname"] == first["hostname"]
    assert len(agents_in(ws)) == 1


def _restart_events(ws: Workspace) -> tuple[Run, list[tuple[str, str]]]:
    """A stop of the workspace's container and a start (a new `up`): its run, and this run's events as
    (kind, step name) in the order they were recorded."""
    docker("stop", "-t", "1", ws.container())
    before = len(ws.events())
    run = ws.up()
    events = [(event["kind"], event.get("name", "")) for event in ws.events()[before:]]
    return run, events


SLOW_POST_START = "sleep 4; touch /tmp/post-start-done"


def test_a_restarted_container_gets_its_agent_while_its_post_start_command_runs(
    remote: Remote, workspace, coder: CoderDouble
) -> None:
    """The spec has tools connect once updateContentCommand is done (waitFor's default), which a restart
    does not run again: the agent need not wait for postStart, nor for the CLI's probes."""
    config = {"image": WITH_CURL, "postStartCommand": SLOW_POST_START}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    (first,) = wait_for_connections(coder, 1)
    run, events = _restart_events(ws)
    assert run.returncode == 0, run.output
    assert "beside its hooks" in run.stdout
    assert events.index(("agent_started", "")) < events.index(("step", "postStartCommand")), events
    second = wait_for_connections(coder, 2)[1]
    assert second["hostname"] == first["hostname"] and second["pid"] != first["pid"]
    assert ws.state()["agent"]["status"] == "started" and ws.state()["status"] == "running"
    assert events.count(("agent_started", "")) == 1 and len(agents_in(ws)) == 1
    ws.exec("test", "-f", "/tmp/post-start-done")  # the hook still ran to its end


def test_a_config_that_waits_for_post_start_gets_its_agent_after_it(
    remote: Remote, workspace, coder: CoderDouble
) -> None:
    config = {"image": WITH_CURL, "postStartCommand": SLOW_POST_START, "waitFor": "postStartCommand"}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    wait_for_connections(coder, 1)
    run, events = _restart_events(ws)
    assert run.returncode == 0, run.output
    assert "beside its hooks" not in run.stdout
    assert events.index(("step", "postStartCommand")) < events.index(("agent_started", "")), events
    assert len(agents_in(ws)) == 1


def test_a_post_start_that_hangs_after_the_agent_started_keeps_the_container(
    remote: Remote, workspace, coder: CoderDouble
) -> None:
    """Once its agent started beside the hooks the user may be at work in the container: a postStartCommand
    that hangs past the build timeout is reported, and no fallback replaces the container."""
    hang_once_marked = "if [ -f /tmp/hang ]; then sleep 120; fi"
    config = {"image": WITH_CURL, "postStartCommand": hang_once_marked}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    container = ws.container()
    ws.exec("touch", "/tmp/hang")  # /tmp is the container's own: it outlives a stop
    docker("stop", "-t", "1", container)
    run = ws.up(DEVCONTAINER_BUILD_TIMEOUT="20")
    assert run.returncode == 0, run.output
    state = ws.state()
    assert state["status"] == "running" and state["container_id"] == container, state
    assert state["error"]["step"] == "build timeout", state["error"]
    assert ws.containers() == [container] and "fallback_started" not in ws.event_kinds()
    assert state["agent"]["status"] == "started"


def test_an_init_script_that_fails_at_once_is_reported_with_its_output(
    remote: Remote, make_workspace, coder: CoderDouble
) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": WITH_CURL})})
    ws = make_workspace(
        remote.url,
        CODER_AGENT_URL=f"http://{bridge_gateway()}:{coder.port}",
        CODER_AGENT_TOKEN=coder.token,
        CODER_INIT_SCRIPT="echo 'agent: unknown flag --nope' >&2; exit 3",
    )
    run = ws.up()
    assert run.returncode == 0, run.output  # the workspace runs; its agent is what failed
    agent = ws.state()["agent"]
    assert agent["status"] == "exited" and "unknown flag --nope" in agent["error"], agent
    assert "it exited right after starting" in run.stderr + run.stdout
    assert "agent_failed" in ws.event_kinds()


def test_the_fallback_gets_the_agent_too(remote: Remote, workspace, coder: CoderDouble) -> None:
    remote.commit({".devcontainer/devcontainer.json": '{"image": '})
    ws = workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "degraded"
    (connection,) = wait_for_connections(coder, 1)
    assert connection["hostname"] == ws.container()[:12]


def test_an_image_without_curl_or_wget_gets_the_fallback_and_says_why(
    remote: Remote, workspace, coder: CoderDouble
) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE})})
    ws = workspace(remote.url)
    run = ws.up()
    assert run.returncode == 0, run.output
    assert "none of curl, wget or busybox" in run.stderr
    state = ws.state()
    assert (state["status"], state["error"]["step"]) == ("degraded", "agent")
    assert "curl" in state["error"]["message"]
    assert any(line.level == "error" and "none of curl, wget or busybox" in line.output for line in coder.lines())
    (connection,) = wait_for_connections(coder, 1)
    assert connection["hostname"] == ws.container()[:12], "the fallback has curl: the agent runs there"
    assert "none of curl, wget or busybox" in ws.exec(
        "cat", f"/workspaces/{ws.folder.name}/.devcontainer-build-error.log"
    )


def test_no_downloader_anywhere_is_a_clear_failure(remote: Remote, workspace, coder: CoderDouble) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE})})
    ws = workspace(remote.url, DEVCONTAINER_FALLBACK_IMAGE=IMAGE)
    run = ws.up()
    assert run.returncode == 1
    assert run.stderr.count("none of curl, wget or busybox") >= 2
    state = ws.state()
    assert state["status"] == "failed"
    assert state["error"]["step"] == "agent" and state["fallback_error"]["step"] == "agent"
    assert coder.connections == []
