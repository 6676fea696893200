"""One Coder workspace of template/kubernetes on the real cluster (support/cluster.py), as the cluster tests
and `make bench` drive it: `terraform apply` per workspace build, as Coder's provisioner runs it, and what
the pod's pods reach on the cluster's bridge - the git server, the Coder double, a TLS registry with the
test's own CA (the devcontainer's base image and the layer cache) and the admin's mirror of code-server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import images
from support.builder import docker
from support.cluster import NODE_IP, STORAGE_CLASS, Cluster
from support.coder import CoderDouble, init_script, make_double
from support.githttp import GitHTTPServer
from support.ide import code_server_mirror
from support.repos import Remote
from support.services import Registry
from support.terraform import WORKSPACE_ENV, Workdir, in_state, workdir

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
    state: dict[str, Any] = field(default_factory=dict)  # Terraform's state after the latest build

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
        self.state = state
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

    def editor_health(self) -> dict[str, Any]:
        """code-server's answer at the code_server app's health URL (the template's), asked from inside the
        devcontainer, where Coder's main agent checks it; {} while nothing answers there."""
        (check,) = in_state(self.state, "coder_app.code_server[0]")["healthcheck"]
        answer = self.inside("sh", "-c", f"curl -fsS -m 5 '{check['url']}' || true")
        return dict(json.loads(answer)) if answer.startswith("{") else {}

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
    ide: dict[str, Any]  # the template's variables for code-server from the mirror on the bridge


@contextlib.contextmanager
def open_bridge(cluster: Cluster, image: str, root: Path) -> Iterator[Bridge]:
    """The images imported, the namespace, and the servers on the bridge, stopped at the end."""
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
        with code_server_mirror(root / "mirror", NODE_IP) as ide:
            yield Bridge(git, coder, pull.address, variables, root, ide)
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
