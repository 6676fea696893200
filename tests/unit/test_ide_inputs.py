"""The editor's and the dotfiles' settings as inputs: what reaches the devcontainer CLI (which pastes the
dotfiles values into a shell script in the container) and the builder's own reads of the admin's files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.ide import write_vsix


def test_only_regular_files_in_the_vsix_folder_are_read_and_a_named_pipe_is_skipped(tmp_path: Path) -> None:
    """A named pipe called x.vsix would block the read (and `up`) for ever: it is skipped with a
    warning. Run in a child process given 30 s (a hang detector)."""
    write_vsix(tmp_path, "acme", "real", "1.0.0")
    os.mkfifo(tmp_path / "stuck.vsix")
    code = (
        "from devcontainer_builder.ide import vsix\n"
        "from devcontainer_builder.log import Log\n"
        "log = Log()\n"
        "log.warn = lambda text, **_: print(text)\n"
        f"print([p.id for p in vsix.index({str(tmp_path)!r}, log)])\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("vsix.index() blocked on a named pipe called stuck.vsix")
    assert done.stdout.strip().splitlines()[-1] == "['acme.real']", done.stdout + done.stderr
    assert "stuck.vsix is not a regular file" in done.stdout + done.stderr
