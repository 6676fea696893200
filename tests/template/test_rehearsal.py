"""The pod template/kubernetes plans, rehearsed on the local Docker engine (support/rehearsal.py): the
containers, environment, mounts, users and start order come from the plan, not from a copy. Then the
things a user does: work, stop and start, rebuild on start, push a broken config."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import images
from support.builder import docker
from support.coder import init_script
from support.githttp import GitHTTPServer
from support.ide import code_server_mirror, planned_health_url
from support.rehearsal import Pod, assert_no_engine_in_reach
from support.repos import Remote
from support.services import wait_for
from support.terraform import Workdir, workdir

pytestmark = [pytest.mark.docker, pytest.mark.needs_root, pytest.mark.usefixtures("docker_engine")]

PLANNED_BUILDER = "ghcr.io/devcontainer-builder/devcontainer-builder:0.1.0"
PLANNED_ENGINE = "docker.io/library/docker:28.2.2-dind"  # the default; the stand-in DinD image runs instead
LABEL = "label=devcontainer-builder.workspace=/workspaces/widgets"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    work = workdir("kubernetes", tmp_path_factory.mktemp("tf"))
    work.init()
    return work


def plan_for(
    template: Workdir, git: GitHTTPServer, coder_url: str, admin: dict[str, str] | None = None, **parameters: str
) -> dict[str, Any]:
    # the token's host: the test's git server
    variables = {"builder_image": PLANNED_BUILDER, "fallback_image": images.FALLBACK_IMAGE,
                 "external_auth_id": "github", "external_auth_host": git.host, **(admin or {})}  # fmt: skip
    values = {"repository": git.url("widgets"), "cpu": "2", "memory": "4", "disk_size": "10", **parameters}
    return template.plan(variables, values, CODER_AGENT_URL=coder_url)


@pytest.fixture
def rehearsed(template: Workdir, services, sandbox: Path, image: str) -> Iterator[tuple[Pod, Any]]:
    git, coder, gateway = services
    coder_url = f"http://{gateway}:{coder.port}"
    builder_token = coder.add_agent()
    coder.terminal = True  # the agents run what a test types in their terminals
    plan = plan_for(template, git, coder_url)
    secret = {
        "main-agent-token": coder.token,
        "main-agent-init-script": init_script(coder_url),
        "builder-agent-token": builder_token,
        "builder-agent-init-script": init_script(coder_url),
        # the template's formula (local.page_key), as the app's URL carries it
        "status-page-key": hashlib.sha256(f"devcontainer-builder status page:{builder_token}".encode()).hexdigest(),
        "gh-token": git.token,
        "ssh-private-key": "",
    }
    pod = Pod(
        plan,
        {"coder-4f0c8f3e-2a5b-4c1d-9e7f-0a1b2c3d4e5f-agent": secret},
        {PLANNED_BUILDER: image, PLANNED_ENGINE: images.DIND_IMAGE},
    )
    try:
        yield pod, (git, coder, coder_url, builder_token)
    finally:
        pod.destroy()


def devcontainer(pod: Pod) -> str:
    (found,) = pod.engine("ps", "-q", "--no-trunc", "--filter", LABEL).split()
    return found


def editor_answers(pod: Pod, container: str) -> None:
    """code-server answers the code_server app's health URL (the plan's) inside the devcontainer, where
    Coder's main agent checks it."""
    probe = f"curl -fsS -m 5 '{planned_health_url(pod.plan)}' || true"
    wait_for(lambda: '"status"' in pod.engine("exec", container, "sh", "-c", probe), 180, "code-server's health URL")


@pytest.fixture
def ide(services, sandbox: Path) -> Iterator[dict[str, str]]:
    """The admin's mirror of code-server where the pod reaches it, and the variables that use it."""
    with code_server_mirror(sandbox / "mirror", services[2]) as variables:
        yield variables


def test_the_planned_pod_builds_connects_and_survives_a_restart(rehearsed, ide, sandbox: Path, template) -> None:
    pod, (git, coder, coder_url, builder_token) = rehearsed
    pod.plan = plan_for(template, git, coder_url, ide)  # with the editor
    Remote(sandbox, "widgets").commit({
        # initializeCommand in its sandbox on the pod's engine: the Dockerfile copies what it writes
        ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"},
                                                       "initializeCommand": "echo sandboxed > .devcontainer/made.txt",
                                                       "postCreateCommand": "echo created >> /home/coder/created"}),
        ".devcontainer/Dockerfile": f"FROM {images.FALLBACK_IMAGE}\nCOPY made.txt /made.txt\n"
                                   "RUN date +%s%N > /home/coder/built-at\n",
    })  # fmt: skip
    # the engine first: its images come from the host (no registry here), then the pod goes on
    code, logs = pod.start_with(lambda: pod.load_images(images.BASE_IMAGE, images.FALLBACK_IMAGE))
    assert code == 0, logs
    container = devcontainer(pod)
    built_at = pod.engine("exec", container, "cat", "/home/coder/built-at")
    assert pod.engine("exec", container, "cat", "/made.txt") == "sandboxed"
    # both agents: main from inside the devcontainer, builder from the supervisor's container
    wait_for(lambda: {c["token"] for c in coder.connections} == {coder.token, builder_token}, 90, "both agents")
    main = next(c for c in coder.connections if c["token"] == coder.token)
    assert main["hostname"] == container[:12]
    editor_answers(pod, container)
    # the app's health check and the metadata line, where Coder's builder agent runs them
    assert pod.exec("supervisor", "curl", "-fsS", "http://127.0.0.1:7480/healthz") == '{"ok":true}'
    # the status app's address (the template's formula) is the page, with the key its buttons need
    key = hashlib.sha256(f"devcontainer-builder status page:{builder_token}".encode()).hexdigest()
    post = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
            "-d", "{}"]  # fmt: skip
    ignore = "http://127.0.0.1:7480/{}api/suggestion/ignore"
    assert pod.exec("supervisor", *post, ignore.format("")) == "403", "no key: nothing changes"
    assert pod.exec("supervisor", *post, ignore.format(f"k/{key}/")) == "409", "the key: heard (nothing to dismiss)"
    metadata = pod.exec("supervisor", "devcontainer-builder", "status", "--short", "--state-dir",
                        "/workspaces/.devcontainer-builder")  # fmt: skip
    assert metadata == "running"
    assert any(text.startswith("✔ build image") for text in coder.outputs()), "the build log reached Coder"
    # the owner's terminal, as Coder's builder agent starts it: no engine, the state read-only
    assert_no_engine_in_reach(coder, builder_token)
    assert pod.exec("supervisor", "docker", "version", "--format", "{{.Server.Version}}"), "serve keeps the engine"
    # the user's work, then a stop and a start with the volumes kept
    pod.engine("exec", "-u", "coder", container, "sh", "-c", "echo precious > /workspaces/widgets/notes.txt")
    pod.stop()
    code, logs = pod.start()
    assert code == 0, logs
    assert devcontainer(pod) == container, "the same devcontainer, started again"
    assert pod.engine("exec", container, "cat", "/home/coder/built-at") == built_at, "no image rebuild"
    assert pod.engine("exec", container, "cat", "/workspaces/widgets/notes.txt") == "precious"
    assert pod.engine("exec", container, "cat", "/home/coder/created") == "created", "create hooks ran once"
    editor_answers(pod, container)  # started again with the container


def test_the_rebuild_parameter_rebuilds_and_a_broken_config_is_degraded_and_shown(
    rehearsed, sandbox: Path, template
) -> None:
    pod, (git, coder, coder_url, builder_token) = rehearsed
    remote = Remote(sandbox, "widgets")
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": images.FALLBACK_IMAGE})})
    code, logs = pod.start_with(lambda: pod.load_images(images.BASE_IMAGE, images.FALLBACK_IMAGE))
    assert code == 0, logs
    first = devcontainer(pod)
    pod.stop()
    # "Rebuild devcontainer" on this start; the admin gives the owner the engine, knowingly
    pod.plan = plan_for(template, git, coder_url, {"owner_engine_access": "true"}, rebuild="true")
    code, logs = pod.start()
    assert code == 0, logs
    assert devcontainer(pod) != first, "rebuilt"
    wait_for(lambda: sum(c["token"] == builder_token for c in coder.connections) >= 2, 90, "the builder agent again")
    code, output = coder.run_in_agent(builder_token, "docker version --format '{{.Server.Version}}'")
    assert code == 0 and output.strip(), f"owner_engine_access gives the terminal the engine: {output}"
    remote.commit({".devcontainer/devcontainer.json": '{"image": '})
    pod.stop()
    pod.plan = plan_for(template, git, coder_url)
    code, logs = pod.start()
    assert code == 0, logs  # degraded is running, on the fallback
    state = json.loads(pod.exec("supervisor", "curl", "-fsS", "http://localhost:7480/api/status"))
    assert state["status"] == "degraded" and state["error"]["step"] == "config", state["error"]
    metadata = pod.exec("supervisor", "devcontainer-builder", "status", "--short", "--state-dir",
                        "/workspaces/.devcontainer-builder")  # fmt: skip
    assert metadata.startswith("degraded: config failed"), metadata
    docker("inspect", pod.name("supervisor"))  # it runs: the page shows the failure
