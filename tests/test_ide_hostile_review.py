"""A hostile review of the editor (issue 20): each test is a defect found by attacking what docs/ide.md and
docs/configuration.md promise, written to FAIL until it is fixed. Severity in each docstring (high: secret
leak, escape, lost bytes, build failed by the editor; medium: editor hijacked or denied by the repository,
behaviour against the docs; low: messages, docs drift).

The docker tests stand up a workspace with the real code-server from the local mirror and the gallery
double, as tests/test_ide.py does (its fixtures are reused)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from devcontainer_builder.errors import InputError
from devcontainer_builder.settings import options as opts
from support.ide import dotfiles_repository, write_vsix
from support.images import FALLBACK_IMAGE
from support.repos import Remote

# the editor's fixtures and helpers (a fixture imported into a module is a fixture there)
from test_ide import (  # noqa: F401 - fixtures, used by name
    USER,
    code_servers,
    coder,
    gallery,
    ide_env,
    ide_volumes,
    mirror,
    tarball,
)

REPO = {"DEVCONTAINER_REPOSITORY": "/r"}


# --- without an engine ------------------------------------------------------------------------------


def test_a_dotfiles_url_with_a_token_as_its_user_name_is_refused() -> None:
    """MEDIUM - secret in argv/logs/the container. DotfilesRepository refuses a URL's password ("it would
    be shown in logs and the container") but not its user name, which is where GitHub takes a token:
    https://<token>@github.com/me/dotfiles.git passes, and goes into the devcontainer CLI's argv on the
    builder's side (`--dotfiles-repository ...`), the CLI's output, and ~/dotfiles/.git/config in the
    container. The other URL settings (WebUrl: DEVCONTAINER_IDE_SOURCE, the gallery) refuse a user name."""
    env = {
        **REPO,
        "DEVCONTAINER_DOTFILES_REPOSITORY": "https://ghp_0123456789abcdefghijklmnopqrstuvwxyz@github.com/me/dots",
    }
    with pytest.raises(InputError) as caught:
        opts.load("up", {}, env)
    assert any("DEVCONTAINER_DOTFILES_REPOSITORY" in problem for problem in caught.value.problems)


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
    """MEDIUM - a wait without its bound (docs/ide.md: "downloads it (bounded in size and time)"). obtain()
    checks DOWNLOAD_TIMEOUT only between 1 MiB chunks, and requests' iter_content(1 MiB) blocks until a
    whole MiB came (urllib3 2 reads exactly `amt`), while each recv() is inside READ_TIMEOUT: a mirror that
    sends a byte every few seconds holds `up` for days. Here DOWNLOAD_TIMEOUT is 1 s and the mirror sends
    20 bytes a second; obtain() is run in a child process given 60 s (a hang detector, not a speed goal)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/code-server.tar.gz"
    code = (
        "import sys\n"
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
    assert "gave up" in done.stdout, done.stdout + done.stderr


def test_a_fifo_in_the_vsix_folder_does_not_hang_up(tmp_path: Path) -> None:
    """LOW - a wait without a bound. vsix.index() opens every *.vsix in DEVCONTAINER_EXTENSIONS_FOLDER with
    zipfile, without looking at what it is: a named pipe (or a device) called x.vsix blocks open() for
    ever, and with it `up`. The folder is the admin's, but often a shared or synced one; only regular
    files should be read (as the config's own files are: docs/security.md "only regular files are
    hashed"). Run in a child process given 30 s (a hang detector)."""
    os.mkfifo(tmp_path / "stuck.vsix")
    code = f"from devcontainer_builder.ide import vsix\nprint(vsix.index({str(tmp_path)!r}))\n"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("vsix.index() blocked on a named pipe called stuck.vsix")
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# --- a real workspace -------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
def test_the_running_editor_uses_the_admins_gallery_and_holds_no_secret(
    make_workspace,
    remote: Remote,
    ide_env: dict[str, str],  # noqa: F811
    gallery,  # noqa: F811
) -> None:
    """MEDIUM - behaviour against the docs/issue. The admin's gallery (DEVCONTAINER_EXTENSIONS_GALLERY,
    "the admin's Open VSX-compatible gallery" of issue 20) is given only to the builder's
    `--install-extension` runs; code-server itself is launched without EXTENSIONS_GALLERY, so the
    editor's Extensions view searches and updates from code-server's built-in default (open-vsx.org) - on
    a closed network, nothing; elsewhere, past the admin's choice. (Checked first, and held: neither the
    agent's token nor the git token is in code-server's environment or argv.)"""
    config = {"image": FALLBACK_IMAGE, "remoteUser": USER, "customizations": {"vscode": {"extensions": ["acme.hello"]}}}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = make_workspace(remote.url, **ide_env, GH_TOKEN="ghp_hostilereviewtoken0123456789")
    result = ws.up()
    assert result.returncode == 0, result.output
    pid = ws.state()["ide"]["pid"]
    environ = ws.exec("sh", "-c", f"tr '\\000' '\\n' < /proc/{pid}/environ", user=USER)
    argv = ws.exec("sh", "-c", f"tr '\\000' ' ' < /proc/{pid}/cmdline", user=USER)
    for secret in (ide_env["CODER_AGENT_TOKEN"], "ghp_hostilereviewtoken0123456789"):
        assert secret not in environ and secret not in argv
        found = ws.exec(
            "sh",
            "-c",
            f"grep -rlsF -e '{secret}' / --exclude-dir=proc --exclude-dir=sys 2>/dev/null || true",
            user="root",
        )
        assert found.strip() == "", f"a secret in the container's files: {found}"
    assert gallery.service_url in environ, f"code-server runs with: {argv}\n{environ}"


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
def test_a_dotfiles_path_on_the_builders_side_is_applied(make_workspace, remote: Remote, sandbox: Path) -> None:
    """MEDIUM - behaviour against the docs. DEVCONTAINER_DOTFILES_REPOSITORY takes "an absolute path (a
    repository the builder can read: tests, a VM's disk)" (settings/types.py; docs/ide.md: "or a path"),
    and only checks that it starts with '/'. But the devcontainer CLI runs `git clone <it> ~/dotfiles`
    inside the container, where the builder's path does not exist: the dotfiles are never applied, and
    the build log says only that they "could not be installed"."""
    dotfiles = dotfiles_repository(sandbox / "served", '#!/bin/sh\necho applied > "$HOME/.dotfiles-applied"\n')
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE, "remoteUser": USER})})
    ws = make_workspace(remote.url, DEVCONTAINER_DOTFILES_REPOSITORY=str(dotfiles))
    result = ws.up()
    assert result.returncode == 0, result.output
    applied = ws.exec("cat", "/home/coder/.dotfiles-applied", user=USER, check=False).strip()
    assert applied == "applied", [line for line in result.output.splitlines() if "otfiles" in line or "fatal" in line]


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
def test_a_dotfiles_value_is_not_run_as_shell_in_the_container(make_workspace, remote: Remote) -> None:
    """MEDIUM - an input run as shell (the project's rule: argument lists, and a bad input is exit 2). The
    CLI pastes the repository unquoted into a shell script (`[ -e ~/dotfiles ] || git clone --depth 1
    ${repository} ~/dotfiles`), and DotfilesRepository refuses only whitespace and a leading '-': an
    absolute "path" (or a URL) with ';', '&', '|', '$(...)' or '${IFS}' is accepted and its tail runs in
    the devcontainer as the remote user. A gitweb URL (`...?p=dots.git;a=summary`) is the careless case;
    the test runs a `touch`."""
    remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE, "remoteUser": USER})})
    ws = make_workspace(remote.url, DEVCONTAINER_DOTFILES_REPOSITORY="/nonexistent;touch${IFS}/tmp/dotfiles-ran;")
    result = ws.up()
    if result.returncode == 2:
        return  # refused as a bad input: the fix
    assert result.returncode == 0, result.output
    ran = ws.exec("sh", "-c", "test -e /tmp/dotfiles-ran && echo ran || echo no", user=USER).strip()
    assert ran == "no", "the dotfiles value ran as shell in the container"


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
def test_a_vsix_that_is_a_symbolic_link_is_installed(
    make_workspace,
    remote: Remote,
    ide_env: dict[str, str],  # noqa: F811
    sandbox: Path,
) -> None:
    """MEDIUM - the air-gapped path broken by an ordinary folder. vsix.index() reads a .vsix through a
    symbolic link (zipfile follows it), but `docker cp` copies a link as a link (without -L): the
    container gets a link to a path that is not there, and the extension "did not install". Folders of
    links are ordinary: a Kubernetes ConfigMap or Secret volume is one (every file a link into ..data/),
    so are `latest.vsix -> acme.x-1.2.vsix` and Nix/Guix-managed folders."""
    store = sandbox / "store"
    real = write_vsix(store, "acme", "offline", "0.1.0", filename="acme.offline-0.1.0.vsix")
    folder = sandbox / "vsix-links"
    folder.mkdir()
    (folder / "offline.vsix").symlink_to(real)
    config = {
        "image": FALLBACK_IMAGE,
        "remoteUser": USER,
        "customizations": {"vscode": {"extensions": ["acme.offline"]}},
    }
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_EXTENSIONS_FOLDER": str(folder)})
    result = ws.up()
    assert result.returncode == 0, result.output
    ide = ws.state()["ide"]
    assert ide["extensions"] == ["acme.offline@0.1.0"], [
        line for line in result.output.splitlines() if "offline" in line
    ]
