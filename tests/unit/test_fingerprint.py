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
