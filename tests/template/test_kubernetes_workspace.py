"""template/kubernetes applied for real: `terraform apply` with the pinned providers against the cluster of
tests/env/kubernetes.sh, as Coder's provisioner runs it for each workspace build (workspace and owner data,
a transition, an init script pointing at the Coder double), and the workspace's life checked on the running
pod. The tests of this module are one workspace's story, in order: start, stop and start, rebuild, a broken
config and its fix, destroy - one apply per step, as Coder makes them.

What the cluster cannot reach is brought to its bridge: the git server, the Coder double and a registry
(TLS, with the test's own CA given to the template as `extra_ca_bundle`) that the pod's engine pulls the
devcontainer's base image from - no image can be pulled from the internet here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cluster import Cluster
from support.cluster_workspace import NAMESPACE, WORKSPACE_ID, Bridge, Workspace, make_workspace, open_bridge, remove

pytestmark = [pytest.mark.kubernetes, pytest.mark.docker, pytest.mark.needs_root]


@pytest.fixture(scope="module")
def bridge(cluster: Cluster, image: str, sandbox_root: Path) -> Iterator[Bridge]:
    with open_bridge(cluster, image, sandbox_root / f"k8s-{uuid.uuid4().hex[:6]}") as bridge:
        yield bridge


@pytest.fixture(scope="module")
def workspace(cluster: Cluster, bridge: Bridge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    # with the editor: code-server from the admin's mirror on the bridge
    ws = make_workspace(cluster, bridge, tmp_path_factory.mktemp("tf-k8s"), "widgets", WORKSPACE_ID, **bridge.ide)
    try:
        yield ws
    finally:
        remove(ws)


def test_start_runs_the_sidecar_then_the_builder_then_the_supervisor_and_both_agents_connect(
    workspace: Workspace,
) -> None:
    workspace.build()
    pod = workspace.ready_pod()
    statuses = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    engine, builder = statuses["engine"], statuses["builder"]
    # the native sidecar runs on, started (its startup probe passed); the builder ran once, after it, to 0
    assert engine["started"] and "running" in engine["state"], engine
    assert builder["state"]["terminated"]["exitCode"] == 0 and builder["restartCount"] == 0, builder
    assert builder["state"]["terminated"]["startedAt"] >= engine["state"]["running"]["startedAt"]
    containers = {s["name"]: s for s in pod["status"]["containerStatuses"]}
    assert sorted(containers) == ["supervisor", "terminal"], "the owner's terminal beside the supervisor"
    supervisor = containers["supervisor"]
    assert supervisor["ready"] and supervisor["restartCount"] == 0, supervisor

    container = workspace.devcontainer()
    assert workspace.inside("cat", "/usr/local/share/greeting") == "hello from a feature"
    assert workspace.inside("cat", "/home/coder/created") == "created"
    # main connects from inside the devcontainer (in the engine, in the pod); builder from the supervisor
    workspace.cluster.wait_for(lambda: workspace.connected("main") and workspace.connected("builder"), 120,
                               "both agents connected")  # fmt: skip
    assert workspace.connected("main")[-1]["hostname"] == container[:12]
    assert workspace.connected("builder")[-1]["hostname"] == pod["metadata"]["name"]
    assert any(line.startswith("✔ build image") for line in workspace.coder.outputs_of(workspace.tokens["main"]))
    assert workspace.metadata() == "running"
    # the editor, started after the agent: code-server answers the code_server app's health URL
    health = workspace.cluster.wait_for(workspace.editor_health, 300, "code-server at the app's health URL", 2)
    assert health["status"] in ("alive", "expired"), health


def test_the_devcontainer_holds_no_key_to_the_pod(workspace: Workspace) -> None:
    pod_ip = workspace.ready_pod()["status"]["podIP"]
    for path in ("/var/run/secrets/kubernetes.io", "/run/engine/docker.sock", "/var/run/docker.sock"):
        assert workspace.inside("sh", "-c", f"test -e {path} && echo present || echo absent") == "absent", path
    for url in (f"http://{pod_ip}:7480/healthz", "http://127.0.0.1:7480/healthz"):
        reached = workspace.inside("sh", "-c", f"curl -sS -m 5 -o /dev/null {url} && echo reached || echo refused")
        assert reached == "refused", url
    environments = workspace.inside("sh", "-c", "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'", user="root")
    seen = environments + workspace.inside("sh", "-c", "cat /workspaces/widgets/.git/config", user="root")
    assert workspace.tokens["builder"] not in seen, "the builder agent's token"
    assert workspace.git.token not in seen, "the git token"


def test_the_owners_terminal_reaches_no_engine(workspace: Workspace) -> None:
    """Coder's builder agent runs in the terminal container: the engine's socket is not there, the state is
    read-only, and the user's files are writable."""
    probe = "test -e {0} && echo present || echo absent"
    assert workspace.pod_exec("terminal", "sh", "-c", probe.format("/run/engine/docker.sock")) == "absent"
    attempt = "touch /workspaces/.devcontainer-builder/x 2>/dev/null && echo wrote || echo refused"
    assert workspace.pod_exec("terminal", "sh", "-c", attempt) == "refused", "the state dir is read-only"
    assert workspace.pod_exec("terminal", "sh", "-c", "touch /workspaces/widgets/.probe && echo wrote") == "wrote"
    workspace.pod_exec("terminal", "rm", "-f", "/workspaces/widgets/.probe")


def test_stop_keeps_the_claims_and_start_reuses_the_devcontainer(workspace: Workspace) -> None:
    container = workspace.devcontainer()
    built_at = workspace.inside("cat", "/home/coder/built-at")
    workspace.inside("sh", "-c", "echo precious > /workspaces/widgets/notes.txt")
    workspace.build("stop")
    assert workspace.kubectl("get", "deployments,secrets,configmaps", "-l", workspace.selector, "-o", "name") == ""
    workspace.no_pod()
    claims = workspace.cluster.json("-n", NAMESPACE, "get", "pvc")["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == [
        (f"{workspace.name}-engine", "Bound"), (f"{workspace.name}-workspaces", "Bound")]  # fmt: skip
    workspace.build("start")
    workspace.ready_pod()
    assert workspace.devcontainer() == container, "the same devcontainer, from the engine's volume"
    assert workspace.inside("cat", "/home/coder/built-at") == built_at, "no image build"
    assert workspace.inside("cat", "/workspaces/widgets/notes.txt") == "precious"
    assert workspace.inside("cat", "/home/coder/created") == "created", "create hooks ran once"


def test_the_rebuild_parameter_rebuilds_once(workspace: Workspace) -> None:
    before = workspace.devcontainer()
    workspace.build("stop")
    workspace.no_pod()
    workspace.build("start", rebuild="true")
    workspace.ready_pod()
    rebuilt = workspace.devcontainer()
    assert rebuilt != before, "rebuilt"
    workspace.build("stop")
    workspace.no_pod()
    workspace.build("start")
    workspace.ready_pod()
    assert workspace.devcontainer() == rebuilt, "the next start without the parameter does not rebuild"


def test_a_broken_config_runs_degraded_and_a_rebuild_after_the_fix_brings_it_back(workspace: Workspace) -> None:
    config = workspace.inside("cat", "/workspaces/widgets/.devcontainer/devcontainer.json")
    workspace.remote.commit({".devcontainer/devcontainer.json": '{"image": '})
    workspace.build("stop")
    workspace.no_pod()
    workspace.build("start")
    workspace.ready_pod()
    state = workspace.api("GET", "/api/status")
    assert state["status"] == "degraded" and state["error"]["step"] == "config", state
    assert workspace.metadata().startswith("degraded: config failed")
    # the fix, in /workspaces (as the user makes it in the fallback's terminal), then Rebuild on the page
    workspace.pod_exec(
        "supervisor", "sh", "-c", f"cat > /workspaces/widgets/.devcontainer/devcontainer.json <<'EOF'\n{config}\nEOF"
    )
    assert "build" in workspace.api("POST", "/api/rebuild", '{"full": false}')
    workspace.cluster.wait_for(lambda: workspace.api("GET", "/api/status")["status"] == "running", 600,
                               "the devcontainer back after Rebuild", interval=3)  # fmt: skip
    assert workspace.metadata() == "running"
    assert workspace.inside("cat", "/usr/local/share/greeting") == "hello from a feature"


def test_destroy_leaves_no_object_of_the_workspace(workspace: Workspace) -> None:
    workspace.build("destroy")
    workspace.no_pod()
    left = workspace.kubectl("get", "all,pvc,secrets,configmaps", "-o", "name")
    assert [line for line in left.splitlines() if WORKSPACE_ID in line] == []


def test_an_ephemeral_engine_rebuilds_each_start_from_the_registry_cache(
    cluster: Cluster, bridge: Bridge, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ws = make_workspace(cluster, bridge, tmp_path_factory.mktemp("tf-k8s-ephemeral"), "gadgets",
                        "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", engine_storage="ephemeral",
                        cache_repository=f"{bridge.registry}/cache/gadgets")  # fmt: skip
    try:
        ws.build()
        ws.ready_pod()
        first, built_at = ws.devcontainer(), ws.inside("cat", "/home/coder/built-at")
        assert ws.kubectl("get", "pvc", "-o", "name").count(ws.name) == 1, "no claim for the engine"
        ws.build("stop")
        ws.no_pod()
        ws.build("start")
        ws.ready_pod()
        assert ws.devcontainer() != first, "a new engine: the devcontainer was built again"
        assert ws.inside("cat", "/home/coder/built-at") == built_at, "its layers came from the registry cache"
        # the builder sends its log in batches: the last may arrive after the pod is Ready
        logs = ws.coder.outputs_of
        try:
            ws.cluster.wait_for(lambda: any("CACHED" in line for line in logs(ws.tokens["main"])), 60,
                                "the build log saying CACHED")  # fmt: skip
        except AssertionError as error:
            agent = ws.coder.agents[ws.tokens["main"]]
            raise AssertionError(f"{error} (log lines {len(agent.logs)}, {agent.logs_bytes} bytes, overflowed: "
                                 f"{agent.overflowed}; the last: {logs(ws.tokens['main'])[-15:]})") from None  # fmt: skip
    finally:
        remove(ws)
