"""The workspace template/docker plans, rehearsed on the local Docker engine (support/rehearsal.py): the
builder container runs `up` then `serve`, beside an engine container of the workspace's own."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import images
from support.coder import CoderDouble, init_script
from support.githttp import GitHTTPServer
from support.ide import code_server_mirror, planned_health_url
from support.rehearsal import DockerHost, assert_no_engine_in_reach
from support.repos import Remote
from support.services import wait_for
from support.terraform import Workdir, workdir

pytestmark = [pytest.mark.docker, pytest.mark.needs_root, pytest.mark.usefixtures("docker_engine")]

PLANNED_BUILDER = "ghcr.io/devcontainer-builder/devcontainer-builder:0.1.0"
PLANNED_ENGINE = "docker.io/library/docker:28.2.2-dind"  # the default; the stand-in DinD image runs instead
SECRETS = ("CODER_AGENT_TOKEN", "CODER_INIT_SCRIPT", "GH_TOKEN", "DEVCONTAINER_SSH_PRIVATE_KEY",
           "DEVCONTAINER_REBUILD_ID", "DEVCONTAINER_SERVE_PAGE_KEY")  # fmt: skip  # the last two: digests of tokens
LABEL = "label=devcontainer-builder.workspace=/workspaces/widgets"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    work = workdir("docker", tmp_path_factory.mktemp("tf"))
    work.init()
    return work


def variables_for(git: GitHTTPServer) -> dict[str, str]:
    """The admin's variables: the stand-in images, and the test's git server as the token's host."""
    return {"fallback_image": images.FALLBACK_IMAGE, "external_auth_id": "github", "external_auth_host": git.host}


def builder_env(template: Workdir, variables: dict[str, str], workspace: dict[str, str], parameters: dict[str, str],
                secrets: dict[str, str], local: str = "builder_env") -> dict[str, str]:  # fmt: skip
    names = ", ".join(f'"{name}"' for name in SECRETS)
    expression = f'{{for k, v in local.{local} : k => contains([{names}], k) ? "" : try(nonsensitive(v), v)}}'
    env = template.evaluate(expression, variables, parameters, **workspace)
    if local == "terminal_env":
        return {**env, **{name: secrets[name] for name in env if name in secrets}}
    assert {name for name, value in env.items() if value == ""} >= set(SECRETS) - {
        "GH_TOKEN",
        "DEVCONTAINER_SSH_PRIVATE_KEY",
    }
    return {**env, **secrets}


@pytest.fixture
def ide(services, sandbox: Path) -> Iterator[dict[str, str]]:
    """The admin's mirror of code-server where the workspace reaches it, and the variables that use it."""
    with code_server_mirror(sandbox / "mirror", services[2]) as variables:
        yield variables


@pytest.fixture
def host(template: Workdir, services, ide, sandbox: Path, image: str) -> Iterator[tuple[DockerHost, Any]]:
    git, coder, gateway = services
    coder_url = f"http://{gateway}:{coder.port}"
    workspace = {"CODER_WORKSPACE_ID": str(uuid.uuid4()), "CODER_AGENT_URL": coder_url}
    parameters = {"repository": git.url("widgets")}
    variables = {**variables_for(git), **ide}  # with the editor
    builder_token = coder.add_agent()
    coder.terminal = True  # the agents run what a test types in their terminals
    page_key = hashlib.sha256(f"devcontainer-builder status page:{builder_token}".encode()).hexdigest()
    secrets = {"CODER_AGENT_TOKEN": coder.token, "CODER_INIT_SCRIPT": init_script(coder_url), "GH_TOKEN": git.token,
               "DEVCONTAINER_REBUILD_ID": "build-1", "DEVCONTAINER_SERVE_PAGE_KEY": page_key}  # fmt: skip
    plan = template.plan(variables, parameters, **workspace)
    # the terminal's: its agent's own token and init script where the builder's have theirs
    terminal_secrets = {"CODER_AGENT_TOKEN": builder_token, "CODER_INIT_SCRIPT": init_script(coder_url)}
    docker_host = DockerHost(
        plan,
        builder_env(template, variables, workspace, parameters, secrets),
        {PLANNED_BUILDER: image, PLANNED_ENGINE: images.DIND_IMAGE},
        terminal_env=builder_env(template, variables, workspace, parameters, terminal_secrets, "terminal_env"),
    )
    engine_access = dict(variables, owner_engine_access="true")
    context = {"coder": coder, "builder_token": builder_token, "rebuild_env": lambda: builder_env(
        template, variables, workspace, dict(parameters, rebuild="true"), dict(secrets, DEVCONTAINER_REBUILD_ID="build-2")),
        "engine_access": lambda: (template.plan(engine_access, parameters, **workspace),
                                  builder_env(template, engine_access, workspace, parameters, terminal_secrets, "terminal_env"))}  # fmt: skip
    try:
        yield docker_host, context
    finally:
        docker_host.destroy()


def devcontainer(host: DockerHost) -> str:
    (found,) = host.engine("ps", "-q", "--no-trunc", "--filter", LABEL).split()
    return found


def diagnosis(host: DockerHost, coder: CoderDouble) -> str:
    """Which agents connected, and what the agents' own logs say, for a failure message."""
    from support.builder import docker

    seen = [("main" if c["token"] == coder.token else "builder", c["hostname"]) for c in coder.connections]
    builder_agent = docker("exec", host.name("builder"), "cat", "/workspaces/.devcontainer-builder/builder-agent.log",
                           check=False)  # fmt: skip
    inner = host.engine("ps", "-q", "--filter", LABEL)
    main_agent = subprocess.run(
        host.engine_cmd("exec", inner, "cat", "/home/coder/.cache/devcontainer-builder/agent/agent.log"),
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    return f"connected: {seen}\nbuilder agent: {builder_agent[-1500:]}\nmain agent: {main_agent[-1500:]}"


def editor_answers(host: DockerHost, container: str) -> None:
    """code-server answers the code_server app's health URL (the plan's) inside the devcontainer, where
    Coder's main agent checks it."""
    probe = f"curl -fsS -m 5 '{planned_health_url(host.plan)}' || true"
    wait_for(lambda: '"status"' in host.engine("exec", container, "sh", "-c", probe), 180, "code-server's health URL")


def status_short(host: DockerHost) -> str:
    from support.builder import docker

    return docker("exec", host.name("builder"), "devcontainer-builder", "status", "--short", "--state-dir",
                  "/workspaces/.devcontainer-builder", check=False)  # fmt: skip


def test_the_planned_workspace_builds_connects_and_survives_a_restart(host, sandbox: Path) -> None:
    from support.builder import docker

    docker_host, context = host
    coder: CoderDouble = context["coder"]
    Remote(sandbox, "widgets").commit({
        ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"},
                                                       "postCreateCommand": "echo created >> /home/coder/created"}),
        ".devcontainer/Dockerfile": f"FROM {images.FALLBACK_IMAGE}\nRUN date +%s%N > /home/coder/built-at\n",
    })  # fmt: skip
    docker_host.preload(images.BASE_IMAGE, images.FALLBACK_IMAGE)
    docker_host.start()
    tokens = {coder.token, context["builder_token"]}
    try:
        wait_for(lambda: {c["token"] for c in coder.connections} == tokens, 300, "both agents connecting")
    except AssertionError:
        raise AssertionError(diagnosis(docker_host, coder)) from None
    container = devcontainer(docker_host)
    main = next(c for c in coder.connections if c["token"] == coder.token)
    assert main["hostname"] == container[:12], "main runs in the devcontainer"
    editor_answers(docker_host, container)
    # the builder agent, in its own container, connects without waiting for `serve`, which follows `up`
    healthz = ["exec", docker_host.name("builder"), "curl", "-fsS", "http://127.0.0.1:7480/healthz"]
    wait_for(lambda: docker(*healthz, check=False) == '{"ok":true}', 60, "serve answering")
    # the status app's address (the template's formula) is the page, with the key its buttons need
    key = hashlib.sha256(f"devcontainer-builder status page:{context['builder_token']}".encode()).hexdigest()
    post = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
            "-d", "{}"]  # fmt: skip
    ignore = "http://127.0.0.1:7480/{}api/suggestion/ignore"
    assert docker("exec", docker_host.name("builder"), *post, ignore.format("")) == "403", "no key: nothing changes"
    assert docker("exec", docker_host.name("builder"), *post, ignore.format(f"k/{key}/")) == "409", "no suggestion"
    assert status_short(docker_host) == "running"
    # the owner's terminal, as Coder's builder agent starts it: no engine, the state read-only
    assert_no_engine_in_reach(coder, context["builder_token"])
    assert docker("exec", docker_host.name("builder"), "docker", "version", "--format", "{{.Server.Version}}")
    built_at = docker_host.engine("exec", container, "cat", "/home/coder/built-at")
    docker_host.engine("exec", "-u", "coder", container, "sh", "-c", "echo precious > /workspaces/widgets/notes.txt")

    docker_host.stop()
    docker_host.start()
    wait_for(lambda: len([c for c in coder.connections if c["token"] == coder.token]) == 2, 300, "main again")
    assert devcontainer(docker_host) == container, "the same devcontainer, started again"
    assert docker_host.engine("exec", container, "cat", "/home/coder/built-at") == built_at, "no image rebuild"
    assert docker_host.engine("exec", container, "cat", "/workspaces/widgets/notes.txt") == "precious"
    editor_answers(docker_host, container)  # started again with the container

    docker_host.stop()
    docker_host.env = context["rebuild_env"]()  # "Rebuild devcontainer" on this start
    # and the admin gives the owner the engine, knowingly
    docker_host.plan, docker_host.terminal_env = context["engine_access"]()
    docker_host.start()
    wait_for(lambda: len([c for c in coder.connections if c["token"] == coder.token]) == 3, 300, "main after rebuild")
    assert devcontainer(docker_host) != container, "rebuilt"
    code, output = coder.run_in_agent(context["builder_token"], "docker version --format '{{.Server.Version}}'")
    assert code == 0 and output.strip(), f"owner_engine_access gives the terminal the engine: {output}"
    assert docker_host.engine("exec", devcontainer(docker_host), "cat", "/workspaces/widgets/notes.txt") == "precious"
