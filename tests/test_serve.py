"""`devcontainer-builder serve`: rebuilds on demand, rebuild suggestions, keep-alive, a strict API, SIGTERM.

All against the real engine and CLI; timings are never asserted here (`make bench` measures them), waits
are polls against generous deadlines.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.builder import Workspace, docker
from support.coder import CoderDouble, bridge_gateway, init_script, make_double
from support.engines import EngineUnderTest, on_every_engine
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote
from support.repos import git as run_git
from support.services import free_port, wait_for
from support.supervisor import Supervisor

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]
ERROR_LOG = ".devcontainer-build-error.log"


@pytest.fixture
def supervise() -> Iterator:
    started: list[Supervisor] = []

    def start(ws: Workspace, **env: str) -> Supervisor:
        sup = Supervisor(ws, **env)
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.stop()


def running_ws(remote: Remote, make_workspace, files: dict[str, str], **env: str) -> Workspace:
    remote.commit(files)
    ws = make_workspace(remote.url, **env)
    run = ws.up()
    assert run.returncode == 0, run.output
    return ws


@on_every_engine
def test_a_user_fixes_a_broken_config_in_the_workspace_and_rebuilds(
    remote: Remote, make_workspace, supervise, engine: EngineUnderTest
) -> None:
    remote.commit({".devcontainer/devcontainer.json": '{"image": ', "README.md": "project\n"})
    ws = make_workspace(remote.url)
    assert ws.up().returncode == 0
    assert ws.state()["status"] == "degraded"
    sup = supervise(ws)
    assert sup.status()["status"] == "degraded"
    (ws.folder / "notes.txt").write_text("my notes\n")  # the user's own work meanwhile
    fixed = json.dumps({"image": BASE_IMAGE, "postCreateCommand": "touch /tmp/fixed"})
    (ws.folder / ".devcontainer" / "devcontainer.json").write_text(fixed)  # uncommitted
    answer = sup.post("/api/rebuild", {"full": False})
    assert answer.status == 202, answer
    build = answer.body["build"]["id"]
    final = sup.wait_build_end()
    assert final["status"] == "running" and final["fallback"] is False, final
    assert final["last_build"]["id"] == build and final["last_build"]["exit_code"] == 0
    container = ws.container()  # exactly one
    assert engine.run("inspect", "-f", "{{.Config.Image}}", container).endswith(BASE_IMAGE)
    ws.exec("test", "-f", "/tmp/fixed")
    assert (ws.folder / "notes.txt").read_text() == "my notes\n"
    assert json.loads((ws.folder / ".devcontainer" / "devcontainer.json").read_text())["postCreateCommand"]
    assert not (ws.folder / ERROR_LOG).exists()
    kinds = ws.event_kinds()
    assert kinds.index("rebuild_requested") < kinds.index("container_running", kinds.index("rebuild_requested"))
    # the user's edit and file, and nothing else (the error log is gone, the builder added nothing)
    assert run_git("status", "--porcelain", cwd=ws.folder) == "M .devcontainer/devcontainer.json\n?? notes.txt"


def test_ten_concurrent_rebuild_requests_make_one_rebuild(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps(
        {"image": BASE_IMAGE, "postCreateCommand": "echo created >> /tmp/created"})})  # fmt: skip
    sup = supervise(ws)
    answers = []
    barrier = threading.Barrier(10)

    def ask() -> None:
        barrier.wait()
        answers.append(sup.post("/api/rebuild", {}))

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [202] + [409] * 9, statuses
    accepted = next(answer for answer in answers if answer.status == 202).body["build"]["id"]
    assert {answer.body["build"]["id"] for answer in answers} == {accepted}, "every 409 names the running build"
    final = sup.wait_build_end()
    assert final["status"] == "running"
    assert len(ws.containers()) == 1
    assert ws.event_kinds().count("rebuild_requested") == 1
    assert ws.exec("cat", "/tmp/created") == "created", "the new container ran its create hook once"


def test_a_full_rebuild_skips_the_layer_cache(remote: Remote, make_workspace, supervise) -> None:
    token = uuid.uuid4().hex
    ws = running_ws(remote, make_workspace, {
        ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
        ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo {token} && date +%s%N > /built-at\n",
    })  # fmt: skip
    first = ws.exec("cat", "/built-at")
    sup = supervise(ws)
    assert sup.post("/api/rebuild", {"full": False}).status == 202
    sup.wait_build_end()
    assert ws.exec("cat", "/built-at") == first, "a plain rebuild reuses the layers"
    assert sup.post("/api/rebuild", {"full": True}).status == 202
    final = sup.wait_build_end()
    assert final["status"] == "running"
    assert ws.exec("cat", "/built-at") != first, "a full rebuild builds every layer again"
    built = next(line for line in ws.build_log().splitlines() if "devcontainer build" in line or " build --" in line)
    assert "--no-cache" in built  # and no --cache-from: test_rebuild_full_on_start_...


def test_a_rebuild_keeps_the_old_container_running_until_the_new_image_is_built(
    remote: Remote, make_workspace, supervise
) -> None:
    ws = running_ws(remote, make_workspace, {
        ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
        ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nARG STAMP=1\nRUN echo built\n",
    })  # fmt: skip
    old = ws.container()
    # the new image takes a while to build; meanwhile the user still has a container to work in
    token = uuid.uuid4().hex  # never in the layer cache
    (ws.folder / ".devcontainer" / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nRUN echo {token} && sleep 4\nRUN echo built again\n"
    )
    sup = supervise(ws)
    assert sup.post("/api/rebuild", {}).status == 202
    wait_for(lambda: f"{token} && sleep 4" in ws.build_log(), 60, "the new image's build")
    assert docker("inspect", "-f", "{{.State.Running}}", old) == "true", "the old container runs during the build"
    final = sup.wait_build_end()
    assert final["status"] == "running"
    (new,) = ws.containers()
    assert new != old


# -- rebuild suggestions -------------------------------------------------------------------------------


SUGGESTING = {
    ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile", "context": ".."}}),
    ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nCOPY requirements.txt /tmp/requirements.txt\n",
    "requirements.txt": "click==8\n",
    "README.md": "the project\n",
}


def checked_after(sup: Supervisor, moment: float) -> bool:
    return sup.status()["suggestion_checked_at"] > moment


@pytest.mark.parametrize(
    ("path", "suggested"),
    [(".devcontainer/Dockerfile", True), ("requirements.txt", True), ("README.md", False)],
    ids=["dockerfile", "copied-file", "unrelated-file"],
)
def test_edits_that_change_the_build_suggest_a_rebuild_and_others_do_not(
    remote: Remote, make_workspace, supervise, path: str, suggested: bool
) -> None:
    ws = running_ws(remote, make_workspace, SUGGESTING)
    sup = supervise(ws)
    wait_for(lambda: checked_after(sup, 0), 30, "the first comparison")
    container = ws.container()
    edited = time.time()
    with open(ws.folder / path, "a") as handle:
        handle.write("# an edit\n")
    if suggested:
        wait_for(lambda: sup.status()["rebuild_suggested"], 30, "the suggestion")
        status = sup.status()
        assert status["changed_files"] == [path]
        assert ws.state()["rebuild_suggested"] is True and ws.state()["changed_files"] == [path]
        assert ws.event_kinds().count("rebuild_suggested") == 1
    else:
        wait_for(lambda: checked_after(sup, edited), 30, "a comparison after the edit")
        assert sup.status()["rebuild_suggested"] is False
    assert ws.containers() == [container], "nothing rebuilds by itself"


def test_ignore_clears_the_suggestion_and_a_further_edit_raises_it_again(
    remote: Remote, make_workspace, supervise
) -> None:
    ws = running_ws(remote, make_workspace, SUGGESTING)
    sup = supervise(ws)
    with open(ws.folder / "requirements.txt", "a") as handle:
        handle.write("requests==2\n")
    wait_for(lambda: sup.status()["rebuild_suggested"], 30, "the suggestion")
    digest = sup.status()["suggestion_hash"]
    assert sup.post("/api/suggestion/ignore", {"digest": "0" * 16}).status == 409, "not the suggestion shown"
    answer = sup.post("/api/suggestion/ignore", {"digest": digest})
    assert answer.status == 200, answer
    assert sup.status()["rebuild_suggested"] is False
    edited = time.time()
    (ws.folder / "README.md").write_text("unrelated\n")
    wait_for(lambda: checked_after(sup, edited), 30, "a comparison after the unrelated edit")
    assert sup.status()["rebuild_suggested"] is False, "dismissed for that change"
    with open(ws.folder / "requirements.txt", "a") as handle:
        handle.write("pytest==9\n")
    wait_for(lambda: sup.status()["rebuild_suggested"], 30, "the suggestion again")
    assert "suggestion_ignored" in ws.event_kinds()
    assert sup.post("/api/rebuild", {}).status == 202
    final = sup.wait_build_end()
    assert final["status"] == "running" and final["rebuild_suggested"] is False, "the rebuild took the change"


def test_a_file_saved_over_and_over_is_news_once_and_undoing_clears_it(
    remote: Remote, make_workspace, supervise
) -> None:
    ws = running_ws(remote, make_workspace, SUGGESTING)
    original = (ws.folder / "requirements.txt").read_text()
    sup = supervise(ws)
    hashes = set()
    for index in range(8):  # a process that keeps writing a file the build copies
        (ws.folder / "requirements.txt").write_text(f"{original}package-{index}==1\n")
        wait_for(lambda: sup.status()["suggestion_hash"] not in hashes, 30, "the new content compared")
        hashes.add(sup.status()["suggestion_hash"])
    assert ws.event_kinds().count("rebuild_suggested") == 1, "the same changed file is the same news"
    (ws.folder / "requirements.txt").write_text(original)
    wait_for(lambda: not sup.status()["rebuild_suggested"], 30, "the undo clearing the suggestion")
    assert sup.status()["suggestion_hash"] == ""


def test_rebuild_will_not_build_beside_a_supervisor_it_cannot_reach(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    (ws.state_dir / "serve.json").unlink()  # gone, or garbled: the supervisor itself still runs
    run = ws.run("--no-wait", command="rebuild")
    assert run.returncode == 1, run.output
    assert f"a supervisor (pid {sup.proc.pid}) is serving this workspace" in " ".join(run.stderr.split())
    assert "rebuild_requested" not in ws.event_kinds() and ws.state()["trigger"] == "start", "nothing built"


# -- who may ask: the socket, the page's key, the Host, the rate ----------------------------------------


def test_a_port_taken_before_serve_starts_is_waited_for_and_the_cli_never_asks_the_squatter(
    remote: Remote, make_workspace
) -> None:
    """issue 19, High 1: a process of the devcontainer (DEVCONTAINER_NETWORK=host) listening on serve's address
    before serve starts made serve exit 2 - which the VM's unit never restarts - and answered in its place."""
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(8)
    squatter.settimeout(0.1)
    port = squatter.getsockname()[1]
    serve = ws.start(command="serve", DEVCONTAINER_SERVE_ADDRESS=f"127.0.0.1:{port}")
    try:
        wait_for(lambda: "serve_address_busy" in ws.event_kinds(), 30, "serve saying the address is busy")
        assert serve.poll() is None, "a busy address is not a stop"
        # the command line reaches the supervisor through its socket, never the address someone else holds
        status = ws.run("--no-wait", command="rebuild")
        assert status.returncode == 0 and "started" in status.stdout, status.output
        with pytest.raises(TimeoutError):
            squatter.accept()
        squatter.close()  # the squatter goes: serve takes its address
        wait_for(lambda: _answers(port), 60, "serve answering on the address once it is free")
        assert "rebuild_requested" in ws.event_kinds()
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
    assert serve.returncode == 0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return b'{"ok":true}' in sock.recv(4096)
    except OSError:
        return False


def test_a_local_process_without_the_pages_key_cannot_rebuild_or_dismiss(
    remote: Remote, make_workspace, supervise
) -> None:
    """issue 19, Medium 4: a postStartCommand on the host network posted {"full": true} after every start."""
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    container, events_before = ws.container(), len(ws.events())
    for path, body in (("/api/rebuild", {"full": True}), ("/api/suggestion/ignore", {})):
        answer = sup.post(path, body, keyed=False)
        assert answer.status == 403 and "key" in answer.body["error"], answer
    wrong = sup.request("POST", "/k/" + "0" * 64 + "/api/rebuild", "{}", {"Content-Type": "application/json"},
                        keyed=False)  # fmt: skip
    assert wrong.status == 403, wrong
    assert sup.request("GET", "/api/status", keyed=False).status == 200, "reading stays open on loopback"
    assert ws.containers() == [container] and len(ws.events()) == events_before, "nothing happened"
    assert sup.post("/api/rebuild", {}).status == 202, "the page, with its key, rebuilds"
    sup.wait_build_end()


def test_rebuilds_are_rate_limited_with_a_clear_answer(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    started = 0
    while (answer := sup.post("/api/rebuild", {})).status == 202:
        started += 1
        assert started <= 5, "more than five rebuilds in five minutes"
        sup.wait_build_end()
    assert answer.status == 429 and int(answer.headers["retry-after"]) > 0, answer
    assert "ask again in" in answer.body["error"]
    assert started == 5
    refused = ws.run("--no-wait", command="rebuild")
    assert refused.returncode == 1 and "429" in refused.stdout and "ask again in" in refused.stdout, refused.output


def test_the_page_cannot_be_framed_and_a_foreign_host_is_refused(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws, DEVCONTAINER_SERVE_HOSTS="dev.example")
    for path in ("/", "/api/status"):
        answer = sup.request("GET", path)
        assert answer.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
    # DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends its own Host
    rebound = sup.request("GET", "/api/status", headers={"Host": f"evil.example:{sup.port}"}, keyed=False)
    assert rebound.status == 421 and "Host" in rebound.body["error"], rebound
    for host in (f"localhost:{sup.port}", f"127.0.0.1:{sup.port}", "[::1]", "dev.example"):
        assert sup.request("GET", "/api/status", headers={"Host": host}, keyed=False).status == 200, host


def test_local_processes_cannot_hold_every_log_stream_from_the_page(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    held = []
    try:
        while len(held) < 40:
            connection = http.client.HTTPConnection("127.0.0.1", sup.port, timeout=30)
            connection.request("GET", "/api/log?follow=1")
            response = connection.getresponse()
            if response.status != 200:
                assert response.status == 503 and "log streams" in json.loads(response.read())["error"]
                connection.close()
                break
            held.append(connection)
        assert len(held) < 32, "a local process without the key holds a share, not all of them"
        page = sup.sse("/api/log?follow=0")
        assert page[-1][0] == "end", "the page's own stream gets through"
    finally:
        for connection in held:
            connection.close()


# -- keep-alive ---------------------------------------------------------------------------------------


@pytest.fixture
def bridged_coder() -> Iterator[CoderDouble]:
    server = make_double(host=bridge_gateway())  # the agent calls in from a container
    yield server
    server.stop()


def agent_env(coder: CoderDouble) -> dict[str, str]:
    url = f"http://{bridge_gateway()}:{coder.port}"
    return {"CODER_AGENT_URL": url, "CODER_AGENT_TOKEN": coder.token, "CODER_INIT_SCRIPT": init_script(url)}


def agent_pids(ws: Workspace) -> list[str]:
    out = ws.exec("sh", "-c", "for p in /proc/[0-9]*; do tr '\\000' ' ' < $p/cmdline; echo \" ${p#/proc/}\"; done",
                  user="root", check=False)  # fmt: skip
    return [line.rsplit(" ", 1)[1] for line in out.splitlines() if "coder agent" in line]


@pytest.mark.parametrize(
    ("how", "engine"),
    [
        ("stop", "docker"),
        ("kill", "docker"),
        ("remove", "docker"),
        ("kill", "podman"),
        ("kill", "rootless"),
        ("remove", "rootless"),
    ],
    indirect=["engine"],
)
def test_a_container_that_stopped_died_or_was_removed_comes_back_with_its_agent(
    remote: Remote, make_workspace, supervise, bridged_coder: CoderDouble, how: str, engine: EngineUnderTest
) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps(
        {"image": FALLBACK_IMAGE, "postStartCommand": "echo started >> /tmp/starts"})}, **agent_env(bridged_coder))  # fmt: skip
    wait_for(lambda: len(bridged_coder.connections) == 1, 60, "the agent connecting")
    sup = supervise(ws)
    container = ws.container()
    if how == "stop":
        engine.run("stop", "-t", "1", container)
    elif how == "kill":
        engine.run("kill", container)
    else:
        engine.run("rm", "-f", container)
    wait_for(lambda: len(bridged_coder.connections) == 2, 120, "the agent connecting again")
    final = sup.wait_build_end()
    assert final["status"] == "running"
    (back,) = ws.containers()
    if how == "remove":
        assert back != container
    else:
        assert back == container, "the same container, started again"
        assert ws.exec("cat", "/tmp/starts").splitlines() == ["started", "started"], "postStart ran again"
    assert "container_restarted" in ws.event_kinds()
    assert len(agent_pids(ws)) == 1


def test_a_restart_rebuilds_nothing_and_keeps_the_users_pending_edit(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {
        ".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE, "postStartCommand": "echo s >> /tmp/s"}),
        "README.md": "v1\n",
    })  # fmt: skip
    container = ws.container()
    baseline = (ws.state_dir / "inputs.json").read_text()
    head = run_git("rev-parse", "HEAD", cwd=ws.folder)
    remote.commit({"README.md": "v2\n"})  # upstream moved on: a restart is no time to update
    sup = supervise(ws)
    # the user is half-way through an edit of the config: it does not even parse
    (ws.folder / ".devcontainer" / "devcontainer.json").write_text('{"image": "other", "postStartCommand": ')
    sup.wait_status("running")
    wait_for(lambda: sup.status()["rebuild_suggested"], 30, "the suggestion for the edit")
    docker("stop", "-t", "1", container)
    wait_for(lambda: "container_restarted" in ws.event_kinds(), 60, "keep-alive noticing")
    final = sup.wait_build_end()
    assert final["status"] == "running" and final["rebuild_suggested"], "the suggestion is still pending"
    assert ws.containers() == [container], "the same container, not a rebuild"
    assert docker("inspect", "-f", "{{.State.Running}}", container) == "true"
    assert ws.exec("cat", "/tmp/s").splitlines() == ["s", "s"], "postStart ran again, from the container's own config"
    assert (ws.state_dir / "inputs.json").read_text() == baseline, "the suggestion's baseline is the build's"
    assert run_git("rev-parse", "HEAD", cwd=ws.folder) == head, "the repository did not move"
    assert "config_changed" not in ws.event_kinds()


def test_a_container_that_keeps_dying_ends_as_failed_and_comes_back_when_it_holds(
    remote: Remote, make_workspace, supervise
) -> None:
    # the container's own process ends as soon as a file appears in the workspace: a crash loop on demand
    ws = running_ws(remote, make_workspace, {
        ".devcontainer/devcontainer.json": json.dumps({
            "build": {"dockerfile": "Dockerfile"}, "overrideCommand": False,
            "workspaceFolder": "/workspaces/project"}),
        ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\n"
        'CMD ["sh", "-c", "while [ ! -e /workspaces/project/.crash ]; do sleep 0.2; done"]\n',
    })  # fmt: skip
    container = ws.container()
    sup = supervise(ws, DEVCONTAINER_KEEPALIVE_ATTEMPTS="2")
    (ws.folder / ".crash").write_text("")
    final = sup.wait_status("failed", 240)
    assert "could not be kept running (2 attempts)" in final["keepalive_error"], final
    assert "keepalive_failed" in ws.event_kinds()
    short = ws.run("--short", command="status")
    assert short.stdout.startswith("failed: the devcontainer could not be kept running"), short.output
    (ws.folder / ".crash").unlink()  # the cause is fixed: the next attempt holds, and the status comes back
    back = sup.wait_status("running", 300)
    assert back["keepalive_error"] == ""
    assert "keepalive_recovered" in ws.event_kinds()
    assert ws.containers() == [container]


def test_an_agent_that_died_is_started_again(remote: Remote, make_workspace, supervise, bridged_coder) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE})},
                    **agent_env(bridged_coder))  # fmt: skip
    (first,) = wait_for_list(lambda: bridged_coder.connections, 1)
    supervise(ws)
    ws.exec("kill", "-9", str(first["pid"]), user="root")
    wait_for(lambda: len(bridged_coder.connections) == 2, 120, "the agent started again")
    assert bridged_coder.connections[1]["hostname"] == first["hostname"]
    # recorded once the agent has stayed up its first half second - it may have connected before that
    wait_for(lambda: "agent_restarted" in ws.event_kinds(), 30, "the agent_restarted event")
    assert len(agent_pids(ws)) == 1


def test_serve_runs_the_builder_agent_and_starts_it_again_when_it_dies(
    remote: Remote, make_workspace, supervise, coder: CoderDouble
) -> None:
    builder_token = coder.add_agent()
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws, CODER_AGENT_URL=coder.url, CODER_AGENT_TOKEN=coder.token, GH_TOKEN="ghp_" + "s" * 36,
                    DEVCONTAINER_SERVE_AGENT_INIT_SCRIPT=init_script(coder.url),
                    DEVCONTAINER_SERVE_AGENT_TOKEN=builder_token)  # fmt: skip

    def connected(count: int) -> list[dict]:
        found = [c for c in coder.connections if c["token"] == builder_token]
        return found if len(found) >= count else []

    wait_for(lambda: connected(1), 60, "the builder agent connecting")
    pid = connected(1)[0]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert builder_token.encode() in environ, "its own token, and no other secret"
    assert coder.token.encode() not in environ and b"ghp_" not in environ
    assert f"DEVCONTAINER_STATE_DIR={ws.state_dir}".encode() in environ, "its terminal finds the workspace"
    os.kill(pid, 9)
    wait_for(lambda: connected(2), 60, "the builder agent connecting again")
    assert "serve_agent_exited" in ws.event_kinds()
    second = connected(2)[1]["pid"]
    code, _ = sup.stop()
    assert code == 0
    assert not Path(f"/proc/{second}").exists(), "it stops with serve"


def wait_for_list(get, count: int, timeout: float = 60) -> list:
    wait_for(lambda: len(get()) >= count, timeout, f"{count} items")
    return list(get())[:count]


# -- SIGTERM ------------------------------------------------------------------------------------------


def test_sigterm_when_idle_ends_serve_and_leaves_the_devcontainer(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    assert (ws.state_dir / "serve.json").exists()
    served = json.loads((ws.state_dir / "serve.json").read_text())
    assert served["pid"] == sup.proc.pid and served["url"] == f"http://127.0.0.1:{sup.port}/"
    assert served["page"] == sup.url and served["socket"] == str(ws.state_dir / "serve.sock")
    code, _ = sup.stop()
    assert code == 0
    assert docker("inspect", "-f", "{{.State.Running}}", ws.container()) == "true"
    assert not (ws.state_dir / "serve.json").exists()
    assert ws.event_kinds()[-1] == "serve_stopped"


def test_sigterm_during_a_rebuild_stops_it_as_sigterm_stops_up(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    old = ws.container()
    sup = supervise(ws)
    remote_files = {".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
                    ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo build-started && sleep 300\n"}  # fmt: skip
    remote.commit(remote_files)
    assert sup.post("/api/rebuild", {}).status == 202
    wait_for(lambda: "build-started" in ws.build_log(), 120, "the rebuild's RUN step")
    code, _ = sup.stop(timeout=60)
    assert code == 0
    # stopped while the new image was building: the old container was never touched and runs on
    state = ws.state()
    assert (state["status"], state["container_id"]) == ("running", old)
    assert docker("inspect", "-f", "{{.State.Running}}", old) == "true"
    assert [e["step"] for e in ws.events() if e["kind"] == "build_failed"] == ["terminated"]
    assert ws.run("--short", command="status").stdout.strip() == "running"
    wait_for(lambda: not [p for p in os.listdir("/proc") if p.isdigit() and _is_build_of(p, ws.folder)], 30,
             "the rebuild's processes ending")  # fmt: skip


def _is_build_of(pid: str, folder: Path) -> bool:
    try:
        return str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return False


# -- the command line ---------------------------------------------------------------------------------


def test_rebuild_asks_the_supervisor_and_follows_to_the_exit_code(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    supervise(ws)
    first = ws.container()
    run = ws.run(command="rebuild")
    assert run.returncode == 0, run.output
    assert "rebuild" in run.stdout and "workspace running" in run.stdout and "exit code 0" in run.stdout
    assert ws.container() != first
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE, "postCreateCommand": "exit 3"})})
    run = ws.run(command="rebuild")
    assert run.returncode == 0 and "degraded" in run.stdout, "a failed build still runs, degraded: exit 0 as up"
    no_wait = ws.run("--no-wait", command="rebuild")
    assert no_wait.returncode == 0 and "started" in no_wait.stdout


def test_rebuild_without_a_supervisor_rebuilds_in_process(remote: Remote, make_workspace) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    first = ws.container()
    run = ws.run("--full", command="rebuild")
    assert run.returncode == 0, run.output
    assert "no supervisor is running" in run.stdout
    assert ws.container() != first
    assert ws.state()["trigger"] == "full-rebuild"


def test_a_second_serve_for_the_same_workspace_is_refused(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    second = ws.run(command="serve", DEVCONTAINER_SERVE_ADDRESS=f"127.0.0.1:{free_port()}", timeout=60)
    assert second.returncode == 1, second.output
    assert f"another devcontainer-builder serve (pid {sup.proc.pid})" in " ".join(second.stderr.split())
    assert json.loads((ws.state_dir / "serve.json").read_text())["pid"] == sup.proc.pid, "the first one's, untouched"


def test_a_supervisor_killed_during_a_rebuild_leaves_nothing_reading_building(
    remote: Remote, make_workspace, supervise
) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
                   ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo build-started && sleep 3\n"})  # fmt: skip
    assert sup.post("/api/rebuild", {}).status == 202
    wait_for(lambda: "build-started" in ws.build_log(), 120, "the rebuild's RUN step")
    sup.proc.kill()  # SIGKILL: no clean-up of its own; the `up` it started dies with it (its death signal)
    sup.proc.communicate(timeout=30)
    shown: list[str] = []

    def not_building() -> bool:
        shown.append(ws.run("--short", command="status").stdout.strip())
        return not shown[-1].startswith("building")

    wait_for(not_building, 60, "status --short to stop saying building")
    assert shown[-1].startswith("interrupted"), shown[-1]
    # serve.json names a process that is gone: `rebuild` does the work itself, it does not fail
    assert (ws.state_dir / "serve.json").exists()
    again = ws.run(command="rebuild")
    assert again.returncode == 0 and "no supervisor is running" in again.stdout, again.output
    assert ws.state()["status"] == "running"
    fresh = supervise(ws)
    assert fresh.status()["status"] == "running"
    assert ws.state()["requested"] is None, "the dead supervisor's request is forgotten"


def test_events_page_forward_from_a_cursor(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    every = ws.events()
    first = sup.request("GET", "/api/events?limit=2").body
    assert first["events"] == every[:2], "the oldest first"
    seen, cursor = list(first["events"]), first["cursor"]
    while True:
        page = sup.request("GET", f"/api/events?after={cursor}&limit=3").body
        if not page["events"]:
            break
        seen += page["events"]
        cursor = page["cursor"]
    assert seen == ws.events()[: len(seen)] and len(seen) >= len(every), "every event once, in order"


def test_the_log_resumes_by_build_and_says_when_another_build_began(remote: Remote, make_workspace, supervise) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    first_build = ws.state()["build_id"]
    lines = [m for m in sup.sse("/api/log?follow=0") if m[0] == "line"]
    assert lines and all(m[2].startswith(f"{first_build}:") for m in lines), lines[:2]
    halfway = lines[len(lines) // 2][2]
    rest = [m for m in sup.sse(f"/api/log?follow=0&from={halfway}") if m[0] == "line"]
    assert rest == lines[len(lines) // 2 + 1 :], "the lines after the cursor, whole"
    # the same build's log followed to its end names its exit code; an unknown build is a 404
    ended = sup.sse(f"/api/log?build={first_build}")
    assert ended[-1][0] == "end" and json.loads(ended[-1][1])["build"] == first_build
    assert sup.post("/api/rebuild", {}).status == 202
    sup.wait_build_end()
    resumed = sup.sse(f"/api/log?follow=0&from={lines[-1][2]}")
    kinds = [m[0] for m in resumed]
    assert "reset" in kinds and kinds.index("reset") < kinds.index("line"), "a new build's log is said to be new"
    new_build = ws.state()["build_id"]
    assert new_build != first_build
    assert all(m[2].startswith(f"{new_build}:") for m in resumed if m[0] == "line")
    assert sup.request("GET", f"/api/log?build={first_build}&follow=0").status == 404, "its log is gone"


def test_status_short_is_one_line_for_coders_metadata(remote: Remote, make_workspace, supervise) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE, "postCreateCommand": "exit 3"})})
    ws = make_workspace(remote.url)
    assert ws.run("--short", command="status").stdout.strip() == "no build yet"
    ws.up()
    assert ws.run("--short", command="status").stdout.strip() == "degraded: postCreateCommand failed"
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    ws.up()
    assert ws.run("--short", command="status").stdout.strip() == "running"
    with open(ws.folder / ".devcontainer" / "devcontainer.json", "a") as handle:
        handle.write("\n// edited\n")
    sup = supervise(ws)
    wait_for(lambda: sup.status()["rebuild_suggested"], 30, "the suggestion")
    assert ws.run("--short", command="status").stdout.strip() == "running, rebuild suggested"
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
                   ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo build-started && sleep 300\n"})  # fmt: skip
    assert sup.post("/api/rebuild", {}).status == 202
    wait_for(lambda: ws.run("--short", command="status").stdout.startswith("building "), 30, "building N s")


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("wrong-types", "running"),  # nested records with fields missing or of the wrong type are dropped
        ("fifo", "state unreadable"),  # opened without blocking: an answer, not a hang
        ("dev-zero", "state unreadable"),  # a bounded read of a regular file only: not an endless read
        ("huge", "state unreadable"),
    ],
)
def test_status_answers_in_one_line_whatever_is_at_state_json(
    remote: Remote, make_workspace, what: str, expected: str
) -> None:
    """issue 19, Low 11: a traceback on wrong-typed fields; `--short` hung on a FIFO and read /dev/zero."""
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    ws = make_workspace(remote.url)
    ws.state_dir.mkdir(parents=True)
    state = ws.state_dir / "state.json"
    if what == "wrong-types":
        state.write_text(json.dumps({"status": "running", "requested": {"at": 5}, "error": {"step": 3},
                                     "fallback": "yes", "changed_files": [1, {}], "started_at": 7, "steps": "x"}))  # fmt: skip
    elif what == "fifo":
        os.mkfifo(state)
        os.mkfifo(ws.state_dir / "events.jsonl")
    elif what == "dev-zero":
        state.symlink_to("/dev/zero")
    else:
        state.write_text('{"status": "running", "x": "' + "x" * (8 << 20) + '"}')
    for flags in ((), ("--json",), ("--short",)):
        run = ws.run(*flags, command="status", timeout=30)
        assert "Traceback" not in run.output, (flags, run.output)
        assert run.returncode == (0 if expected == "running" else 1), (flags, run.output)
        if flags == ("--short",):
            assert run.stdout.strip() == expected
        elif flags == ("--json",):
            json.loads(run.stdout)
        elif expected != "running":
            assert run.stdout.count("\n") == 1 and "holds no state the builder wrote" in run.stdout, run.output


def test_a_rebuild_request_with_an_identity_is_honoured_once(remote: Remote, make_workspace) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    first = ws.container()
    assert ws.up(DEVCONTAINER_REBUILD="true", DEVCONTAINER_REBUILD_ID="build-1").returncode == 0
    second = ws.container()
    assert second != first, "rebuilt"
    # the pod or container started again within the same workspace build: the same environment
    run = ws.up(DEVCONTAINER_REBUILD="true", DEVCONTAINER_REBUILD_ID="build-1")
    assert run.returncode == 0 and "was done already" in run.output
    assert ws.container() == second, "not rebuilt a second time"
    assert ws.up(DEVCONTAINER_REBUILD="true", DEVCONTAINER_REBUILD_ID="build-2").returncode == 0
    assert ws.container() != second, "a new request rebuilds"


def test_rebuild_full_on_start_builds_without_the_cache(remote: Remote, make_workspace) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    first = ws.container()
    run = ws.up(DEVCONTAINER_REBUILD_FULL="true", DEVCONTAINER_CACHE_FROM="type=registry,ref=127.0.0.1:9/x:y")
    assert run.returncode == 0, run.output
    assert ws.container() != first
    assert "--cache-from" not in ws.build_log() and "--build-no-cache" in ws.build_log()


# -- the API refuses what it does not expect ---------------------------------------------------------


JSON = {"Content-Type": "application/json"}
BAD_REQUESTS = [
    ("POST", "/api/rebuild", "[" * 1000, {"Content-Type": "application/json"}, 400),
    ("POST", "/api/rebuild", "full=true", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("POST", "/api/rebuild", "{}", {"Content-Type": "text/plain"}, 415),
    ("POST", "/api/rebuild", "{}", {}, 415),
    ("POST", "/api/rebuild", '{"full": "yes"}', JSON, 400),
    ("POST", "/api/rebuild", '{"full": 1}', JSON, 400),
    ("POST", "/api/rebuild", '{"full": null}', JSON, 400),
    ("POST", "/api/rebuild", '{"full": false, "repository": "https://evil.example/x.git"}', JSON, 400),
    ("POST", "/api/rebuild", '{"config": "../../etc/passwd"}', JSON, 400),
    ("POST", "/api/rebuild", '{"flags": ["--privileged"]}', JSON, 400),
    ("POST", "/api/rebuild", "[true]", JSON, 400),
    ("POST", "/api/rebuild", '"full"', JSON, 400),
    ("POST", "/api/rebuild", "{not json", JSON, 400),
    ("POST", "/api/rebuild", b"\xff\xfe{}", JSON, 400),
    ("POST", "/api/rebuild", '{"full": false, "x": "' + "a" * 5000 + '"}', JSON, 413),
    ("POST", "/api/suggestion/ignore", '{"digest": 7}', JSON, 400),
    ("POST", "/api/suggestion/ignore", '{"everything": true}', JSON, 400),
    ("POST", "/api/suggestion/ignore", "{}", {"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ("GET", "/api/rebuild", None, {}, 405),
    ("PUT", "/api/rebuild", "{}", JSON, 405),
    ("DELETE", "/api/status", None, {}, 405),
    ("PATCH", "/api/suggestion/ignore", "{}", JSON, 405),
    ("GET", "/api/nothing", None, {}, 404),
    ("GET", "/../../etc/passwd", None, {}, 404),
    ("GET", "/static/../serve.json", None, {}, 404),
    ("GET", "/static/secret.txt", None, {}, 404),
    ("GET", "/api/events?after=../../x", None, {}, 400),
    ("GET", "/api/events?limit=1000000", None, {}, 400),
    ("GET", "/api/events?limit=-1", None, {}, 400),
    ("GET", "/api/events?cmd=rm", None, {}, 400),
    ("GET", "/api/log?build=%3Brm%20-rf%20%2F", None, {}, 400),
    ("GET", "/api/log?follow=yes", None, {}, 400),
    ("GET", "/api/log?from=../x", None, {}, 400),
    ("GET", "/api/log?build=0123456789ab", None, {}, 404),  # no such build
    ("GET", "/api/events?limit=%D9%A3", None, {}, 400),  # an Arabic-Indic 3 is no ASCII number
    ("GET", "/api/status?verbose=1", None, {}, 400),
    ("POST", "/api/rebuild?full=true", "{}", JSON, 400),
    ("POST", "/api/rebuild", "{}", {"Content-Type": "application/json; charset=utf-16"}, 415),
    ("GET", "/api/status/", None, {"Host": "evil.example"}, 404),  # no redirect built from the Host header
    ("POST", "/api/rebuild/", "{}", JSON, 404),
    ("GET", "/api/events?limit=1&limit=3", None, {}, 400),
]


def test_bad_requests_are_refused_with_a_clear_json_4xx_and_change_nothing(
    remote: Remote, make_workspace, supervise
) -> None:
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    sup = supervise(ws)
    container = ws.container()
    events_before = len(ws.events())
    state_before = (ws.state_dir / "state.json").read_bytes()
    for method, path, body, headers, expected in BAD_REQUESTS:
        answer = sup.request(method, path, body, headers)
        assert answer.status == expected, (method, path, body, answer)
        assert answer.body.get("error"), (method, path, answer)
        assert answer.headers["content-type"].startswith("application/json")
    assert len(BAD_REQUESTS) >= 20
    assert ws.containers() == [container]
    assert len(ws.events()) == events_before
    assert (ws.state_dir / "state.json").read_bytes() == state_before
    assert sup.status()["build"] is None


def test_no_secret_in_any_answer_or_page(git_http, sandbox: Path, make_workspace, supervise, coder) -> None:
    Remote(sandbox, "private").commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    env = {"GH_TOKEN": git_http.token, "CODER_AGENT_URL": coder.url, "CODER_AGENT_TOKEN": coder.token}
    ws = make_workspace(git_http.url("private"), name="private", **env)
    assert ws.up().returncode == 0
    sup = supervise(ws)
    bodies = [sup.request("GET", path) for path in ("/", "/static/app.js", "/api/status", "/api/events?limit=1000")]
    bodies.append(sup.request("GET", "/api/log?follow=0"))
    text = json.dumps([answer.body for answer in bodies])
    for secret in (git_http.token, coder.token):
        assert secret not in text
    assert "PATH=" not in text and "HOME=" not in text, "no environment dump"
    assert "Content-Security-Policy" in {key.title() for key in bodies[0].headers}


def test_a_bad_address_is_bad_input(remote: Remote, make_workspace) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    ws = make_workspace(remote.url)
    for address, fragment in (("0.0.0.0:99999", "port from 1 to 65535"), ("evil.example:80", "IP address"),
                              ("127.0.0.1", "host:port")):  # fmt: skip
        run = ws.run(command="serve", DEVCONTAINER_SERVE_ADDRESS=address, timeout=60)
        assert run.returncode == 2, run.output
        assert "DEVCONTAINER_SERVE_ADDRESS" in run.stderr and fragment in " ".join(run.stderr.split())
    run = ws.run(command="serve", DEVCONTAINER_SERVE_ADDRESS="192.0.2.1:7480", timeout=60)  # no such interface here
    assert run.returncode == 2 and "cannot listen on 192.0.2.1:7480" in run.stderr


def test_serve_without_a_build_shows_none_and_builds_nothing(remote: Remote, make_workspace, supervise) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    ws = make_workspace(remote.url)
    ws.state_dir.mkdir(parents=True)
    sup = supervise(ws)
    assert sup.status()["status"] == "none"
    assert ws.containers() == [] and not ws.folder.exists()


def test_a_flood_of_unfinished_requests_leaves_keepalive_and_the_socket_working(
    remote: Remote, make_workspace, supervise
) -> None:
    """Hundreds of connections that never finish their request, with serve's open files capped low: the
    door turns the excess away and drops the unfinished, so keep-alive - which once died of EMFILE, leaving
    a stopped container reading `running` - restarts the container, flood or not."""
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    container = ws.container()
    sup = supervise(ws)
    subprocess_run(["prlimit", f"--pid={sup.proc.pid}", "--nofile=400:400"])
    flood = []
    try:
        for _ in range(600):
            held = socket.create_connection(("127.0.0.1", sup.port), timeout=10)
            held.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            flood.append(held)
        docker("stop", "-t", "1", container)
        assert sup.proc.poll() is None, "serve rides out the flood"
    finally:
        for held in flood:
            held.close()
    try:
        wait_for(lambda: "container_restarted" in ws.event_kinds(), 120, "keep-alive restarting the container")
    except AssertionError:
        sup.proc.terminate()
        out, err = sup.proc.communicate(timeout=30)
        raise AssertionError(f"{ws.event_kinds()}\n{out[-3000:]}\n{err[-5000:]}") from None
    sup.wait_build_end()
    assert docker("inspect", "-f", "{{.State.Running}}", container) == "true"
    assert sup.request("GET", "/healthz").status == 200


def test_serve_on_a_full_disk_serves_on_rather_than_stopping_for_good(
    remote: Remote, make_workspace, tiny_disk: Path
) -> None:
    """serve.json cannot be written: a full disk is not bad input (exit 2 keeps a VM's unit down for good)."""
    ws = running_ws(remote, make_workspace, {".devcontainer/devcontainer.json": json.dumps({"image": BASE_IMAGE})})
    state_dir = tiny_disk / "state"
    subprocess_run(["cp", "-a", str(ws.state_dir), str(state_dir)])
    subprocess_run(["dd", "if=/dev/zero", f"of={tiny_disk / 'filler'}", "bs=64k"], check=False)
    port = free_port()
    proc = ws.start(
        command="serve", DEVCONTAINER_STATE_DIR=str(state_dir), DEVCONTAINER_SERVE_ADDRESS=f"127.0.0.1:{port}"
    )
    try:

        def answers() -> bool:
            assert proc.poll() is None, f"serve exited: {proc.communicate()}"
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request("GET", "/healthz")
                return connection.getresponse().status == 200
            except OSError:
                return False
            finally:
                connection.close()

        wait_for(answers, 60, "serve answering on a full disk")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert f"cannot write {state_dir / 'serve.json'} (No space left on device); serving on without it" in stderr
    assert "Traceback" not in stderr


def subprocess_run(argv: list[str], *, check: bool = True) -> None:
    subprocess.run(argv, capture_output=True, timeout=60, check=check)
