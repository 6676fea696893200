"""The editor's and the dotfiles' settings as inputs: what reaches the devcontainer CLI (which pastes the
dotfiles values into a shell script in the container) and the builder's own reads of the admin's files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from devcontainer_builder.ide import vsix
from devcontainer_builder.log import Log
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


def test_a_vsix_reached_through_links_is_known_by_the_file_they_lead_to(tmp_path: Path) -> None:
    """What `docker cp` is given is the regular file, never the link (which it would copy as a link,
    dangling in the container): as in a Kubernetes ConfigMap volume, links to links."""
    folder = tmp_path / "configmap"
    real = write_vsix(folder / "..2026_12_07.1", "acme", "offline", "0.1.0", filename="offline.vsix")
    (folder / "..data").symlink_to("..2026_12_07.1")
    (folder / "offline.vsix").symlink_to("..data/offline.vsix")
    (folder / "dangling.vsix").symlink_to("nowhere.vsix")
    packages = vsix.index(str(folder), Log())
    assert [(p.id, p.path) for p in packages] == [("acme.offline", str(real.resolve()))]
