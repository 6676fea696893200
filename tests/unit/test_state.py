"""State files: atomic replacement, append-only events, a cut line never breaks the reader, a full disk
never breaks the build."""

from __future__ import annotations

import json
import os
import threading

from devcontainer_builder.state.record import ErrorInfo, Event, State, StepRecord
from devcontainer_builder.state.report import collect, render, short
from devcontainer_builder.state.store import StateDir


def test_state_is_replaced_whole(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.write_state(State(status="building"))
    dirs.write_state(State(status="running", container_id="abc"))
    data = json.loads((tmp_path / "state.json").read_text())
    assert (data["status"], data["container_id"]) == ("running", "abc")
    assert data["rebuild_suggested"] is False and data["error"] is None, "every field of the contract is written"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_readers_never_see_a_partial_state(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.write_state(State(status="building", build_log="x" * 100_000))
    stop = threading.Event()
    seen = []

    def read() -> None:
        while not stop.is_set():
            seen.append(dirs.read_state().status)

    reader = threading.Thread(target=read)
    reader.start()
    for index in range(200):
        dirs.write_state(State(status="running" if index % 2 else "building", build_log="x" * 100_000))
    stop.set()
    reader.join()
    assert set(seen) <= {"running", "building"}


def test_a_state_file_from_another_version_is_read_field_by_field(tmp_path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps(
            {
                "status": "degraded",
                "error": {"message": "boom", "step": "config", "unknown": 1},
                "steps": [{"name": "build image", "status": "failed", "seconds": 2}, "junk"],
                "pid": "not a number",
                "something_new": True,
            }
        )
    )
    state = StateDir(str(tmp_path)).read_state()
    assert state.status == "degraded" and state.pid == 0
    assert state.error == ErrorInfo("boom", "config")
    assert state.steps == [StepRecord("build image", "failed", 2.0)]


def test_events_are_appended_one_per_line_and_a_cut_line_is_skipped(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.record_event(Event.BUILD_STARTED, workspace_folder="/w")
    with open(dirs.events_file, "a") as handle:
        handle.write('{"time": "x", "kind": "cut')  # what a full disk leaves
    dirs.record_event(Event.CONTAINER_RUNNING, container_id="abc")
    kinds = [event["kind"] for event in dirs.read_events()]
    assert kinds == ["build_started", "container_running"]


def test_events_after_a_cursor(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.record_event(Event.BUILD_STARTED)
    first, cursor = dirs.events_after(None)
    assert [e["kind"] for e in first] == ["build_started"]
    dirs.record_event(Event.CONTAINER_RUNNING)
    later, cursor = dirs.events_after(cursor)
    assert [e["kind"] for e in later] == ["container_running"]
    assert dirs.events_after(cursor)[0] == []
    assert [e["kind"] for e in dirs.events_after("bogus")[0]] == ["build_started", "container_running"]


def test_a_limit_pages_forward_from_the_cursor_through_every_event(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    for number in range(7):
        dirs.record_event(Event.STEP, number=number)
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = dirs.events_after(cursor, limit=3)
        if not page:
            break
        seen += [event["number"] for event in page]
        pages += 1
    assert seen == list(range(7)) and pages == 3, "the first three from the start, then the next, none lost"
    assert [event["number"] for event in dirs.read_events(limit=2)] == [5, 6], "status shows the latest"


def test_a_new_build_log_keeps_the_previous_one(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    with open(dirs.start_build_log("0123456789ab"), "a") as handle:
        handle.write("first build\n")
    assert dirs.build_log_id() == "0123456789ab"
    dirs.start_build_log("ba9876543210")
    assert (tmp_path / "build.previous.log").read_text().endswith("first build\n")
    assert dirs.build_log_id() == "ba9876543210", "the log says which build wrote it"


def test_writes_that_fail_are_reported_once_per_file(tmp_path) -> None:
    (tmp_path / "blocked").write_text("a file where the state dir should be")
    reported = []
    dirs = StateDir(str(tmp_path / "blocked" / "state"), on_error=lambda path, err: reported.append(path))
    for _ in range(3):
        assert dirs.write_state(State(status="building")) is False
        dirs.record_event(Event.BUILD_STARTED)
    assert reported == [dirs.state_file, dirs.events_file]


def test_a_write_that_fails_keeps_the_last_good_state(tmp_path, monkeypatch) -> None:
    dirs = StateDir(str(tmp_path))
    assert dirs.write_state(State(status="running", container_id="good"))

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("devcontainer_builder.system.files.write_atomic", full_disk)
    assert dirs.write_state(State(status="building")) is False
    assert dirs.read_state().container_id == "good"


def test_an_event_nested_deeper_than_the_parser_goes_is_skipped(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.ensure()
    dirs.record_event(Event.BUILD_STARTED)
    with open(dirs.events_file, "a", encoding="utf-8") as handle:
        handle.write('{"time": "x", "kind": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    dirs.record_event(Event.BUILD_FAILED)
    assert [event["kind"] for event in dirs.read_events()] == ["build_started", "build_failed"]


def test_status_shows_no_control_character_the_repository_put_in_a_name(tmp_path) -> None:
    """A changed file named with an escape sequence (a terminal's title, a cleared screen) is shown, defused."""
    dirs = StateDir(str(tmp_path))
    dirs.ensure()
    evil = ".devcontainer/\x1b]2;PWNED\x07\x1b[2Jevil\x9b31m"
    dirs.write_state(State(status="running", branch="main\x1b[2J", rebuild_suggested=True, changed_files=[evil]))
    report = collect(dirs)
    for text in (render(report), short(report)):
        assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text), repr(text)
    assert "PWNED" in render(report) and "evil" in render(report), "the name is still there to read"
