"""`up` streaming a real build to the Coder double: what arrives, at which level, and what never does."""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from devcontainer_builder.coder import logs as coder_log
from devcontainer_builder.devcontainer_cli import control_manifest
from support.builder import SLEEPING_BUILD
from support.coder import CoderDouble, refused_url
from support.githttp import GitHTTPServer
from support.images import BASE_IMAGE
from support.repos import Remote

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

IMAGE = BASE_IMAGE


def coder_env(double: CoderDouble) -> dict[str, str]:
    return {"CODER_AGENT_URL": double.url, "CODER_AGENT_TOKEN": double.token}


def fresh_control_manifest(env: dict[str, str]) -> None:
    path = Path(control_manifest.cache_path(env) or "")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(control_manifest.EMPTY))
    path.touch()


def build_log_info_lines(path: Path) -> list[str]:
    """The info-and-above lines of build.log, as the Coder sink received them."""
    lines = []
    for raw in path.read_text().splitlines():
        match = re.match(r"^\S+ (\w+)\s+\[[^\]]+\] (.*)$", raw)
        if match and match.group(1) in ("info", "warn", "error"):
            lines.append(match.group(2))
    return lines


def test_a_real_build_streams_every_step_in_order_at_the_right_levels(remote: Remote, make_workspace, coder) -> None:
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {"build": {"dockerfile": "Dockerfile"}, "postCreateCommand": "echo 'post-create says: error: none'"}
            ),
            # a unique comment keeps the RUN step out of the layer cache of earlier test runs
            ".devcontainer/Dockerfile": f"FROM {IMAGE}\nRUN echo 'compiled: 0 errors, 2 warnings' && echo 'Error-looking text on stderr' >&2 # {uuid.uuid4()}\n",
        }
    )
    ws = make_workspace(remote.url, **coder_env(coder))
    # the manifest as a fetch within the last minutes left it: containers.dev is unreachable on test
    # machines, and the note a stale cache brings (tested in unit/test_control_manifest.py) is not this test's
    fresh_control_manifest(ws.builder_env())
    run = ws.up()
    assert run.returncode == 0, run.output
    outputs = coder.outputs()
    for expected in ("» build image", "compiled: 0 errors, 2 warnings", "post-create says: error: none"):
        assert any(expected in text for text in outputs), expected
    assert any(text.startswith("✔ build image") for text in outputs)
    assert outputs[0].startswith("devcontainer-builder up:")
    assert outputs[-1].startswith("workspace running")
    levels = {line.output: line.level for line in coder.lines()}
    assert levels["compiled: 0 errors, 2 warnings"] == "info"
    assert levels["post-create says: error: none"] == "info"
    assert not [line for line in coder.lines() if line.level == "error"], "a clean build logs no error"
    assert not [text for text in outputs if "control manifest" in text]
    assert outputs == build_log_info_lines(ws.state_dir / "build.log"), "Coder gets the log in order, all of it"
    assert "✔ build image" in run.stdout, "the terminal still gets everything"
    assert coder.agent.sources[coder_log.source_id(str(ws.folder))]["display_name"] == "Devcontainer build"


def test_a_failed_build_reports_its_error_to_coder(remote: Remote, make_workspace, coder) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE, "postCreateCommand": "exit 7"})})
    ws = make_workspace(remote.url, **coder_env(coder))
    run = ws.up()
    assert run.returncode == 0  # degraded, on the fallback image
    errors = [line.output for line in coder.lines() if line.level == "error"]
    assert any("postCreateCommand" in text for text in errors)
    assert any(text.startswith("devcontainer up failed") for text in errors)


def test_secrets_never_reach_coder_or_the_terminal(
    git_http: GitHTTPServer, sandbox: Path, make_workspace, coder
) -> None:
    secret = git_http.token
    Remote(sandbox, "seeded").commit(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "build": {"dockerfile": "Dockerfile", "args": {"SEED": secret}},  # a build arg
                    "containerEnv": {"SEED_ENV": secret},  # an environment variable
                    "postCreateCommand": 'echo "env says $SEED_ENV"',
                }
            ),
            ".devcontainer/Dockerfile": f'FROM {IMAGE}\nARG SEED\nRUN echo "build arg says $SEED"\n',
        }
    )
    url = git_http.url("seeded").replace("http://", f"http://x-access-token:{secret}@")  # the repo URL
    ws = make_workspace(
        url, name="seeded", DEVCONTAINER_LOG_LEVEL="trace", DEVCONTAINER_CODER_LOG_LEVEL="trace", **coder_env(coder)
    )
    run = ws.up()
    assert run.returncode == 0, run.output
    bodies = coder.bodies()
    for leak in (secret, coder.token):
        assert leak not in bodies
        assert leak not in run.output
        assert leak not in ws.build_log()
    redacted = [text for text in coder.outputs() if "********" in text]
    assert any("build arg says ********" in text for text in redacted)
    assert any("env says ********" in text for text in redacted)


def test_coder_down_does_not_hold_up_the_build(remote: Remote, make_workspace) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE})})
    ws = make_workspace(
        remote.url, CODER_AGENT_URL=refused_url(), CODER_AGENT_TOKEN="2b1f0d5e-3c4a-4f6b-8e9d-0a1b2c3d4e5f"
    )
    run = ws.up()
    assert run.returncode == 0, run.output
    assert run.stderr.count("is not answering") == 1
    assert ws.state()["status"] == "running"


def test_a_black_holed_coder_does_not_hold_up_the_build(remote: Remote, make_workspace, coder) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE})})
    coder.black_hole = True
    ws = make_workspace(remote.url, **coder_env(coder))
    run = ws.up()
    assert run.returncode == 0, run.output
    # the build stops waiting once a request hangs unanswered (`make bench` measures that it costs nothing)
    assert "were not sent to Coder before exit (no answer in time)" in run.stderr
    assert ws.state()["status"] == "running"


def test_coder_settings_that_do_not_go_together_are_bad_input(remote: Remote, make_workspace) -> None:
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": IMAGE})})
    ws = make_workspace(remote.url)
    run = ws.up(CODER_AGENT_URL="http://127.0.0.1:1")
    assert run.returncode == 2 and "CODER_AGENT_TOKEN" in run.stderr
    run = ws.up(CODER_AGENT_URL="ftp://coder", CODER_AGENT_TOKEN="not-a-uuid")
    assert run.returncode == 2
    assert "CODER_AGENT_URL" in run.stderr and "CODER_AGENT_TOKEN" in run.stderr
    assert "not-a-uuid" not in run.stderr, "even a malformed token is not echoed"


def test_sigterm_flushes_the_tail_of_the_log_to_coder(remote: Remote, make_workspace, coder) -> None:
    remote.commit(SLEEPING_BUILD)
    ws = make_workspace(remote.url, **coder_env(coder))
    proc = ws.start_until_logged("build-started")
    deadline = time.monotonic() + 30
    while "build-started" not in coder.outputs():  # streaming works before the signal
        assert time.monotonic() < deadline, "the RUN step's output never reached Coder"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    # the last lines, written after the signal, still reached Coder before the builder exited
    errors = [line.output for line in coder.lines() if line.level == "error"]
    assert any("stopped by SIGTERM" in text for text in errors)
