"""template/kubernetes applied for real: `terraform apply` with the pinned providers against the cluster of
tests/env/kubernetes.sh, as Coder's provisioner runs it for each workspace build (workspace and owner data,
a transition, an init script pointing at the Coder double), and the workspace's life checked on the running
pod. The tests of this module are one workspace's story, in order: start, stop and start, rebuild, a broken
config and its fix, destroy - one apply per step, as Coder makes them.

What the cluster cannot reach is brought to its bridge: the git server, the Coder double and a registry
(TLS, with the test's own CA given to the template as `extra_ca_bundle`) that the pod's engine pulls the
devcontainer's base image from - no image can be pulled from the internet here."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import images
from support.builder import docker
from support.cluster import NODE_IP, STORAGE_CLASS, Cluster
from support.coder import CoderDouble, init_script, make_double
from support.githttp import GitHTTPServer
from support.repos import Remote
from support.services import Registry
from support.terraform import WORKSPACE_ENV, Workdir, in_state, workdir

pytestmark = [pytest.mark.kubernetes, pytest.mark.docker, pytest.mark.needs_root]

NAMESPACE = "coder"
WORKSPACE_ID = WORKSPACE_ENV["CODER_WORKSPACE_ID"]
VERSION = (Path(__file__).resolve().parents[2] / "builder" / "version.txt").read_text().strip()
# pinned names, as the template's variables demand: the local images are imported under them
BUILDER = f"devcontainer-builder-test/builder:{VERSION}"
ENGINE = "devcontainer-builder-test/dind:26-trixie"
SOCKET = "--host=unix:///run/engine/docker.sock"
STATE_DIR = "/workspaces/.devcontainer-builder"


def private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate of it for the registry on the bridge: (ca, certificate, key)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test cluster registry CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={NODE_IP}", "-keyout", "server.key",
            "-out", "server.csr")  # fmt: skip
    (folder / "san.ext").write_text(f"subjectAltName=IP:{NODE_IP}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@dataclass
class Workspace:
    """One Coder workspace of template/kubernetes on the cluster, and what it talks to."""

    id: str
    cluster: Cluster
    template: Workdir
    git: GitHTTPServer
    coder: CoderDouble
    remote: Remote
    variables: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict)  # agent -> token of the latest build

    @property
    def name(self) -> str:
        return f"coder-{self.id}"

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name}"

    @property
    def repo(self) -> str:
        return self.remote.path.name.removesuffix(".git")

    @property
    def coder_url(self) -> str:
        return f"http://{NODE_IP}:{self.coder.port}"

    def build(self, transition: str = "start", **parameters: str) -> dict[str, Any]:
        """A workspace build: Coder's provisioner applies the template with the transition, and then knows
        the agents by the tokens the provider made."""
        values = {"repository": self.git.url(self.repo), "cpu": "2", "memory": "4", "disk_size": "10", **parameters}
        state = self.template.apply(
            self.variables, values, destroy=transition == "destroy",
            CODER_WORKSPACE_ID=self.id,
            CODER_WORKSPACE_TRANSITION=transition,
            CODER_AGENT_URL=self.coder_url,
            CODER_AGENT_SCRIPT_linux_amd64=init_script(self.coder_url),
            CODER_EXTERNAL_AUTH_ACCESS_TOKEN_github=self.git.token,
            KUBE_CONFIG_PATH=self.cluster.kubeconfig,
        )  # fmt: skip
        if transition == "start":
            for agent in ("main", "builder"):
                self.tokens[agent] = in_state(state, f"coder_agent.{agent}")["token"]
                self.coder.register(self.tokens[agent])
        return state

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return self.cluster.kubectl("-n", NAMESPACE, *args, timeout=timeout, check=check)

    def pods(self) -> list[dict[str, Any]]:
        return list(self.cluster.json("-n", NAMESPACE, "get", "pods", "-l", self.selector)["items"])

    def ready_pod(self, timeout: float = 720) -> dict[str, Any]:
        """The workspace's one pod, once Ready (the supervisor's readiness probe passed)."""

        def ready() -> dict[str, Any] | None:
            pods = [p for p in self.pods() if not p["metadata"].get("deletionTimestamp")]
            if len(pods) != 1 or len(self.pods()) != 1:
                return None
            conditions = {c["type"]: c["status"] for c in pods[0]["status"].get("conditions", [])}
            for status in pods[0]["status"].get("initContainerStatuses", []):
                terminated = status["state"].get("terminated") or {}
                assert not (status["name"] == "builder" and terminated.get("exitCode", 0) != 0), self.logs("builder")
            return pods[0] if conditions.get("Ready") == "True" else None

        return self.cluster.wait_for(ready, timeout, "the workspace's pod Ready", interval=2)

    def no_pod(self, timeout: float = 180) -> None:
        self.cluster.wait_for(lambda: not self.pods(), timeout, "the workspace's pod gone", interval=2)

    def logs(self, container: str) -> str:
        return self.kubectl("logs", f"deployment/{self.name}", "-c", container, check=False)[-4000:]

    def pod_exec(self, container: str, *argv: str, check: bool = True) -> str:
        return self.kubectl("exec", f"deployment/{self.name}", "-c", container, "--", *argv, timeout=300, check=check)

    def engine(self, *argv: str) -> str:
        return self.pod_exec("engine", "docker", SOCKET, *argv)

    def devcontainer(self) -> str:
        (found,) = self.engine(
            "ps", "-q", "--no-trunc", "--filter", f"label=devcontainer-builder.workspace=/workspaces/{self.repo}"
        ).split()
        return found

    def inside(self, *argv: str, user: str = "coder") -> str:
        """A command in the devcontainer, in the engine, in the pod."""
        return self.engine("exec", "-u", user, self.devcontainer(), *argv)

    def metadata(self) -> str:
        return self.pod_exec("supervisor", "devcontainer-builder", "status", "--short", "--state-dir", STATE_DIR)

    def api(self, method: str, path: str, body: str = "") -> dict[str, Any]:
        """The supervisor's API, from inside its container (it listens on the pod's loopback only), under the
        page's key - the template's status app URL - as the user's browser reaches it through Coder."""
        key = hashlib.sha256(f"devcontainer-builder status page:{self.tokens['builder']}".encode()).hexdigest()
        argv = ["curl", "-sS", "-X", method, f"http://127.0.0.1:7480/k/{key}{path}"]
        if body:
            argv += ["-H", "Content-Type: application/json", "--data", body]
        return dict(json.loads(self.pod_exec("supervisor", *argv)))

    def connected(self, agent: str) -> list[dict[str, Any]]:
        return [c for c in self.coder.connections if c["token"] == self.tokens[agent]]


@dataclass
class Bridge:
    """What the cluster's pods reach on its bridge, and the template's variables that point there."""

    git: GitHTTPServer
    coder: CoderDouble
    registry: str  # host:port of the TLS registry
    variables: dict[str, Any]
    root: Path


@pytest.fixture(scope="module")
def bridge(cluster: Cluster, image: str, sandbox_root: Path) -> Iterator[Bridge]:
    root = sandbox_root / f"k8s-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    root.chmod(0o755)
    cluster.load(f"{image}={BUILDER}", f"{images.DIND_IMAGE}={ENGINE}")
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.wait_for(lambda: cluster.kubectl("-n", NAMESPACE, "get", "sa", "default", check=False), 60,
                     "the namespace's default service account")  # fmt: skip
    ca, certificate, key = private_ca(root / "ca")
    push = Registry(root / "registry-push")  # loopback: the host's engine pushes there without TLS
    pull = Registry(root / "registry-pull", host=NODE_IP, tls=(certificate, key), data=root / "registry-push" / "data")
    local = f"{push.address}/{images.FALLBACK_IMAGE}"
    docker("tag", images.FALLBACK_IMAGE, local)
    docker("push", local, timeout=600)
    docker("rmi", local)
    git = GitHTTPServer(root / "remotes", f"ghp_{uuid.uuid4().hex}", host=NODE_IP).start()
    coder = make_double(host=NODE_IP)
    variables = {
        "namespace": NAMESPACE, "builder_image": BUILDER, "engine_image": ENGINE,
        "fallback_image": f"{pull.address}/{images.FALLBACK_IMAGE}", "storage_class": STORAGE_CLASS,
        "engine_disk_size": 10, "extra_ca_bundle": ca.read_text(), "external_auth_id": "github",
        "external_auth_host": NODE_IP,
    }  # fmt: skip
    try:
        yield Bridge(git, coder, pull.address, variables, root)
    finally:
        coder.stop()
        git.stop()
        pull.stop()
        push.stop()


def make_workspace(
    cluster: Cluster, bridge: Bridge, tmp: Path, repo: str, workspace_id: str, **variables: Any
) -> Workspace:
    """A workspace of its own repository (a Dockerfile on the bridge's registry, a local feature, a
    postCreateCommand) with a local volume for each of its claims."""
    base = bridge.variables["fallback_image"]
    remote = Remote(bridge.root, repo)
    remote.commit({
        ".devcontainer/devcontainer.json": json.dumps({
            "build": {"dockerfile": "Dockerfile"},
            "features": {"./greeter": {"greeting": "hello from a feature"}},
            "postCreateCommand": "echo created >> /home/coder/created",
        }),
        ".devcontainer/Dockerfile": f"FROM {base}\nRUN date +%s%N > /home/coder/built-at\n",
        ".devcontainer/greeter/devcontainer-feature.json": json.dumps(
            {"id": "greeter", "version": "1.0.0", "options": {"greeting": {"type": "string", "default": "hi"}}}
        ),
        ".devcontainer/greeter/install.sh": '#!/bin/sh\nset -e\necho "$GREETING" > /usr/local/share/greeting\n',
    })  # fmt: skip
    claims = ["workspaces"] if variables.get("engine_storage") == "ephemeral" else ["workspaces", "engine"]
    for claim in claims:
        cluster.volume(NAMESPACE, f"coder-{workspace_id}-{claim}", "20Gi")
    template = workdir("kubernetes", tmp)
    template.init()
    return Workspace(workspace_id, cluster, template, bridge.git, bridge.coder, remote,
                     {**bridge.variables, **variables})  # fmt: skip


def remove(workspace: Workspace) -> None:
    workspace.build("destroy")
    for claim in ("workspaces", "engine"):
        workspace.cluster.remove_volume(NAMESPACE, f"{workspace.name}-{claim}")


@pytest.fixture(scope="module")
def workspace(cluster: Cluster, bridge: Bridge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = make_workspace(cluster, bridge, tmp_path_factory.mktemp("tf-k8s"), "widgets", WORKSPACE_ID)
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
        assert any("CACHED" in line for line in ws.coder.outputs_of(ws.tokens["main"])), "the build log says so"
    finally:
        remove(ws)
