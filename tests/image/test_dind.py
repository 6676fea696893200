"""The builder image run the way the Kubernetes template's pod runs it: a Docker engine in a container of
its own (the DinD sidecar), the builder talking to it over a socket on a shared volume as a non-root user
in the socket's group, /workspaces a volume mounted at the same path in both, Coder (the double)
reachable. Then both containers restart with the volumes kept, as a pod does."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import images
from support.builder import docker
from support.coder import init_script
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.needs_root, pytest.mark.usefixtures("docker_engine")]

DIND_IMAGE = images.DIND_IMAGE
SOCKET_GROUP = "2375"
BASE_IMAGES = (images.BASE_IMAGE, images.FALLBACK_IMAGE)


class Pod:
    """Two containers and three volumes, named after one pod."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.name = f"dcb-pod-{uuid.uuid4().hex[:8]}"
        self.volumes = {kind: f"{self.name}-{kind}" for kind in ("docker", "socket", "workspaces")}
        for volume in self.volumes.values():
            docker("volume", "create", volume)
        # what fsGroup does in a pod: the workspace volume belongs to the builder's user
        docker(
            "run",
            "--rm",
            "-v",
            f"{self.volumes['workspaces']}:/workspaces",
            BASE_IMAGES[0],
            "chown",
            "1000:1000",
            "/workspaces",
        )
        self.socket = Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", self.volumes["socket"])) / "docker.sock"

    @property
    def engine_name(self) -> str:
        return f"{self.name}-dind"

    @property
    def builder_name(self) -> str:
        return f"{self.name}-builder"

    def start_engine(self) -> None:
        docker(
            "run", "-d", "--name", self.engine_name,
            # what these test machines allow instead of --privileged: their kernel lacks CAP_SYS_RESOURCE
            "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
            "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "-v", f"{self.volumes['docker']}:/var/lib/docker",
            "-v", f"{self.volumes['socket']}:/run/dind",
            "-v", f"{self.volumes['workspaces']}:/workspaces",
            DIND_IMAGE, "--host", "unix:///run/dind/docker.sock", "--group", SOCKET_GROUP,
        )  # fmt: skip
        self.wait_for_engine()

    def wait_for_engine(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.socket.exists()
                and subprocess.run(self.engine_cmd("version"), capture_output=True, timeout=30, check=False).returncode
                == 0
            ):
                return
            time.sleep(0.5)
        raise AssertionError(f"the DinD engine did not start: {docker('logs', self.engine_name, check=False)[-2000:]}")

    def engine_cmd(self, *args: str) -> list[str]:
        return ["docker", "-H", f"unix://{self.socket}", *args]

    def engine(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(self.engine_cmd(*args), capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def load_images(self, *names: str) -> None:
        save = subprocess.Popen(["docker", "save", *names], stdout=subprocess.PIPE)
        subprocess.run(self.engine_cmd("load"), stdin=save.stdout, capture_output=True, timeout=600, check=True)
        save.wait(timeout=60)

    def run_builder(self, env: dict[str, str], timeout: float = 600) -> tuple[int, str]:
        flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        docker(
            "run", "-d", "--name", self.builder_name, "--group-add", SOCKET_GROUP,
            "-v", f"{self.volumes['socket']}:/run/dind", "-v", f"{self.volumes['workspaces']}:/workspaces",
            "-e", "DOCKER_HOST=unix:///run/dind/docker.sock", *flags, self.image,
        )  # fmt: skip
        return self.wait_for_builder(timeout)

    def wait_for_builder(self, timeout: float) -> tuple[int, str]:
        code = int(docker("wait", self.builder_name, timeout=timeout))
        return code, docker("logs", self.builder_name, check=False)

    def restart(self, timeout: float = 600) -> tuple[int, str]:
        """What a pod restart does to its containers: the engine stops and starts with /var/lib/docker
        kept, and the builder runs again on the same volumes - right away, without waiting for the engine."""
        docker("restart", "-t", "20", self.engine_name, timeout=120)
        docker("start", self.builder_name)
        return self.wait_for_builder(timeout)

    def read(self, path: str) -> str:
        return docker("run", "--rm", "-v", f"{self.volumes['workspaces']}:/workspaces", BASE_IMAGES[0], "cat", path)

    def grep_volume(self, needle: str) -> str:
        return docker(
            "run", "--rm", "-v", f"{self.volumes['workspaces']}:/workspaces", BASE_IMAGES[0],
            "grep", "-rlsF", "--", needle, "/workspaces", check=False,
        )  # fmt: skip

    def remove(self) -> None:
        for container in (self.builder_name, self.engine_name):
            docker("rm", "-f", "-v", container, check=False)
        for volume in self.volumes.values():
            docker("volume", "rm", "-f", volume, check=False)


@pytest.fixture
def pod(image: str) -> Iterator[Pod]:
    pod = Pod(image)
    try:
        yield pod
    finally:
        pod.remove()


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.3)


def test_the_image_in_a_dind_pod_builds_connects_streams_and_survives_a_restart(
    pod: Pod, services, sandbox: Path
) -> None:
    git, coder, gateway = services
    Remote(sandbox, "project").commit(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "build": {"dockerfile": "Dockerfile"},
                    "features": {"./hello": {}},
                    "postCreateCommand": "echo created >> /home/coder/created",
                }
            ),
            ".devcontainer/Dockerfile": f"FROM {images.FALLBACK_IMAGE}\nRUN date +%s%N > /home/coder/built-at\n",
            ".devcontainer/hello/devcontainer-feature.json": json.dumps({"id": "hello", "version": "1.0.0"}),
            ".devcontainer/hello/install.sh": "#!/bin/sh\necho hello > /usr/local/share/hello\n",
        }
    )
    pod.start_engine()
    pod.load_images(*BASE_IMAGES)
    coder_url = f"http://{gateway}:{coder.port}"
    env = {
        "DEVCONTAINER_REPOSITORY": git.url("project"),
        "GH_TOKEN": git.token,
        "CODER_AGENT_URL": coder_url,
        "CODER_AGENT_TOKEN": coder.token,
        "CODER_INIT_SCRIPT": init_script(coder_url),
    }
    code, logs = pod.run_builder(env)
    assert code == 0, logs
    assert "workspace running" in logs
    # the devcontainer runs in the pod's engine
    (container,) = pod.engine(
        "ps", "-q", "--no-trunc", "--filter", "label=devcontainer-builder.workspace=/workspaces/project"
    ).split()
    assert pod.engine("exec", container, "cat", "/usr/local/share/hello") == "hello"
    built_at = pod.engine("exec", container, "cat", "/home/coder/built-at")
    # the agent connected from inside it
    wait_for(lambda: coder.connections)
    assert [c["hostname"] for c in coder.connections] == [container[:12]]
    # the build log reached Coder
    outputs = coder.outputs()
    assert any(text.startswith("✔ build image") for text in outputs)
    assert any("Coder agent started" in text for text in outputs)
    # the state is on the workspace volume
    state = json.loads(pod.read("/workspaces/.devcontainer-builder/state.json"))
    assert (state["status"], state["container_id"]) == ("running", container)
    assert pod.grep_volume(git.token) == "", "the token never lands on the volume"
    # the user's uncommitted work
    pod.engine("exec", "-u", "coder", container, "sh", "-c", "echo precious > /workspaces/project/notes.txt")

    code, logs = pod.restart()
    assert code == 0, logs
    (again,) = pod.engine(
        "ps", "-q", "--no-trunc", "--filter", "label=devcontainer-builder.workspace=/workspaces/project"
    ).split()
    assert again == container, "the same container, started again"
    assert pod.read("/workspaces/project/notes.txt") == "precious"
    assert pod.engine("exec", again, "cat", "/home/coder/built-at") == built_at, "no rebuild"
    state = json.loads(pod.read("/workspaces/.devcontainer-builder/state.json"))
    assert state["status"] == "running"
    assert "build image" not in [step["name"] for step in state["steps"]]
    assert pod.engine("exec", again, "cat", "/home/coder/created") == "created", "create hooks ran once"
    wait_for(lambda: len(coder.connections) == 2)
    assert [c["hostname"] for c in coder.connections] == [container[:12], container[:12]]
