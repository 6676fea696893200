"""A hostile review of the editor (issue 20): each test is a defect found by attacking what docs/ide.md and
docs/configuration.md promise, written to FAIL until it is fixed. Severity in each docstring (high: secret
leak, escape, lost bytes, build failed by the editor; medium: editor hijacked or denied by the repository,
behaviour against the docs; low: messages, docs drift).

The docker tests stand up a workspace with the real code-server from the local mirror and the gallery
double, as tests/test_ide.py does (its fixtures are reused)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from devcontainer_builder.ide import customizations, start
from devcontainer_builder.ide.customizations import Wanted
from devcontainer_builder.log import Log
from devcontainer_builder.settings import limits
from devcontainer_builder.settings import options as opts
from devcontainer_builder.system import proc
from support.images import FALLBACK_IMAGE
from support.repos import Remote
from support.services import wait_for

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


def test_the_editors_worst_case_is_inside_ups_run_limit() -> None:
    """HIGH - build failed by the editor. `up` records the workspace `running` only after start_ide
    (pipeline.py), and settings/limits.py derives the workspace lock's wait and a VM unit's
    TimeoutStartSec from run_limit(), whose SPARE (120 s) covers "the fallback, the agent's start and the
    state" - not the editor. The editor's own bounds add up to hours: copying and unpacking the tarball
    (600 + 600 s), then up to 200 extensions (MAX_EXTENSIONS) each given 180 s (INSTALL_TIMEOUT) plus a
    .vsix copy (600 s), then 60 s for the health wait. A repository that lists 200 extensions and makes
    the gallery unreachable from its container (containerEnv HTTPS_PROXY at a black hole) keeps `up`
    inside the editor for ~10 h: systemd kills the VM's `up` first (the build fails), and a second `up`
    gives up on the workspace lock."""
    settings = opts.load("up", {}, {**REPO, "DEVCONTAINER_IDE": "code-server", "DEVCONTAINER_IDE_SHA256": "ab" * 32})
    editor_worst = (
        60  # the probe
        + start.COPY_TIMEOUT
        + start.UNPACK_TIMEOUT
        + start.LIST_TIMEOUT * 2
        + customizations.MAX_EXTENSIONS * start.INSTALL_TIMEOUT
        + start.HEALTH_WAIT
        + 30
    )
    assert editor_worst <= limits.SPARE, (
        f"the editor may take {editor_worst:.0f} s; run_limit() leaves {limits.SPARE} s for everything after "
        f"the build (run_limit = {limits.run_limit(settings)} s)"
    )


@dataclass
class _GalleryThatNeverAnswers(start.Target):
    """A container whose `--install-extension` from the gallery never returns (what a black-holed proxy
    in the repository's containerEnv makes of it); the extensions folder is empty."""

    installs: list[str] = field(default_factory=list)

    def exec(self, argv: list[str], **kwargs: object) -> proc.Result:  # type: ignore[override]
        if "--install-extension" in argv:
            self.installs.append(argv[-1])
            return proc.Result(argv, -9, "", "", timed_out=True, duration=start.INSTALL_TIMEOUT)
        return proc.Result(argv, 0, "", "", timed_out=False, duration=0.0)


def test_a_gallery_that_never_answers_is_not_waited_for_once_per_extension() -> None:
    """MEDIUM (the cause of the test above) - install_extensions() waits INSTALL_TIMEOUT (180 s) for every
    extension, one after another, even after the gallery has already failed to answer once: 20 wanted
    extensions are 20 x 180 s = one hour of `up` in which the workspace is not `running`. Once the gallery
    timed out, the rest should be reported missing at once (the next start tries again, as the docs say)."""
    settings = opts.load(
        "up",
        {},
        {
            **REPO,
            "DEVCONTAINER_IDE": "code-server",
            "DEVCONTAINER_IDE_SHA256": "ab" * 32,
            "DEVCONTAINER_EXTENSIONS_GALLERY": "https://gallery.invalid/vscode/gallery",
        },
    )
    target = _GalleryThatNeverAnswers(engine=None, container="c", user="coder", folder="/w")  # type: ignore[arg-type]
    wanted = tuple(Wanted(f"acme.ext{i}") for i in range(20))
    log = Log()
    result = start.install_extensions(settings, log, target, "/opt/x/bin/code-server", wanted)
    assert len(result.missing) == 20
    assert len(target.installs) <= 2, (
        f"{len(target.installs)} installs each waited {start.INSTALL_TIMEOUT:.0f} s for a gallery that had "
        f"already not answered: {len(target.installs) * start.INSTALL_TIMEOUT:.0f} s"
    )


def test_extensions_past_the_cap_are_not_dropped_silently() -> None:
    """LOW - customizations.merge() keeps the first MAX_EXTENSIONS (200) and drops the rest without a
    word: not installed, not in `ide.missing`, no warning, no `skipped` entry. docs/ide.md promises that
    an extension that cannot be had is a warning in the build log."""
    entries = [{"customizations": {"vscode": {"extensions": [f"acme.ext{i}" for i in range(205)]}}}]
    merged = customizations.merge(entries)
    accounted = {w.id for w in merged.extensions} | set(merged.skipped)
    dropped = [f"acme.ext{i}" for i in range(205) if f"acme.ext{i}" not in accounted]
    assert dropped == [], f"dropped without a warning: {dropped}"


# --- a real workspace -------------------------------------------------------------------------------

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


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
def test_a_port_taken_by_the_repository_is_not_reported_as_a_started_editor(
    make_workspace,
    remote: Remote,
    ide_env: dict[str, str],  # noqa: F811
) -> None:
    """MEDIUM - editor denied by the repository, and state.json says otherwise. A repository whose
    postStartCommand listens on 127.0.0.1:13337 (any dev server on that port does) makes code-server
    exit with EADDRINUSE, yet START's health wait asks http://127.0.0.1:13337/healthz - answered by the
    repository's process - so `ide.status` is `started`, `ide_started` is logged, the status page shows an
    editor, and Coder's app proxies to the repository's server. Nothing checks that the answer came from
    the process the builder started."""
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
    assert ide["status"] == "started", ide  # what the builder recorded

    def settled() -> bool:  # code-server either listens or has given up
        text = ws.exec("sh", "-c", f"cat {ide['log']}", user="root")
        return "listening on" in text or "EADDRINUSE" in text or not code_servers(ws)

    wait_for(settled, 120, "code-server listening or exiting")
    log = ws.exec("sh", "-c", f"cat {ide['log']}", user="root")
    assert code_servers(ws) and "EADDRINUSE" not in log, (
        f"state.json says the editor started (pid {ide['pid']}), but code-server could not listen:\n{log[-1500:]}"
    )


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
def test_a_start_lock_left_by_a_stopped_container_does_not_deny_the_editor(
    make_workspace,
    remote: Remote,
    ide_env: dict[str, str],  # noqa: F811
) -> None:
    """MEDIUM - no editor until a rebuild. START's lock (~/.cache/devcontainer-builder/code-server/
    start.lock) is in the container's own filesystem, which a stop and start keep; its holder is known
    only by a pid. A workspace stopped while START held it (the health wait is up to 30 s) leaves it
    behind, and after the restart pids count from 1 again: if the recorded pid now belongs to any process
    of the remote user (pid 1 - the container's own init - is one in every devcontainer with a non-root
    containerUser), every later start answers `busy`: `up` records the editor `failed`, and keep-alive
    (which treats `busy` as fine) never starts it. Here the leftover lock names pid 1 and code-server has
    died (as after the restart)."""
    config = {"image": FALLBACK_IMAGE, "remoteUser": USER, "customizations": {"vscode": {"extensions": []}}}
    remote.commit({".devcontainer/devcontainer.json": json.dumps(config)})
    ws = make_workspace(remote.url, **ide_env)
    first = ws.up()
    assert first.returncode == 0, first.output
    ide = ws.state()["ide"]
    assert ide["status"] == "started", ide
    lock = "$HOME/.cache/devcontainer-builder/code-server/start.lock"
    ws.exec("sh", "-c", f"mkdir {lock} && echo 1 > {lock}/pid && kill {ide['pid']}", user=USER)
    wait_for(lambda: not code_servers(ws), 60, "code-server gone")

    again = ws.up()
    assert again.returncode == 0, again.output
    after = ws.state()["ide"]
    assert after["status"] == "started" and code_servers(ws), f"no editor after a restart: {after}"
