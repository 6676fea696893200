"""The editor in the workspace: a real code-server, from the admin's mirror (a local HTTP server), inside
the devcontainer and the fallback, with the config's extensions from a gallery double and a .vsix folder,
its settings as machine settings, kept across a restart and a rebuild; and the user's dotfiles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.builder import Workspace, docker, remove_containers_under
from support.coder import CoderDouble, bridge_gateway, init_script, make_double
from support.compose_project import forget_projects, project_files, services_of
from support.githttp import GitHTTPServer
from support.ide import (
    FileServer,
    GalleryDouble,
    Tarball,
    code_server_tarball,
    dotfiles_repository,
    ide_volume,
    remove_volumes,
    write_vsix,
)
from support.images import BASE_IMAGE, FALLBACK_IMAGE
from support.repos import Remote
from support.services import wait_for
from support.supervisor import Supervisor

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

USER = "coder"  # FALLBACK_IMAGE's user
EXTENSIONS_DIR = "/opt/devcontainer-builder/ide/extensions"
PAGE_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
MACHINE_SETTINGS = "/home/coder/.local/share/code-server/Machine/settings.json"
USER_SETTINGS = "/home/coder/.local/share/code-server/User/settings.json"


@pytest.fixture(scope="module")
def tarball() -> Tarball:
    return code_server_tarball()


@pytest.fixture(autouse=True)
def ide_volumes(sandbox: Path) -> Iterator[None]:
    """The workspaces' code-server volumes (hundreds of MiB each) go with the test."""
    yield
    remove_containers_under(str(sandbox))  # a volume in use cannot be removed
    remove_volumes(*(ide_volume(sandbox / "workspaces" / name) for name in ("project", "other")))


@pytest.fixture
def mirror(tarball: Tarball, sandbox: Path) -> Iterator[FileServer]:
    root = sandbox / "mirror"
    root.mkdir()
    (root / tarball.path.name).symlink_to(tarball.path)
    server = FileServer(root)
    yield server
    server.stop()


@pytest.fixture
def gallery() -> Iterator[GalleryDouble]:
    server = GalleryDouble(bridge_gateway())  # code-server asks it from inside the container
    server.add("acme", "hello", "1.0.0")
    server.add("acme", "hello", "2.0.0")
    server.add("acme", "pinned", "1.0.0")
    server.add("acme", "pinned", "1.1.0")
    yield server
    server.stop()


@pytest.fixture
def coder() -> Iterator[CoderDouble]:
    server = make_double(host=bridge_gateway())
    yield server
    server.stop()


@pytest.fixture
def ide_env(
    tarball: Tarball, mirror: FileServer, gallery: GalleryDouble, coder: CoderDouble, sandbox: Path
) -> dict[str, str]:
    vsix = sandbox / "vsix"
    write_vsix(vsix, "acme", "offline", "0.1.0", filename="anything.vsix")  # found by its package.json
    url = f"http://{bridge_gateway()}:{coder.port}"
    return {
        "DEVCONTAINER_IDE": "code-server",
        "DEVCONTAINER_IDE_SOURCE": f"{mirror.base}/{tarball.path.name}",
        "DEVCONTAINER_IDE_SHA256": tarball.sha256,
        "DEVCONTAINER_EXTENSIONS_GALLERY": gallery.service_url,
        "DEVCONTAINER_EXTENSIONS_FOLDER": str(vsix),
        "CODER_AGENT_URL": url,
        "CODER_AGENT_TOKEN": coder.token,
        "CODER_INIT_SCRIPT": init_script(url),
    }


def devcontainer(**extra: object) -> dict[str, str]:
    config = {
        "image": FALLBACK_IMAGE,
        "remoteUser": USER,
        "customizations": {
            "vscode": {
                "extensions": ["acme.hello", "acme.pinned@1.0.0", "acme.offline", "acme.nowhere"],
                "settings": {"editor.tabSize": 3, "files.trimTrailingWhitespace": True},
            }
        },
        **extra,
    }
    return {".devcontainer/devcontainer.json": json.dumps(config)}


def healthz(ws: Workspace) -> dict:
    return json.loads(ws.exec("curl", "-fsS", "--max-time", "5", "http://127.0.0.1:13337/healthz"))


def extensions(ws: Workspace) -> list[str]:
    binary = ws.exec("sh", "-c", "ls -d /opt/devcontainer-builder/ide/*/bin/code-server", user=USER).strip()
    out = ws.exec(binary, "--extensions-dir", EXTENSIONS_DIR, "--list-extensions", "--show-versions", user=USER)
    return sorted(line.strip().lower() for line in out.splitlines() if "@" in line)


def code_servers(ws: Workspace) -> list[str]:
    out = ws.exec("sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' < $f; echo; done", user="root")
    return [line for line in out.splitlines() if "out/node/entry.js" in line and "--bind-addr" in line]


def test_code_server_runs_with_the_configs_extensions_and_settings_and_keeps_them(
    make_workspace, remote: Remote, ide_env: dict[str, str], mirror: FileServer, gallery: GalleryDouble
) -> None:
    remote.commit(devcontainer())
    ws = make_workspace(remote.url, **ide_env)

    first = ws.up()
    assert first.returncode == 0, first.output
    state = ws.state()
    assert state["status"] == "running"
    ide = state["ide"]
    assert ide["status"] == "started", ide
    assert ide["url"] == "http://127.0.0.1:13337"
    assert ide["missing"] == ["acme.nowhere"]
    assert "extension acme.nowhere is not installed" in ws.build_log()
    assert "extension_missing" in ws.event_kinds()
    # the agent first: the editor never delays it
    kinds = ws.event_kinds()
    assert kinds.index("agent_started") < kinds.index("ide_started")

    assert healthz(ws)["status"] in ("alive", "expired")
    assert extensions(ws) == ["acme.hello@2.0.0", "acme.offline@0.1.0", "acme.pinned@1.0.0"]
    machine = json.loads(ws.exec("cat", MACHINE_SETTINGS, user=USER))
    assert machine["editor.tabSize"] == 3 and machine["files.trimTrailingWhitespace"] is True
    assert len(code_servers(ws)) == 1
    assert mirror.count() == 1
    asked = gallery.count()
    assert asked > 0
    # the user's own settings are theirs: no later start writes them
    ws.exec("sh", "-c", f"mkdir -p $(dirname {USER_SETTINGS}) && echo '{{\"mine\": 1}}' > {USER_SETTINGS}", user=USER)

    # another start of the running workspace: the editor is found running, not started twice
    again = ws.up()
    assert again.returncode == 0, again.output
    assert ws.state()["ide"]["status"] == "running"
    assert len(code_servers(ws)) == 1

    # the container stopped and started again (as a workspace restart does): no download, no gallery
    docker("stop", "-t", "1", ws.container())
    restarted = ws.up()
    assert restarted.returncode == 0, restarted.output
    assert ws.state()["ide"]["status"] == "started"
    assert healthz(ws)["status"] in ("alive", "expired")
    assert json.loads(ws.exec("cat", USER_SETTINGS, user=USER)) == {"mine": 1}

    # a rebuild: a new container, the tree and the extensions from the workspace's volume
    old = ws.container()
    rebuilt = ws.up(DEVCONTAINER_REBUILD="true")
    assert rebuilt.returncode == 0, rebuilt.output
    assert ws.container() != old
    assert ws.state()["ide"]["status"] == "started"
    assert healthz(ws)["status"] in ("alive", "expired")
    assert extensions(ws) == ["acme.hello@2.0.0", "acme.offline@0.1.0", "acme.pinned@1.0.0"]
    assert json.loads(ws.exec("cat", MACHINE_SETTINGS, user=USER))["editor.tabSize"] == 3
    assert mirror.count() == 1, "the rebuild downloaded code-server again"
    # only the extension that is nowhere is asked for again (and is still missing: a warning)
    later = gallery.gallery_requests()[asked:]
    assert later and all(method == "POST" for method, _ in later), later
    assert ws.state()["ide"]["missing"] == ["acme.nowhere"]


def test_the_fallback_container_has_an_editor(make_workspace, remote: Remote, ide_env: dict[str, str]) -> None:
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
            ".devcontainer/Dockerfile": f"FROM {BASE_IMAGE}\nRUN exit 3\n",
        }
    )
    ws = make_workspace(remote.url, **ide_env)
    result = ws.up()
    assert result.returncode == 0, result.output
    state = ws.state()
    assert state["status"] == "degraded" and state["fallback"] is True
    assert state["ide"]["status"] == "started", state["ide"]
    assert healthz(ws)["status"] in ("alive", "expired")


def test_an_image_with_an_old_glibc_gets_a_warning_and_no_editor(
    make_workspace, remote: Remote, ide_env: dict[str, str], mirror: FileServer
) -> None:
    # getconf answering as Debian 11's glibc does: what the builder reads
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}}),
            ".devcontainer/Dockerfile": (
                f"FROM {FALLBACK_IMAGE}\nUSER root\n"
                "RUN printf '#!/bin/sh\\necho glibc 2.31\\n' > /usr/local/bin/getconf && chmod 0755 /usr/local/bin/getconf\n"
                "USER coder\n"
            ),
        }
    )
    ws = make_workspace(remote.url, **ide_env)
    result = ws.up()
    assert result.returncode == 0, result.output
    state = ws.state()
    assert state["status"] == "running"
    assert state["ide"]["status"] == "unavailable"
    assert "glibc 2.31" in state["ide"]["error"] and "2.34" in state["ide"]["error"]
    assert "no editor: the image has glibc 2.31" in result.output
    assert mirror.count() == 0, "code-server was fetched for an image it cannot run in"


def test_a_tarball_that_does_not_match_its_sha256_is_not_used(
    make_workspace, remote: Remote, ide_env: dict[str, str]
) -> None:
    remote.commit(devcontainer())
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_IDE_SHA256": "0" * 64})
    result = ws.up()
    assert result.returncode == 0, result.output
    state = ws.state()
    assert state["status"] == "running"
    assert state["ide"]["status"] == "unavailable"
    assert "not " + "0" * 64 in state["ide"]["error"]
    assert ws.exec("sh", "-c", "ls /opt/devcontainer-builder/ide", user="root").split() == ["extensions"]
    assert [p.name for p in (ws.state_dir / "ide").iterdir() if ".tar.gz" in p.name] == [], "the download is removed"


def test_dotfiles_are_applied_as_the_remote_user_and_a_failing_install_is_a_warning(
    make_workspace, remote: Remote, sandbox: Path
) -> None:
    served = sandbox / "served"
    dotfiles_repository(served, '#!/bin/sh\nset -e\necho "applied as $(id -un)" > "$HOME/.dotfiles-applied"\n')
    server = GitHTTPServer(served, "", host=bridge_gateway()).start()  # public: as a user's dotfiles are
    try:
        remote.commit({".devcontainer/devcontainer.json": json.dumps({"image": FALLBACK_IMAGE, "remoteUser": USER})})
        ws = make_workspace(remote.url, DEVCONTAINER_DOTFILES_REPOSITORY=server.url("dotfiles"))
        result = ws.up()
        assert result.returncode == 0, result.output
        applied = ws.exec("cat", "/home/coder/.dotfiles-applied", user=USER, check=False).strip()
        assert applied == "applied as coder", ws.build_log()[-3000:]

        other = make_workspace(
            remote.url,
            name="other",
            DEVCONTAINER_DOTFILES_REPOSITORY=server.url("dotfiles"),
            DEVCONTAINER_DOTFILES_INSTALL_COMMAND="no-such-script.sh",
        )
        failing = other.up()
        assert failing.returncode == 0, failing.output
        assert other.state()["status"] == "running"
        assert "the dotfiles (DEVCONTAINER_DOTFILES_REPOSITORY) could not be installed" in failing.output
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEVCONTAINER_IDE": "code-server"}, "DEVCONTAINER_IDE_SHA256 is not set"),
        ({"DEVCONTAINER_IDE": "emacs"}, "DEVCONTAINER_IDE"),
        ({"DEVCONTAINER_IDE_SOURCE": "https://admin:hunter22@mirror.example/cs.tar.gz"}, "DEVCONTAINER_IDE_SOURCE"),
        ({"DEVCONTAINER_EXTENSIONS_GALLERY": "file:///etc"}, "DEVCONTAINER_EXTENSIONS_GALLERY"),
        ({"DEVCONTAINER_DOTFILES_REPOSITORY": "--upload-pack=touch /tmp/x"}, "DEVCONTAINER_DOTFILES_REPOSITORY"),
    ],
    ids=["no-sha", "unknown-ide", "source-password", "gallery-scheme", "dotfiles-flag"],
)
def test_a_bad_editor_setting_exits_2_naming_it(make_workspace, remote: Remote, env: dict, named: str) -> None:
    remote.commit(devcontainer())
    ws = make_workspace(remote.url)
    run = ws.up(**env)
    assert run.returncode == 2, run.output[-2000:]
    assert named in " ".join(run.stderr.split()) and "Traceback" not in run.output
    assert "hunter22" not in run.output
    assert not ws.folder.exists()


def test_keep_alive_brings_code_server_back_when_it_dies(
    make_workspace, remote: Remote, ide_env: dict[str, str]
) -> None:
    remote.commit(devcontainer())
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_EXTENSIONS_GALLERY": "none"})
    assert ws.up().returncode == 0
    first = ws.state()["ide"]["pid"]
    supervisor = Supervisor(ws)
    try:
        ws.exec("kill", "-9", first, user="root")
        wait_for(lambda: any(e["kind"] == "ide_started" and e.get("restarted") for e in ws.events()), 90,
                 "code-server started again by keep-alive")  # fmt: skip
        assert healthz(ws)["status"] in ("alive", "expired")
        assert len(code_servers(ws)) == 1
        assert ws.state()["ide"]["pid"] not in ("", first)
    finally:
        supervisor.stop()


def test_extensions_and_settings_of_a_feature_are_merged_with_the_repositorys(
    make_workspace, remote: Remote, ide_env: dict[str, str], sandbox: Path
) -> None:
    """The CLI merges a feature's customizations into the container's metadata: the builder installs
    those too, and the repository's settings win over the feature's."""
    write_vsix(sandbox / "vsix", "acme", "fromfeature", "3.0.0")
    feature = {
        "id": "editor-bits",
        "version": "1.0.0",
        "customizations": {
            "vscode": {"extensions": ["acme.fromfeature"], "settings": {"editor.tabSize": 8, "editor.rulers": [80]}}
        },
    }
    config = {
        "image": FALLBACK_IMAGE,
        "remoteUser": USER,
        "features": {"./editor-bits": {}},
        "customizations": {"vscode": {"extensions": ["acme.offline"], "settings": {"editor.tabSize": 3}}},
    }
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps(config),
            ".devcontainer/editor-bits/devcontainer-feature.json": json.dumps(feature),
            ".devcontainer/editor-bits/install.sh": "#!/bin/sh\necho editor bits\n",
        }
    )
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_EXTENSIONS_GALLERY": "none"})
    result = ws.up()
    assert result.returncode == 0, result.output
    assert ws.state()["status"] == "running"
    assert extensions(ws) == ["acme.fromfeature@3.0.0", "acme.offline@0.1.0"]
    machine = json.loads(ws.exec("cat", MACHINE_SETTINGS, user=USER))
    assert machine["editor.tabSize"] == 3 and machine["editor.rulers"] == [80]
    assert ws.state()["ide"]["missing"] == []


def test_a_code_server_the_image_brings_along_is_not_taken_for_the_admins(
    make_workspace, remote: Remote, ide_env: dict[str, str], tarball: Tarball, mirror: FileServer
) -> None:
    """A new volume is filled from the image's folder: an image that plants a tree where the builder
    keeps the admin's does not get it run (the repository never chooses the binary)."""
    planted = f"/opt/devcontainer-builder/ide/{tarball.sha256[:16]}"
    fake = "#!/bin/sh\\ntouch /tmp/the-repositorys-binary-ran\\nexec sleep 600\\n"
    remote.commit(
        {
            ".devcontainer/devcontainer.json": json.dumps({"build": {"dockerfile": "Dockerfile"}, "remoteUser": USER}),
            ".devcontainer/Dockerfile": (
                f"FROM {FALLBACK_IMAGE}\nUSER root\n"
                f"RUN mkdir -p {planted}/bin && printf '{fake}' > {planted}/bin/code-server "
                f"&& chmod 0755 {planted}/bin/code-server && echo 0 > {planted}/.complete\n"
                "USER coder\n"
            ),
        }
    )
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_EXTENSIONS_GALLERY": "none"})
    result = ws.up()
    assert result.returncode == 0, result.output
    assert ws.state()["ide"]["status"] == "started", ws.state()["ide"]
    assert "is not the one the builder unpacked: replacing it" in result.output
    assert mirror.count() == 1, "the admin's code-server was fetched"
    assert healthz(ws)["status"] in ("alive", "expired")
    assert ws.exec("sh", "-c", "ls /tmp", user="root").split().count("the-repositorys-binary-ran") == 0


def test_the_status_page_shows_the_editor_and_the_missing_extensions(
    make_workspace, remote: Remote, ide_env: dict[str, str]
) -> None:
    from playwright.sync_api import sync_playwright

    remote.commit(devcontainer())
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_EXTENSIONS_GALLERY": "none"})
    assert ws.up().returncode == 0
    supervisor = Supervisor(ws)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=PAGE_FLAGS)
            try:
                page = browser.new_page()
                page.goto(supervisor.url)
                page.wait_for_selector("#details dt:text('Editor')", timeout=60_000)
                details = page.inner_text("#details")
            finally:
                browser.close()
    finally:
        supervisor.stop()
    assert "code-server at http://127.0.0.1:13337 in the devcontainer" in details
    # no gallery: only the .vsix folder's extension could be had
    assert "acme.hello, acme.pinned@1.0.0, acme.nowhere" in details


def test_a_compose_devcontainer_gets_the_editor_too(
    make_workspace, remote: Remote, ide_env: dict[str, str], sandbox: Path
) -> None:
    """Compose configs take no admin volumes: code-server is copied into the container itself."""
    files = project_files(remoteUser=USER, customizations={"vscode": {"extensions": ["acme.offline"]}})
    remote.commit(files)
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_EXTENSIONS_GALLERY": "none"})
    try:
        result = ws.up()
        assert result.returncode == 0, result.output
        assert ws.state()["status"] == "running"
        assert ws.state()["ide"]["status"] == "started", ws.state()["ide"]
        app = services_of(ws)["app"]["id"]
        health = docker("exec", app, "curl", "-fsS", "--max-time", "5", "http://127.0.0.1:13337/healthz")
        assert json.loads(health)["status"] in ("alive", "expired")
        assert ws.state()["ide"]["extensions"] == ["acme.offline@0.1.0"]
    finally:
        forget_projects(sandbox)


def test_the_running_editor_uses_the_admins_gallery_and_holds_no_secret(
    make_workspace, remote: Remote, ide_env: dict[str, str], gallery: GalleryDouble
) -> None:
    """code-server's own process gets EXTENSIONS_GALLERY too: its Extensions view searches and updates
    from the admin's gallery, not code-server's default; neither the agent's token nor the git token is in
    its environment, its argv or the container's files."""
    config = {"image": FALLBACK_IMAGE, "remoteUser": USER, "customizations": {"vscode": {"extensions": ["acme.hello"]}}}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = make_workspace(remote.url, **ide_env, GH_TOKEN="ghp_editorgallerytoken0123456789")
    result = ws.up()
    assert result.returncode == 0, result.output
    pid = ws.state()["ide"]["pid"]
    environ = ws.exec("sh", "-c", f"tr '\\000' '\\n' < /proc/{pid}/environ", user=USER)
    argv = ws.exec("sh", "-c", f"tr '\\000' ' ' < /proc/{pid}/cmdline", user=USER)
    for secret in (ide_env["CODER_AGENT_TOKEN"], "ghp_editorgallerytoken0123456789"):
        assert secret not in environ and secret not in argv
        found = ws.exec(
            "sh",
            "-c",
            f"grep -rlsF -e '{secret}' / --exclude-dir=proc --exclude-dir=sys 2>/dev/null || true",
            user="root",
        )
        assert found.strip() == "", f"a secret in the container's files: {found}"
    given = [line.partition("=")[2] for line in environ.splitlines() if line.startswith("EXTENSIONS_GALLERY=")]
    assert given, f"code-server runs without the admin's gallery (its default instead): {argv}"
    assert json.loads(given[0])["serviceUrl"] == gallery.service_url


def test_a_vsix_folder_made_of_links_like_a_configmap_volume_is_installed(
    make_workspace, remote: Remote, ide_env: dict[str, str], sandbox: Path
) -> None:
    """A Kubernetes ConfigMap or Secret volume is made of links (x.vsix -> ..data/x.vsix, ..data -> a
    dated folder): the builder follows them and copies the file, not a link that dangles in the
    container."""
    folder = sandbox / "vsix-configmap"
    write_vsix(folder / "..2026_12_07_06_00_00.1", "acme", "offline", "0.1.0", filename="offline.vsix")
    (folder / "..data").symlink_to("..2026_12_07_06_00_00.1")
    (folder / "offline.vsix").symlink_to("..data/offline.vsix")
    config = {
        "image": FALLBACK_IMAGE,
        "remoteUser": USER,
        "customizations": {"vscode": {"extensions": ["acme.offline"]}},
    }
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = make_workspace(remote.url, **{**ide_env, "DEVCONTAINER_EXTENSIONS_FOLDER": str(folder)})
    result = ws.up()
    assert result.returncode == 0, result.output
    assert ws.state()["ide"]["extensions"] == ["acme.offline@0.1.0"], ws.build_log()[-3000:]
    assert "acme.offline@0.1.0" in extensions(ws)


# a repository's process on the editor's port, answering /healthz as code-server would
FAKE_HEALTHZ = r"""
use IO::Socket::INET; use POSIX;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 13337, Listen => 5, ReuseAddr => 1) or die "$!";
exit 0 if fork;  # the hook returns once the port is taken
POSIX::setsid(); open STDIN, "</dev/null"; open STDOUT, ">/dev/null"; open STDERR, ">/dev/null";
my $body = '{"status":"alive","lastHeartbeat":0}';
while (my $c = $s->accept) {
  <$c>;
  print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " . length($body)
    . "\r\nConnection: close\r\n\r\n" . $body;
  close $c;
}
"""


def test_a_port_the_repository_listens_on_is_a_warning_not_a_started_editor(
    make_workspace, remote: Remote, ide_env: dict[str, str]
) -> None:
    """A postStartCommand (any dev server) on 127.0.0.1:13337 answers /healthz itself: the editor is
    recorded as not there, with why, and the workspace runs."""
    config = {
        "image": FALLBACK_IMAGE,
        "remoteUser": USER,
        "postStartCommand": "perl .devcontainer/healthz.pl",
        "customizations": {"vscode": {"extensions": []}},
    }
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config), ".devcontainer/healthz.pl": FAKE_HEALTHZ})
    ws = make_workspace(remote.url, **ide_env)
    result = ws.up()
    assert result.returncode == 0, result.output
    ide = ws.state()["ide"]
    assert ide["status"] == "failed", ide
    assert "port 13337 in the container is taken by another process" in ide["error"], ide
    assert "port 13337 in the container is taken" in result.output
    assert not code_servers(ws)
    assert ws.state()["status"] == "running"


def test_a_start_lock_left_from_before_a_restart_does_not_deny_the_editor(
    make_workspace, remote: Remote, ide_env: dict[str, str]
) -> None:
    """A container stopped while a start held its lock leaves it in the container's filesystem; after
    the restart its pid names another process (here pid 1, the remote user's init): the lock is stale."""
    config = {"image": FALLBACK_IMAGE, "remoteUser": USER, "customizations": {"vscode": {"extensions": []}}}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = make_workspace(remote.url, **ide_env)
    first = ws.up()
    assert first.returncode == 0, first.output
    ide = ws.state()["ide"]
    assert ide["status"] == "started", ide
    lock = "$HOME/.cache/devcontainer-builder/code-server/start.lock"
    # pid 1 as the earlier container start's holder: its start time then is not pid 1's now
    ws.exec("sh", "-c", f"mkdir {lock} && echo 1 > {lock}/pid && echo 1 0 > {lock}/owner", user=USER)
    ws.exec("sh", "-c", f"kill {ide['pid']}", user=USER)
    wait_for(lambda: not code_servers(ws), 60, "code-server gone")

    again = ws.up()
    assert again.returncode == 0, again.output
    after = ws.state()["ide"]
    assert after["status"] == "started" and code_servers(ws), f"no editor after a restart: {after}"
