"""What a build takes, as the supervisor's rebuild suggestions see it: cheap to follow, whatever is in
the build context."""

from __future__ import annotations

import os
from pathlib import Path

from devcontainer_builder.workspace import fingerprint


def context(tmp_path: Path, copy: str) -> tuple[Path, str]:
    dot = tmp_path / ".devcontainer"
    dot.mkdir()
    (dot / "Dockerfile").write_text(f"FROM scratch\nCOPY {copy} /data/\n")
    config = dot / "devcontainer.json"
    config.write_text('{"build": {"dockerfile": "Dockerfile", "context": ".."}}')
    return tmp_path, str(config)


def test_a_huge_file_in_the_build_context_is_followed_by_size_and_time_not_read(tmp_path: Path) -> None:
    workspace, config = context(tmp_path, "data")
    (workspace / "data").mkdir()
    huge = workspace / "data" / "dump.bin"
    with open(huge, "wb") as handle:
        handle.truncate(20 * 1024**3)  # 20 GiB, sparse: reading it would take minutes
    before = fingerprint.build_inputs(str(workspace), config)
    assert before.files["data/dump.bin"].startswith("big ")
    os.utime(huge, ns=(1, 1))
    after = fingerprint.build_inputs(str(workspace), config)
    assert fingerprint.changed_files(before, after) == ["data/dump.bin"], "a save changes its time: it counts"


def test_a_link_to_a_folder_added_to_a_copied_folder_counts(tmp_path: Path) -> None:
    workspace, config = context(tmp_path, "data")
    (workspace / "data").mkdir()
    (workspace / "data" / "a.txt").write_text("a\n")
    (workspace / "elsewhere").mkdir()
    before = fingerprint.build_inputs(str(workspace), config)
    (workspace / "data" / "more").symlink_to(workspace / "elsewhere")
    after = fingerprint.build_inputs(str(workspace), config)
    assert fingerprint.changed_files(before, after) == ["data/more"]
    os.unlink(workspace / "data" / "more")
    (workspace / "data" / "more").symlink_to("/etc")
    assert fingerprint.changed_files(after, fingerprint.build_inputs(str(workspace), config)) == ["data/more"]


def test_a_folder_copied_whole_is_followed_with_every_folder_under_it(tmp_path: Path) -> None:
    workspace, config = context(tmp_path, "app/")
    (workspace / "app" / "data").mkdir(parents=True)
    (workspace / "app" / "data" / "a.txt").write_text("a\n")
    inputs = fingerprint.build_inputs(str(workspace), config)
    assert {str(workspace / "app"), str(workspace / "app" / "data")} <= set(inputs.folders), (
        "a file created in app/ itself, or in a new folder under it, is part of the build"
    )


def test_a_config_half_way_through_an_edit_leaves_the_rest_of_the_comparison_right(tmp_path: Path) -> None:
    workspace, config = context(tmp_path, "data")
    (workspace / "data").mkdir()
    (workspace / "data" / "a.txt").write_text("a\n")
    baseline = fingerprint.build_inputs(str(workspace), config)
    Path(config).write_text('{ "build": {"dockerfile": ')
    current = fingerprint.build_inputs(str(workspace), config, baseline=baseline)
    assert fingerprint.changed_files(baseline, current) == [".devcontainer/devcontainer.json"]
    (workspace / "data" / "a.txt").write_text("edited\n")
    current = fingerprint.build_inputs(str(workspace), config, baseline=baseline)
    assert fingerprint.changed_files(baseline, current) == [".devcontainer/devcontainer.json", "data/a.txt"]
