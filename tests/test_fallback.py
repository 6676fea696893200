"""Recovery mode: every way a build can fail still leaves a running workspace on the fallback image,
with the failure explained inside it, reported to Coder, and the user's work untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.builder import SLEEPING_BUILD, Workspace, docker
from support.coder import CoderDouble
from support.engines import on_every_engine
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote
from support.repos import git as run_git

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

IMAGE = BASE_IMAGE
FALLBACK = FALLBACK_IMAGE
ERROR_LOG = ".devcontainer-build-error.log"


@pytest.fixture
def workspace(make_workspace, coder: CoderDouble):
    def make(url: str, **env: str) -> Workspace:
        return make_workspace(url, CODER_AGENT_URL=coder.url, CODER_AGENT_TOKEN=coder.token, **env)

    return make


def login_shell(ws: Workspace, user: str = "coder") -> str:
    result = subprocess.run(
        ws.engine.as_user([ws.engine.cli, "exec", "-t", "-u", user, ws.container(), "bash", "-lic", "true"]),
        capture_output=True, text=True, timeout=60, check=False, env=ws.engine.process_env(dict(os.environ)),
    )  # fmt: skip
    return result.stdout + result.stderr


def assert_degraded(ws: Workspace, coder: CoderDouble, run, *, step: str, evidence: str) -> str:
    """Everything recovery promises, for one failure; returns the error log's text."""
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["status"], state["fallback"]) == ("degraded", True)
    assert state["error"]["step"] == step
    assert evidence in state["error"]["message"] + state["error"].get("detail", "")
    container = ws.container()  # exactly one
    assert state["container_id"] == container
    image, running = ws.engine.run("inspect", "-f", "{{.Config.Image}} {{.State.Running}}", container).split()
    # rootless Podman runs the fallback's image given the workspace owner's uid (the CLI's "-uid" image)
    assert running == "true" and (image.endswith(FALLBACK) or (ws.engine.user and image.endswith("-uid:latest")))
    role = ws.engine.run("inspect", "-f", '{{index .Config.Labels "devcontainer-builder.role"}}', container)
    assert role == "fallback"
    remote_log = f"/workspaces/{ws.folder.name}/{ERROR_LOG}"
    assert state["error"]["error_log"] == remote_log
    text = ws.exec("cat", remote_log)
    assert evidence in text, "the error log carries the real failure"
    assert f"Failed step: {step}" in text
    first = login_shell(ws)
    assert "FALLBACK image" in first and f"Failed step: {step}" in first and remote_log in first
    assert "still runs the fallback image" in login_shell(ws), "later shells get a one-line reminder"
    kinds = ws.event_kinds()
    assert kinds.index("build_failed") < kinds.index("fallback_started") < kinds.index("fallback_running")
    reported = [(line.level, line.output) for line in coder.lines()]
    assert any(level == "error" and evidence in text for level, text in reported), "Coder got the failure"
    assert any(level == "warn" and "bringing up the fallback image" in text for level, text in reported)
    assert any(level == "warn" and "running on the fallback image" in text for level, text in reported)
    return text


def broken(remote: Remote, files: dict[str, str]) -> None:
    remote.commit({"README.md": "project\n", **files})


def test_a_clone_failure_gives_an_empty_workspace_holding_the_error_log(
    sandbox: Path, workspace, coder: CoderDouble
) -> None:
    url = f"file://{sandbox}/remotes/later.git"  # nothing there yet
    ws = workspace(url, name="later")
    run = ws.up()
    assert_degraded(ws, coder, run, step="clone", evidence="git clone")
    assert os.listdir(ws.folder) == [ERROR_LOG]
    # the repository appears: the next up clones into the folder and the real devcontainer replaces the fallback
    Remote(sandbox, "later").commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE})})
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.state()["status"] == "running"
    assert ERROR_LOG not in os.listdir(ws.folder)
    assert docker("inspect", "-f", "{{.Config.Image}}", ws.container()) == IMAGE


def test_an_invalid_config(remote: Remote, workspace, coder: CoderDouble) -> None:
    broken(remote, {".devcontainer/devcontainer.json": '{\n  "image": "' + IMAGE + '",\n'})
    ws = workspace(remote.url)
    text = assert_degraded(ws, coder, ws.up(), step="config", evidence="line 2, column")
    assert "truncated" in text
    assert run_git("status", "--porcelain", cwd=ws.folder) == ""


def test_a_config_without_image_or_dockerfile(remote: Remote, workspace, coder: CoderDouble) -> None:
    broken(remote, {".devcontainer/devcontainer.json": json.dumps({"name": "nothing to run"})})
    ws = workspace(remote.url)
    assert_degraded(ws, coder, ws.up(), step="config", evidence='"image", "build.dockerfile"')


@on_every_engine
def test_a_failing_run_step(remote: Remote, workspace, coder: CoderDouble, engine) -> None:
    broken(
        remote,
        {
            ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
            ".devcontainer/Dockerfile": f"FROM {IMAGE}\nRUN echo 'about to fail on purpose' && exit 42\n",
        },
    )
    ws = workspace(remote.url)
    text = assert_degraded(ws, coder, ws.up(), step="build image", evidence="An error occurred building the image")
    assert "about to fail on purpose" in text, "the build output around the failure is in the error log"


@pytest.mark.parametrize(
    ("config", "step", "evidence"),
    [({"image": "registry.invalid/nobody/nothing:1"}, "pull image", "docker pull registry.invalid/nobody/nothing:1"),
     ({"image": IMAGE, "features": {"ghcr.io/devcontainers/features/github-cli:1": {}}}, "build", "ENOTFOUND ghcr.io")],
    ids=["image", "feature"],
)  # fmt: skip
def test_an_image_or_feature_that_cannot_be_fetched(
    remote: Remote, workspace, config, step, evidence, coder: CoderDouble
) -> None:
    broken(remote, {".devcontainer/devcontainer.json": json.dumps(config)})
    ws = workspace(remote.url)
    assert_degraded(ws, coder, ws.up(), step=step, evidence=evidence)


@pytest.mark.parametrize(
    "hook", ["onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand", "postAttachCommand"]
)
def test_a_failing_lifecycle_command(remote: Remote, workspace, hook: str, coder: CoderDouble) -> None:
    broken(remote, {".devcontainer/devcontainer.json": json.dumps({"image": IMAGE, hook: "echo hook output; exit 3"})})
    ws = workspace(remote.url)
    text = assert_degraded(ws, coder, ws.up(), step=hook, evidence=f"{hook} from devcontainer.json failed")
    assert "hook output" in text


def test_a_late_hook_failing_in_the_container_in_use_keeps_that_container(
    remote: Remote, workspace, coder: CoderDouble
) -> None:
    remote.commit(
        {".devcontainer/devcontainer.json": json.dumps({"image": IMAGE, "postAttachCommand": "test ! -e /tmp/break"})}
    )
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    container = ws.container()
    ws.exec("sh", "-c", "echo installed by hand > /opt/my-tool && touch /tmp/break")  # work outside the folder
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["status"], state["fallback"], state["container_id"]) == ("running", False, container)
    assert state["error"]["step"] == "postAttachCommand"
    assert ws.containers() == [container], "no fallback, no second container"
    assert ws.exec("cat", "/opt/my-tool") == "installed by hand"
    assert "hook_failed" in ws.event_kinds() and "fallback_started" not in ws.event_kinds()
    assert any("postAttachCommand failed" in line for line in coder.outputs())
    assert "keeping it rather than replacing it" in run.stderr
    # once the hook passes again, the error is gone
    ws.exec("rm", "/tmp/break")
    assert ws.up().returncode == 0
    assert ws.state()["error"] is None and ws.containers() == [container]


def test_the_build_timeout(remote: Remote, workspace, coder: CoderDouble) -> None:
    broken(
        remote,
        {
            ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
            ".devcontainer/Dockerfile": f"FROM {IMAGE}\nRUN sleep 300\n",
        },
    )
    ws = workspace(remote.url, DEVCONTAINER_BUILD_TIMEOUT="6")
    assert_degraded(ws, coder, ws.up(), step="build timeout", evidence="DEVCONTAINER_BUILD_TIMEOUT")


def test_uncommitted_work_survives_a_failure_and_git_status_shows_only_it(
    remote: Remote, workspace, coder: CoderDouble
) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE}), "README.md": "v1\n"})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    # the user edits the config into something broken, and has other work in progress
    (ws.folder / ".devcontainer" / "devcontainer.json").write_text(
        json.dumps({"image": IMAGE, "postCreateCommand": "exit 9"})
    )
    (ws.folder / "README.md").write_text("my edit\n")
    (ws.folder / "notes.md").write_text("my notes\n")
    run = ws.up()
    assert_degraded(
        ws, coder, run, step="postCreateCommand", evidence="postCreateCommand from devcontainer.json failed"
    )
    assert sorted(line.strip() for line in run_git("status", "--porcelain", cwd=ws.folder).splitlines()) == [
        "?? notes.md",
        "M .devcontainer/devcontainer.json",
        "M README.md",
    ]
    assert (ws.folder / "README.md").read_text() == "my edit\n"
    assert (ws.folder / "notes.md").read_text() == "my notes\n"
    # inside the fallback the user sees the same files
    assert ws.exec("cat", f"/workspaces/{ws.folder.name}/notes.md") == "my notes"


@on_every_engine
def test_fixing_the_config_brings_the_real_devcontainer_back(remote: Remote, workspace, engine) -> None:
    broken(remote, {".devcontainer/devcontainer.json": json.dumps({"image": IMAGE, "postCreateCommand": "exit 3"})})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    fallback_container = ws.container()
    remote.commit(
        {".devcontainer/devcontainer.json": json.dumps({"image": IMAGE, "postCreateCommand": "touch /tmp/ok"})}
    )
    run = ws.up()
    assert run.returncode == 0, run.output
    state = ws.state()
    assert (state["status"], state["fallback"], state["error"]) == ("running", False, None)
    assert ws.containers() != [fallback_container] and len(ws.containers()) == 1
    ws.exec("test", "-f", "/tmp/ok")
    assert not (ws.folder / ERROR_LOG).exists()
    assert run_git("status", "--porcelain", cwd=ws.folder) == ""


def test_a_second_failure_reuses_the_fallback_and_rewrites_the_log(remote: Remote, workspace) -> None:
    broken(remote, {".devcontainer/devcontainer.json": json.dumps({"image": IMAGE, "postCreateCommand": "exit 3"})})
    ws = workspace(remote.url)
    assert ws.up().returncode == 0
    first = ws.container()
    broken(remote, {".devcontainer/devcontainer.json": '{"image": '})
    run = ws.up()
    assert run.returncode == 0, run.output
    assert ws.containers() == [first]
    assert "truncated" in (ws.folder / ERROR_LOG).read_text()


def test_a_broken_fallback_image_fails_with_both_errors(remote: Remote, workspace, coder: CoderDouble) -> None:
    broken(remote, {".devcontainer/devcontainer.json": '{"image": '})
    ws = workspace(remote.url, DEVCONTAINER_FALLBACK_IMAGE="registry.invalid/no/fallback:1")
    run = ws.up()
    assert run.returncode == 1
    state = ws.state()
    assert (state["status"], state["fallback"]) == ("failed", False)
    assert state["error"]["step"] == "config" and "truncated" in state["error"]["message"]
    assert "registry.invalid/no/fallback:1" in state["fallback_error"]["detail"]
    kinds = ws.event_kinds()
    assert kinds.index("build_failed") < kinds.index("fallback_started") < kinds.index("fallback_failed")
    errors = [line.output for line in coder.lines() if line.level == "error"]
    assert any("truncated" in text for text in errors)
    assert any("could not be brought up either" in text for text in errors)
    assert ws.containers() == []


def test_sigterm_during_the_build_is_not_recovered_from(remote: Remote, workspace) -> None:
    broken(remote, SLEEPING_BUILD)
    ws = workspace(remote.url)
    proc = ws.start_until_logged("build-started")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert ws.state()["status"] == "failed"
    assert "fallback_started" not in ws.event_kinds()
