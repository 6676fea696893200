"""The CLI's JSON log becomes named steps and leveled lines; its stdout becomes an outcome."""

from __future__ import annotations

import json

import pytest
from devcontainer_builder.devcontainer_cli import driver as dc
from devcontainer_builder.log import Log
from support.sinks import Collect


def parse(
    *events: dict | str, finish: bool | None = None
) -> tuple[list[tuple[str, str]], list[dc.Step], dc.ProgressParser]:
    log = Log()
    sink = Collect()
    log.add_sink(sink)
    steps: list[dc.Step] = []
    parser = dc.ProgressParser(log, steps.append)
    for event in events:
        parser.feed(event if isinstance(event, str) else json.dumps(event))
    if finish is not None:
        parser.finish(failed=not finish)
    return sink.pairs(), steps, parser


BUILD = "Run: docker build -f /tmp/x/Dockerfile-with-features -t vsc-app-1 /ws/.devcontainer"


def test_levels_come_from_the_cli_not_from_words() -> None:
    lines, _, _ = parse(
        {"type": "text", "level": 3, "timestamp": 1, "text": "0 errors, 0 warnings"},
        {"type": "text", "level": 5, "timestamp": 2, "text": "a real error"},
        {"type": "text", "level": 1, "timestamp": 3, "text": "error in a trace line"},
        {"type": "text", "level": 4, "timestamp": 4, "text": "careful"},
    )
    assert lines == [
        ("info", "0 errors, 0 warnings"),
        ("error", "a real error"),
        ("trace", "error in a trace line"),
        ("warn", "careful"),
    ]


def test_the_offline_control_manifest_line_is_not_an_error() -> None:
    lines, _, _ = parse(
        {
            "type": "text",
            "level": 5,
            "timestamp": 1,
            "text": "Failed to fetch control manifest: getaddrinfo ENOTFOUND containers.dev",
        }
    )
    assert lines[0][0] == "debug"


def test_start_and_stop_pairs_become_steps_with_the_cli_durations() -> None:
    _, steps, _ = parse(
        {"type": "start", "level": 3, "timestamp": 1000, "text": BUILD},
        {"type": "raw", "level": 3, "timestamp": 1500, "text": "Step 1/2 : FROM debian\n"},
        {"type": "stop", "level": 3, "timestamp": 4500, "text": BUILD, "startTimestamp": 1000},
        {"type": "start", "level": 2, "timestamp": 4600, "text": "Run: docker buildx version"},
        {"type": "stop", "level": 2, "timestamp": 4700, "text": "Run: docker buildx version", "startTimestamp": 4600},
    )
    assert [(s.name, s.status, s.seconds) for s in steps] == [("build image", "succeeded", 3.5)]


def test_lifecycle_progress_events_become_steps() -> None:
    lines, steps, _ = parse(
        {"type": "progress", "name": "Running postCreateCommand...", "status": "running", "stepDetail": "make setup"},
        {"type": "raw", "level": 3, "timestamp": 2, "text": "setting up\n", "channel": "postCreate"},
        {"type": "progress", "name": "Running postCreateCommand...", "status": "failed"},
    )
    assert [(s.name, s.status) for s in steps] == [("postCreateCommand", "failed")]
    assert ("info", "» postCreateCommand: make setup") in lines
    assert ("info", "setting up") in lines


def test_raw_chunks_are_joined_into_whole_lines() -> None:
    lines, _, _ = parse(
        {"type": "raw", "level": 3, "timestamp": 1, "text": "Step 1/2 : FROM scratch"},
        {"type": "raw", "level": 3, "timestamp": 2, "text": "\n ---> \nStep 2/2 : COPY . /x\n"},
        {"type": "raw", "level": 3, "timestamp": 3, "text": "partial"},
        finish=True,
    )
    assert [text for _, text in lines] == ["Step 1/2 : FROM scratch", " --->", "Step 2/2 : COPY . /x", "partial"]


def test_plain_text_such_as_stack_traces_is_kept_at_debug() -> None:
    lines, _, _ = parse("Error: boom", "    at async Sd (/cli.js:224:3217)")
    assert lines == [("debug", "Error: boom"), ("debug", "    at async Sd (/cli.js:224:3217)")]


def test_steps_left_open_by_a_failure_are_reported_failed() -> None:
    _, steps, _ = parse({"type": "start", "level": 3, "timestamp": 1, "text": BUILD}, finish=False)
    assert [(s.name, s.status) for s in steps] == [("build image", "failed")]


def test_outcome_success_and_error() -> None:
    ok = dc.parse_outcome(
        '{"outcome":"success","containerId":"abc","remoteUser":"vscode","remoteWorkspaceFolder":"/workspaces/app"}\n',
        0,
        False,
    )
    assert (ok.ok, ok.container_id, ok.remote_user, ok.remote_workspace_folder) == (
        True,
        "abc",
        "vscode",
        "/workspaces/app",
    )
    error = dc.parse_outcome(
        '{"outcome":"error","message":"Command failed: exit 3","description":"postCreateCommand from devcontainer.json failed.","containerId":"def"}',
        1,
        False,
    )
    assert (error.ok, error.container_id, error.description) == (
        False,
        "def",
        "postCreateCommand from devcontainer.json failed.",
    )
    empty = dc.parse_outcome("", 1, False)
    assert not empty.ok and "no outcome" in empty.message


def test_up_arguments_are_a_list_with_every_pass_through() -> None:
    args = dc.up_args(
        "devcontainer",
        workspace="/workspaces/app",
        docker_path="docker",
        id_labels={"a": "1"},
        config="/workspaces/app/.devcontainer/devcontainer.json",
        override=False,
        cache_from=("type=registry,ref=r/app:cache", "r/app:latest"),
        cache_to="type=inline",
        remove_existing=True,
        no_lockfile=True,
        update_remote_user_uid="never",
    )
    assert args[:2] == ["devcontainer", "up"]
    assert args.count("--cache-from") == 2
    assert args[args.index("--cache-to") : args.index("--cache-to") + 2] == ["--cache-to", "type=inline"]
    assert "--remove-existing-container" in args and "--no-lockfile" in args
    assert args[args.index("--id-label") : args.index("--id-label") + 2] == ["--id-label", "a=1"]


def test_the_policy_guard_is_shown_as_the_engine_it_stands_for() -> None:
    log, lines = Log(), []
    log.add_sink(type("S", (), {"write": lambda self, line: lines.append(line.text), "close": lambda self: None})())
    steps: list = []
    parser = dc.ProgressParser(log, steps.append, ("/opt/dcb/engine/docker-guard", "docker"))
    start = '{"type": "start", "level": 2, "timestamp": 1, "text": "Run: /opt/dcb/engine/docker-guard build -f D ."}'
    parser.feed(start)
    parser.feed(start.replace('"start"', '"stop"').replace('"timestamp": 1', '"timestamp": 9, "startTimestamp": 1'))
    assert [step.name for step in steps] == ["build image"]
    assert not [line for line in lines if "docker-guard" in line]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Run: docker buildx build --load -f D .", "build image"),
        ("Run: docker build -t dev_container_feature_content_temp -f D .", "prepare features"),
        ("Run: /usr/bin/podman pull debian", "pull image"),
        ("Run: docker run --sig-proxy=false img", None),
        ("Run: notdocker build .", None),
        ("Starting container", "start container"),
    ],
)
def test_steps_are_named_whichever_engine_cli_runs_them(text: str, name: str | None) -> None:
    assert dc.step_name(text) == name
