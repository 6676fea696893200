"""The editor's and the dotfiles' settings as inputs: what reaches the devcontainer CLI (which pastes the
dotfiles values into a shell script in the container) and the builder's own reads of the admin's files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from devcontainer_builder.errors import InputError
from devcontainer_builder.ide import vsix
from devcontainer_builder.log import Log
from devcontainer_builder.settings import options as opts
from support.ide import write_vsix

REPO = {"DEVCONTAINER_REPOSITORY": "/r"}
TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"


def problems(**env: str) -> str:
    with pytest.raises(InputError) as caught:
        opts.load("up", {}, {**REPO, **env})
    return "\n".join(caught.value.problems)


@pytest.mark.parametrize(
    "url",
    [
        f"https://{TOKEN}@github.com/me/dots",
        f"https://oauth2:{TOKEN}@gitlab.example/me/dots.git",
        f"git://{TOKEN}@git.example/me/dots.git",
        f"ssh://git:{TOKEN}@git.example/me/dots.git",
    ],
    ids=["token-as-user", "user-and-token", "git-user", "ssh-password"],
)
def test_a_dotfiles_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    found = problems(DEVCONTAINER_DOTFILES_REPOSITORY=url)
    assert "DEVCONTAINER_DOTFILES_REPOSITORY must not carry credentials" in found
    assert TOKEN not in found


@pytest.mark.parametrize("value", ["/srv/dotfiles.git", "file:///srv/dotfiles.git", "./dots", "../dots", "~/dots"])
def test_a_dotfiles_path_is_refused_because_the_clone_runs_inside_the_container(value: str) -> None:
    """A path of the builder's side does not exist where the CLI clones (in the container), and the
    container is never handed one of the builder's paths: a clear error, not dotfiles silently missing."""
    found = problems(DEVCONTAINER_DOTFILES_REPOSITORY=value)
    assert "not a path" in found and "inside the devcontainer" in found


@pytest.mark.parametrize(
    "value",
    [
        "/nonexistent;touch${IFS}/tmp/dotfiles-ran;",
        "https://git.example/gitweb/?p=dots.git;a=summary",
        "https://git.example/dots.git&&id",
        "https://git.example/$(id).git",
        "https://git.example/`id`.git",
        "acme/dots|id",
        "git@git.example:dots.git>/tmp/x",
        "https://git.example/{a,b}.git",
        "https://git.example/*.git",
        "https://git.example/dots.git#x",
        "https://git.example/it's.git",
    ],
)
def test_a_dotfiles_repository_with_a_shell_character_is_refused(value: str) -> None:
    assert "DEVCONTAINER_DOTFILES_REPOSITORY" in problems(DEVCONTAINER_DOTFILES_REPOSITORY=value)


@pytest.mark.parametrize(
    "value",
    ["install.sh';id;'", 'install.sh"$(id)"', "install.sh\nid", "`id`", "$HOME/x.sh", "a b.sh", "x.sh;id"],
)
def test_a_dotfiles_install_command_with_a_shell_character_is_refused(value: str) -> None:
    found = problems(DEVCONTAINER_DOTFILES_REPOSITORY="acme/dots", DEVCONTAINER_DOTFILES_INSTALL_COMMAND=value)
    assert "DEVCONTAINER_DOTFILES_INSTALL_COMMAND must be" in found


def test_a_dotfiles_install_command_that_is_a_path_is_accepted() -> None:
    for value in ("install.sh", "setup/install.sh", "./bootstrap", "/home/coder/dotfiles/x-1.0+b.sh"):
        env = {**REPO, "DEVCONTAINER_DOTFILES_REPOSITORY": "acme/dots", "DEVCONTAINER_DOTFILES_INSTALL_COMMAND": value}
        assert opts.load("up", {}, env).dotfiles_install_command == value


class _Drip(BaseHTTPRequestHandler):
    """A mirror that answers at once, then sends its body a byte at a time, each well inside the read
    timeout: a slow or hostile mirror, or a proxy between."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 1024 * 1024))
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)  # the server's pace, not the test's synchronisation
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


def test_a_mirror_that_drips_is_given_up_within_the_download_bound(tmp_path: Path) -> None:
    """DOWNLOAD_TIMEOUT bounds the whole download, not only the gaps between 1 MiB chunks: here it is
    1 s and the mirror sends 20 bytes a second. obtain() runs in a child process given 60 s (a hang
    detector, not a speed goal)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/code-server.tar.gz"
    code = (
        "from devcontainer_builder.ide import source\n"
        "from devcontainer_builder.log import Log\n"
        "source.DOWNLOAD_TIMEOUT = 1.0\n"
        "try:\n"
        f"    source.obtain({url!r}, 'ab' * 32, {str(tmp_path)!r}, Log())\n"
        "except source.SourceError as err:\n"
        "    print('gave up:', err)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("obtain() was still downloading 60 s into a DOWNLOAD_TIMEOUT of 1 s")
    finally:
        server.shutdown()
    assert "took longer than 1 s" in done.stdout, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == [], "the partial download is removed"


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
