"""State files: atomic replacement, append-only events, a cut line never breaks the reader."""

from __future__ import annotations

import json
import os
import threading

from devcontainer_builder.state import StateDir


def test_state_is_replaced_whole(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.write_state({"status": "building"})
    dirs.write_state({"status": "running", "container_id": "abc"})
    assert json.loads((tmp_path / "state.json").read_text())["status"] == "running"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_readers_never_see_a_partial_state(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.write_state({"status": "building", "padding": "x" * 100_000})
    stop = threading.Event()
    seen = []

    def read() -> None:
        while not stop.is_set():
            seen.append(dirs.read_state().get("status"))

    reader = threading.Thread(target=read)
    reader.start()
    for index in range(200):
        dirs.write_state({"status": "running" if index % 2 else "building", "padding": "x" * 100_000})
    stop.set()
    reader.join()
    assert set(seen) <= {"running", "building"}


def test_events_are_appended_one_per_line_and_a_cut_line_is_skipped(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    dirs.record_event("build_started", workspace_folder="/w")
    with open(dirs.events_file, "a") as handle:
        handle.write('{"time": "x", "kind": "cut')  # what a full disk leaves
    dirs.record_event("container_running", container_id="abc")
    kinds = [event["kind"] for event in dirs.read_events()]
    assert kinds == ["build_started", "container_running"]


def test_a_new_build_log_keeps_the_previous_one(tmp_path) -> None:
    dirs = StateDir(str(tmp_path))
    with open(dirs.start_build_log(), "w") as handle:
        handle.write("first build\n")
    dirs.start_build_log()
    assert (tmp_path / "build.previous.log").read_text() == "first build\n"
